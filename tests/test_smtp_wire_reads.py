"""Review of 8c22fa1 (``Wire`` as an ``asyncio.BufferedProtocol``) and 1cd0821 (one clock read
per read, the watchdog's time kept): reads after ``set_protocol`` on every transport (plain TCP,
STARTTLS, implicit TLS; asyncio and uvloop), replies split across reads and larger than the 64 KiB
read buffer, EOF and resets mid-reply, deadlines asked from a read, idle sessions' clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from hubspot_tx.smtp import SmtpPool
from hubspot_tx.smtp._wire import Reply, Wire, WireClosed

from .lane_server import BOUND, FAST, PATIENCE, lane_server, mid, msg, pool_for, until


async def test_silent_server_after_a_final_reply_times_out_in_command_timeout() -> None:
    """J2's commands leave with J1's data (one lane); J1's final reply comes after
    command_timeout (the watchdog, firing, moved to final_reply_timeout's deadline); then the
    server goes silent on J2's MAIL: J2's session must fail after command_timeout, not after
    final_reply_timeout (the watchdog must come back to the earlier deadline)."""
    async with lane_server() as server:
        server.plan[(2, "mail")] = "hang"
        server.hold[(1, "data")] = asyncio.Event()
        async with pool_for(
            server, max_connections=1, command_timeout=0.5, final_reply_timeout=8.0
        ) as pool:
            t1 = asyncio.create_task(pool.send(msg(1)))
            await asyncio.wait_for(server.at(1, "data").wait(), PATIENCE)
            t2 = asyncio.create_task(pool.send(msg(2)))
            await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == 1)
            server.hold[(1, "end")] = asyncio.Event()
            server.hold[(1, "data")].set()
            await asyncio.wait_for(server.at(1, "end").wait(), PATIENCE)
            await asyncio.sleep(1.0)  # the watchdog fires while the final reply is owed
            server.hold[(1, "end")].set()
            o1 = await asyncio.wait_for(t1, PATIENCE)
            start = time.monotonic()
            await asyncio.wait_for(server.at(2, "mail").wait(), PATIENCE)
            o2 = await asyncio.wait_for(t2, BOUND)
            took = time.monotonic() - start
        assert o1.ok, o1
        assert o2.ok, o2
        assert server.stored[mid(2)] == 1
        assert took < 0.5 + 1.5, took


# -- a scripted server on every transport ---------------------------------------------------------
TLS_MODES = ("none", "starttls", "implicit")


@dataclass
class Scripted:
    """PIPELINING (``pipelining``: the replies to MAIL, RCPT and DATA leave in one write, after
    DATA), over ``tls``. ``big``: the replies to MAIL and RCPT are multi-line, ~40 KiB each,
    and the one to the final "." ~75 KiB (999 lines): a batch, or one reply, over the 64 KiB
    read buffer. ``piece``: every write goes out in pieces of that many bytes, a loop turn
    apart (replies split across reads). ``fault[txn]`` at that transaction's MAIL: "eof" or
    "reset" in the middle of its (multi-line) reply, "hang" (no reply), "overlong" (70 KiB with
    no line end, then silence)."""

    tls: str = "none"
    pipelining: bool = True
    big: bool = False
    piece: int = 0
    stray: bytes = b""
    fault: dict[int, str] = field(default_factory=dict)
    stored: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    transactions: int = 0
    noops: int = 0
    port: int = 0
    client_context: ssl.SSLContext | None = None

    async def _out(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not self.piece:
            writer.write(data)
        else:
            for start in range(0, len(data), self.piece):
                writer.write(data[start : start + self.piece])
                await writer.drain()
                await asyncio.sleep(0.0005)
        await writer.drain()

    @staticmethod
    def multi(code: int, lines: int, width: int = 72) -> bytes:
        text = [f"{code}-{k:05d}{'y' * (width - 5)}\r\n".encode() for k in range(lines - 1)]
        return b"".join(text) + f"{code} last of {lines}\r\n".encode()

    async def session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server_ctx: ssl.SSLContext | None,
    ) -> None:
        self.sessions += 1
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError, OSError):
            await self._serve(reader, writer, server_ctx)
        writer.close()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server_ctx: ssl.SSLContext | None,
    ) -> None:
        writer.write(b"220 scripted.test ESMTP\r\n")
        held = b""  # replies of a pipelined group, written at its DATA
        txn = 0
        secure = self.tls == "implicit"
        while line := await asyncio.wait_for(reader.readline(), PATIENCE):
            verb = line[:4].upper()
            if verb == b"EHLO":
                ext = [b"scripted.test", b"8BITMIME", b"SIZE 100000000"]
                if self.tls == "starttls" and not secure:
                    ext.append(b"STARTTLS")
                if self.pipelining:
                    ext.append(b"PIPELINING")
                body = b"".join(b"250-" + x + b"\r\n" for x in ext[:-1])
                writer.write(body + b"250 " + ext[-1] + b"\r\n")
                if self.stray and (secure or self.tls == "none"):
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(self.stray)
            elif verb == b"STAR" and server_ctx is not None:
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(server_ctx)
                secure = True
                continue
            elif verb == b"MAIL":
                self.transactions += 1
                txn = self.transactions
                fault = self.fault.get(txn, "")
                if fault in ("eof", "reset"):
                    writer.write(held + b"250-first line\r\n250-second li")
                    await writer.drain()
                    if fault == "reset":
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
                        writer.transport.abort()
                    return
                if fault == "hang":
                    await asyncio.sleep(60)
                if fault == "overlong":
                    writer.write(b"250 " + b"z" * (70 * 1024))
                    await writer.drain()
                    await asyncio.sleep(60)
                reply = self.multi(250, 550) if self.big else b"250 OK\r\n"
                held += reply
                if not self.pipelining:
                    await self._out(writer, held)
                    held = b""
                continue
            elif verb == b"RCPT":
                held += self.multi(251, 550) if self.big else b"250 OK\r\n"
                if not self.pipelining:
                    await self._out(writer, held)
                    held = b""
                continue
            elif verb == b"DATA":
                await self._out(writer, held + b"354 go on\r\n")
                held = b""
                data = bytearray()
                while (chunk := await asyncio.wait_for(reader.readline(), PATIENCE)) != b".\r\n":
                    if not chunk:
                        return
                    data += chunk
                found = re.search(rb"(?im)^message-id:\s*(\S+)", bytes(data))
                self.stored[found.group(1).decode() if found else "?"] += 1
                await self._out(writer, self.multi(250, 999) if self.big else b"250 queued\r\n")
                continue
            elif verb == b"RSET":
                writer.write(b"250 OK\r\n")
            elif verb == b"NOOP":
                self.noops += 1
                writer.write(b"250 OK\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 no\r\n")
            await writer.drain()


_LINGER0 = struct.pack("ii", 1, 0)


@asynccontextmanager
async def scripted(**kwargs: Any) -> AsyncIterator[Scripted]:
    server = Scripted(**kwargs)
    server_ctx = None
    if server.tls != "none":
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        server.client_context = ssl.create_default_context()
        ca.configure_trust(server.client_context)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.session(reader, writer, server_ctx)

    srv = await asyncio.start_server(
        serve, sock=sock, ssl=server_ctx if server.tls == "implicit" else None
    )
    try:
        yield server
    finally:
        srv.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srv.wait_closed(), 5)


def pool_of(server: Scripted, **kwargs: Any) -> SmtpPool:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("command_timeout", 10.0)
    kwargs.setdefault("final_reply_timeout", 10.0)
    kwargs.setdefault("local_hostname", "client.test")
    return SmtpPool(
        "127.0.0.1",
        server.port,
        tls=server.tls,  # type: ignore[arg-type]
        ssl_context=server.client_context,
        **kwargs,
    )


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", TLS_MODES)
async def test_replies_over_64k_in_one_batch_and_one_reply_on_every_transport(
    tls: str, pipelining: bool
) -> None:
    """MAIL and RCPT answered with ~40 KiB each (one ~80 KiB write with PIPELINING), the
    final "." with ~75 KiB: every read fills the 64 KiB buffer and a reply spans reads. Five
    messages on one session: it stays in step, each message stored once, the final reply whole."""
    async with scripted(tls=tls, pipelining=pipelining, big=True) as server:
        async with pool_of(server, max_connections=1) as pool:
            outcomes = [await asyncio.wait_for(pool.send(msg(i)), PATIENCE) for i in range(5)]
        assert all(o.ok for o in outcomes), outcomes
        assert [o.code for o in outcomes] == [250] * 5
        lines = outcomes[-1].reply.split("\n")
        assert len(lines) == 999
        assert lines[-1] == "last of 999", lines[-2:]
        assert lines[0] == "00000" + "y" * 67
        assert server.stored == {mid(i): 1 for i in range(5)}
        assert server.sessions == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", TLS_MODES)
async def test_replies_dribbled_a_few_bytes_per_read_on_every_transport(
    tls: str, pipelining: bool
) -> None:
    """Every reply written 3 bytes at a time (a read per piece, CRLF split from its line)."""
    async with scripted(tls=tls, pipelining=pipelining, piece=3) as server:
        async with pool_of(server, max_connections=1) as pool:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(pool.send(msg(i)) for i in range(4))), PATIENCE
            )
        assert all(o.ok for o in outcomes), outcomes
        assert server.stored == {mid(i): 1 for i in range(4)}
        assert server.sessions == 1


@pytest.mark.parametrize("fault", ["eof", "reset"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", TLS_MODES)
async def test_connection_gone_in_the_middle_of_a_reply_on_every_transport(
    tls: str, pipelining: bool, fault: str
) -> None:
    """The server closes (FIN, or RST) after half a multi-line reply to the 2nd MAIL of a
    session: the message is retried on a new session at once (no wait for a timeout: 60 s
    here), stored once; the first message was answered before and is sent."""
    async with scripted(tls=tls, pipelining=pipelining, fault={2: fault}) as server:
        async with pool_of(
            server, max_connections=1, command_timeout=60.0, final_reply_timeout=60.0
        ) as pool:
            start = time.monotonic()
            first = await asyncio.wait_for(pool.send(msg(1)), PATIENCE)
            second = await asyncio.wait_for(pool.send(msg(2)), BOUND)
            took = time.monotonic() - start
        assert first.ok, first
        assert second.ok, second
        assert second.attempts == 2
        assert server.stored == {mid(1): 1, mid(2): 1}
        assert server.sessions == 2
        assert took < 5.0, took


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", TLS_MODES)
async def test_silent_server_times_out_in_command_timeout_on_every_transport(
    tls: str, pipelining: bool
) -> None:
    """No reply to the 2nd MAIL of a session: that attempt fails after command_timeout (0.4 s,
    final_reply_timeout 60 s) plus a little, and the retry on a new session sends it."""
    async with scripted(tls=tls, pipelining=pipelining, fault={2: "hang"}) as server:
        async with pool_of(
            server, max_connections=1, command_timeout=0.4, final_reply_timeout=60.0
        ) as pool:
            assert (await asyncio.wait_for(pool.send(msg(1)), PATIENCE)).ok
            start = time.monotonic()
            second = await asyncio.wait_for(pool.send(msg(2)), BOUND)
            took = time.monotonic() - start
        assert second.ok, second
        assert second.attempts == 2, second
        assert server.stored == {mid(1): 1, mid(2): 1}
        assert 0.4 <= took < 0.4 + 1.5, took


@pytest.mark.parametrize("tls", TLS_MODES)
async def test_an_unending_reply_line_fails_the_session_at_once(tls: str) -> None:
    """70 KiB with no line end (over MAX_REPLY, across two reads of the 64 KiB buffer), then
    silence: "reply too long" breaks the session from the read, long before command_timeout."""
    async with scripted(tls=tls, fault={1: "overlong"}) as server:
        async with pool_of(server, max_connections=1, command_timeout=60.0) as pool:
            start = time.monotonic()
            outcome = await asyncio.wait_for(pool.send(msg(1)), BOUND)
            took = time.monotonic() - start
        assert outcome.ok, outcome
        assert outcome.attempts == 2, outcome
        assert server.stored == {mid(1): 1}
        assert took < 5.0, took


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", ["none", "starttls"])
async def test_idle_sessions_health_check_and_idle_timeout(tls: str, pipelining: bool) -> None:
    """``last_used`` (the read's clock on a lane, the loop's on check-in): a session used 0.1 s
    ago goes on without a NOOP; one idle past health_check_after (0.4 s) is probed once; one
    idle past idle_timeout (1.2 s) is replaced without a probe."""
    async with scripted(tls=tls, pipelining=pipelining) as server:
        async with pool_of(
            server, max_connections=1, health_check_after=0.4, idle_timeout=1.2
        ) as pool:
            assert (await asyncio.wait_for(pool.send(msg(1)), PATIENCE)).ok
            await asyncio.sleep(0.1)
            assert (await asyncio.wait_for(pool.send(msg(2)), PATIENCE)).ok
            assert (server.noops, server.sessions) == (0, 1)
            await asyncio.sleep(0.7)
            assert (await asyncio.wait_for(pool.send(msg(3)), PATIENCE)).ok
            assert (server.noops, server.sessions) == (1, 1)
            await asyncio.sleep(0.1)
            assert (await asyncio.wait_for(pool.send(msg(4)), PATIENCE)).ok
            assert (server.noops, server.sessions) == (1, 1)
            await asyncio.sleep(1.5)
            assert (await asyncio.wait_for(pool.send(msg(5)), PATIENCE)).ok
            assert (server.noops, server.sessions) == (1, 2)
        assert server.stored == {mid(i): 1 for i in range(1, 6)}


@pytest.mark.parametrize("tls", TLS_MODES)
async def test_aclose_with_a_silent_server_is_bounded(tls: str) -> None:
    """A message in flight on a server gone silent at MAIL: ``aclose`` (drain, timeout 0.5 s)
    returns in about that time, the message not sent, never stored."""
    async with scripted(tls=tls, fault={1: "hang"}) as server:
        pool = pool_of(server, command_timeout=60.0, final_reply_timeout=60.0)
        task = asyncio.create_task(pool.send(msg(1)))
        await until(lambda: server.transactions == 1)
        start = time.monotonic()
        await asyncio.wait_for(pool.aclose(timeout=0.5), BOUND)
        outcome = await asyncio.wait_for(task, BOUND)
        took = time.monotonic() - start
        assert not outcome.ok
        assert server.stored == {}
        assert took < 0.5 + 1.5, took


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize("tls", TLS_MODES)
async def test_a_reply_before_anything_was_asked(tls: str, pipelining: bool) -> None:
    """An unsolicited reply once the session is the Wire's (50 ms after EHLO): the session is
    out of step by one reply. Nothing is reported sent that the server did not store, nothing
    is stored twice, the pool does not hang. (Today each message ends "rejected" with code 250
    on the same session: a 2xx to DATA is not taken for the out-of-step session it shows.)"""
    async with scripted(tls=tls, pipelining=pipelining, stray=b"250 stray\r\n") as server:
        async with pool_of(server, max_connections=1, command_timeout=1.0) as pool:
            await asyncio.sleep(0.2)
            outcomes = [await asyncio.wait_for(pool.send(msg(i)), BOUND) for i in range(2)]
        for i, o in enumerate(outcomes):
            if o.ok:
                assert server.stored[mid(i)] == 1, (o, server.stored)
        assert set(server.stored.values()) <= {1}, server.stored


async def test_a_reply_asked_from_a_long_read_gets_its_timeout_less_that_read() -> None:
    """1cd0821: a reply asked from a read takes the read's start as its clock. A read that
    lasts 0.3 s (a blocking callback) before asking with a 0.6 s timeout: the session times
    out no sooner than 0.6 s after the read began (so at least 0.3 s after the ask), and no
    later than 0.6 s after the ask (plus slack). Bounds, not a wish: the deadline may be short
    by the time the read took before the ask."""
    loop = asyncio.get_running_loop()
    sent = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"250 first\r\n")
        await writer.drain()
        sent.set()
        await asyncio.sleep(PATIENCE)  # then silence
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    _, wire = await loop.create_connection(Wire, "127.0.0.1", port)
    times: dict[str, float] = {}
    second: list[asyncio.Future[list[Reply]]] = []

    def then(replies: list[Reply]) -> None:
        times["read"] = wire.now
        time.sleep(0.3)  # a long read
        times["ask"] = loop.time()
        second.append(wire.expect(1, 0.6))

    first: asyncio.Future[list[Reply]] = loop.create_future()
    try:
        wire.write(b"NOOP\r\n")
        wire.expect_then(1, 5.0, first, then)
        await asyncio.wait_for(sent.wait(), PATIENCE)
        await until(lambda: bool(second))
        with pytest.raises(WireClosed):
            await asyncio.wait_for(second[0], BOUND)
        failed = loop.time()
    finally:
        wire.abort()
        srv.close()
    assert failed - times["read"] >= 0.6 - 0.01, times
    assert failed - times["ask"] < 0.6 + 0.5, (failed, times)
