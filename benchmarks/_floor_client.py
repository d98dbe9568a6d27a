"""The event loop's floor: the least an asyncio client can do to relay pre-formed CRLF messages
over PIPELINING sessions. No checks, no parsing of the message, no dot-stuffing (the benchmark's
messages need none), no retries, no outcome objects: one ``asyncio.Protocol`` per session that
writes a message's data and the next message's commands from the read that brings the 354.

It is a baseline row, not a client anyone should use: the gap between it and the SDK is what
the SDK's guarantees and bookkeeping cost; the gap between it and smtp-source (C, no loop) is
what the event loop costs. ``relay_lockstep_tls`` is the same floor for bench B: lock-step
(the sandbox, like HubSpot, offers no PIPELINING) on the TLS session aiosmtplib opened.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from functools import partial
from typing import cast

import aiosmtplib

SENDER = b"bench@example.com"


class _Session(asyncio.Protocol):
    def __init__(self, messages: Sequence[bytes], done: asyncio.Future[int]) -> None:
        self.messages = messages
        self.done = done
        self.buffer = b""
        self.owed: list[int] = []  # what each reply answers: 0 command, 1 DATA, 2 end of data
        self.next = 0
        self.ended = 0
        self.accepted = 0
        self.transport = cast(asyncio.Transport, None)
        self.greeted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"lost: {exc}"))

    def commands(self) -> bytes:
        self.owed += (0, 0, 1)
        return b"MAIL FROM:<%s>\r\nRCPT TO:<rcpt%d@example.org>\r\nDATA\r\n" % (
            SENDER,
            self.next % 1000,
        )

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\r\n")
        self.buffer = lines.pop()
        for line in lines:
            if line[3:4] == b"-":
                continue
            code = int(line[:3])
            if not self.greeted:  # the banner, then EHLO's reply
                self.greeted = code == 250
                self.transport.write(b"EHLO floor\r\n" if not self.greeted else self.commands())
                continue
            kind = self.owed.pop(0)
            if kind == 1:  # 354: this message's data, and the next one's commands behind it
                if code != 354:
                    raise RuntimeError(f"DATA refused: {line!r}")
                out = self.messages[self.next] + b".\r\n"
                self.owed.append(2)
                self.next += 1
                if self.next < len(self.messages):
                    out += self.commands()
                self.transport.write(out)
            elif kind == 2:
                self.ended += 1
                self.accepted += code == 250
                if self.ended == len(self.messages) and not self.done.done():
                    self.done.set_result(self.accepted)


async def relay(host: str, port: int, messages: Sequence[bytes], sessions: int) -> int:
    """Relay ``messages`` over ``sessions`` sessions (a share each); the count accepted."""
    loop = asyncio.get_running_loop()
    shares = [messages[i::sessions] for i in range(sessions)]
    dones: list[asyncio.Future[int]] = []
    transports = []
    for share in shares:
        if not share:
            continue
        done: asyncio.Future[int] = loop.create_future()
        dones.append(done)
        transport, _ = await loop.create_connection(partial(_Session, share, done), host, port)
        transports.append(transport)
    try:
        return sum(await asyncio.wait_for(asyncio.gather(*dones), 600))
    finally:
        for transport in transports:
            transport.close()


class _LockStep(asyncio.BufferedProtocol):
    """One session in lock-step (no PIPELINING: MAIL, RCPT, DATA, data, each after the reply
    to the one before), on a transport already logged in; reads into one buffer, as the SDK's."""

    def __init__(self, transport: asyncio.Transport, messages: Sequence[bytes]) -> None:
        self.transport = transport
        self.messages = messages
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.inbound = memoryview(bytearray(65536))
        self.buffer = b""
        self.step = 0  # the reply awaited: 0 MAIL, 1 RCPT, 2 DATA, 3 end of data
        self.next = 0
        self.accepted = 0

    def start(self) -> None:
        self.transport.write(b"MAIL FROM:<%s>\r\n" % SENDER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.inbound

    def buffer_updated(self, nbytes: int) -> None:
        lines = (self.buffer + self.inbound[:nbytes].tobytes()).split(b"\r\n")
        self.buffer = lines.pop()
        for line in lines:
            if line[3:4] == b"-":
                continue
            step, self.step = self.step, (self.step + 1) % 4
            if step == 0:
                self.transport.write(b"RCPT TO:<rcpt%d@example.org>\r\n" % (self.next % 1000))
            elif step == 1:
                self.transport.write(b"DATA\r\n")
            elif step == 2:
                self.transport.write(self.messages[self.next] + b".\r\n")
            else:
                self.accepted += line.startswith(b"250")
                self.next += 1
                if self.next < len(self.messages):
                    self.start()
                elif not self.done.done():
                    self.done.set_result(self.accepted)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"lost: {exc}"))


async def relay_lockstep_tls(
    host: str,
    port: int,
    context: ssl.SSLContext,
    login: tuple[str, str],
    messages: Sequence[bytes],
    sessions: int,
) -> int:
    """Relay ``messages`` in lock-step over ``sessions`` STARTTLS sessions that aiosmtplib
    opened and logged in (as the SDK's are); the count accepted."""
    clients = []
    for i in range(sessions):
        if not messages[i::sessions]:
            continue
        smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=True, tls_context=context)
        await smtp.connect()
        await smtp.login(*login)
        transport = cast(asyncio.Transport, smtp.transport)
        session = _LockStep(transport, messages[i::sessions])
        transport.set_protocol(session)
        clients.append((smtp, session))
    try:
        for _, session in clients:
            session.start()
        return sum(await asyncio.wait_for(asyncio.gather(*(s.done for _, s in clients)), 600))
    finally:
        for smtp, _ in clients:
            smtp.close()
