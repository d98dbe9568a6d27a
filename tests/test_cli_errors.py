"""CLI errors are one line that says what to do: missing extras, Redis unreachable, a port in
use; a repeated ``send --send-id`` says the send already happened and exits 0; ``--help``
lists every variable; ``--version``; every option has help text."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hubspot_tx import __version__
from hubspot_tx._env import VARIABLES
from hubspot_tx.cli._main import build_parser
from hubspot_tx.sandbox import SandboxProcess, sandbox_process

from .test_cli import cli


def run(*args: str, pythonpath: Path | None = None, timeout: float = 120) -> tuple[int, str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    return done.returncode, done.stdout, done.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def without(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH whose modules shadow installed ones with an ImportError."""
    return tmp_path


def shadow(directory: Path, *modules: str) -> Path:
    for module in modules:
        (directory / f"{module}.py").write_text(f'raise ImportError("No module named {module!r}")')
    return directory


@pytest.mark.parametrize(
    "argv", [["-m", "hubspot_tx.cli", "demo"], ["-m", "hubspot_tx.demo", "--messages", "1"]]
)
def test_demo_without_the_sandbox_extra_is_one_line(argv: list[str], without: Path) -> None:
    code, _, err = run(*argv, pythonpath=shadow(without, "trustme"))
    assert code == 2
    assert "pip install 'hubspot-tx[sandbox]'" in one_line(err)


@pytest.mark.parametrize(
    "argv", [["worker"], ["relay", "--distributed", "."]], ids=["worker", "relay"]
)
def test_distributed_without_the_extra_is_one_line(argv: list[str], without: Path) -> None:
    code, _, err = run("-m", "hubspot_tx.cli", *argv, pythonpath=shadow(without, "redis"))
    assert code == 2
    assert "pip install 'hubspot-tx[distributed]'" in one_line(err)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [["worker", "--smtp-user", "u", "--smtp-password", "p"], ["relay", "--distributed"]],
    ids=["worker", "relay"],
)
def test_redis_unreachable_is_one_line_without_its_password(
    argv: list[str], tmp_path: Path
) -> None:
    (tmp_path / "a.eml").write_bytes(b"From: a@x.org\r\nTo: b@y.org\r\nSubject: s\r\n\r\nx\r\n")
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    extra = [str(tmp_path), "--smtp-user", "u", "--smtp-password", "p"] if "relay" in argv else []
    code, _, err = run("-m", "hubspot_tx.cli", *argv, *extra, "--redis-url", url)
    assert code == 4, err
    line = err.strip().splitlines()[-1]  # the worker also says how many processes it runs
    assert "Traceback" not in err
    assert line.startswith("hubspot-tx: error: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "HUBSPOT_TX_REDIS_URL" in line
    assert "hunter2" not in err


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = ["--http-port", "0", "--https-port", "0", "--smtps-port", "0"]
        code, _, err = run("-m", "hubspot_tx.cli", "sandbox", *ports, "--smtp-port", str(port))
    assert code == 2
    line = one_line(err)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    assert "--smtp-port" in line


@pytest.fixture
async def sandbox_proc() -> AsyncIterator[SandboxProcess]:
    async with sandbox_process() as proc:
        yield proc


async def test_a_repeated_send_id_says_the_send_happened_and_exits_0(
    sandbox_proc: SandboxProcess,
) -> None:
    env = sandbox_proc.env()
    send = ["send", "--email-id", "1001", "--to", "ada@example.org", "--send-id", "order-17"]
    code, out, _ = await cli(*send, "--wait", "--json", env=env)
    assert (code, json.loads(out)["sendResult"]) == (0, "SENT")
    code, out, err = await cli(*send, "--wait", "--json", env=env)
    assert json.loads(out)["sendResult"] == "IDEMPOTENT_IGNORE"
    assert code == 0
    assert "order-17 was used before: that send already happened" in err


def test_help_lists_every_variable_and_the_version() -> None:
    code, out, _ = run("-m", "hubspot_tx.cli", "--help")
    assert code == 0
    for name in VARIABLES:
        assert name in out
    assert {"HUBSPOT_TX_REDIS_URL", "HUBSPOT_CA_FILE", "HUBSPOT_SMTP_PASSWORD"} <= set(VARIABLES)
    code, out, _ = run("-m", "hubspot_tx.cli", "--version")
    assert (code, out.strip()) == (0, f"hubspot-tx {__version__}")


def _parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, Any]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_has_help_and_json_is_where_the_readme_says() -> None:
    with_json = set()
    for path, parser in _parsers(build_parser(), "hubspot-tx"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or not action.option_strings:
                continue
            assert action.help, f"{path} {action.option_strings[0]} has no help"
            if "--json" in action.option_strings:
                with_json.add(path.removeprefix("hubspot-tx ").split()[0])
    # The README: "`sandbox`, `tokens`, `send`, `status` and `relay` take `--json`".
    assert with_json == {"sandbox", "tokens", "send", "status", "relay"}
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "`sandbox`, `tokens`, `send`, `status` and `relay` take `--json`" in readme
