"""The package's public surface: one sorted ``__all__`` matching what is exported."""

from __future__ import annotations

import inspect

import pytest

import hubspot_tx
import hubspot_tx.models
import hubspot_tx.sandbox


def test_all_is_sorted_and_complete() -> None:
    # The top-level package imports lazily: every name of __all__ resolves, and nothing else
    # public is defined there.
    for name in hubspot_tx.__all__:
        assert getattr(hubspot_tx, name) is not None
    assert set(hubspot_tx.__all__) - {"__version__"} == set(hubspot_tx._EXPORTS)
    for module in (hubspot_tx.models, hubspot_tx.sandbox):
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
        }
        assert len(set(module.__all__)) == len(module.__all__)  # ruff's RUF022 keeps it sorted
        assert set(module.__all__) - {"__version__"} == public, module.__name__


def test_py_typed_is_shipped() -> None:
    from importlib.resources import files

    assert files("hubspot_tx").joinpath("py.typed").is_file()


def test_errors_inherit_builtins() -> None:
    assert issubclass(hubspot_tx.APIConnectionError, ConnectionError)
    assert issubclass(hubspot_tx.APITimeoutError, TimeoutError)
    assert issubclass(hubspot_tx.SendStatusTimeout, TimeoutError)
    for name in hubspot_tx.__all__:
        obj = getattr(hubspot_tx, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hubspot_tx.HubSpotError), name


def test_the_pytest_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("hubspot_tx")


def test_import_and_help_load_no_network_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hubspot_tx, hubspot_tx.cli._main as m\n"
        "m.build_parser().format_help()\n"
        "print(sorted(n for n in ('aiohttp', 'aiosmtplib') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
