# Every target creates the virtualenv it needs (Python 3.11 unless PYTHON says otherwise).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint docs install clean bench bench-quick screenshots system-deps

# A development install (make install, make test) has the sandbox extra already.
demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))  ## the end-to-end demo against the embedded sandbox
	$(BIN)/python -m hubspot_tx.demo

test: $(STAMP) system-deps  ## the test suite (real servers on loopback)
	$(BIN)/python -m pytest

system-deps:  ## Debian packages the tests need (chromium, redis-server), if missing
	bash scripts/system-deps.sh

lint: $(STAMP)  ## ruff + mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict

docs: $(STAMP)  ## the API reference from the docstrings -> site/ (warnings are errors)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)  ## benchmarks vs peers -> benchmarks/RESULTS.md (installs postfix, nginx, peers)
	bash benchmarks/install.sh $(BIN)/python
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)  ## the same, fewer rounds (about 2 minutes)
	bash benchmarks/install.sh $(BIN)/python
	$(BIN)/python benchmarks/run_all.py --quick

screenshots: $(STAMP)  ## refresh docs/screenshots/ (the web inbox, in Debian's headless Chromium)
	HUBSPOT_TX_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_inbox_browser.py -k screenshots

install: $(STAMP)

# The demo needs only the sandbox extra (not the development toolchain); pip shows its progress.
$(DEMO_STAMP): pyproject.toml
	@echo "== $(VENV): installing hubspot-tx with its sandbox extra (what the demo needs)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[sandbox]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf .venv .venv-* dist build site .mypy_cache .pytest_cache .ruff_cache
