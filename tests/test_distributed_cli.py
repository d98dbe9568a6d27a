"""``hubspot-tx relay --distributed`` with ``hubspot-tx worker``: a folder of .eml, twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hubspot_tx import SmtpTokenWithPassword
from hubspot_tx.distributed import RedisServer
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message
from .distributed_support import redis_srv
from .test_distributed_kill import workers

__all__ = ["redis_srv"]


async def _everything_in(url: str) -> str:
    """Every key, field, value and stream entry in the Redis database, as one text."""
    import redis.asyncio as redis

    client: Any = redis.Redis.from_url(url, decode_responses=True)
    parts: list[object] = []
    try:
        async for key in client.scan_iter(count=1000):
            kind = await client.type(key)
            if kind == "string":
                value: object = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "stream":
                value = await client.xrange(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            else:
                value = await client.lrange(key, 0, -1)
            parts += [key, value]
    finally:
        await client.aclose()
    return "\n".join(map(str, parts))


async def relay_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "relay",
        "--distributed",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_SMTP")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_relay_distributed_sends_a_folder_once(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i}.eml").write_bytes(make_message(i))
    results = tmp_path / "out.jsonl"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="cli")
        async with workers(sb, token, redis_srv.url, tmp_path / "w.log", "--namespace", "cli"):
            common = ["--redis-url", redis_srv.url, "--namespace", "cli", "--quiet"]
            code, out, err = await relay_cli(
                str(folder), "--results", str(results), "--timeout", "30", *common
            )
            assert code == 0, err
            assert "40 new" in err
            assert "40 result(s)" in out
            # The same folder again: nothing is sent twice; the results are still there.
            code, out, err = await relay_cli(
                str(folder), "--results", str(results), "--timeout", "30", *common
            )
            assert code == 0, err
            assert "0 new, 40 already known" in err
        password = token.password.get_secret_value()
        stored = await _everything_in(redis_srv.url)
        assert stored  # the ledger, the results and the task streams are there...
        assert password not in stored  # ...but never the SMTP password
        assert password not in (tmp_path / "w.log").read_text()
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) == 80
    assert {line["status"] for line in lines} == {"sent"}
    assert len(sb.outbox()) == 40
    assert all(m.arrival == 1 for m in sb.outbox())


def test_worker_processes_get_the_redis_url_in_their_environment_not_argv() -> None:
    """The Redis URL may hold Redis's password: on a child's command line, ``ps`` shows it to
    every local user (as it would the SMTP password)."""
    from hubspot_tx import _env
    from hubspot_tx.cli._distributed import _child_argv, _child_env
    from hubspot_tx.cli._main import build_parser

    url = "redis://:hunter2-secret@127.0.0.1:6390/0"
    args = build_parser().parse_args(["worker", "--processes", "2", "--redis-url", url])
    argv = _child_argv(args)
    assert not any("hunter2-secret" in part for part in argv), argv
    assert _child_env(args)[_env.REDIS_URL] == url
    # The child, started with that argv and environment, reads the URL back.
    child = build_parser().parse_args(argv[3:])
    assert child.redis_url is None


def _children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid``: its main thread's children (the asyncio loop's
    thread starts them), read from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as children:
            return {int(child) for child in children.read().split()}
    except FileNotFoundError:  # gone, or a kernel without CONFIG_PROC_CHILDREN: scan
        pass
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(entry))
    return found


def _text(path: Path) -> str:
    return path.read_text()


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


@contextlib.asynccontextmanager
async def _supervisor(
    redis_url: str,
    sb: Sandbox,
    token: SmtpTokenWithPassword,
    processes: int,
    log: Path,
    *,
    stop_grace: float | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, set[int]]]:
    """``hubspot-tx worker --processes N``, and the set to record its workers' pids in: on the
    way out, the supervisor and any of those workers still running are killed. ``stop_grace``
    replaces the supervisor's ``STOP_GRACE``."""
    env = {
        **os.environ,
        "HUBSPOT_SMTP_USER": token.id,
        "HUBSPOT_SMTP_PASSWORD": token.password.get_secret_value(),
    }
    argv = ["--redis-url", redis_url, "--host", sb.host, "--port", str(sb.smtp_port)]
    argv += ["--ca-file", sb.ca_file, "--processes", str(processes), "--lease", "2"]
    command = [sys.executable, "-m", "hubspot_tx.cli"]
    if stop_grace is not None:
        command[1:] = [
            "-c",
            "import sys, hubspot_tx.cli._distributed as d; from hubspot_tx.cli._main import main; "
            f"d.STOP_GRACE = {stop_grace!r}; sys.exit(main())",
        ]
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*command, "worker", *argv, stderr=out, env=env)
    seen: set[int] = set()
    try:
        yield proc, seen
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            await asyncio.wait_for(proc.wait(), 30)
        for pid in seen:  # workers left running (only ours: a reused pid is not)
            if _alive(pid) and b"hubspot_tx.cli" in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _stop_at_a_new_child(pid: int, seen: set[int], deadline: float) -> bool:
    """Poll without pause (in a thread) for a child of ``pid`` not in ``seen``; SIGSTOP
    ``pid`` at once when there is one. False when ``deadline`` (monotonic) passes first."""
    while time.monotonic() < deadline:
        if _children_of(pid) - seen:
            os.kill(pid, signal.SIGSTOP)
            return True
    return False


async def _freeze_at_a_new_child(
    proc: asyncio.subprocess.Process, seen: set[int], log: Path
) -> set[int]:
    """SIGSTOP the supervisor as soon as it has a child not in ``seen``; add its children to
    ``seen`` and return them."""
    deadline = time.monotonic() + 60
    frozen = await asyncio.to_thread(_stop_at_a_new_child, proc.pid, set(seen), deadline)
    assert frozen, _text(log)
    children = _children_of(proc.pid)
    seen |= children
    return children


async def _term_while_frozen(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM the frozen supervisor, let it run, and wait (bounded) for its exit code."""
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    return await asyncio.wait_for(proc.wait(), 30)


async def _all_started(
    proc: asyncio.subprocess.Process, seen: set[int], processes: int, log: Path
) -> set[int]:
    """Wait (bounded) until the supervisor says it started its ``processes`` workers; add
    them to ``seen`` and return them."""
    deadline = asyncio.get_running_loop().time() + 60
    while f"{processes} processes:" not in _text(log):
        assert proc.returncode is None, _text(log)
        assert asyncio.get_running_loop().time() < deadline, _text(log)
        await asyncio.sleep(0.01)
    children = _children_of(proc.pid)
    seen |= children
    return children


async def _handling_sigterm(pid: int, log: Path) -> None:
    """Wait (bounded) until ``pid`` catches SIGTERM (SigCgt in /proc): before, a SIGTERM
    kills it even when it is stopped."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        status = Path(f"/proc/{pid}/status").read_bytes()  # noqa: ASYNC240 - procfs, no disk
        caught = next(int(ln.split()[1], 16) for ln in status.splitlines() if b"SigCgt" in ln)
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        assert asyncio.get_running_loop().time() < deadline, _text(log)
        await asyncio.sleep(0.01)


async def test_sigterm_while_the_supervisor_starts_its_workers_leaves_no_child(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """The supervisor used to start its workers before it installed its SIGTERM handler: a
    SIGTERM then killed it and left the workers it had started running without it. The
    supervisor is frozen (SIGSTOP) as soon as its first worker exists, so the SIGTERM is
    pending while it is still starting the others, whatever the machine's speed."""
    processes = 6
    log = tmp_path / "supervisor.log"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="supervisor")
        for _attempt in range(10):
            async with _supervisor(redis_srv.url, sb, token, processes, log) as (proc, seen):
                children = await _freeze_at_a_new_child(proc, seen, log)
                code = await _term_while_frozen(proc)
                if len(children) == processes:
                    continue  # it had started them all before it was frozen: try again
                assert [pid for pid in seen if _alive(pid)] == [], log.read_text()
                assert code == 0, log.read_text()
                return
        pytest.fail("the supervisor had started every worker each time it was frozen")


async def test_sigterm_while_the_supervisor_restarts_a_worker_stops_that_one_too(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """A SIGTERM that came while a dead worker was being started again was forwarded to the
    workers the supervisor had, not to the one being started: that one ran on, and the
    supervisor waited for it for good."""
    log = tmp_path / "supervisor.log"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="supervisor")
        async with _supervisor(redis_srv.url, sb, token, 2, log) as (proc, seen):
            first = await _all_started(proc, seen, 2, log)
            os.kill(min(first), signal.SIGKILL)  # started again after RESTART_BACKOFF's 1 s
            await _freeze_at_a_new_child(proc, seen, log)
            code = await _term_while_frozen(proc)
            assert "restarting it in 1 s" in log.read_text()
            assert [pid for pid in seen if _alive(pid)] == [], log.read_text()
            assert code == 0, log.read_text()


async def test_a_second_sigterm_kills_a_worker_that_does_not_stop(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """A worker that does not stop on SIGTERM (here: SIGSTOPped, as a hung one) kept the
    supervisor waiting for good, and asking it again only sent another SIGTERM: the second
    SIGTERM (or Ctrl-C) now kills the workers still running."""
    log = tmp_path / "supervisor.log"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="supervisor")
        async with _supervisor(redis_srv.url, sb, token, 2, log) as (proc, seen):
            hung, other = sorted(await _all_started(proc, seen, 2, log))
            await _handling_sigterm(hung, log)
            os.kill(hung, signal.SIGSTOP)
            proc.send_signal(signal.SIGTERM)
            deadline = asyncio.get_running_loop().time() + 60
            while _alive(other):  # the other one stops as asked
                assert asyncio.get_running_loop().time() < deadline, log.read_text()
                await asyncio.sleep(0.01)
            assert _alive(hung), _text(log)
            assert proc.returncode is None, _text(log)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
            assert not _alive(hung), log.read_text()
            assert code == 128 + signal.SIGKILL, log.read_text()


async def test_a_worker_that_does_not_stop_is_killed_after_the_stop_grace(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    """One SIGTERM and a worker that does not stop: the supervisor waited for it for good;
    it now kills it ``STOP_GRACE`` seconds after the SIGTERM (1 s here) and exits 137."""
    log = tmp_path / "supervisor.log"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="supervisor")
        async with _supervisor(redis_srv.url, sb, token, 2, log, stop_grace=1.0) as (
            proc,
            seen,
        ):
            hung = min(await _all_started(proc, seen, 2, log))
            await _handling_sigterm(hung, log)
            os.kill(hung, signal.SIGSTOP)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
            assert [pid for pid in seen if _alive(pid)] == [], log.read_text()
            assert code == 128 + signal.SIGKILL, log.read_text()
