"""The raw SMTP server of the lanes tests (``tests/test_smtp_lanes.py``, PIPELINING offered, and
``tests/test_smtp_lanes_lockstep.py``, one command at a time), and the helpers both use.

It scripts each transaction (by the order of its MAIL command) and can hold the reply to any
command until the test lets it go, so that the states of queued jobs are reached
deterministically. Without PIPELINING it also records every command that arrived before the
reply to the one ahead had been sent (``ahead``): a client that pipelines against a server that
did not offer it.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubspot_tx import FailureCategory, Outcome, OutcomeStatus
from hubspot_tx.smtp import Envelope, SmtpPool, SmtpRetry

from .conftest import make_message

FAST = SmtpRetry(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)

# How long a wait that only checks "this did not hang" may take: ample for a slow, loaded
# machine (CI alongside), far below the server's own 60 s waits.
PATIENCE = 30.0
# What a test whose point is that something is bounded (aclose, a server gone silent) allows:
# ample for a loaded machine (such a test takes about a second), a quarter of the 60 s it
# guards against (the server's "hang" and hold; pool timeouts set to 60 s by such a test).
BOUND = 15.0


@dataclass
class LaneServer:
    """SIZE, PIPELINING if ``pipelining``. ``plan[(txn, phase)]`` scripts a reply ("drop": close
    instead, "hang": never answer); phase "rcpt2" etc. names the 2nd RCPT of a transaction;
    ``hold[(txn, phase)]`` holds the reply to that command until set. With ``hangup_ends_hold``
    a session whose client went away while a reply was held ends at once (the server counts
    what is open, not what it has not noticed closing); without it, the held command is
    answered (and a held message stored) when the hold is let go, as a server that has not
    read the hang-up yet would."""

    pipelining: bool = True
    hangup_ends_hold: bool = False
    size: int = 10_485_760
    plan: dict[tuple[int, str], str] = field(default_factory=dict)
    hold: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)
    stored: Counter[str] = field(default_factory=Counter)  # transactions per Message-ID
    delivered: Counter[tuple[str, str]] = field(default_factory=Counter)  # (mid, rcpt)
    txn_session: dict[int, int] = field(default_factory=dict)
    reached: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)
    ahead: list[tuple[int, bytes]] = field(default_factory=list)
    transactions: int = 0
    sessions: int = 0
    open_now: int = 0
    most: int = 0
    quits: int = 0
    port: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _readers: dict[asyncio.StreamWriter, asyncio.StreamReader] = field(default_factory=dict)

    def at(self, txn: int, phase: str) -> asyncio.Event:
        """Set when transaction ``txn`` reaches ``phase`` (mail, rcpt, rcpt1, .., data, end,
        rset)."""
        return self.reached.setdefault((txn, phase), asyncio.Event())

    async def _mark(self, txn: int, phase: str, writer: asyncio.StreamWriter) -> str:
        self.at(txn, phase).set()
        await self._held(self.hold.get((txn, phase)), writer)
        return self.plan.get((txn, phase), "")

    async def _held(self, event: asyncio.Event | None, writer: asyncio.StreamWriter) -> None:
        """Wait for ``event`` (see ``hangup_ends_hold``)."""
        if event is None:
            return
        if not self.hangup_ends_hold:
            await asyncio.wait_for(event.wait(), 60)
            return
        async with asyncio.timeout(60):
            while not event.is_set():
                reader = self._readers.get(writer)
                if writer.is_closing() or (reader is not None and reader.at_eof()):
                    raise ConnectionError("client went away")
                await asyncio.sleep(0.002)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        number = self.sessions
        self.open_now += 1
        self.most = max(self.most, self.open_now)
        self._writers.append(writer)
        self._readers[writer] = reader
        try:
            await self._serve(number, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def _serve(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        def check(line: bytes) -> None:
            # Without PIPELINING nothing may come before our reply to ``line``.
            buffered = bytes(reader._buffer)  # type: ignore[attr-defined]
            if buffered and not self.pipelining:
                self.ahead.append((number, line + b" | " + buffered[:40]))

        say("220 lanes.test ESMTP")
        await writer.drain()
        txn = rcpts = 0
        nth = 0
        to: list[str] = []
        in_mail = False
        while line := await asyncio.wait_for(reader.readline(), 60):
            verb = line[:4].upper()
            if verb not in (b"QUIT",):
                await asyncio.sleep(0)  # let what the client sent ahead arrive
                check(line.strip())
            if verb == b"EHLO":
                say("250-lanes.test")
                if self.pipelining:
                    say("250-PIPELINING")
                say("250-8BITMIME")
                say(f"250 SIZE {self.size}")
            elif verb == b"MAIL":
                self.transactions += 1
                txn, rcpts, nth, to = self.transactions, 0, 0, []
                self.txn_session[txn] = number
                reply = await self._mark(txn, "mail", writer)
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                in_mail = not reply or reply.startswith("2")
                say(reply or "250 OK")
            elif verb == b"RCPT":
                nth += 1
                reply = await self._mark(txn, "rcpt", writer)
                reply = self.plan.get((txn, f"rcpt{nth}"), reply)
                self.at(txn, f"rcpt{nth}").set()
                await self._held(self.hold.get((txn, f"rcpt{nth}")), writer)
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                if not in_mail:
                    reply = "503 need MAIL first"
                if not reply or reply.startswith("2"):
                    rcpts += 1
                    to.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                say(reply or "250 OK")
            elif verb == b"DATA":
                reply = await self._mark(txn, "data", writer)
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                if not rcpts and not reply:
                    reply = "554 no valid recipients"
                say(reply or "354 go ahead")
                await writer.drain()
                if not (reply or "354").startswith("354"):
                    continue
                body = bytearray()
                while (chunk := await asyncio.wait_for(reader.readline(), 60)) != b".\r\n":
                    if not chunk:
                        return
                    body += chunk
                await asyncio.sleep(0)
                check(b".")
                mid = next(
                    (
                        x.split(b":", 1)[1].strip().decode()
                        for x in body.split(b"\r\n")
                        if x.lower().startswith(b"message-id:")
                    ),
                    "?",
                )
                reply = await self._mark(txn, "end", writer)
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                reply = reply or "250 queued"
                if reply.startswith("2") and rcpts:
                    self.stored[mid] += 1
                    self.delivered.update((mid, r) for r in to)
                in_mail, rcpts = False, 0
                say(reply)
            elif verb == b"RSET":
                await self._mark(txn, "rset", writer)
                in_mail, rcpts = False, 0
                say("250 OK")
            elif verb == b"NOOP":
                say("250 OK")
            elif verb == b"QUIT":
                self.quits += 1
                say("221 bye")
                await writer.drain()
                return
            else:
                say("502 no")
            await writer.drain()


class Served(Protocol):
    """A scripted server: one ``session`` per connection, its writers kept to close them."""

    port: int
    _writers: list[asyncio.StreamWriter]

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection."""


@asynccontextmanager
async def serving(server: Served) -> AsyncIterator[None]:
    """Serve ``server`` on a free loopback port (set as ``server.port``); stop it on exit."""
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on the accepted sockets (as the
    # sandbox does): without it every reply written right after another waits on Nagle +
    # delayed ACK (~40 ms) on asyncio's loop, and a relay of hundreds of messages takes many
    # seconds for nothing.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]
    srv = await asyncio.start_server(server.session, sock=sock)
    try:
        yield
    finally:
        srv.close()
        for w in server._writers:
            w.close()
        await asyncio.wait_for(srv.wait_closed(), PATIENCE)


@asynccontextmanager
async def lane_server(**kwargs: Any) -> AsyncIterator[LaneServer]:
    server = LaneServer(**kwargs)
    async with serving(server):
        yield server


def pool_for(server: LaneServer, **kwargs: Any) -> SmtpPool:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("command_timeout", 5.0)
    kwargs.setdefault("final_reply_timeout", 5.0)
    kwargs.setdefault("local_hostname", "client.test")
    return SmtpPool("127.0.0.1", server.port, tls="none", **kwargs)


def msg(i: int, size: int = 0, rcpts: int = 1) -> Envelope:
    """A message of about ``size`` more bytes (in lines of 72) to ``rcpts`` recipients."""
    data = make_message(i) + (b"y" * 70 + b"\r\n") * (size // 72)
    to = tuple(f"r{i}.{k}@example.org" for k in range(rcpts))
    return Envelope(mail_from="s@example.com", rcpt_to=to, data=data)


def mid(i: int) -> str:
    return f"<m{i}@hubspot-tx.test>"


async def until(predicate: Callable[[], bool], timeout: float = PATIENCE) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (polls pool state, no event to wait on)
            await asyncio.sleep(0.001)


def idle_slots(pool: SmtpPool) -> int:
    return pool._slots._value


def exactly_once(
    outcomes: list[Outcome], server: LaneServer, n: int, *, per_recipient: bool = False
) -> None:
    """One outcome per message; every not-sent/cancelled one never stored; the client never
    wrote ahead of a reply without PIPELINING. Whole messages (one recipient each): every
    "sent" stored once, nothing stored twice. ``per_recipient`` (a message may be sent in two
    transactions, to the recipients the first refused): every accepted recipient of a "sent"
    got it once, no recipient got anything twice."""
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(n))
    if per_recipient:
        assert set(server.delivered.values()) <= {1}, server.delivered
    else:
        assert set(server.stored.values()) <= {1}, server.stored
    for o in outcomes:
        assert o.index is not None
        if o.status is OutcomeStatus.SENT:
            if per_recipient:
                for r in o.accepted:
                    assert server.delivered[(mid(o.index), r)] == 1, o
            else:
                assert server.stored[mid(o.index)] == 1, o
        elif o.category is not FailureCategory.DELIVERY_UNKNOWN:
            assert server.stored[mid(o.index)] == 0, o
    assert not server.ahead, server.ahead[:5]
