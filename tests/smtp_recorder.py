"""A third-party SMTP server for tests (aiosmtpd, plaintext, no AUTH) that records every
envelope, the MAIL parameters and the bytes received, in the test's own event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

from hubspot_tx import SmtpPool

from .conftest import FAST_SMTP_RETRY


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_to: list[str]
    mail_options: list[str]
    data: bytes  # as aiosmtpd hands it over: CRLF, dot-stuffing undone


@dataclass
class Recorder:
    pipelining: bool = True
    hide: frozenset[str] = frozenset()  # EHLO keywords not to advertise (e.g. "8BITMIME")
    received: list[Received] = field(default_factory=list)
    ehlo: list[str] = field(default_factory=list)  # the names clients greeted with
    mail_commands: int = 0
    sessions: int = 0  # open now
    most_sessions: int = 0  # open at once, at most
    hold: asyncio.Event | None = None  # set: the reply to the end of data waits for it
    in_data: asyncio.Event = field(default_factory=asyncio.Event)  # some data has ended

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo.append(hostname)
        kept = [r for r in responses[:-1] if r[4:].split(" ")[0].upper() not in self.hide]
        if self.pipelining:
            kept.append("250-PIPELINING")
        return [*kept, responses[-1]]

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), 30)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content,
            )
        )
        return "250 OK stored"


@asynccontextmanager
async def recording_server(
    *,
    utf8: bool = True,
    size: int = 33_554_432,
    authenticator: Callable[..., AuthResult] | None = None,
    **recorder: Any,
) -> AsyncIterator[tuple[int, Recorder]]:
    """``(port, recorder)`` of a server on 127.0.0.1, closed on exit. With an
    ``authenticator``, AUTH is offered (over plaintext: pools need ``allow_plaintext_auth``)."""
    rec = Recorder(**recorder)

    class Counting(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            rec.sessions += 1
            rec.most_sessions = max(rec.most_sessions, rec.sessions)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            rec.sessions -= 1
            super().connection_lost(exc)

    def factory() -> SMTP:
        return Counting(
            rec,
            hostname="recorder.test",
            decode_data=False,
            enable_SMTPUTF8=utf8,
            data_size_limit=size,
            authenticator=authenticator,
            auth_require_tls=authenticator is None,
        )

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(factory, sock=sock)
    try:
        yield sock.getsockname()[1], rec
    finally:
        server.close()
        await server.wait_closed()


def recorder_pool(port: int, **kwargs: Any) -> SmtpPool:
    """A pool for :func:`recording_server` (plaintext, no AUTH)."""
    kwargs.setdefault("retry", FAST_SMTP_RETRY)
    kwargs.setdefault("command_timeout", 10.0)
    return SmtpPool("127.0.0.1", port, tls="none", **kwargs)
