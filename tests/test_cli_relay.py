"""``hubspot-tx relay`` as a process against an in-process sandbox: sources, ids, the results
file, signals, unreachable servers, streaming and the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import mailbox
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hubspot_tx import SmtpTokenWithPassword
from hubspot_tx.distributed import RedisServer
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message
from .distributed_support import redis_srv

__all__ = ["redis_srv"]

ID = r"sha256:[0-9a-f]{32}:[0-9]+"


def _env(sb: Sandbox, token: SmtpTokenWithPassword, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HUBSPOT_SMTP_HOST": sb.host,
        "HUBSPOT_SMTP_PORT": str(sb.smtp_port),
        "HUBSPOT_CA_FILE": sb.ca_file,
        "HUBSPOT_SMTP_USER": token.id,
        "HUBSPOT_SMTP_PASSWORD": token.password.get_secret_value(),
        **extra,
    }


def _without_uvloop(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` in which ``import uvloop`` fails, as where it is not installed."""
    hidden = tmp_path / "no-uvloop"
    hidden.mkdir(exist_ok=True)
    (hidden / "uvloop.py").write_text("raise ImportError('uvloop is not installed')\n")
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), env.get("PYTHONPATH")])),
    }


async def _start(
    *args: str, env: dict[str, str], stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "relay",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def relay(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await _start(*args, "--quiet", env=env, stdin=stdin is not None)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    if proc.returncode is None:
        raise AssertionError("no exit code")
    return proc.returncode, out.decode(), err.decode()


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path))
    for message in messages:
        box.add(message)
    box.flush()
    box.close()
    return path


async def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition()`` (state another process changes) until true, at most ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (another process changes it: no event to wait on)
            await asyncio.sleep(0.01)


# -- stdin ----------------------------------------------------------------------------------------
async def test_stdin_mbox_is_split_into_its_messages(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    box = _mbox(tmp_path / "in.mbox", [make_message(i) for i in range(50)])
    results = tmp_path / "r.jsonl"
    code, out, err = await relay(
        "-", "--results", str(results), "--json", env=_env(sandbox, token), stdin=box.read_bytes()
    )
    assert code == 0, err
    assert json.loads(out)["outcomes"] == {"sent": 50}
    stored = sandbox.state.messages
    assert len(stored) == 50  # not one message with 49 others in its body
    for message in stored:
        i = int(message.message_id.split("@")[0][2:])  # type: ignore[union-attr]
        assert message.rcpt_to == (f"rcpt{i}@example.org",)
        assert b"From sender" not in message.data
        assert b"From MAILER" not in message.data
    assert len({r["id"] for r in _records(results)}) == 50


async def test_stdin_messages_of_two_runs_are_distinct(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    results = tmp_path / "r.jsonl"
    env = _env(sandbox, token)
    code, _, err = await relay("-", "--results", str(results), env=env, stdin=make_message(1))
    assert code == 0, err
    code, out, err = await relay(
        "-", "--results", str(results), "--resume", "--json", env=env, stdin=make_message(2)
    )
    assert code == 0, err
    assert json.loads(out)["outcomes"] == {"sent": 1}  # not "skipped" as the same stdin:0
    assert [m.message_id for m in sandbox.state.messages] == [
        "<m1@hubspot-tx.test>",
        "<m2@hubspot-tx.test>",
    ]
    ids = [r["id"] for r in _records(results)]
    assert len(set(ids)) == 2
    assert all(re.fullmatch(ID, str(i)) for i in ids)


@pytest.mark.parametrize(
    ("stdin", "says"),
    [
        (b"", "stdin is empty"),
        (b"\x00\x01binary junk\n\nnot mail\n", "neither an mbox"),
        (b"  indented: no\r\n\r\nbody\r\n", "neither an mbox"),
    ],
)
async def test_stdin_that_is_not_mail_is_refused_in_one_line(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path, stdin: bytes, says: str
) -> None:
    results = tmp_path / "r.jsonl"
    code, _, err = await relay(
        "-", "--results", str(results), env=_env(sandbox, token), stdin=stdin
    )
    assert code == 2
    assert says in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert sandbox.state.messages == []


async def test_stdin_mbox_is_streamed(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    """The first message goes out while the rest of stdin has not been written yet."""
    box = _mbox(tmp_path / "in.mbox", [make_message(i) for i in range(3)]).read_bytes()
    second = box.index(b"\nFrom ", 1) + 1
    cut = box.index(b"\n", second) + 1  # up to the line that begins the second message
    proc = await _start(
        "-", "--results", str(tmp_path / "r.jsonl"), env=_env(sandbox, token), stdin=True
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(box[:cut])
        await proc.stdin.drain()
        await _until(lambda: len(sandbox.state.messages) == 1)
        proc.stdin.write(box[cut:])
        proc.stdin.close()
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert [m.message_id for m in sandbox.state.messages] == [
        f"<m{i}@hubspot-tx.test>" for i in range(3)
    ]


async def test_sigint_while_stdin_is_silent_stops_the_relay(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    box = _mbox(tmp_path / "in.mbox", [make_message(i) for i in range(2)]).read_bytes()
    second = box.index(b"\nFrom ", 1) + 1
    results = tmp_path / "r.jsonl"
    proc = await _start("-", "--results", str(results), env=_env(sandbox, token), stdin=True)
    assert proc.stdin is not None
    try:
        cut = box.index(b"\n", second) + 20  # the second message has begun, and stops there
        proc.stdin.write(box[:cut])
        await proc.stdin.drain()
        await _until(lambda: len(sandbox.state.messages) == 1)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)  # stdin still open
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, err
    assert b"--resume" in err
    assert len(sandbox.state.messages) == 1  # the cut second message was not sent
    assert len(_records(results)) == 1


async def test_stdin_redirected_from_a_file(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    box = _mbox(tmp_path / "in.mbox", [make_message(i) for i in range(5)])
    with box.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hubspot_tx.cli",
            "relay",
            "-",
            "--results",
            str(tmp_path / "r.jsonl"),
            "--quiet",
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(sandbox, token),
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert len(sandbox.state.messages) == 5


# -- ids, the results file ------------------------------------------------------------------------
async def test_identical_messages_stay_distinct_and_resume_follows_content(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    env = _env(sandbox, token)
    results = tmp_path / "r.jsonl"
    a, b, c = make_message(1), make_message(2), make_message(3)
    box = _mbox(tmp_path / "in.mbox", [a, a, b])
    code, _, err = await relay(str(box), "--results", str(results), env=env)
    assert code == 0, err
    assert Counter(m.message_id for m in sandbox.state.messages) == {
        "<m1@hubspot-tx.test>": 2,  # two identical messages: two sends
        "<m2@hubspot-tx.test>": 1,
    }
    # The mbox is edited: a message inserted at the front, the others moved along.
    box.unlink()
    _mbox(box, [c, b, a, a])
    code, out, err = await relay(str(box), "--results", str(results), "--resume", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["skipped"] == 3
    assert Counter(m.message_id for m in sandbox.state.messages) == {
        "<m1@hubspot-tx.test>": 2,
        "<m2@hubspot-tx.test>": 1,
        "<m3@hubspot-tx.test>": 1,  # only the new one
    }
    sources = {r["source"] for r in _records(results)}
    assert f"mbox:{box.resolve()}:0" in sources


async def test_a_results_file_with_sends_needs_resume_or_force(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    env = _env(sandbox, token)
    folder = tmp_path / "eml"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(make_message(i))
    results = tmp_path / "r.jsonl"
    code, _, err = await relay(str(folder), "--results", str(results), env=env)
    assert code == 0, err
    code, _, err = await relay(str(folder), "--results", str(results), env=env)
    assert code == 2
    assert "already records 3 message(s)" in err
    assert "--resume" in err
    assert "--force" in err
    assert err.count("\n") == 1
    assert len(sandbox.state.messages) == 3  # nothing sent twice
    code, _, err = await relay(
        str(folder), "--results", str(results), "--resume", "--force", env=env
    )
    assert code == 2
    code, out, err = await relay(
        str(folder), "--results", str(results), "--force", "--json", env=env
    )
    assert code == 0, err
    assert json.loads(out)["outcomes"] == {"sent": 3}
    assert len(sandbox.state.messages) == 6  # asked for explicitly


async def test_a_results_file_of_the_older_id_scheme_is_refused(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    box = _mbox(tmp_path / "in.mbox", [make_message(1)])
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"id": f"mbox:{box}:0", "status": "sent"}) + "\n")
    for extra in ([], ["--resume"], ["--force"]):
        code, _, err = await relay(
            str(box), "--results", str(results), *extra, env=_env(sandbox, token)
        )
        assert code == 2
        assert "older hubspot-tx" in err
        assert err.count("\n") == 1
    assert sandbox.state.messages == []


async def test_a_partly_delivered_message_is_not_resent_by_resume(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    env = _env(sandbox, token)
    message = make_message(1)
    (tmp_path / "a.eml").write_bytes(message)
    results = tmp_path / "r.jsonl"
    code, _, _ = await relay(str(tmp_path / "a.eml"), "--results", str(results), env=env)
    assert code == 0
    sent = _records(results)[0]
    # As a run whose message went to one recipient (or maybe did) and then failed for good
    # would record it.
    for partly in ({"accepted": ["a@example.org"]}, {"accepted": [], "inDoubt": ["a@x.org"]}):
        record = {**sent, "status": "failed", "category": "auth", **partly}
        results.write_text(json.dumps(record) + "\n")
        code, out, err = await relay(
            str(tmp_path / "a.eml"), "--results", str(results), "--resume", "--json", env=env
        )
        assert code == 0, err
        assert json.loads(out)["skipped"] == 1
        assert len(sandbox.state.messages) == 1


async def test_a_folder_without_eml_files_is_refused_with_a_hint(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "a.msg").write_bytes(make_message(1))
    code, _, err = await relay(
        str(folder), "--results", str(tmp_path / "r.jsonl"), env=_env(sandbox, token)
    )
    assert code == 2
    assert "no .eml files" in err
    assert "Maildir" in err
    assert err.count("\n") == 1
    (folder / "b.EML").write_bytes(make_message(2))  # the suffix in any case
    code, _, err = await relay(
        str(folder), "--results", str(tmp_path / "r.jsonl"), env=_env(sandbox, token)
    )
    assert code == 0, err
    assert [m.message_id for m in sandbox.state.messages] == ["<m2@hubspot-tx.test>"]


# -- Message-ID -----------------------------------------------------------------------------------
async def test_a_message_without_message_id_gets_one_recorded_and_stable(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    env = _env(sandbox, token)
    raw = b"From: Ada <ada@shop.example>\nTo: bob@example.org\nSubject: hi\n\nno id here\n"
    (tmp_path / "a.eml").write_bytes(raw)
    results = tmp_path / "r.jsonl"
    for extra in ([], ["--force"]):
        code, _, err = await relay(
            str(tmp_path / "a.eml"), "--results", str(results), *extra, env=env
        )
        assert code == 0, err
    first, second = sandbox.state.messages
    assert first.message_id is not None
    assert first.message_id.endswith("@shop.example>")
    assert second.message_id == first.message_id  # the same message: the same id
    records = _records(results)
    assert [r["messageId"] for r in records] == [first.message_id] * 2
    assert all(r["messageIdAdded"] is True for r in records)
    # Added at the end of the header, in the message's own line breaks; the rest untouched.
    head, _, body = first.data.replace(b"\r\n", b"\n").partition(b"\n\n")
    assert head.endswith(b"\nMessage-ID: " + first.message_id.encode())
    assert body == b"no id here\n"


# -- signals, unreachable servers, --tls none -----------------------------------------------------
@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP server that accepts and says nothing (as an implicit-TLS port does to a client
    waiting for an SMTP greeting)."""
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()
        await reader.read()  # until the client goes away

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def _established_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an established IPv4 TCP connection to ``port`` (/proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01" and fields[9] in inodes:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    ("server", "loop"),
    [
        ("sandbox-implicit-tls-port", "uvloop"),
        ("sandbox-implicit-tls-port", "asyncio"),
        ("silent", "uvloop"),
    ],
)
async def test_sigint_is_honoured_at_once_while_a_connect_hangs(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path, server: str, loop: str
) -> None:
    """STARTTLS (the default) to an implicit-TLS port: the client waits for a greeting, the
    server for a TLS hello. Ctrl-C then stops the relay at once."""
    (tmp_path / "a.eml").write_bytes(make_message(1))
    results = tmp_path / "r.jsonl"
    async with contextlib.AsyncExitStack() as stack:
        if server == "silent":
            port, _ = await stack.enter_async_context(_silent_server())
        else:
            port = sandbox.smtps_port
        env = _env(sandbox, token, HUBSPOT_SMTP_PORT=str(port))
        if loop == "asyncio":
            env = _without_uvloop(env, tmp_path)
        proc = await _start(str(tmp_path / "a.eml"), "--results", str(results), env=env)
        try:
            await _until(lambda: _established_to(proc.pid, port))
            proc.send_signal(signal.SIGINT)
            # Well under the 15 s connect timeout the old code sat out (3 times).
            _, err_bytes = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    err = err_bytes.decode()
    assert proc.returncode == 130
    assert "interrupted" in err
    assert "--resume" in err
    assert "Traceback" not in err
    assert not results.exists() or results.read_text() == ""  # nothing sent, nothing recorded
    journal = tmp_path / "r.jsonl.journal"
    assert not journal.exists() or journal.read_text() == ""
    # So --resume sends it.
    code, _, err = await relay(
        str(tmp_path / "a.eml"), "--results", str(results), "--resume", env=_env(sandbox, token)
    )
    assert code == 0, err
    assert [m.message_id for m in sandbox.state.messages] == ["<m1@hubspot-tx.test>"]


@pytest.mark.parametrize("where", ["refused", "unresolvable"])
async def test_an_unreachable_server_exits_4_in_one_line(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path, where: str
) -> None:
    for i in range(5):
        (tmp_path / f"{i}.eml").write_bytes(make_message(i))
    if where == "refused":
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()  # nothing listens there now
        env = _env(sandbox, token, HUBSPOT_SMTP_PORT=str(port))
    else:
        env = _env(sandbox, token, HUBSPOT_SMTP_HOST="no-such-host.invalid")
    results = tmp_path / "r.jsonl"
    code, out, err = await relay(str(tmp_path), "--results", str(results), env=env)
    assert code == 4, out + err
    assert err.count("\n") == 1
    assert "cannot open an SMTP session" in err
    assert "--host" in err
    assert "Traceback" not in err
    assert token.password.get_secret_value() not in out + err
    # Recorded as connection failures (if at all), which --resume tries again.
    assert all(r["category"] == "connection" for r in _records(results))


async def test_tls_none_suggests_the_cli_flag(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    (tmp_path / "a.eml").write_bytes(make_message(1))
    code, _, err = await relay(
        str(tmp_path / "a.eml"),
        "--tls",
        "none",
        "--results",
        str(tmp_path / "r.jsonl"),
        env=_env(sandbox, token),
    )
    assert code == 2
    assert "--allow-plaintext-auth" in err
    assert "allow_plaintext_auth" not in err  # a Python argument the CLI does not have
    assert err.count("\n") == 1


# -- a large mbox ---------------------------------------------------------------------------------
def _proc_figures(pid: int) -> tuple[int, int]:
    """Bytes the process has read so far, and its peak resident memory (Linux's /proc)."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return int(io["rchar"]), peak_kb * 1024


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/<pid>/io")
async def test_a_large_mbox_is_streamed_not_read_whole(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    """A 150 MB mbox: its first messages go out having read a few of them, in bounded memory."""
    body = (b"x" * 899 + b"\n") * 550  # ~500 KB
    path = tmp_path / "large.mbox"
    with path.open("wb") as out:
        for i in range(300):
            out.write(b"From sender@example.com Thu Jan  1 00:00:00 2026\n")
            out.write(make_message(i).replace(b"\r\n", b"\n") + body + b"\n")
    size = path.stat().st_size
    sandbox.faults.smtp_slow("stored", 0.2, times=None)  # the relay cannot race ahead
    proc = await _start(
        str(path),
        "--concurrency",
        "2",
        "--results",
        str(tmp_path / "r.jsonl"),
        "--quiet",
        env=_env(sandbox, token),
    )
    try:
        await _until(lambda: len(sandbox.state.messages) >= 3)
        read, peak = _proc_figures(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sandbox.faults.clear()
        path.unlink()
    assert proc.returncode == 130, err
    # Measured: 8 MB read and 38 MB peak RSS (the old CLI: 3 times the file read, 129 MB peak
    # for 100 MB).
    assert read < size / 4, (read, size)  # a few messages (and Python's own files)
    assert peak < size / 2, (peak, size)  # the old CLI held the whole file (and more)


# -- the event loop -------------------------------------------------------------------------------
@pytest.mark.parametrize("uvloop_installed", [True, False])
async def test_the_worker_runs_on_uvloop_when_installed_else_asyncio(
    redis_srv: RedisServer, tmp_path: Path, uvloop_installed: bool
) -> None:
    pytest.importorskip("uvloop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_SMTP")}
    if not uvloop_installed:
        env = _without_uvloop(env, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "worker",
        "--redis-url",
        redis_srv.url,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert line.startswith("hubspot-tx worker: 1 process")
    assert line.rstrip().endswith("(uvloop)" if uvloop_installed else "(asyncio)")
    assert proc.returncode == 0


@pytest.mark.parametrize("uvloop_installed", [True, False])
async def test_the_cli_runs_on_uvloop_when_installed_else_asyncio(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path, uvloop_installed: bool
) -> None:
    pytest.importorskip("uvloop")  # a test dependency (hubspot-tx[uvloop])
    env = _env(sandbox, token)
    if not uvloop_installed:
        env = _without_uvloop(env, tmp_path)
    for i in range(20):
        (tmp_path / f"{i}.eml").write_bytes(make_message(i))
    code, out, err = await relay(
        str(tmp_path), "--results", str(tmp_path / "r.jsonl"), "--json", env=env
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["event_loop"] == ("uvloop" if uvloop_installed else "asyncio")
    assert summary["outcomes"] == {"sent": 20}


async def test_relay_help_documents_sources_resume_and_exit_codes() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubspot_tx.cli", "relay", "--help", stdout=asyncio.subprocess.PIPE
    )
    out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 0
    text = " ".join(out.split())
    for needle in (
        "--force",
        "--allow-plaintext-auth",
        "--resume",
        "- for stdin",
        "Message-ID",
        "4 SMTP server unreachable",
        "delivery_unknown",
        "130 interrupted",
    ):
        assert needle in text, needle


async def test_an_invalid_message_is_recorded_with_its_reason(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    (tmp_path / "a.eml").write_bytes(b"From: a@example.org\r\nSubject: nobody\r\n\r\nbody\r\n")
    results = tmp_path / "r.jsonl"
    code, _, _ = await relay(
        str(tmp_path / "a.eml"), "--results", str(results), env=_env(sandbox, token)
    )
    assert code == 1
    (record,) = _records(results)
    assert record["category"] == "invalid_message"
    assert record["reason"] == "no_recipients"
    assert sandbox.state.messages == []


async def test_a_message_killed_after_its_dot_in_a_resumed_run_is_not_sent_by_the_next(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    # Run 1 records a failure to retry; run 2 (--resume) retries it, the server stores it, and
    # the run is killed before it records the result; run 3 (--resume) must not send it again:
    # run 1's failure is no answer to run 2's attempt.
    env = _env(sandbox, token)
    (tmp_path / "a.eml").write_bytes(make_message(1))
    results = tmp_path / "r.jsonl"
    args = (str(tmp_path / "a.eml"), "--results", str(results))
    sandbox.faults.smtp_reply("rcpt", 550, times=None)
    code, _, err = await relay(*args, env=env)
    assert code == 1, err
    assert _records(results)[0]["category"] == "recipients_refused"
    sandbox.faults.clear()
    sandbox.faults.smtp_slow("stored", 60)  # stored, its reply held: the run is killed then
    proc = await _start(*args, "--resume", "--quiet", env=env)
    try:
        await _until(lambda: len(sandbox.state.messages) == 1)
    finally:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 60)
    sandbox.faults.clear()
    code, _, err = await relay(*args, "--resume", env=env)
    assert len(sandbox.state.messages) == 1  # not sent twice
    assert "1 message(s) were in flight" in err
    assert _records(results)[-1]["category"] == "delivery_unknown"
    assert code == 0  # nothing else to send; the unknown one is reported, not resent


async def test_a_byte_order_mark_before_a_message_is_not_part_of_it(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tmp_path: Path
) -> None:
    """Windows editors and some exporters save .eml files (and mboxes) with a UTF-8 BOM: it
    was sent as the start of the first header line (refused `not_a_message`)."""
    bom = b"\xef\xbb\xbf"
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "a.eml").write_bytes(bom + make_message(1))
    one = tmp_path / "b.eml"
    one.write_bytes(bom + make_message(2))
    box = tmp_path / "in.mbox"
    box.write_bytes(bom + _mbox(tmp_path / "plain.mbox", [make_message(3)]).read_bytes())
    env = _env(sandbox, token)
    for n, source in enumerate((folder, one, box)):
        code, _, err = await relay(str(source), "--results", str(tmp_path / f"{n}.jsonl"), env=env)
        assert code == 0, err
    code, _, err = await relay(
        "-", "--results", str(tmp_path / "stdin.jsonl"), env=env, stdin=bom + make_message(4)
    )
    assert code == 0, err
    stored = sandbox.state.messages
    assert [m.message_id for m in stored] == [f"<m{i}@hubspot-tx.test>" for i in (1, 2, 3, 4)]
    assert not any(bom in m.data for m in stored)
