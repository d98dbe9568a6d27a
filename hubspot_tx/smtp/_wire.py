"""The SMTP session after login: our own small protocol on the transport aiosmtplib opened.

aiosmtplib connects, upgrades to TLS and authenticates. The transactions then run here, because
RFC 2920 PIPELINING needs what aiosmtplib's protocol layer does not offer: several commands in one
write, and several replies parsed from one read.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque

__all__ = ["Reply", "Wire", "WireClosed"]

MAX_REPLY = 64 * 1024


class WireClosed(Exception):
    """The connection is gone (or out of sync); nothing more can be read or written."""


Reply = tuple[int, str]


class Wire(asyncio.Protocol):
    """Buffers the server's replies and hands them out in order."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Commands and data go out in small writes and a reply is awaited after each
            # group: Nagle's algorithm would hold them for the peer's delayed ACK (~40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed: BaseException | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()
        self._wake()

    def eof_received(self) -> bool:
        self._fail(WireClosed("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(WireClosed(f"connection lost: {exc}" if exc else "connection lost"))

    # -- replies ------------------------------------------------------------------------------
    def _parse(self) -> None:
        buffer = self._buffer
        while True:
            # A reply ends at a line whose 4th byte is a space (or that has only the code).
            start, lines = 0, []
            while True:
                end = buffer.find(b"\n", start)
                if end < 0:
                    if len(buffer) > MAX_REPLY:
                        self._fail(WireClosed("reply too long"))
                    return
                line = bytes(buffer[start:end]).rstrip(b"\r")
                lines.append(line)
                start = end + 1
                if line[3:4] != b"-":
                    break
            del buffer[:start]
            try:
                code = int(lines[-1][:3])
            except ValueError:
                self._fail(WireClosed(f"malformed reply {lines[-1][:80]!r}"))
                return
            text = "\n".join(line[4:].decode("utf-8", "replace") for line in lines)
            self._replies.append((code, text))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        self._wake()
        if not self.transport.is_closing():
            self.transport.abort()

    async def reply(self, timeout: float) -> Reply:
        """The next reply, in order. Raises :class:`WireClosed` or ``TimeoutError``."""
        while not self._replies:
            if self._closed is not None:
                raise WireClosed(str(self._closed))
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None
        return self._replies.popleft()

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport; raises :class:`WireClosed`, writing nothing, if the
        connection is already gone."""
        if self._closed is not None or self.transport.is_closing():
            raise WireClosed(str(self._closed or "connection closed"))
        self.transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        """Like :meth:`write`, for several buffers at once."""
        if self._closed is not None or self.transport.is_closing():
            raise WireClosed(str(self._closed or "connection closed"))
        self.transport.writelines(parts)

    @property
    def closed(self) -> bool:
        return self._closed is not None or self.transport.is_closing()

    def abort(self) -> None:
        self._fail(WireClosed("aborted"))
