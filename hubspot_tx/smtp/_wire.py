"""One SMTP session's bytes: replies in, commands out.

RFC 2920 PIPELINING needs several commands in one write and several replies parsed from one
read; a relay needs a reply's next command written from the read that brings it, no task woken.

On asyncio's loop TLS runs here too (``ssl.MemoryBIO``, on the plain TCP transport): asyncio's
TLS transport is Python, about 30 calls per read or write on top of the cipher; ours is a
handful (a bare lock-step client used 29 % less CPU per message on it, bench B). On uvloop the
loop's compiled TLS layer does it (see ``Wire.start_tls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

__all__ = ["Reply", "Wire", "WireClosed"]

MAX_REPLY = 64 * 1024  # bytes of an unfinished line
MAX_LINES = 1000  # lines of one multi-line reply
HIGH_WATER = 64 * 1024  # bytes buffered before the transport pauses us (flow control)


class WireClosed(Exception):
    """The connection is gone (or out of sync); nothing more can be read or written."""


Reply = tuple[int, str]
Then = Callable[[list[Reply]], None]
# (received so far, how many, future, deadline, timeout, then): see ``expect``.
_Owed = tuple[list[Reply], int, "asyncio.Future[Any]", float, float, Then | None]


class Wire(asyncio.BufferedProtocol):
    """Hands the server's replies out in order, to whoever asked for them first.

    A caller who writes commands asks for their replies (:meth:`expect`) at once, so that a
    later caller, pipelining behind it, gets the replies that follow. A reply whose asker gave
    up (cancelled) is consumed all the same: the session stays in step.
    """

    def __init__(self) -> None:
        self.transport = cast(asyncio.Transport, None)  # set by ``connection_made``
        self.on_closed: Callable[[BaseException], None] | None = None  # once, when it breaks
        # TLS (``start_tls``): the session, and its two memory buffers (ciphertext in, out).
        self._tls: ssl.SSLObject | None = None
        self._tls_in = ssl.MemoryBIO()
        self._tls_out = ssl.MemoryBIO()
        self._shaking: asyncio.Future[None] | None = None  # the handshake waits for bytes
        self._native_tls = False  # TLS by the loop's own layer (see ``start_tls``)
        self._unsent: list[bytes] = []  # written during a renegotiation, not encrypted yet
        self._buffer = bytearray()
        # Reads land here (``get_buffer``), not in a new 256 KiB bytes object per read (the
        # transports' read size), which glibc's heap trims and grows again: page faults.
        self._inbound = memoryview(bytearray(MAX_REPLY))
        self._lines: list[bytes] = []  # the first lines of a multi-line reply
        self._replies: deque[Reply] = deque()  # arrived before anyone asked
        # Replies asked for, in order (see ``_Owed``).
        self._owed: deque[_Owed] = deque()
        self._retired: Callable[[], None] | None = None  # see ``retire``
        self._closed: BaseException | None = None
        self.loop = self._loop = loop = asyncio.get_running_loop()
        # The loop's clock (its timers' time base); asyncio's is time.monotonic, called direct.
        self._clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = 0.0  # when it fires
        self.now = 0.0  # the loop's time at the start of the current (or last) read
        self._out: list[bytes] | None = None  # held for one loop turn (see ``writelines``)
        self._settle: list[tuple[asyncio.Future[Any], Any]] | None = None  # see ``settle``
        # Flow control: paused while the transport holds more than HIGH_WATER bytes, resumed
        # once it holds none (low water 0: "resumed" means everything written has left).
        self.paused = False
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.BufferedProtocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A full transport whatever its class: uvloop's implement the interface without
        # subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Commands and data go out in small writes and a reply is awaited after each
            # group: Nagle's algorithm would hold them for the peer's delayed ACK (~40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=0)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._inbound

    def buffer_updated(self, nbytes: int) -> None:
        tls = self._tls
        if tls is None:
            if self._shaking is None and not self._tls_in.pending:  # plaintext
                self.data_received(self._inbound[:nbytes].tobytes())
                return
            self._tls_in.write(self._inbound[:nbytes])  # for the handshake
            waiter = self._shaking
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        self._tls_in.write(self._inbound[:nbytes])
        self._decrypt(tls)

    def _decrypt(self, tls: ssl.SSLObject) -> None:
        """Hand on the plaintext of the whole records received; then, if the server ended TLS
        (close_notify) or sent what TLS refuses, fail: replies before the end still count."""
        data = b""
        end: WireClosed | None = None
        try:
            while True:
                chunk = tls.read(MAX_REPLY)
                if not chunk:  # the server ended TLS (close_notify)
                    end = WireClosed("the server closed the TLS session")
                    break
                data += chunk
                # A record holds at most 16 KiB: a shorter read took all of it.
                if not self._tls_in.pending and len(chunk) < MAX_REPLY:
                    break
        except ssl.SSLWantReadError:  # the rest of a record is still on its way
            pass
        except ssl.SSLZeroReturnError:
            end = WireClosed("the server closed the TLS session")
        except ssl.SSLError as exc:
            end = WireClosed(f"TLS failed: {exc.reason or exc}")
        if end is None:
            if self._unsent:
                self._send_unsent(tls)
            elif self._tls_out.pending:  # reading made data to send (key update, handshake)
                self.transport.write(self._tls_out.read())
        if data and self._closed is None:
            self.data_received(data)
        if end is not None:
            self._fail(end)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Handshake on this connection (the caller bounds the wait); raises ``ssl.SSLError``
        (a certificate that does not verify: ``ssl.SSLCertVerificationError``) or
        :class:`WireClosed`.

        On asyncio's own loop, what comes after is encrypted and decrypted here (its TLS
        transport is Python, and dearer); on a loop with a TLS layer of its own (uvloop's is
        compiled, and cheaper than ours), by that layer (``loop.start_tls``)."""
        if self.unasked:  # never read as if it had come over TLS (see ``unasked``)
            raise WireClosed("bytes in the clear before the TLS handshake")
        loop = self._loop
        if type(loop).start_tls is not asyncio.BaseEventLoop.start_tls:
            self._check_open()
            transport = await loop.start_tls(
                self.transport, self, context, server_hostname=server_hostname
            )
            if transport is None:  # the connection was closed meanwhile
                raise WireClosed(str(self._closed or "connection closed"))
            self.transport = transport
            self.transport.set_write_buffer_limits(high=HIGH_WATER, low=0)
            self._native_tls = True
            return
        tls = context.wrap_bio(self._tls_in, self._tls_out, server_hostname=server_hostname)
        out = self._tls_out
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass  # (not waited on in here: a timeout or loss must not look like TLS's)
            if out.pending:
                self.transport.write(out.read())
            self._check_open()
            # Bytes come only while we wait here (``buffer_updated`` feeds them in).
            self._shaking = self._loop.create_future()
            try:
                await self._shaking
            finally:
                self._shaking = None
        if out.pending:
            self.transport.write(out.read())
        self._tls = tls
        if self._tls_in.pending:  # the server spoke at once
            self._decrypt(tls)

    @property
    def unasked(self) -> bool:
        """Bytes came that no one asked for yet: behind a reply to STARTTLS, bytes in the
        clear that a man in the middle may have put there (CVE-2011-0411)."""
        return bool(self._replies or self._buffer or self._lines)

    @property
    def encrypted(self) -> bool:
        return self._tls is not None or self._native_tls

    def _send(self, data: bytes | memoryview) -> None:
        tls = self._tls
        if tls is None:
            self.transport.write(data)
            return
        if self._unsent:  # behind a renegotiation: after what waits already
            self._unsent.append(bytes(data))
            return
        try:
            tls.write(data)
        except ssl.SSLWantReadError:  # a renegotiation (TLS 1.2) needs the server's reply
            self._unsent.append(bytes(data))
        except ssl.SSLError as exc:
            self._fail(WireClosed(f"TLS failed: {exc.reason or exc}"))
            raise WireClosed(str(self._closed)) from None
        if self._tls_out.pending:
            self.transport.write(self._tls_out.read())

    def _send_unsent(self, tls: ssl.SSLObject) -> None:
        """Encrypt what a renegotiation held back, once reading let it go on."""
        unsent = self._unsent
        while unsent:
            try:
                tls.write(unsent[0])
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                self._fail(WireClosed(f"TLS failed: {exc.reason or exc}"))
                return
            del unsent[0]
        if self._tls_out.pending:
            self.transport.write(self._tls_out.read())

    def close(self) -> None:
        """Close the connection (after TLS's close_notify, if TLS)."""
        tls = self._tls
        if tls is not None and self._closed is None and not self.transport.is_closing():
            with contextlib.suppress(ssl.SSLError):  # the peer's close_notify is not awaited
                tls.unwrap()
            if self._tls_out.pending:
                self.transport.write(self._tls_out.read())
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.now = self._clock()  # one clock read per read, not one per reply
        settle: list[tuple[asyncio.Future[Any], Any]] = []
        self._settle = settle
        try:
            if (  # one whole one-line reply, the usual read: no split, no loop
                data[3:4] == b" "
                and data.find(b"\n") == len(data) - 1
                and data[-2:-1] == b"\r"
                and not self._buffer
                and not self._lines
                and data[:3].isdigit()
            ):
                self._deliver((int(data[:3]), data[4:-2].decode("utf-8", "replace")))
            else:
                self._parse(data)
        finally:
            self._settle = None
            for future, value in settle:
                if not future.done():
                    future.set_result(value)

    def settle(self, future: asyncio.Future[Any], value: Any) -> None:
        """``future.set_result(value)``, after the rest of the read that brings it (at once
        outside a read). The task it wakes runs after those that replies later in the same
        read wake: a session handed back from such a read goes on (its next commands, its
        flush) before the task whose message just ended does its bookkeeping."""
        if self._settle is not None:
            self._settle.append((future, value))
        elif not future.done():
            future.set_result(value)

    def eof_received(self) -> bool:
        self._fail(WireClosed("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError):  # from the loop's own TLS layer (``start_tls``)
            self._fail(WireClosed(f"TLS failed: {exc.reason or exc}"))
        else:
            self._fail(WireClosed(f"connection lost: {exc}" if exc else "connection lost"))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self, stall: float) -> None:
        """Wait until what was written has left the transport (while it is ``paused``).

        Raises :class:`WireClosed` if the connection goes, ``TimeoutError`` if for ``stall``
        seconds not one byte left (the peer stopped reading): a slow upload may take as long
        as it needs, a dead one fails in ``stall`` seconds."""
        transport = self.transport
        left = transport.get_write_buffer_size()
        while self.paused:
            if self._closed is not None:
                raise WireClosed(str(self._closed))
            self._drain = waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(stall):
                    await waiter
            except TimeoutError:
                now = transport.get_write_buffer_size()
                if now >= left:
                    raise TimeoutError(
                        f"the server took no byte of the data in {stall:g} s"
                    ) from None
                left = now

    # -- replies ------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer and data.endswith(b"\n"):  # whole lines, the usual read: no copies
            chunk = data[:-1]
        else:
            buffer += data
            end = buffer.rfind(b"\n")
            if end < 0:
                if len(buffer) > MAX_REPLY:
                    self._fail(WireClosed("reply too long"))
                return
            chunk = bytes(buffer[:end])
            del buffer[: end + 1]
        lines = self._lines
        for line in chunk.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            # A reply ends at a line whose 4th byte is a space (or that has only the code).
            if line[3:4] == b"-":
                lines.append(line)
                if len(lines) > MAX_LINES:
                    self._fail(WireClosed("reply too long"))
                    return
                continue
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(WireClosed(f"malformed reply {line[:80]!r}"))
                return
            text = line[4:].decode("utf-8", "replace")
            if lines:  # the end of a multi-line reply
                text = "\n".join([*(x[4:].decode("utf-8", "replace") for x in lines), text])
                lines.clear()
            self._deliver((code, text))

    def _deliver(self, reply: Reply) -> None:
        if not self._owed:
            self._replies.append(reply)
            return
        owed = self._owed
        group, count, future, _, _, then = owed[0]
        group.append(reply)
        if len(group) != count:
            return
        owed.popleft()
        waiting = bool(owed)  # asked before these came (else all asked from now on is new)
        if then is not None:
            then(group)  # may write, and ask for more replies (behind those owed now)
        elif not future.done():  # else its asker gave up: the replies are dropped
            future.set_result(group)
        if waiting and owed:
            # The next group's clock starts now at the latest: its replies could not come
            # before the ones ahead of them.
            g, c, f, deadline, timeout, t = self._owed[0]
            started = self.now + timeout
            if started > deadline:
                self._owed[0] = (g, c, f, started, timeout, t)
                deadline = started
            # A command's reply behind a final "." reply: the timer, moved to the latter's
            # (later) deadline when it fired, must come back to this one at once.
            watchdog = self._watchdog
            if watchdog is not None and deadline < self._watchdog_at:
                watchdog.cancel()
                self._watch(deadline)
        if self._retired is not None:
            self._check_retired()

    def retire(self, then: Callable[[], None]) -> None:
        """Take no more writes, and call ``then`` (which drops the session) once every reply
        still awaited by someone has come (or the watchdog gave up on it): a user who gives up
        mid-transaction must not take down the reply owed to the message ahead of it."""
        self._retired = then
        self._check_retired()

    def _check_retired(self) -> None:
        if self._retired is not None and all(owed[2].done() for owed in self._owed):
            then, self._retired = self._retired, None
            then()

    def _check_deadline(self) -> None:
        # One timer per session, moved only when it fires, instead of one per awaited reply.
        self._watchdog = None
        if not self._owed or self._closed is not None:
            return
        deadline = self._owed[0][3]
        if self._loop.time() >= deadline:
            self._fail(TimeoutError("no reply from the server in time"))
        else:
            self._watch(deadline)

    def _watch(self, deadline: float) -> None:
        self._watchdog = self._loop.call_at(deadline, self._check_deadline)
        self._watchdog_at = deadline

    def _fail(self, exc: BaseException) -> None:
        first = self._closed is None
        if first:
            self._closed = exc
        owed, self._owed = self._owed, deque()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for _, _, future, _, _, _ in owed:
            if not future.done():
                future.set_exception(WireClosed(str(self._closed)))
                future.exception()  # retrieved here: an asker who gave up must not warn
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(WireClosed(str(self._closed)))
            waiter.exception()
        if not self.transport.is_closing():
            self.transport.abort()
        waiter = self._shaking
        if waiter is not None and not waiter.done():
            waiter.set_exception(WireClosed(str(self._closed)))
            waiter.exception()
        if first and self.on_closed is not None:
            self.on_closed(self._closed or exc)
        self._check_retired()

    def expect(self, count: int, timeout: float) -> asyncio.Future[list[Reply]]:
        """The next ``count`` replies not yet asked for, as one future (in order). Ask right
        after writing the commands they answer. If they do not all come within ``timeout``
        seconds, the session is out of step: it is dropped, and every future fails."""
        future: asyncio.Future[list[Reply]] = self._loop.create_future()
        self.expect_then(count, timeout, future, None)
        return future

    def expect_then(
        self, count: int, timeout: float, future: asyncio.Future[Any], then: Then | None
    ) -> None:
        """Like :meth:`expect`, but the replies go to ``then``, called at once from the read
        that completes them (no loop turn between a reply and what it lets us write), even if
        ``future`` is done by then (its asker gave up: ``then`` checks). ``then`` settles
        ``future`` itself, now or later; if the session fails first, ``future`` gets the
        error. Without ``then``, the replies settle ``future`` (:meth:`expect`)."""
        group: list[Reply] = []
        arrived = self._replies  # before anyone asked: rare (an unrequested reply)
        if arrived or not count:
            while arrived and len(group) < count:
                group.append(arrived.popleft())
            if len(group) == count:
                if then is not None:
                    then(group)
                else:
                    future.set_result(group)
                return
        if self._closed is not None:
            if not future.done():
                future.set_exception(WireClosed(str(self._closed)))
        else:
            # Asked from a read (the usual case): that read's time will do.
            now = self.now if self._settle is not None else self._loop.time()
            self._owed.append((group, count, future, now + timeout, timeout, then))
            # The timer moves lazily (when it fires) to a later deadline, but must move at once
            # to an earlier one: a command's reply (command_timeout) after a final "." reply
            # (final_reply_timeout, longer) whose timer is still set.
            deadline = self._owed[0][3]
            watchdog = self._watchdog
            if watchdog is None or deadline < self._watchdog_at:
                if watchdog is not None:
                    watchdog.cancel()
                self._watch(deadline)

    async def replies(self, count: int, timeout: float) -> list[Reply]:
        """Wait for :meth:`expect`'s replies. Raises :class:`WireClosed` (``TimeoutError``
        as its cause when the session timed out)."""
        return await self.expect(count, timeout)

    async def reply(self, timeout: float) -> Reply:
        """The next reply, in order. Raises :class:`WireClosed` or ``TimeoutError``."""
        return (await self.replies(1, timeout))[0]

    def _check_open(self) -> None:
        if self._closed is not None or self.transport.is_closing():
            raise WireClosed(str(self._closed or "connection closed"))
        if self._retired is not None:
            raise WireClosed("the session is being dropped")

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport; raises :class:`WireClosed`, writing nothing, if the
        connection is already gone."""
        if self._closed is not None or self._retired is not None or self.transport.is_closing():
            self._check_open()  # raises
        if self._out is not None:
            self._out.append(data)
        else:
            self._send(data)

    def writelines(self, parts: tuple[bytes, ...], *, linger: bool = False) -> None:
        """Like :meth:`write`, for several buffers at once. With ``linger``, they wait two loop
        turns, so that what the next user of the session writes meanwhile (the next message's
        commands, behind this one's data) leaves in the same segment: one send, not two."""
        self._check_open()
        if self._out is not None:
            self._out.extend(parts)
        elif linger:
            self._out = list(parts)
            self._loop.call_soon(self._loop.call_soon, self._flush)
        else:
            # Joined, not ``transport.writelines``: a TLS transport encrypts each part as a
            # record of its own (the final ".\r\n" too), one more for us and for the server
            # to process: over STARTTLS on uvloop that cost 1.5x the CPU per message (bench B).
            self._send(b"".join(parts))

    async def upload(self, data: bytes, stall: float) -> None:
        """Write ``data`` part by part under flow control, each part once the last has left
        the transport; return once all has. Raises like :meth:`drain`.

        In parts because a transport may not pause us for one large write: CPython's selector
        transport (3.12, 3.13) never does from ``writelines``, and a TLS transport (asyncio's,
        uvloop's) hands all it is given to the socket's transport at once and pauses us only
        when more comes while that one is full: a dead peer would look like a slow reply."""
        if self._out is not None:  # held bytes go first
            self._flush()
        view = memoryview(data)
        for start in range(0, len(view), HIGH_WATER):
            self._check_open()
            self._send(view[start : start + HIGH_WATER])
            if self.paused:
                await self.drain(stall)

    def hold(self, parts: tuple[bytes, ...]) -> None:
        """Like :meth:`writelines`, but keep the bytes (with whatever is written next) until
        :meth:`flush_soon`'s loop turn: then they leave in one send."""
        self._check_open()
        if self._out is not None:
            self._out.extend(parts)
        else:
            self._out = list(parts)

    @property
    def holding(self) -> bool:
        """Written bytes wait for a flush (:meth:`hold`, ``writelines(linger=True)``)."""
        return self._out is not None

    def flush_soon(self) -> None:
        """Send what :meth:`hold` kept at the next loop turn, after the callbacks already due
        (a task woken now writes its commands behind the held bytes first)."""
        if self._out is not None:
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Send what :meth:`hold` kept, now."""
        self._flush()

    def _flush(self) -> None:
        out, self._out = self._out, None
        if out and self._closed is None and not self.transport.is_closing():
            with contextlib.suppress(WireClosed):  # its awaiters get the error
                self._send(b"".join(out))

    @property
    def owed(self) -> bool:
        """Someone still awaits a reply on this session."""
        return bool(self._owed)

    @property
    def closed(self) -> bool:
        return self._closed is not None or self.transport.is_closing() or self._retired is not None

    def abort(self) -> None:
        self._fail(WireClosed("aborted"))
