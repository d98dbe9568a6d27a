"""Review of the PIPELINING lanes (``Connection.submit``, the pool's lanes): cancellation at each
job state, refusals and drops in the middle of a queue, slot accounting, closing mid-relay.

A raw SMTP server of this file's own (``LaneServer``) scripts each transaction (by the order of
its MAIL command) and can hold the reply to a final "." until the test lets it go, so that the
states of queued jobs are reached deterministically.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from hubspot_tx import FailureCategory, Outcome, OutcomeStatus
from hubspot_tx.smtp import Envelope, SmtpCredentials, SmtpPool, SmtpRetry
from hubspot_tx.smtp.outcome import InvalidReason

from .conftest import make_message

FAST = SmtpRetry(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)


@dataclass
class LaneServer:
    """PIPELINING, SIZE; ``plan[(txn, phase)]`` scripts a reply ("drop": close instead, "hang":
    never answer); ``hold[(txn, phase)]`` holds the reply to that command until set."""

    size: int = 10_485_760
    plan: dict[tuple[int, str], str] = field(default_factory=dict)
    hold: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)
    on_phase: Callable[[int, str], None] | None = None
    stored: Counter[str] = field(default_factory=Counter)
    txn_session: dict[int, int] = field(default_factory=dict)
    txn_mid: dict[int, str] = field(default_factory=dict)
    reached: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)
    transactions: int = 0
    sessions: int = 0
    open_now: int = 0
    most: int = 0
    quits: int = 0
    port: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def at(self, txn: int, phase: str) -> asyncio.Event:
        """Set when transaction ``txn`` reaches ``phase`` (mail, rcpt, data, end)."""
        return self.reached.setdefault((txn, phase), asyncio.Event())

    async def _mark(self, txn: int, phase: str) -> str:
        self.at(txn, phase).set()
        if self.on_phase is not None:
            self.on_phase(txn, phase)
        if (txn, phase) in self.hold:
            await asyncio.wait_for(self.hold[(txn, phase)].wait(), 60)
        return self.plan.get((txn, phase), "")

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        number = self.sessions
        self.open_now += 1
        self.most = max(self.most, self.open_now)
        self._writers.append(writer)
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

        say("220 lanes.test ESMTP")
        txn = 0
        rcpts = 0
        in_mail = False
        while line := await asyncio.wait_for(reader.readline(), 60):
            verb = line[:4].upper()
            if verb == b"EHLO":
                say("250-lanes.test")
                say("250-PIPELINING")
                say("250-8BITMIME")
                say(f"250 SIZE {self.size}")
            elif verb == b"MAIL":
                self.transactions += 1
                txn, rcpts = self.transactions, 0
                self.txn_session[txn] = number
                reply = await self._mark(txn, "mail")
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                in_mail = not reply or reply.startswith("2")
                say(reply or "250 OK")
            elif verb == b"RCPT":
                reply = await self._mark(txn, "rcpt")
                if reply == "drop":
                    return
                if not in_mail:
                    reply = "503 need MAIL first"
                if not reply or reply.startswith("2"):
                    rcpts += 1
                say(reply or "250 OK")
            elif verb == b"DATA":
                reply = await self._mark(txn, "data")
                if reply == "drop":
                    return
                if not rcpts and not reply:
                    reply = "554 no valid recipients"
                say(reply or "354 go ahead")
                if not (reply or "354").startswith("354"):
                    await writer.drain()
                    continue
                await writer.drain()
                body = bytearray()
                while (chunk := await asyncio.wait_for(reader.readline(), 60)) != b".\r\n":
                    if not chunk:
                        return
                    body += chunk
                mid = next(
                    (
                        x.split(b":", 1)[1].strip().decode()
                        for x in body.split(b"\r\n")
                        if x.lower().startswith(b"message-id:")
                    ),
                    "?",
                )
                reply = await self._mark(txn, "end")
                if reply == "drop":
                    return
                if reply == "hang":
                    await asyncio.sleep(60)
                reply = reply or "250 queued"
                if reply.startswith("2") and rcpts:
                    self.stored[mid] += 1
                    self.txn_mid[txn] = mid
                in_mail, rcpts = False, 0
                say(reply)
            elif verb == b"RSET":
                await self._mark(txn, "rset")
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


@asynccontextmanager
async def lane_server(**kwargs: Any) -> AsyncIterator[LaneServer]:
    server = LaneServer(**kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]
    srv = await asyncio.start_server(server.session, sock=sock)
    try:
        yield server
    finally:
        srv.close()
        for w in server._writers:
            w.close()
        await asyncio.wait_for(srv.wait_closed(), 5)


def pool_for(server: LaneServer, **kwargs: Any) -> SmtpPool:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("command_timeout", 5.0)
    kwargs.setdefault("final_reply_timeout", 5.0)
    kwargs.setdefault("local_hostname", "client.test")
    return SmtpPool("127.0.0.1", server.port, tls="none", **kwargs)


def msg(i: int, size: int = 0) -> Envelope:
    """A message of about ``size`` more bytes, in lines of 72."""
    data = make_message(i) + (b"y" * 70 + b"\r\n") * (size // 72)
    return Envelope(mail_from="s@example.com", rcpt_to=(f"r{i}@example.org",), data=data)


def mid(i: int) -> str:
    return f"<m{i}@hubspot-tx.test>"


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (polls pool state, no event to wait on)
            await asyncio.sleep(0.001)


def exactly_once(outcomes: list[Outcome], server: LaneServer, n: int) -> None:
    """One outcome per message; every "sent" stored once; nothing stored twice; every
    not-sent/cancelled one never stored."""
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(n))
    assert set(server.stored.values()) <= {1}, server.stored
    for o in outcomes:
        assert o.index is not None
        if o.status is OutcomeStatus.SENT:
            assert server.stored[mid(o.index)] == 1, o
        elif o.category is not FailureCategory.DELIVERY_UNKNOWN:
            assert server.stored[mid(o.index)] == 0, o


# -- cancellation at each job state -----------------------------------------------------------
async def _three_on_one_lane(server: LaneServer, pool: SmtpPool) -> list[asyncio.Task[Outcome]]:
    """t1 opens the lane; t2 and t3 queue on it (the slot is held); then J1's data goes, with
    J2's commands, and the reply to J1's final "." is held (``hold[(1, "end")]``)."""
    server.hold[(1, "end")] = asyncio.Event()
    server.hold[(1, "data")] = asyncio.Event()
    t1 = asyncio.create_task(pool.send(msg(1)))
    await asyncio.wait_for(server.at(1, "data").wait(), 5)
    t2 = asyncio.create_task(pool.send(msg(2)))
    t3 = asyncio.create_task(pool.send(msg(3)))
    await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == 2)
    server.hold[(1, "data")].set()
    await asyncio.wait_for(server.at(1, "end").wait(), 5)  # J1's data is in
    return [t1, t2, t3]


async def test_cancel_a_job_whose_commands_are_written_keeps_the_reply_owed_ahead() -> None:
    """J1's data is written and its final reply held; J2's commands are written (no 354 yet);
    J3 is queued. Cancelling J2 retires the session *after* J1's reply (``abandon`` ->
    ``retire``): J1 must end ``sent`` (the server took it and says so), J3 goes elsewhere."""
    async with lane_server() as server:
        async with pool_for(server, max_connections=1) as pool:
            t1, t2, t3 = await _three_on_one_lane(server, pool)
            await asyncio.sleep(0.05)  # J2's commands went with J1's data; J3 waits
            (lane,) = pool._lanes
            assert lane._opening is not None
            assert lane.queued == 1
            t2.cancel()
            await asyncio.sleep(0.05)
            server.hold[(1, "end")].set()
            o1, o3 = await asyncio.wait_for(asyncio.gather(t1, t3), 10)
            with pytest.raises(asyncio.CancelledError):
                await t2
        assert o3.ok
        assert server.stored[mid(1)] == 1
        assert server.stored[mid(2)] == 0
        # J1 was accepted by the server: the retired session must still read its reply.
        assert o1.ok, o1


async def test_cancel_a_queued_job_leaves_the_others_alone() -> None:
    async with lane_server() as server:
        async with pool_for(server, max_connections=1) as pool:
            t1, t2, t3 = await _three_on_one_lane(server, pool)
            await asyncio.sleep(0.05)
            t3.cancel()  # still queued behind J2
            await asyncio.sleep(0.01)
            server.hold[(1, "end")].set()
            o1, o2 = await asyncio.wait_for(asyncio.gather(t1, t2), 10)
            with pytest.raises(asyncio.CancelledError):
                await t3
            assert o1.ok
            assert o2.ok
            assert (await pool.send(msg(4))).ok
        assert server.stored == {mid(1): 1, mid(2): 1, mid(4): 1}
        assert server.sessions == 1


async def test_cancel_a_job_whose_data_is_written_is_unknown_and_the_queue_goes_on() -> None:
    outcomes: list[Outcome] = []
    async with lane_server() as server:
        async with pool_for(server, max_connections=1, on_outcome=outcomes.append) as pool:
            t1, t2, t3 = await _three_on_one_lane(server, pool)
            t1.cancel()
            await asyncio.sleep(0.01)
            server.hold[(1, "end")].set()
            o2, o3 = await asyncio.wait_for(asyncio.gather(t2, t3), 10)
            assert o2.ok
            assert o3.ok
        cancelled = [o for o in outcomes if o.key is None and o not in (o2, o3)]
        assert [o.category for o in cancelled] == [FailureCategory.DELIVERY_UNKNOWN]
        assert server.stored == {mid(1): 1, mid(2): 1, mid(3): 1}


async def test_cancel_everything_on_a_lane_frees_its_slot() -> None:
    async with lane_server() as server:
        async with pool_for(server, max_connections=1) as pool:
            tasks = await _three_on_one_lane(server, pool)
            await asyncio.sleep(0.02)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.hold[(1, "end")].set()
            assert (await asyncio.wait_for(pool.send(msg(9)), 10)).ok
            await until(lambda: not pool._slots.locked())
            assert pool._slots._value == 1
        assert server.stored[mid(9)] == 1
        assert server.stored[mid(2)] == 0
        assert server.stored[mid(3)] == 0


# -- refusals and drops in the middle of a queue ----------------------------------------------
@pytest.mark.parametrize(
    ("phase", "reply"),
    [
        ("mail", "451 busy"),
        ("mail", "550 no"),
        ("rcpt", "450 later"),
        ("rcpt", "550 nobody"),
        ("data", "451 later"),
        ("data", "554 no"),
        ("end", "451 later"),
        ("end", "554 rejected"),
    ],
)
async def test_a_refusal_in_the_middle_of_a_queue(phase: str, reply: str) -> None:
    async with lane_server() as server:
        server.plan[(5, phase)] = reply
        async with pool_for(server, max_connections=2) as pool:
            relay = pool.send_many([msg(i) for i in range(30)], concurrency=20)
            outcomes = [o async for o in relay]
            assert pool._slots._value == 2
        exactly_once(outcomes, server, 30)
        failed = [o for o in outcomes if not o.ok]
        if reply.startswith("5"):
            assert len(failed) == 1
        else:
            assert not failed
        assert server.most <= 2


@pytest.mark.parametrize("phase", ["mail", "rcpt", "data", "end"])
async def test_421_in_the_middle_of_a_queue(phase: str) -> None:
    async with lane_server() as server:
        server.plan[(5, phase)] = "421 closing"
        server.plan[(12, phase)] = "drop"
        async with pool_for(server, max_connections=2) as pool:
            outcomes = [
                o async for o in pool.send_many([msg(i) for i in range(30)], concurrency=20)
            ]
            await until(lambda: pool._slots._value == 2)
        exactly_once(outcomes, server, 30)
        assert server.most <= 2
        assert all(o.ok or o.category is FailureCategory.DELIVERY_UNKNOWN for o in outcomes)


@pytest.mark.parametrize("where", ["mail", "end"])
async def test_a_server_that_stops_answering_with_jobs_queued(where: str) -> None:
    async with lane_server() as server:
        server.plan[(3, where)] = "hang"
        async with pool_for(
            server, max_connections=1, command_timeout=0.3, final_reply_timeout=0.3
        ) as pool:
            started = time.monotonic()
            outcomes = [o async for o in pool.send_many([msg(i) for i in range(10)], concurrency=8)]
            assert time.monotonic() - started < 8
        exactly_once(outcomes, server, 10)
        unknown = [o for o in outcomes if o.category is FailureCategory.DELIVERY_UNKNOWN]
        assert len(unknown) == (1 if where == "end" else 0)
        assert all(o.ok for o in outcomes if o not in unknown)


# -- sessions and slots -----------------------------------------------------------------------
@pytest.mark.parametrize("per_session", [1, 2, 3])
async def test_many_messages_few_sessions(per_session: int) -> None:
    async with lane_server() as server:
        async with pool_for(
            server, max_connections=2, max_messages_per_connection=per_session
        ) as pool:
            outcomes = [
                o async for o in pool.send_many([msg(i) for i in range(60)], concurrency=100)
            ]
            await until(lambda: pool._slots._value == 2)
            assert pool.open_connections <= 2
        exactly_once(outcomes, server, 60)
        assert all(o.ok for o in outcomes)
        assert server.most <= 2
        per = Counter(server.txn_session.values())
        assert max(per.values()) <= per_session


async def test_sizes_the_server_cannot_take_mixed_in() -> None:
    async with lane_server(size=2000) as server:
        messages = [msg(i, size=3000 if i % 3 == 0 else 0) for i in range(40)]
        async with pool_for(server, max_connections=2) as pool:
            outcomes = [o async for o in pool.send_many(messages, concurrency=30)]
            await until(lambda: pool._slots._value == 2)
            assert (await pool.send(msg(100))).ok
        exactly_once(outcomes, server, 40)
        for o in outcomes:
            assert o.index is not None
            if o.index % 3 == 0:
                assert o.category is FailureCategory.INVALID_MESSAGE
                assert o.reason is InvalidReason.TOO_BIG
            else:
                assert o.ok
        assert server.most <= 2


async def test_sends_mixed_with_a_relay_and_big_messages() -> None:
    async with lane_server() as server:
        async with pool_for(server, max_connections=2) as pool:
            relay = pool.send_many([msg(i) for i in range(80)], concurrency=40)

            async def read() -> list[Outcome]:
                return [o async for o in relay]

            reading = asyncio.create_task(read())
            await asyncio.sleep(0.01)
            singles = await asyncio.wait_for(
                asyncio.gather(
                    *(pool.send(msg(100 + i, size=70_000 if i % 2 else 0)) for i in range(6))
                ),
                20,
            )
            outcomes = await asyncio.wait_for(reading, 20)
        exactly_once(outcomes, server, 80)
        assert all(o.ok for o in singles), [o for o in singles if not o.ok]
        assert server.most <= 2


async def test_set_credentials_mid_relay() -> None:
    async with lane_server() as server:
        async with pool_for(server, max_connections=2) as pool:
            n = 0

            async def gen() -> AsyncIterator[Envelope]:
                nonlocal n
                for i in range(60):
                    if i == 20:  # a new generation (the server has no AUTH: no login)
                        pool.set_credentials(SmtpCredentials("u", "p"))
                        pool._credentials = None
                    n += 1
                    yield msg(i)

            outcomes = [o async for o in pool.send_many(gen(), concurrency=30)]
            assert pool._generation == 1
            await until(lambda: pool._slots._value == 2)
        exactly_once(outcomes, server, 60)
        assert server.most <= 2


@pytest.mark.parametrize("drain", [True, False])
async def test_aclose_mid_relay(drain: bool) -> None:
    async with lane_server() as server:
        server.hold[(4, "end")] = asyncio.Event()
        reported: list[Outcome] = []
        pool = pool_for(server, max_connections=2, on_outcome=reported.append)
        relay = pool.send_many((msg(i) for i in range(50)), concurrency=20)
        got: list[Outcome] = []

        async def read() -> None:
            async for o in relay:
                got.append(o)

        reading = asyncio.create_task(read())
        await asyncio.wait_for(server.at(4, "end").wait(), 5)
        closing = asyncio.create_task(pool.aclose(drain=drain, timeout=1.0))
        await asyncio.sleep(0.05)
        server.hold[(4, "end")].set()
        started = time.monotonic()
        await asyncio.wait_for(closing, 10)
        assert time.monotonic() - started < 8
        await asyncio.wait_for(asyncio.gather(reading, return_exceptions=True), 10)
        by_index: dict[int, list[Outcome]] = {}
        for o in reported:
            assert o.index is not None
            by_index.setdefault(o.index, []).append(o)
        assert all(len(v) == 1 for v in by_index.values()), by_index
        for i, (o,) in by_index.items():
            if o.ok:
                assert server.stored[mid(i)] == 1
            elif o.category is not FailureCategory.DELIVERY_UNKNOWN:
                assert server.stored[mid(i)] == 0, o
        assert set(server.stored.values()) <= {1}
        # every message stored was reported (sent or unknown)
        for m in server.stored:
            i = int(m[2:].split("@")[0])
            assert i in by_index, m


async def test_aclose_without_drain_while_a_final_reply_never_comes_is_bounded() -> None:
    """A lane handed back to the idle list (its final reply still owed) is closed with QUIT by
    ``aclose``: the QUIT waits behind the owed reply (``final_reply_timeout``), so
    ``aclose(drain=False)``, which "drops every session at once", can take that long."""
    async with lane_server() as server:
        server.plan[(1, "end")] = "hang"
        pool = pool_for(server, max_connections=1, command_timeout=0.5, final_reply_timeout=30)
        t1 = asyncio.create_task(pool.send(msg(1)))
        await asyncio.wait_for(server.at(1, "end").wait(), 5)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        try:
            await asyncio.wait_for(pool.aclose(drain=False), 4)
        finally:
            elapsed = time.monotonic() - started
            t1.cancel()
            await asyncio.gather(t1, return_exceptions=True)
        assert elapsed < 3, elapsed


async def test_a_plain_iterable_is_pulled_only_when_a_worker_is_free() -> None:
    pulled = 0

    def gen() -> Any:
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield msg(i)

    async with lane_server() as server:
        async with pool_for(server, max_connections=2) as pool:
            relay = pool.send_many(gen(), concurrency=5)
            first = await relay.__anext__()
            assert pulled <= 5 + 2 + 1
            rest = [o async for o in relay]
        exactly_once([first, *rest], server, 30)


async def test_cancel_a_refused_job_during_its_reset() -> None:
    """J2 is refused at MAIL (451), its task cancelled while its RSET is answered: J2 is
    ``cancelled`` (never stored), J1 sent, J3 (queued behind) retried and sent once."""
    async with lane_server() as server:
        server.plan[(2, "mail")] = "451 busy"
        server.hold[(2, "mail")] = asyncio.Event()
        server.hold[(2, "rset")] = asyncio.Event()
        outcomes: list[Outcome] = []
        async with pool_for(server, max_connections=1, on_outcome=outcomes.append) as pool:
            t1, t2, t3 = await _three_on_one_lane(server, pool)
            server.hold[(1, "end")].set()
            o1 = await asyncio.wait_for(t1, 5)
            (lane,) = pool._lanes
            server.hold[(2, "mail")].set()
            await asyncio.wait_for(server.at(2, "rset").wait(), 5)  # J2's task sent RSET
            assert lane._stalled
            t2.cancel()
            await asyncio.sleep(0.01)
            server.hold[(2, "rset")].set()
            o3 = await asyncio.wait_for(t3, 10)
            with pytest.raises(asyncio.CancelledError):
                await t2
            assert (await pool.send(msg(4))).ok
            await until(lambda: pool._slots._value == 1)
        assert o1.ok
        assert o3.ok
        (o2,) = [o for o in outcomes if o.message_id == mid(2)]
        assert o2.category is FailureCategory.CANCELLED
        assert server.stored == {mid(1): 1, mid(3): 1, mid(4): 1}


async def test_a_big_send_is_not_starved_by_a_busy_relay() -> None:
    """With every slot held by a lane whose queue the relay keeps full, a message that needs
    a slot (over 64 KiB, or with before_data) waits until a lane's queue runs dry: with a
    steady relay, until the relay's input ends."""
    async with lane_server() as server:
        async with pool_for(server, max_connections=1) as pool:
            relay = pool.send_many((msg(i) for i in range(400)), concurrency=30)
            got: list[Outcome] = []

            async def read() -> None:
                async for o in relay:
                    got.append(o)

            reading = asyncio.create_task(read())
            await until(lambda: len(got) >= 20)
            big = await asyncio.wait_for(pool.send(msg(1000, size=70_000)), 20)
            done_before_big = len(got)
            await asyncio.wait_for(reading, 30)
        assert big.ok
        exactly_once(got, server, 400)
        assert done_before_big < 200, f"{done_before_big} relay messages went before the big one"
