"""What the quickstart installs: ``make demo`` only the sandbox extra, with pip's progress shown;
no runtime dependency that nothing imports."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_make_demo_installs_the_sandbox_extra_only_and_shows_progress(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-n", "demo", f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installs = [line for line in done.stdout.splitlines() if "pip install" in line]
    assert any("-e '.[sandbox]'" in line for line in installs), done.stdout
    assert not any("[dev]" in line or "[test]" in line for line in installs), done.stdout
    assert not any(" -q" in line for line in installs), "pip must show its progress"


def test_every_runtime_dependency_is_imported() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [
        dep.split(">")[0].split("=")[0].split("[")[0].strip() for dep in project["dependencies"]
    ]
    sources = "\n".join(p.read_text() for p in (ROOT / "hubspot_tx").rglob("*.py"))
    for name in names:
        module = name.replace("-", "_")
        assert f"import {module}" in sources or f"from {module}" in sources, name


def test_make_test_installs_uvloop_so_the_loop_matrix_is_whole() -> None:
    # tests/conftest.py runs the SMTP, REST and sandbox tests on uvloop only when it imports:
    # without it in the test extra a fresh `make test` silently ran half the matrix (and
    # `mypy --strict` failed on the CLI's uvloop import).
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "hubspot-tx[uvloop]" in extras["test"]
