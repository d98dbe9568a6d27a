"""Every Python block and every shell session (``console`` block) of README.md and docs/*.md
runs as a test (sybil), so the docs cannot drift from the code.

The blocks run in order, in one namespace per document, against real servers on loopback: a
sandbox (its access token is the README's ``"pat-..."``), a throwaway ``redis-server`` and a
distributed-relay worker, with the ``HUBSPOT_*`` variables set as the sandbox's ``export`` line
sets them. Top-level ``await`` / ``async with`` run on one event loop per document. The names a
block takes from "your code" (``hs``, ``token``, ``ledger``, ``read_eml_files()`` ...) are defined
below, and set again before each block.

A shell session runs as a user's would after pasting the sandbox's ``export`` line: its ``$``
commands, in order, in one ``bash -e`` (a failing command fails the block), with that
environment, the test virtualenv first on ``PATH`` (and as make's ``VENV``), in a copy of the
checkout holding the user's files the README names (``./Maildir``, ``mail.mbox``, ...); the
lines a block shows after a command must be among what it printed. A command that serves until
stopped is started in the background by the README itself and
stopped by it (``&`` ... ``kill``); what a block leaves running is stopped after its timeout.
Only the commands in :data:`NOT_RUN` are not run, and the report says so (a skip with the
reason). A ``conf`` block is the ``redis.conf`` the relay asks for, a ``text`` block the exception
tree; the ``toml`` block is run by ``tests/test_pytest_plugin.py`` (in a new project).

Why sybil, and these few evaluators: it already runs the Python blocks in order, per document,
with the servers started here; its parsers give each block with its line for the report. A shell
session needs the same servers and the same order (pytest-examples runs Python only).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import mailbox
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

from hubspot_tx import _env

ACCESS_TOKEN = "pat-..."  # what the README's examples pass
ROOT = Path(__file__).parent

#: The shell commands of the docs that are not run, and why (each one printed as a skip).
NOT_RUN = {
    "make test": "the test suite itself: it would run this block again, without end",
    "bash .ci/run": "CI: it runs `make test` (this suite) after recreating the virtualenvs",
}
SESSION_TIMEOUT = 900.0  # a block's whole session (`make lint` type-checks the project)


def _message(i: int, to: str = "ada@example.org") -> bytes:
    message = EmailMessage()
    message["From"] = "orders@shop.example.com"
    message["To"] = to
    message["Subject"] = f"Receipt A-{i}"
    message["Message-ID"] = make_msgid(f"doc{i}", "shop.example.com")
    message.set_content(f"Thank you for order A-{i}.")
    return message.as_bytes()


class _Ledger:
    """What the README's ``ledger`` stands for: a record of outcomes."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def write(self, *row: Any) -> None:
        self.rows.append(row)

    record = write


class _Metrics:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def observe(self, event: Any) -> None:
        self.seen.append(event)


def evaluate(example: Example) -> None:
    """Run a block; top-level ``await`` runs on the document's event loop (bounded).

    The names that stand for "your code" are set again before each block: a block that
    makes its own ``token`` does not change what the next one gets.
    """
    example.namespace.update(example.namespace["_yours"])
    code = compile(
        example.parsed,
        str(example.path),
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    result = eval(code, example.namespace)
    if inspect.iscoroutine(result):
        example.namespace["_runner"].run(asyncio.wait_for(result, 120))


@contextlib.asynccontextmanager
async def _servers(namespace: dict[str, Any]) -> AsyncIterator[None]:
    from hubspot_tx import HubSpot, SmtpCredentials
    from hubspot_tx.distributed import Worker, WorkerSettings, redis_server
    from hubspot_tx.sandbox import Sandbox

    async with (
        Sandbox(access_token=ACCESS_TOKEN, pending_seconds=0.1, processing_seconds=0.2) as sb,
        redis_server() as redis,
        contextlib.AsyncExitStack() as stack,
    ):
        async with sb.client(https=True) as hs:
            token = await hs.smtp_tokens.create(campaign_name="Receipts")
        os.environ.update(
            {
                _env.BASE_URL: sb.https_url,
                _env.ACCESS_TOKEN: ACCESS_TOKEN,
                _env.CA_FILE: sb.ca_file,
                _env.SMTP_HOST: sb.host,
                _env.SMTP_PORT: str(sb.smtp_port),
                _env.SMTP_USER: token.id,
                _env.SMTP_PASSWORD: token.password.get_secret_value(),
                _env.REDIS_URL: redis.url,
            }
        )
        first = _message(0)
        async with sb.smtp_pool(SmtpCredentials.from_token(token)) as pool:
            await pool.send(first)
        client_id, client_secret, refresh_token = sb.state.register_oauth_app()
        hs = await stack.enter_async_context(HubSpot())  # configured by the variables above
        end = datetime.now(UTC)

        async def messages_from_anywhere() -> AsyncIterator[bytes]:
            for i in range(1, 6):
                yield _message(i)

        def read_eml_files() -> Iterator[bytes]:
            return (_message(i) for i in range(10, 20))

        namespace["_yours"] = dict(
            sandbox=sb,
            hs=hs,
            email_id=1001,  # an email the sandbox knows
            start=end - timedelta(days=1),
            end=end,
            token=token,
            relayed_ids=[_message_id(first)],
            CLIENT_ID=client_id,
            CLIENT_SECRET=client_secret,
            refresh_token=refresh_token,
            save_rotated_tokens=lambda tokens: None,
            metrics=_Metrics(),
            addresses=["ada@example.org", "bob@example.org"],
            email_message=_message(30),
            messages=[_message(i) for i in range(40, 45)],
            messages_from_anywhere=messages_from_anywhere,
            read_eml_files=read_eml_files,
            ledger=_Ledger(),
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(WorkerSettings(redis_url=redis.url)).run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)


def _message_id(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("no Message-ID")


def setup(namespace: dict[str, Any]) -> None:
    """Start the servers on the document's loop and set the variables the README relies on."""
    namespace["_saved_env"] = {name: os.environ.get(name) for name in _env.VARIABLES}
    runner = asyncio.Runner()
    namespace["_runner"] = runner
    servers = _servers(namespace)
    namespace["_servers"] = servers
    runner.run(asyncio.wait_for(servers.__aenter__(), 60))


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """The ``$ `` commands of a console block (a line ending in ``\\`` continues one), each
    with the lines shown after it: what it prints."""
    commands: list[tuple[str, list[str]]] = []
    current: str | None = None
    for line in block.splitlines():
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line[2:]
        elif commands and line.strip():
            commands[-1][1].append(line.strip())
            continue
        else:
            continue
        if not current.endswith("\\"):
            commands.append((current, []))
            current = None
    return commands


MARK = "@@docs-command"


def _printed(log: str) -> dict[int, set[str]]:
    """What each command printed: the lines after its trace mark (``+ : @@docs-command N``)
    that are not themselves trace lines."""
    printed: dict[int, set[str]] = {}
    current: set[str] | None = None
    for line in log.splitlines():
        if line.startswith(f"+ : {MARK} "):
            current = printed.setdefault(int(line.split()[-1]), set())
        elif current is not None and not line.startswith("+"):
            current.add(line.strip())
    return printed


def _user_folder(namespace: dict[str, Any]) -> Path:
    """A copy of the checkout (its tracked files) with the files the README's sessions use."""
    if "_user_folder" in namespace:
        return Path(namespace["_user_folder"].name)
    holder = tempfile.TemporaryDirectory(prefix="hubspot-tx-docs-")
    namespace["_user_folder"] = holder
    folder = Path(holder.name)
    git = shutil.which("git") or "git"
    listed = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    # make's targets must use the test virtualenv as it is, never reinstall it from this copy
    # (an editable install would point it at a temporary folder): pyproject.toml is older.
    os.utime(folder / "pyproject.toml", (0, 0))
    maildir = mailbox.Maildir(folder / "Maildir")
    mbox = mailbox.mbox(folder / "mail.mbox")
    for i in range(100, 105):
        maildir.add(_message(i))
        mbox.add(_message(i + 10))
    mbox.flush()
    (folder / "eml-folder").mkdir()
    for i in range(120, 125):
        (folder / "eml-folder" / f"{i}.eml").write_bytes(_message(i))
    (folder / "one-more.eml").write_bytes(_message(130))
    return folder


def run_session(example: Example) -> None:
    """Run a console block's commands in one shell, as a user would (see the module's doc)."""
    commands = _commands(example.parsed)
    # A block whose commands lack the `$ ` prompt would otherwise pass having run nothing.
    assert commands, f"no `$ ` command in this console block:\n{example.parsed}"
    not_run = [c for c, _ in commands if _words(c) in NOT_RUN]
    run = [(i, c, shown) for i, (c, shown) in enumerate(commands) if c not in not_run]
    # A sandbox the session started in the background is stopped even if a command fails.
    # Each command follows a no-op that the trace (-x) shows, marking where its output starts.
    script = "\n".join(
        [
            'trap \'[ -z "${HUBSPOT_TX_SANDBOX_PID:-}" ] || kill "$HUBSPOT_TX_SANDBOX_PID" '
            "2>/dev/null || true' EXIT",
            # `$!` after each command collects what the session started with `&`
            *(f': {MARK} {i}\n{c}\n_jobs="${{_jobs:-}} ${{!:-}}"' for i, c, _ in run),
            # Each of them (stopped by the session) must end well: a bare `wait` returns 0
            # even for one that crashed or that SIGTERM killed instead of stopping cleanly.
            'for job in $(printf "%s\\n" $_jobs | sort -u); do wait "$job"; done',
        ]
    )
    venv = sys.prefix
    env = {**os.environ, "VENV": venv, "PATH": f"{venv}/bin{os.pathsep}{os.environ['PATH']}"}
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # `make test VENV=...` passes them down,
        env.pop(name, None)  # and they would beat VENV: the user's shell has none
    # The document's servers run on its event loop: the session runs there too, so that they
    # serve while it waits. Its output goes to a file, not a pipe, which what it leaves
    # running would hold open.
    with tempfile.TemporaryFile() as log:

        async def session() -> int:
            shell = await asyncio.create_subprocess_exec(
                *("bash", "-x", "-e", "-o", "pipefail", "-c", script),
                cwd=_user_folder(example.namespace),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shell.wait(), SESSION_TIMEOUT)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(shell.pid, signal.SIGKILL)  # anything it left running
                await asyncio.wait_for(shell.wait(), 30)
            return -signal.SIGKILL if shell.returncode is None else shell.returncode

        returncode = example.namespace["_runner"].run(session())
        log.seek(0)
        whole = log.read().decode(errors="replace")
        output = whole[-6000:]
    if returncode == -signal.SIGKILL:
        raise AssertionError(f"the session did not end in {SESSION_TIMEOUT:.0f} s:\n{output}")
    if returncode != 0:
        raise AssertionError(f"exit {returncode} (the last `+` line ran last):\n{output}")
    printed = _printed(whole)
    for i, command, shown in run:
        missing = [line for line in shown if line not in printed.get(i, set())]
        assert not missing, f"`{command}` did not print {missing}:\n{output}"
    if not_run:
        reasons = [f"`{c.split('#')[0].strip()}`: {NOT_RUN[_words(c)]}" for c in not_run]
        ran = len(commands) - len(not_run)
        pytest.skip(f"not run: {'; '.join(reasons)} (the other {ran} command(s) ran)")


def check_redis_conf(example: Example) -> None:
    """A ``conf`` block is a ``redis.conf``: redis-server starts with it, and the distributed
    relay's own check (the one workers and producers make) finds that Redis safe."""
    from redis.asyncio import Redis

    from hubspot_tx.distributed._client import durability
    from hubspot_tx.distributed._redis_server import _free_port

    async def check(folder: Path) -> None:
        conf = folder / "redis.conf"
        conf.write_text(example.parsed)
        port = _free_port("127.0.0.1")
        server = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "redis-server",
            *(str(conf), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        redis = Redis(port=port)
        try:
            async with asyncio.timeout(30):
                while server.returncode is None:
                    with contextlib.suppress(ConnectionError):
                        await redis.ping()
                        break
                    await asyncio.sleep(0.05)
                else:
                    output = await server.stdout.read() if server.stdout else b""
                    raise AssertionError(f"redis-server refused it:\n{output.decode()}")
                found = await durability(redis)
            assert found.safe, found.problem()
        finally:
            await redis.aclose()
            if server.returncode is None:
                server.terminate()
            await asyncio.wait_for(server.wait(), 30)

    with tempfile.TemporaryDirectory(prefix="hubspot-tx-redis-conf-") as folder:
        example.namespace["_runner"].run(check(Path(folder)))


def check_exception_tree(example: Example) -> None:
    """A ``text`` block is the exception tree: each class derives from the one it hangs from
    and from what its "also" names, and every exception hubspot-tx raises is in it."""
    import builtins

    import hubspot_tx
    from hubspot_tx import _exceptions

    parents: list[tuple[int, type]] = []
    for line in example.parsed.splitlines():
        name = line.lstrip("│├└─ ").split()[0]
        depth = len(line) - len(line.lstrip("│├└─ "))
        cls = getattr(hubspot_tx, name)
        while parents and parents[-1][0] >= depth:
            parents.pop()
        if parents:
            assert issubclass(cls, parents[-1][1]), f"{name} is not a {parents[-1][1].__name__}"
        if " also " in f" {line} ":
            also = line.split(" also ", 1)[1].split()[0].rstrip(":;,")
            assert issubclass(cls, getattr(builtins, also)), f"{name} is not a {also}"
        parents.append((depth, cls))
    missing = set(_exceptions.__all__) - set(re.findall(r"\w+", example.parsed))
    assert not missing, f"not in the tree: {sorted(missing)}"


def _words(command: str) -> str:
    return " ".join(shlex.split(command, comments=True))


def teardown(namespace: dict[str, Any]) -> None:
    if "_user_folder" in namespace:
        namespace["_user_folder"].cleanup()
    runner: asyncio.Runner = namespace["_runner"]
    try:
        runner.run(asyncio.wait_for(namespace["_servers"].__aexit__(None, None, None), 60))
    finally:
        runner.close()
        for name, value in namespace["_saved_env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


pytest_collect_file = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=evaluate),
        CodeBlockParser(language="console", evaluator=run_session),
        CodeBlockParser(language="conf", evaluator=check_redis_conf),
        CodeBlockParser(language="text", evaluator=check_exception_tree),
    ],
    patterns=["README.md", "docs/*.md"],
    setup=setup,
    teardown=teardown,
).pytest()
