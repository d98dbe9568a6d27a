"""A third-party SMTP server for tests (aiosmtpd, plaintext, no AUTH) that records every
envelope, the MAIL parameters and the bytes received, in the test's own event loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import trustme
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
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply to RCPT
    in_data: asyncio.Event = field(default_factory=asyncio.Event)  # some data has ended
    data_started: list[int] = field(default_factory=list)  # ids of sessions in DATA
    silent_noop: bool = False  # NOOP gets no reply (a server that stopped answering)
    noops: int = 0

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

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self.noops += 1
        if self.silent_noop:
            await asyncio.sleep(30)  # the client gives up long before
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        self.data_started.append(id(server))
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


@dataclass(frozen=True)
class SlowServer:
    port: int
    received: list[bytes]
    client_context: ssl.SSLContext | None  # trusts the server's certificate (with ``tls``)


@asynccontextmanager
async def slow_server(
    *, chunk_pause: float | None, tls: Literal["none", "implicit", "starttls"] = "none"
) -> AsyncIterator[SlowServer]:
    """A minimal SMTP server whose data phase reads 32 KiB every ``chunk_pause`` seconds (a
    slow link), or, with ``None``, never reads it (a dead peer); over ``tls`` (a throwaway CA
    that ``client_context`` trusts)."""
    received: list[bytes] = []
    stop = asyncio.Event()
    server_ctx = client_ctx = None
    if tls != "none":
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
    ehlo = b"250-slow.test\r\n" + (b"250-STARTTLS\r\n" if tls == "starttls" else b"")

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow.test ESMTP\r\n")
        try:
            while line := await asyncio.wait_for(reader.readline(), 30):
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(ehlo + b"250 8BITMIME\r\n")
                elif verb == b"STAR" and server_ctx is not None:
                    writer.write(b"220 go ahead\r\n")
                    await writer.drain()
                    await writer.start_tls(server_ctx)
                    continue
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                elif verb != b"DATA":
                    writer.write(b"250 OK\r\n")
                elif chunk_pause is None:  # read no more (the reader pauses when full)
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    await asyncio.wait_for(stop.wait(), 30)
                    break
                else:
                    writer.write(b"354 go on\r\n")
                    data = bytearray()
                    while not data.endswith(b"\r\n.\r\n"):
                        await asyncio.sleep(chunk_pause)
                        chunk = await asyncio.wait_for(reader.read(32 * 1024), 30)
                        if not chunk:
                            return
                        data += chunk
                    received.append(bytes(data[:-3]))
                    writer.write(b"250 OK stored\r\n")
                await writer.drain()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # a small window
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(
        session, sock=sock, limit=32 * 1024, ssl=server_ctx if tls == "implicit" else None
    )
    try:
        yield SlowServer(sock.getsockname()[1], received, client_ctx)
    finally:
        stop.set()
        server.close()
        await server.wait_closed()
