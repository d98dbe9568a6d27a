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
    """Hands the server's replies out in order, to whoever asked for them first.

    A caller who writes commands asks for their replies (:meth:`expect`) at once, so that a
    later caller, pipelining behind it, gets the replies that follow. A reply whose asker gave
    up (cancelled) is consumed all the same: the session stays in step.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Commands and data go out in small writes and a reply is awaited after each
            # group: Nagle's algorithm would hold them for the peer's delayed ACK (~40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._replies: deque[Reply] = deque()  # arrived before anyone asked
        self._owed: deque[tuple[list[Reply], int, asyncio.Future[list[Reply]]]] = deque()
        self._closed: BaseException | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()

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
            self._deliver((code, text))

    def _deliver(self, reply: Reply) -> None:
        if not self._owed:
            self._replies.append(reply)
            return
        group, count, future = self._owed[0]
        group.append(reply)
        if len(group) == count:
            self._owed.popleft()
            if not future.done():  # else its asker gave up: the replies are dropped
                future.set_result(group)

    def _fail(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        owed, self._owed = self._owed, deque()
        for _, _, future in owed:
            if not future.done():
                future.set_exception(WireClosed(str(self._closed)))
                future.exception()  # retrieved here: an asker who gave up must not warn
        if not self.transport.is_closing():
            self.transport.abort()

    def expect(self, count: int) -> asyncio.Future[list[Reply]]:
        """The next ``count`` replies not yet asked for, as one future (in order). Ask right
        after writing the commands they answer."""
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        group: list[Reply] = []
        while self._replies and len(group) < count:
            group.append(self._replies.popleft())
        if len(group) == count:
            future.set_result(group)
        elif self._closed is not None:
            future.set_exception(WireClosed(str(self._closed)))
        else:
            self._owed.append((group, count, future))
        return future

    async def replies(self, count: int, timeout: float) -> list[Reply]:
        """Wait for :meth:`expect`'s replies. Raises :class:`WireClosed` or ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            return await self.expect(count)

    async def reply(self, timeout: float) -> Reply:
        """The next reply, in order. Raises :class:`WireClosed` or ``TimeoutError``."""
        return (await self.replies(1, timeout))[0]

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
