"""Every Python block of README.md and docs/*.md runs as a test (sybil), so the docs cannot drift
from the code.

The blocks run in order, in one namespace per document, against real servers on loopback: a
sandbox (its access token is the README's ``"pat-..."``), a throwaway ``redis-server`` and a
distributed-relay worker, with the ``HUBSPOT_*`` variables set as the sandbox's ``export`` line
sets them. Top-level ``await`` / ``async with`` run on one event loop per document. The names a
block takes from "your code" (``hs``, ``token``, ``ledger``, ``read_eml_files()`` ...) are defined
below, and set again before each block.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

from hubspot_tx import _env

ACCESS_TOKEN = "pat-..."  # what the README's examples pass


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
    result = eval(code, example.namespace)  # noqa: S307 - the README's own code
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


def teardown(namespace: dict[str, Any]) -> None:
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
    parsers=[CodeBlockParser(language="python", evaluator=evaluate)],
    patterns=["README.md", "docs/*.md"],
    setup=setup,
    teardown=teardown,
).pytest()
