"""The ``hubspot-tx`` command line, run as a process against real sandboxes."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import random
import shlex
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubspot_tx import SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox, SandboxProcess, sandbox_process

from .conftest import make_message


async def cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def sandbox_proc() -> AsyncIterator[SandboxProcess]:
    """``hubspot-tx sandbox`` as a process (stopped after the test)."""
    async with sandbox_process() as proc:
        yield proc


async def test_token_commands_against_a_sandbox_process(sandbox_proc: SandboxProcess) -> None:
    env = sandbox_proc.env()
    code, out, _ = await cli("tokens", "create", "--campaign-name", "cli", "--json", env=env)
    assert code == 0
    created = json.loads(out)
    assert len(created["password"]) >= 20  # shown: the user asked for it
    code, out, _ = await cli("tokens", "list", env=env)
    assert code == 0
    assert created["id"] in out
    assert "CAMPAIGN_NAME" not in out
    assert "CAMPAIGNNAME" in out
    assert created["password"] not in out
    code, out, _ = await cli("tokens", "get", created["id"], "--json", env=env)
    assert json.loads(out)["campaignName"] == "cli"
    code, out, _ = await cli("tokens", "reset-password", created["id"], "--json", env=env)
    assert code == 0
    assert json.loads(out)["password"] != created["password"]
    code, out, _ = await cli("tokens", "delete", created["id"], env=env)
    assert code == 0
    code, out, err = await cli("tokens", "get", created["id"], env=env)
    assert code == 1
    assert err.count("\n") == 1
    assert "404" in err
    assert "Traceback" not in err


async def test_send_and_status_against_a_sandbox_process(sandbox_proc: SandboxProcess) -> None:
    env = sandbox_proc.env()
    code, out, _ = await cli(
        "send",
        "--email-id",
        "1001",
        "--to",
        "ada@example.org",
        "--property",
        "order=1",
        "--json",
        env=env,
    )
    assert code == 0
    status_id = json.loads(out)["statusId"]
    code, out, _ = await cli("status", status_id, "--wait", "--json", env=env)
    assert code == 0
    assert json.loads(out)["sendResult"] == "SENT"
    code, out, _ = await cli(
        "send", "--email-id", "1001", "--to", "bounced@example.org", "--wait", env=env
    )
    assert code == 1  # a final status that did not send
    assert "PREVIOUSLY_BOUNCED" in out
    code, out, _ = await cli(
        "send",
        "--email-id",
        "1001",
        "--to",
        "x@example.org",
        "--v4",
        "--api-version",
        "2026-03",
        env=env,
    )
    assert code == 0


async def test_relay_every_source_kind(sandbox_proc: SandboxProcess, tmp_path: Path) -> None:
    env = sandbox_proc.env()
    code, out, _ = await cli("tokens", "create", "--campaign-name", "relay", "--json", env=env)
    token = json.loads(out)
    env = {**env, "HUBSPOT_SMTP_USER": token["id"], "HUBSPOT_SMTP_PASSWORD": token["password"]}
    folder = tmp_path / "eml"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i:03d}.eml").write_bytes(make_message(i))
    box = mailbox.mbox(str(tmp_path / "box.mbox"))
    maildir = mailbox.Maildir(str(tmp_path / "Maildir"))
    for i in range(20, 30):
        box.add(make_message(i))
        maildir.add(make_message(i + 10))
    box.flush()
    results = tmp_path / "results.jsonl"
    code, out, err = await cli(
        "relay",
        str(folder),
        str(tmp_path / "box.mbox"),
        str(tmp_path / "Maildir"),
        "-",
        "--results",
        str(results),
        "--json",
        env=env,
        stdin=make_message(99),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["outcomes"] == {"sent": 41}
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 41
    assert all(r["status"] == "sent" for r in records)
    ids = {r["messageId"] for r in records}
    assert ids == {f"<m{i}@hubspot-tx.test>" for i in [*range(40), 99]}
    assert token["password"] not in out + err


async def test_user_mistakes_are_one_clear_line(
    sandbox_proc: SandboxProcess, tmp_path: Path
) -> None:
    env = sandbox_proc.env()
    code, _, err = await cli("tokens", "list", "--bogus-flag", env=env)
    assert code == 2
    assert "unrecognized arguments: --bogus-flag" in err
    code, _, err = await cli("tokens", "list", env={**env, "HUBSPOT_ACCESS_TOKEN": ""})
    assert code == 2
    assert err.strip().endswith("set HUBSPOT_ACCESS_TOKEN")
    code, _, err = await cli("tokens", "list", env={**env, "HUBSPOT_ACCESS_TOKEN": "pat-wrong"})
    assert code == 3
    assert err.count("\n") == 1
    assert "pat-wrong" not in err
    code, _, err = await cli(
        "tokens", "list", env={**env, "HUBSPOT_BASE_URL": "https://127.0.0.1:9"}
    )
    assert code == 4
    assert err.count("\n") == 1
    assert "cannot connect to 127.0.0.1:9" in err
    assert "HUBSPOT_BASE_URL" in err  # what to check
    (tmp_path / "a.eml").write_bytes(make_message(1))
    code, out, err = await cli(
        "relay",
        str(tmp_path / "a.eml"),
        "--results",
        str(tmp_path / "r.jsonl"),
        env={**env, "HUBSPOT_SMTP_USER": "nobody", "HUBSPOT_SMTP_PASSWORD": "wrong-password-1"},
    )
    assert code == 3
    assert "535" in err
    assert "wrong-password-1" not in out + err
    assert err.count("\n") == 1
    code, _, err = await cli("relay", str(tmp_path / "missing"), env=env)
    assert code == 2
    assert "no such file" in err


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["sandbox"],
        ["demo"],
        ["tokens"],
        ["tokens", "list"],
        ["tokens", "create"],
        ["send"],
        ["status"],
        ["relay"],
    ],
)
async def test_help_is_complete(command: list[str]) -> None:
    code, out, _ = await cli(*command, "--help")
    assert code == 0
    assert out.startswith("usage: hubspot-tx")
    if command == ["relay"]:
        for flag in ("--resume", "--concurrency", "--results", "--tls", "--smtp-user"):
            assert flag in out
    if command == []:
        assert "HUBSPOT_SMTP_PASSWORD" in out
        assert "exit codes" in out


# -- interrupted relays: an in-process sandbox, so that the test can slow it and read its store --
async def _relay_env(sb: Sandbox, token: SmtpTokenWithPassword) -> dict[str, str]:
    return {
        "HUBSPOT_SMTP_HOST": sb.host,
        "HUBSPOT_SMTP_PORT": str(sb.smtp_port),
        "HUBSPOT_CA_FILE": sb.ca_file,
        "HUBSPOT_SMTP_USER": token.id,
        "HUBSPOT_SMTP_PASSWORD": token.password.get_secret_value(),
    }


async def _interrupted_relay(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path, sig: signal.Signals
) -> tuple[Path, dict[str, str], int]:
    folder = tmp_path / "eml"
    folder.mkdir()
    total = 300
    for i in range(total):
        (folder / f"{i:04d}.eml").write_bytes(make_message(i))
    env = await _relay_env(sandbox, token)
    results = tmp_path / "results.jsonl"
    sandbox.faults.smtp_slow("stored", 0.01, times=None)  # ~ 4 concurrent x 100 msg/s
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "relay",
        str(folder),
        "--concurrency",
        "4",
        "--results",
        str(results),
        "--quiet",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stop_after = random.randint(20, 120)  # a random point of the run
    while len(sandbox.state.messages) < stop_after:  # noqa: ASYNC110 (polling another process)
        await asyncio.sleep(0.01)
    proc.send_signal(sig)
    code = await asyncio.wait_for(proc.wait(), 60)
    sandbox.faults.clear()
    return results, env, code


async def _resume(results: Path, env: dict[str, str], folder: Path) -> tuple[int, str]:
    code, _, err = await cli(
        "relay",
        str(folder),
        "--concurrency",
        "4",
        "--results",
        str(results),
        "--resume",
        "--quiet",
        env=env,
    )
    return code, err


async def test_sigint_drains_then_resume_sends_each_message_exactly_once(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    results, env, code = await _interrupted_relay(sandbox, token, tmp_path, signal.SIGINT)
    assert code == 130
    recorded = len(results.read_text().splitlines())
    assert 0 < recorded < 300
    assert recorded == len(sandbox.state.messages)  # what was in flight finished and was written
    code, err = await _resume(results, env, tmp_path / "eml")
    assert code == 0, err
    stored = Counter(m.message_id for m in sandbox.state.messages)
    assert len(stored) == 300
    assert set(stored.values()) == {1}


async def test_sigkill_then_resume_sends_each_message_at_most_once(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    results, env, code = await _interrupted_relay(sandbox, token, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    code, err = await _resume(results, env, tmp_path / "eml")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    unknown = [r["id"] for r in records if r.get("category") == "delivery_unknown"]
    assert len(unknown) <= 4  # at most --concurrency were in flight
    if unknown:
        assert f"{len(unknown)} message(s) were in flight" in err
    for message_id in unknown:
        assert message_id in err  # listed by --resume
    stored = Counter(m.message_id for m in sandbox.state.messages)
    assert set(stored.values()) == {1}  # at most once
    assert len(stored) >= 300 - len(unknown)
    assert code == 0  # the rest went out; the unknown ones are reported, not resent


async def test_sandbox_banner_names_the_emails_and_their_campaign_ids() -> None:
    ports = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "sandbox",
        *ports,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.strip().startswith("export ") for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the sandbox exited before printing its banner"
            lines.append(line.decode())
            assert len(lines) < 50
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    [emails] = [line for line in lines if line.strip().startswith("emails")]
    assert "1001 -> " in emails
    assert "12345678 -> " in emails
    assert "1001 -> 1001" not in emails  # a campaign id is not the email id


async def test_sandbox_in_the_background_serves_once_it_returns() -> None:
    free = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]
    code, out, err = await cli("sandbox", "--background", *free)
    assert code == 0, err
    export, pid_line = out.splitlines()
    env = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    pid = int(pid_line.split("=", 1)[1].split()[0])
    try:
        assert "running in the background" in err
        code, listed, _ = await cli("tokens", "list", env=env)
        assert code == 0
        assert env["HUBSPOT_SMTP_USER"] in listed  # the token its export line carries
        # Another on a port in use: one line that names the flags, no export line.
        https_port = env["HUBSPOT_BASE_URL"].rsplit(":", 1)[1]
        clash = [*free[:2], "--https-port", https_port, *free[4:]]
        code, out, err = await cli("sandbox", "--background", *clash)
        assert (code, out) == (2, "")
        assert "--https-port" in err
        assert len(err.strip().splitlines()) == 1, err
    finally:
        os.kill(pid, signal.SIGTERM)
    async with asyncio.timeout(30):  # it stops on SIGTERM (not our child: poll)
        while _running(pid):  # noqa: ASYNC110 - another session's process: no event
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("spelling", ["--background", "--backg", "--b"])
def test_sandbox_in_the_background_starts_one_sandbox_in_the_foreground(spelling: str) -> None:
    # argparse takes a prefix of --background for it: the command that --backg starts must
    # serve, not go to the background again (a new process each time, without end).
    from hubspot_tx.cli._main import build_parser
    from hubspot_tx.cli._sandbox import foreground_argv

    argv = ["sandbox", spelling, "--http-port", "0", "--json"]
    assert build_parser().parse_args(argv).background
    started = build_parser().parse_args(foreground_argv(argv))
    assert not started.background
    assert started.json
    assert started.http_port == 0


def _running(pid: int) -> bool:
    """Alive, and not a zombie its new parent has yet to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
