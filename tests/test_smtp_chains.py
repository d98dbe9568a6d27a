"""Review of the relay chains (``SmtpPool._relay``, ``_Chain``, ``_go_on``): the read that brings
a message's final reply goes on with the relay's next message on a lane.

Attacked: exactly one outcome per message taken (read, or reported through ``on_outcome`` when
the relay or pool was closed), nothing sent twice (counted on the server), the right outcome for
every kind of message mixed into one relay (invalid, too big for the server, large, refused,
4xx/5xx to the final ".", 421, a session dropped right after a final reply), cancellation and
closing mid-relay, a fatal error mid-relay, plain and async input, a slow reader, both event
loops, PIPELINING and lockstep servers.

``ChainServer`` below is this module's own SMTP server: it decides each reply from the content
of the command (a recipient whose local part starts with ``no`` is refused; the reply to a final
"." is scripted by the message's Message-ID), so that the outcome expected of each message does
not depend on the order in which the pool's sessions happen to carry them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_tx import (
    FailureCategory,
    Outcome,
    OutcomeStatus,
    PoolClosedError,
    SmtpAuthError,
)
from hubspot_tx.smtp import Envelope, MessageInput, SmtpCredentials, SmtpPool, SmtpRetry
from hubspot_tx.smtp.outcome import InvalidReason

from .conftest import ASYNCIO_AND_UVLOOP, make_message
from .lane_server import PATIENCE, lane_server, mid, msg, pool_for, serving

FAST = SmtpRetry(max_attempts=4, initial_backoff=0.005, max_backoff=0.01)
LIMIT = 20.0  # one relay of this module, on a loaded machine


# -- the server --------------------------------------------------------------------------------
@dataclass
class ChainServer:
    """``end[mid]``: the reply to the final "." of that message: ``"554 ..."``, ``"451 ..."``
    (every time), ``"451once"`` (the first time only), ``"421 ..."``, ``"drop"`` (close instead
    of answering), ``"then-drop"`` (250, then the session ends at its next command).
    ``hold[mid]`` holds that reply until set; ``reached[mid]`` is set when its "." arrives."""

    pipelining: bool = True
    eightbit: bool = True
    size: int = 1_000_000
    auth: tuple[str, str] | None = None
    end: dict[str, str] = field(default_factory=dict)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    reached: dict[str, asyncio.Event] = field(default_factory=dict)
    dots: Counter[str] = field(default_factory=Counter)  # final "." received, per Message-ID
    stored: Counter[str] = field(default_factory=Counter)  # accepted (2xx), per Message-ID
    delivered: Counter[tuple[str, str]] = field(default_factory=Counter)
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    ahead: list[bytes] = field(default_factory=list)  # lockstep: written before our reply
    logins: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)  # 450 once to ``later...``
    sessions: int = 0
    open_now: int = 0
    most: int = 0
    port: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    def at(self, message_id: str) -> asyncio.Event:
        return self.reached.setdefault(message_id, asyncio.Event())

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        self._writers.append(writer)
        # Counted once the sessions that the client closed just before are seen to end (their
        # hang-up is read a loop turn or two after this one may be accepted).
        await asyncio.sleep(0.005)
        self.open_now += 1
        self.most = max(self.most, self.open_now)
        self._open.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._gone(writer)
            writer.close()

    def _gone(self, writer: asyncio.StreamWriter) -> None:
        if writer in self._open:
            self._open.discard(writer)
            self.open_now -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 chains.test ESMTP")
        await writer.drain()
        rcpts: list[str] | None = None  # None: no MAIL yet
        doomed = False
        while line := await asyncio.wait_for(reader.readline(), 60):
            verb = line[:4].upper()
            await asyncio.sleep(0)  # let what the client sent ahead arrive
            if not self.pipelining and verb != b"QUIT":
                buffered = bytes(reader._buffer)  # type: ignore[attr-defined]
                if buffered:
                    self.ahead.append(line.strip() + b" | " + buffered[:40])
            if doomed:
                return  # "then-drop": the session ends at the command after the reply
            if verb == b"EHLO":
                say("250-chains.test")
                if self.pipelining:
                    say("250-PIPELINING")
                if self.eightbit:
                    say("250-8BITMIME")
                if self.auth is not None:
                    say("250-AUTH PLAIN")
                say(f"250 SIZE {self.size}")
            elif verb == b"AUTH":
                token = line.split()[-1]
                _, user, password = base64.b64decode(token).decode().split("\0")
                self.logins[user] += 1
                if self.auth == (user, password):
                    say("235 ok")
                else:
                    say("535 5.7.8 bad credentials")
            elif verb == b"MAIL":
                rcpts = []
                say("250 OK")
            elif verb == b"RCPT":
                rcpt = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                if rcpts is None:
                    say("503 need MAIL")
                elif rcpt.startswith("no"):
                    say("550 5.1.1 nobody")
                elif rcpt.startswith("later") and not self.deferred[rcpt]:
                    self.deferred[rcpt] += 1
                    say("450 4.2.1 try again")
                else:
                    rcpts.append(rcpt)
                    say("250 OK")
            elif verb == b"DATA":
                if not rcpts:
                    say("554 no valid recipients")
                    rcpts = None
                    await writer.drain()
                    continue
                say("354 go ahead")
                await writer.drain()
                body = bytearray()
                while (chunk := await asyncio.wait_for(reader.readline(), 60)) != b".\r\n":
                    if not chunk:
                        return
                    body += chunk
                message_id = next(
                    (
                        x.split(b":", 1)[1].strip().decode()
                        for x in bytes(body).split(b"\r\n")
                        if x.lower().startswith(b"message-id:")
                    ),
                    "?",
                )
                self.dots[message_id] += 1
                self.at(message_id).set()
                held = self.hold.get(message_id)
                if held is not None:
                    await asyncio.wait_for(held.wait(), 60)
                reply = self.end.get(message_id, "250 queued")
                if reply == "451once":
                    reply = "451 try again" if self.dots[message_id] == 1 else "250 queued"
                if reply == "drop":
                    return
                if reply == "then-drop":
                    reply, doomed = "250 queued", True
                closing = reply == "then-close"
                if closing:
                    reply = "250 queued"
                if reply.startswith("2"):
                    self.stored[message_id] += 1
                    self.delivered.update((message_id, r) for r in rcpts)
                    self.bodies.setdefault(message_id, []).append(bytes(body))
                rcpts = None
                say(reply)
                if closing:  # the session ends right after the reply
                    await writer.drain()
                    return
            elif verb == b"RSET":
                rcpts = None
                say("250 OK")
            elif verb == b"NOOP":
                say("250 OK")
            elif verb == b"QUIT":
                self._gone(writer)  # the client may open the next one as soon as it reads this
                say("221 bye")
                await writer.drain()
                return
            else:
                say("502 no")
            await writer.drain()


@asynccontextmanager
async def chain_server(**kwargs: Any) -> AsyncIterator[ChainServer]:
    server = ChainServer(**kwargs)
    async with serving(server):
        yield server


def chain_pool(server: ChainServer, **kwargs: Any) -> SmtpPool:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("command_timeout", 5.0)
    kwargs.setdefault("final_reply_timeout", 5.0)
    kwargs.setdefault("local_hostname", "client.test")
    if server.auth is not None:
        kwargs.setdefault("credentials", SmtpCredentials(*server.auth))
        kwargs.setdefault("allow_plaintext_auth", True)
    return SmtpPool("127.0.0.1", server.port, tls="none", **kwargs)


# -- the messages ------------------------------------------------------------------------------
KINDS = (
    "ok",
    "two",  # two recipients
    "partial",  # two recipients, the second refused (550)
    "refused",  # its only recipient refused
    "norcpt",  # an envelope without recipients
    "nul",  # a NUL byte in the body
    "garbage",  # bytes that are no message
    "notmsg",  # not bytes, not a message
    "8bit",  # 8-bit body (unsendable to a server without 8BITMIME)
    "mid",  # 50 kB: a lane's; over a small SIZE
    "large",  # 70 kB: carried (a session of its own); over a small SIZE
    "e554",  # 554 to its final "."
    "e451",  # 451 to its final ".", every time
    "e451once",  # 451 the first time, then accepted
    "e421",  # 421 to its final "."
    "dropend",  # the session closed instead of the reply to its final "."
    "thendrop",  # 250, then the session ends at the next command
    "thenclose",  # 250, and the server closes the session at once
    "rcpt450once",  # its recipient deferred (450) the first time
)
SMALL_SIZE = 40_000  # a server SIZE under which "mid" and "large" are too big


def _data(i: int, extra: int = 0, body: bytes = b"") -> bytes:
    return make_message(i) + body + (b"y" * 70 + b"\r\n") * (extra // 72)


def make(i: int, kind: str, server: ChainServer) -> MessageInput:
    """Message ``i`` of ``kind``; scripts the server's reply to its final "." if need be."""
    to: tuple[str, ...] = (f"r{i}@example.org",)
    if kind == "two":
        to = (f"r{i}@example.org", f"s{i}@example.org")
    elif kind == "partial":
        to = (f"r{i}@example.org", f"no{i}@example.org")
    elif kind == "refused":
        to = (f"no{i}@example.org",)
    elif kind == "norcpt":
        to = ()
    elif kind == "rcpt450once":
        to = (f"later{i}@example.org",)
    elif kind == "partial450":  # not in KINDS: stored twice (once per recipient)
        to = (f"r{i}@example.org", f"later{i}@example.org")
    elif kind == "nul":
        return _data(i, body=b"with a \x00 byte\r\n")
    elif kind == "garbage":
        return b"just some bytes without headers"
    elif kind == "notmsg":
        return 42  # type: ignore[return-value]
    ends = {
        "e554": "554 5.7.1 rejected",
        "e451": "451 4.3.0 later",
        "e451once": "451once",
        "e421": "421 4.3.2 closing",
        "dropend": "drop",
        "thendrop": "then-drop",
        "thenclose": "then-close",
    }
    if kind in ends:
        server.end[mid(i)] = ends[kind]
    extra = {"mid": 50_000, "large": 70_000}.get(kind, 0)
    body = "8-bit: caf\u00e9\r\n".encode() if kind == "8bit" else b""
    return Envelope(mail_from="s@example.com", rcpt_to=to, data=_data(i, extra, body))


def check(
    kind: str,
    o: Outcome,
    server: ChainServer,
    *,
    max_attempts: int = FAST.max_attempts,
    chaos: bool = False,
) -> None:
    """The outcome of a message of ``kind``, against what the server saw."""
    assert o.index is not None
    m = mid(o.index)
    stored, dots = server.stored[m], server.dots[m]
    assert stored <= 1, (kind, o, stored)
    invalid = {
        "norcpt": InvalidReason.NO_RECIPIENTS,
        "nul": InvalidReason.NUL_BYTE,
        "garbage": InvalidReason.NOT_A_MESSAGE,
        "notmsg": InvalidReason.NOT_A_MESSAGE,
    }
    too_big = (kind in ("mid", "large") and server.size < 60_000) or (
        kind == "8bit" and not server.eightbit
    )
    if kind in invalid or too_big:
        assert o.status is OutcomeStatus.FAILED, (kind, o)
        assert o.category is FailureCategory.INVALID_MESSAGE, (kind, o)
        if invalid.get(kind) is not None:
            assert o.reason is invalid[kind], (kind, o)
        if too_big:
            assert o.reason in (InvalidReason.TOO_BIG, InvalidReason.NEEDS_8BITMIME), (kind, o)
        assert dots == 0, (kind, o)
        return
    if chaos and o.category is FailureCategory.TEMPORARY_EXHAUSTED:
        # Sessions dropped under it (by its neighbours) may have used up its attempts.
        assert o.attempts == max_attempts, (kind, o)
        assert stored == 0, (kind, o)
        assert dots <= max_attempts, (kind, o)
        return
    if kind == "refused":
        assert o.status is OutcomeStatus.FAILED, (kind, o)
        assert o.category is FailureCategory.RECIPIENTS_REFUSED, (kind, o)
        assert [r.code for r in o.refused] == [550]
        assert dots == 0
    elif kind == "e554":
        assert o.status is OutcomeStatus.FAILED, (kind, o)
        assert o.category is FailureCategory.REJECTED, (kind, o)
        assert (o.code, stored, dots) == (554, 0, 1), (kind, o)
    elif kind in ("e451", "e421"):
        assert o.status is OutcomeStatus.FAILED, (kind, o)
        assert o.category is FailureCategory.TEMPORARY_EXHAUSTED, (kind, o)
        assert o.attempts == max_attempts, (kind, o)
        assert (stored, dots) == (0, max_attempts), (kind, o)
    elif kind == "dropend":
        assert o.status is OutcomeStatus.FAILED, (kind, o)
        assert o.category is FailureCategory.DELIVERY_UNKNOWN, (kind, o)
        assert (stored, dots) == (0, 1), (kind, o)
        assert o.in_doubt == (f"r{o.index}@example.org",)
    else:  # sent
        assert o.status is OutcomeStatus.SENT, (kind, o)
        assert (o.code, o.reply) == (250, "queued"), (kind, o)  # the reply to its "."
        assert stored == 1, (kind, o)
        assert dots == (2 if kind == "e451once" else 1), (kind, o)
        if kind in ("e451once", "rcpt450once"):  # more if a neighbour's lost session cut one
            assert o.attempts == 2 or (chaos and o.attempts > 2), (kind, o)
        if kind == "partial":
            assert o.accepted == (f"r{o.index}@example.org",)
            assert [(r.recipient, r.code) for r in o.refused] == [(f"no{o.index}@example.org", 550)]
        elif kind == "two":
            assert set(o.accepted) == {f"r{o.index}@example.org", f"s{o.index}@example.org"}
        elif kind == "rcpt450once":
            assert o.accepted == (f"later{o.index}@example.org",)
        else:
            assert o.accepted == (f"r{o.index}@example.org",)
        # the body that arrived is this message's own, whole
        (body,) = server.bodies[m]
        assert f"Message-ID: {m}".encode() in body
        assert body.count(b"Message-ID:") == 1


def one_each(outcomes: list[Outcome], n: int) -> dict[int, Outcome]:
    """Exactly one outcome per index in ``range(n)``."""
    counts = Counter(o.index for o in outcomes)
    assert all(c == 1 for c in counts.values()), {i: c for i, c in counts.items() if c > 1}
    assert sorted(i for i in counts if i is not None) == list(range(n)), sorted(
        i for i in counts if i is not None
    )
    return {o.index: o for o in outcomes if o.index is not None}


async def run_relay(
    pool: SmtpPool,
    messages: list[MessageInput],
    *,
    concurrency: int,
    as_async: bool,
    slow: bool = False,
) -> list[Outcome]:
    async def agen() -> AsyncIterator[MessageInput]:
        for i, m in enumerate(messages):
            if i % 3 == 0:
                await asyncio.sleep(0)
            yield m

    source: Any = agen() if as_async else iter(messages)
    got: list[Outcome] = []
    async with asyncio.timeout(LIMIT):
        async for o in pool.send_many(source, concurrency=concurrency):
            got.append(o)
            if slow:
                await asyncio.sleep(0.002)
    return got


# -- the bug: a message the server cannot take, taken by a chain -------------------------------
async def test_a_chain_does_not_go_on_with_a_lane_it_handed_back() -> None:
    """Lockstep lanes, two of them. A chain whose next message is over the server's SIZE
    (``Unsendable``, under 64 KiB: a lane's) handed its lane back to the idle list (and its
    slot) when the submit failed, and then queued the message after it on that same session:
    a session in the idle list with a transaction in flight, and no slot held for it. A send
    that needs a session of its own (``before_data``) then took it out of the idle list and
    wrote its MAIL in the middle of that transaction: the relay's message got the reply to
    another command as its "final reply", the send timed out and was retried."""
    async with lane_server(size=20_000, pipelining=False) as server:
        server.hold[(3, "mail")] = asyncio.Event()
        reported: list[Outcome] = []
        async with pool_for(
            server, max_connections=2, command_timeout=2, on_outcome=reported.append
        ) as pool:
            messages = [msg(0), msg(1), msg(2, size=30_000), msg(3), msg(4), msg(5)]
            relay = pool.send_many(messages, concurrency=2)
            got: list[Outcome] = []

            async def read() -> None:
                async for o in relay:
                    got.append(o)

            reading = asyncio.create_task(read())
            # the message after the one too big is on its way (its MAIL held)
            await asyncio.wait_for(server.at(3, "mail").wait(), PATIENCE)
            in_flight_idle = [c for c in pool._idle if c.busy]
            slots_free = pool._slots._value

            async def hook() -> None:
                pass

            started = time.monotonic()
            single = asyncio.create_task(pool.send(msg(100), before_data=hook))
            await asyncio.sleep(0.05)
            server.hold[(3, "mail")].set()
            o100 = await asyncio.wait_for(single, PATIENCE)
            await asyncio.wait_for(reading, PATIENCE)
            elapsed = time.monotonic() - started
        by = one_each(got, 6)
        assert by[2].reason is InvalidReason.TOO_BIG
        for i in (0, 1, 3, 4, 5):
            assert by[i].ok, by[i]
            assert by[i].reply == "queued", by[i]  # the reply to its own final "."
            assert server.stored[mid(i)] == 1
        assert o100.ok, o100
        assert o100.attempts == 1, o100
        assert elapsed < 1.5, elapsed  # no command timeout
        assert not in_flight_idle, "a session with a transaction in flight was in the idle list"
        assert slots_free == 0, "a session carrying a message held no slot"
        assert server.stored[mid(100)] == 1
        assert not server.ahead, server.ahead


# -- every kind of message, interleaved (hypothesis) -------------------------------------------
SCENARIO = st.fixed_dictionaries(
    {
        "kinds": st.lists(st.sampled_from(KINDS), min_size=1, max_size=24),
        "pipelining": st.booleans(),
        "eightbit": st.booleans(),
        "size": st.sampled_from([SMALL_SIZE, 1_000_000]),
        "concurrency": st.sampled_from([1, 2, 3, 8]),
        "max_connections": st.sampled_from([1, 2, 3]),
        "per_connection": st.sampled_from([1, 2, 5, 1000]),
        "as_async": st.booleans(),
        "slow": st.booleans(),
    }
)


async def _scenario(s: dict[str, Any]) -> None:
    kinds: list[str] = s["kinds"]
    reported: list[Outcome] = []
    async with chain_server(
        pipelining=s["pipelining"], eightbit=s["eightbit"], size=s["size"]
    ) as server:
        messages = [make(i, k, server) for i, k in enumerate(kinds)]
        async with chain_pool(
            server,
            max_connections=s["max_connections"],
            max_messages_per_connection=s["per_connection"],
            on_outcome=reported.append,
        ) as pool:
            got = await run_relay(
                pool,
                messages,
                concurrency=s["concurrency"],
                as_async=s["as_async"],
                slow=s["slow"],
            )
            assert pool._in_flight == 0
            assert not pool._chained
        assert server.most <= s["max_connections"]
        assert not server.ahead, server.ahead[:3]
        by = one_each(got, len(kinds))
        assert Counter(o.index for o in reported) == Counter(o.index for o in got)
        chaos = any(k in ("e421", "dropend", "thendrop", "thenclose") for k in kinds)
        for i, kind in enumerate(kinds):
            check(kind, by[i], server, chaos=chaos)
        assert set(server.delivered.values()) <= {1}


def _runner(loop: str) -> asyncio.Runner:
    return asyncio.Runner(loop_factory=ASYNCIO_AND_UVLOOP[loop])


LOOPS = sorted(ASYNCIO_AND_UVLOOP)


@pytest.mark.parametrize("loop", LOOPS)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(s=SCENARIO)
def test_every_kind_of_message_interleaved_gets_its_one_outcome(
    loop: str, s: dict[str, Any]
) -> None:
    with _runner(loop) as runner:
        runner.run(_scenario(s))


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("as_async", [True, False])
async def test_a_long_relay_of_every_kind(pipelining: bool, as_async: bool) -> None:
    kinds = [KINDS[(i * 7) % len(KINDS)] if i % 3 == 0 else "ok" for i in range(300)]
    await _scenario(
        {
            "kinds": kinds,
            "pipelining": pipelining,
            "eightbit": False,
            "size": SMALL_SIZE,
            "concurrency": 6,
            "max_connections": 2,
            "per_connection": 7,
            "as_async": as_async,
            "slow": False,
        }
    )


@pytest.mark.parametrize("pipelining", [True, False])
async def test_chains_carry_most_messages_of_a_clean_relay(pipelining: bool) -> None:
    """The chains do go on (else this module tests nothing new): most of a clean relay's
    messages are queued from the reads, not by a worker woken for each."""
    async with chain_server(pipelining=pipelining) as server:
        async with chain_pool(server, max_connections=2) as pool:
            woken = 0
            deliver = pool._deliver

            async def counted(*args: Any, **kwargs: Any) -> Outcome:
                nonlocal woken
                woken += 1
                return await deliver(*args, **kwargs)

            pool._deliver = counted  # type: ignore[method-assign]
            got = await run_relay(
                pool, [make(i, "ok", server) for i in range(200)], concurrency=6, as_async=False
            )
        one_each(got, 200)
        assert all(o.ok for o in got)
        assert set(server.stored.values()) == {1}
        assert len(server.stored) == 200
        assert woken < 100, woken


# -- closing and cancelling mid-relay ----------------------------------------------------------
def _consistent(reported: list[Outcome], server: ChainServer, consumed: int) -> dict[int, Outcome]:
    """Exactly one reported outcome per message taken; each agrees with the server."""
    by = one_each(reported, consumed)
    for i, o in by.items():
        m = mid(i)
        assert server.stored[m] <= 1
        if o.ok:
            assert server.stored[m] == 1, o
        elif o.category is FailureCategory.DELIVERY_UNKNOWN:
            pass  # its final "." was written (the server may not have read it: cut off)
        else:
            assert o.category is FailureCategory.CANCELLED, o
            assert server.dots[m] == 0, o
        if server.stored[m]:
            assert o.ok or o.category is FailureCategory.DELIVERY_UNKNOWN, o
    return by


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    "how", ["relay.aclose", "cancel-reader", "pool.aclose-drain", "pool.aclose-nodrain"]
)
@pytest.mark.parametrize("as_async", [True, False])
async def test_closing_mid_relay_while_a_final_reply_is_held(
    pipelining: bool, how: str, as_async: bool
) -> None:
    """Message 25's final reply is held (its "." was written); the relay is closed or its
    reader cancelled, then the reply is let go. Every message taken gets exactly one outcome
    (``on_outcome`` sees them all), in agreement with the server: 25 is ``sent`` if its reply
    was read before the session went, else ``delivery_unknown``; nothing not started was
    written."""
    async with chain_server(pipelining=pipelining) as server:
        server.hold[mid(25)] = asyncio.Event()
        reported: list[Outcome] = []
        pool = chain_pool(
            server,
            max_connections=2,
            on_outcome=reported.append,
            command_timeout=30,
            final_reply_timeout=30,
        )
        messages = [make(i, "ok", server) for i in range(200)]

        async def agen() -> AsyncIterator[MessageInput]:
            for m in messages:
                yield m

        relay = pool.send_many(agen() if as_async else iter(messages), concurrency=5)
        got: list[Outcome] = []

        async def read() -> None:
            async for o in relay:
                got.append(o)

        reading = asyncio.create_task(read())
        await asyncio.wait_for(server.at(mid(25)).wait(), PATIENCE)
        await asyncio.sleep(0.02)
        started = time.monotonic()
        if how == "relay.aclose":
            await asyncio.wait_for(relay.aclose(), PATIENCE)
        elif how == "cancel-reader":
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            await asyncio.wait_for(relay.aclose(), PATIENCE)
        else:
            closing = asyncio.create_task(
                pool.aclose(drain=how == "pool.aclose-drain", timeout=0.5)
            )
            await asyncio.sleep(0.05)
        server.hold[mid(25)].set()
        if how.startswith("pool"):
            await asyncio.wait_for(closing, PATIENCE)
        else:
            await asyncio.wait_for(pool.aclose(), PATIENCE)
        results = await asyncio.wait_for(asyncio.gather(reading, return_exceptions=True), PATIENCE)
        assert time.monotonic() - started < 10
        for r in results:
            assert r is None or isinstance(r, (PoolClosedError, asyncio.CancelledError)), r
        consumed = relay.consumed
        assert 25 < consumed < 200
        by = _consistent(reported, server, consumed)
        assert Counter(o.index for o in got) <= Counter(o.index for o in reported)
        assert set(server.dots.values()) <= {1}
        assert by[25].ok or by[25].category is FailureCategory.DELIVERY_UNKNOWN
        assert not pool._chained


@pytest.mark.parametrize("loop", LOOPS)
@settings(max_examples=15, deadline=None)
@given(
    n_before=st.integers(1, 40),
    delay=st.sampled_from([0.0, 0.0005, 0.002, 0.01]),
    how=st.sampled_from(["relay.aclose", "cancel-reader", "drain", "nodrain"]),
    pipelining=st.booleans(),
    concurrency=st.sampled_from([1, 2, 5]),
)
def test_closing_at_a_random_moment(
    loop: str, n_before: int, delay: float, how: str, pipelining: bool, concurrency: int
) -> None:
    """Closed at a random moment, after ``n_before`` outcomes were read: one outcome per
    message taken, never a message sent twice, agreement with the server."""

    async def scenario() -> None:
        async with chain_server(pipelining=pipelining) as server:
            reported: list[Outcome] = []
            pool = chain_pool(server, max_connections=2, on_outcome=reported.append)
            messages = [make(i, "ok", server) for i in range(300)]
            relay = pool.send_many(iter(messages), concurrency=concurrency)
            got: list[Outcome] = []
            enough = asyncio.Event()

            async def read() -> None:
                async for o in relay:
                    got.append(o)
                    if len(got) >= n_before:
                        enough.set()

            reading = asyncio.create_task(read())
            async with asyncio.timeout(LIMIT):
                await enough.wait()
                await asyncio.sleep(delay)
                if how == "relay.aclose":
                    await relay.aclose()
                elif how == "cancel-reader":
                    reading.cancel()
                await pool.aclose(drain=how == "drain", timeout=2)
                await asyncio.gather(reading, return_exceptions=True)
            _consistent(reported, server, relay.consumed)
            assert Counter(o.index for o in got) <= Counter(o.index for o in reported)
            assert set(server.dots.values()) <= {1}
            assert not pool._chained

    with _runner(loop) as runner:
        runner.run(scenario())


# -- a fatal error mid-relay -------------------------------------------------------------------
@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("as_async", [True, False])
@pytest.mark.parametrize("per_connection", [3, 1000])
async def test_bad_credentials_mid_relay_stop_it_with_one_outcome_each(
    pipelining: bool, as_async: bool, per_connection: int
) -> None:
    """After 30 outcomes, the pool gets credentials the server refuses (every new session
    fails: with ``per_connection=3`` lanes are replaced often, else ``set_credentials``
    retires the old ones). The relay stops: every message it took gets exactly one outcome,
    read, with its index; the error is raised with ``consumed``; none was sent twice."""
    async with chain_server(pipelining=pipelining, auth=("user", "good")) as server:
        reported: list[Outcome] = []
        async with chain_pool(
            server,
            max_connections=2,
            max_messages_per_connection=per_connection,
            on_outcome=reported.append,
        ) as pool:
            messages = [make(i, "ok", server) for i in range(400)]

            async def agen() -> AsyncIterator[MessageInput]:
                for m in messages:
                    yield m

            relay = pool.send_many(agen() if as_async else iter(messages), concurrency=6)
            got: list[Outcome] = []

            async def drive() -> None:
                async with asyncio.timeout(LIMIT):
                    async for o in relay:
                        got.append(o)
                        if len(got) == 30:
                            pool.set_credentials(SmtpCredentials("user", "bad"))

            with pytest.raises(SmtpAuthError) as info:
                await drive()
        assert server.logins["user"] >= 2
        consumed = info.value.consumed
        assert consumed is not None
        assert consumed == relay.consumed < 400
        by = one_each(got, consumed)
        assert Counter(o.index for o in reported) == Counter(o.index for o in got)
        for i, o in by.items():
            if o.ok:
                assert server.stored[mid(i)] == 1
            else:
                assert o.category is FailureCategory.AUTH, o
                assert server.dots[mid(i)] == 0, o
        assert set(server.dots.values()) <= {1}
        assert sum(o.category is FailureCategory.AUTH for o in got) >= 1


# -- slow readers, tiny pools ------------------------------------------------------------------
@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("concurrency", [1, 2, 7])
@pytest.mark.parametrize("per_connection", [1, 2, 1000])
async def test_a_slow_reader_and_a_single_session(
    pipelining: bool, concurrency: int, per_connection: int
) -> None:
    kinds = ["ok", "ok", "large", "ok", "mid", "e451once", "ok", "partial", "nul", "ok"] * 4
    await _scenario(
        {
            "kinds": kinds,
            "pipelining": pipelining,
            "eightbit": True,
            "size": SMALL_SIZE if concurrency == 2 else 1_000_000,
            "concurrency": concurrency,
            "max_connections": 1,
            "per_connection": per_connection,
            "as_async": concurrency != 1,
            "slow": True,
        }
    )


@pytest.mark.parametrize("as_async", [True, False])
async def test_an_input_that_fails_midway_still_gives_each_message_taken_one_outcome(
    as_async: bool,
) -> None:
    def source() -> Iterator[MessageInput]:
        for i in range(50):
            yield make(i, "ok", server)
        raise RuntimeError("the source broke")

    async def asource() -> AsyncIterator[MessageInput]:
        for m in source():
            yield m

    got: list[Outcome] = []

    async def drive(pool: SmtpPool) -> None:
        async with asyncio.timeout(LIMIT):
            async for o in pool.send_many(asource() if as_async else source(), concurrency=4):
                got.append(o)

    async with chain_server() as server, chain_pool(server, max_connections=2) as pool:
        with pytest.raises(RuntimeError, match="the source broke"):
            await drive(pool)
    by = one_each(got, 50)
    assert all(o.ok for o in by.values())
    assert set(server.stored.values()) == {1}


# -- a chain answered, about to go on ----------------------------------------------------------
@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("then", ["cancel-its-task", "relay.aclose", "pool.aclose-nodrain"])
async def test_closing_while_a_chain_is_about_to_go_on(pipelining: bool, then: str) -> None:
    """The moment between the read that brings a message's final reply (the chain took it:
    ``_chain_later``) and ``_go_on``: its task cancelled, or the relay or pool closed, right
    then. That message was answered: it must end ``sent`` (not ``delivery_unknown``, not
    ``cancelled``), reported once; every other message taken once too."""
    async with chain_server(pipelining=pipelining) as server:
        reported: list[Outcome] = []
        pool = chain_pool(server, max_connections=2, on_outcome=reported.append)
        relay = pool.send_many(iter([make(i, "ok", server) for i in range(300)]), concurrency=4)
        hit: list[int] = []
        chain_later = pool._chain_later
        closers: list[asyncio.Task[None]] = []

        def at_the_moment(chain: Any, job: Any, tx: Any) -> None:
            index = chain.index  # the answered message (without PIPELINING it goes on at once)
            chain_later(chain, job, tx)
            if hit or index < 40:
                return
            hit.append(index)
            if then == "cancel-its-task":
                (task,) = [
                    t for t in asyncio.all_tasks() if getattr(t, "_fut_waiter", None) is job.future
                ]
                task.cancel()
            elif then == "relay.aclose":
                closers.append(asyncio.ensure_future(relay.aclose()))
            else:
                closers.append(asyncio.ensure_future(pool.aclose(drain=False)))

        pool._chain_later = at_the_moment  # type: ignore[method-assign]
        got: list[Outcome] = []

        async def read() -> None:
            async for o in relay:
                got.append(o)

        reading = asyncio.create_task(read())
        async with asyncio.timeout(LIMIT):
            results = await asyncio.gather(reading, *closers, return_exceptions=True)
            await asyncio.gather(*closers, return_exceptions=True)
            await pool.aclose(drain=False)
            await relay.aclose()
        for r in results:
            # a worker's cancellation is no bug of the relay's reader, but it ends the relay
            assert r is None or isinstance(r, (PoolClosedError, asyncio.CancelledError)), r
        (answered,) = hit
        by = _consistent(reported, server, relay.consumed)
        assert by[answered].ok, by[answered]
        assert server.stored[mid(answered)] == 1
        assert set(server.dots.values()) <= {1}
        assert Counter(o.index for o in got) <= Counter(o.index for o in reported)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("max_connections", [1, 2, 3])
async def test_sends_of_their_own_alongside_chains_that_meet_unsendable_messages(
    pipelining: bool, max_connections: int
) -> None:
    """A relay whose every fifth message is over the server's SIZE (refused before anything is
    written, from the chains), while single sends that need a session of their own
    (``before_data``) keep coming: no session is ever shared by two transactions (every
    message gets the reply to its own final "."; no send waits for a command timeout)."""
    async with chain_server(pipelining=pipelining, size=SMALL_SIZE) as server:
        kinds = ["mid" if i % 5 == 2 else "ok" for i in range(150)]
        messages = [make(i, k, server) for i, k in enumerate(kinds)]
        singles = [make(1000 + i, "ok", server) for i in range(30)]
        async with chain_pool(
            server, max_connections=max_connections, command_timeout=3, final_reply_timeout=3
        ) as pool:

            async def hook() -> None:
                await asyncio.sleep(0)

            async def one_by_one() -> list[Outcome]:
                done = []
                for m in singles:
                    done.append(await pool.send(m, before_data=hook))
                    await asyncio.sleep(0.001)
                return done

            async with asyncio.timeout(LIMIT):
                got, alone = await asyncio.gather(
                    run_relay(pool, messages, concurrency=5, as_async=False), one_by_one()
                )
        by = one_each(got, len(kinds))
        for i, kind in enumerate(kinds):
            check(kind, by[i], server)
        for o in alone:
            assert o.ok, o
            assert (o.attempts, o.reply) == (1, "queued"), o
            assert o.message_id is not None
            assert server.stored[o.message_id] == 1
        assert server.most <= max_connections
        assert not server.ahead, server.ahead[:3]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_bad_credentials_met_by_retries_mid_chain(pipelining: bool, concurrency: int) -> None:
    """Messages whose first transaction is refused (451 to the final "."; or 450 to one of two
    recipients) are retried on a new session once the credentials went bad: the retry meets
    the refusal. Each message taken gets exactly one outcome, read: a message delivered to
    one recipient stays ``sent`` for that one (``unsent`` the other); no recipient ever gets a
    message twice or is said to have it when the server did not store it for them."""
    async with chain_server(pipelining=pipelining, auth=("user", "good")) as server:
        kinds = [("e451once", "partial450", "ok", "ok")[i % 4] for i in range(400)]
        messages = [make(i, k, server) for i, k in enumerate(kinds)]
        reported: list[Outcome] = []
        async with chain_pool(
            server,
            max_connections=2,
            max_messages_per_connection=5,
            on_outcome=reported.append,
            retry=SmtpRetry(max_attempts=4, initial_backoff=0.02, max_backoff=0.04),
        ) as pool:
            relay = pool.send_many(iter(messages), concurrency=concurrency)
            got: list[Outcome] = []

            async def drive() -> None:
                async with asyncio.timeout(LIMIT):
                    async for o in relay:
                        got.append(o)
                        if len(got) == 40:
                            pool.set_credentials(SmtpCredentials("user", "bad"))

            with pytest.raises(SmtpAuthError) as info:
                await drive()
        assert info.value.consumed == relay.consumed
        by = one_each(got, relay.consumed)
        assert Counter(o.index for o in reported) == Counter(o.index for o in got)
        assert set(server.delivered.values()) <= {1}
        for i, o in by.items():
            m = mid(i)
            for rcpt in o.accepted:
                assert server.delivered[(m, rcpt)] == 1, o
            for refusal in [*o.unsent, *o.refused]:
                assert server.delivered[(m, refusal.recipient)] == 0, o
            assert {r for (x, r) in server.delivered if x == m} == set(o.accepted), o
            if not o.ok:
                assert o.category is FailureCategory.AUTH, o
        assert any(o.category is FailureCategory.AUTH for o in got)
