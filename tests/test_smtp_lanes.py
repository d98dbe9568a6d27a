"""Review of the PIPELINING lanes (``Connection.submit``, the pool's lanes): cancellation at each
job state, refusals and drops in the middle of a queue, slot accounting, closing mid-relay.

The raw SMTP server of ``tests/lane_server.py`` (``LaneServer``, here offering PIPELINING) scripts
each transaction (by the order of its MAIL command) and can hold the reply to a final "." until
the test lets it go, so that the states of queued jobs are reached deterministically.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubspot_tx import FailureCategory, Outcome
from hubspot_tx.smtp import Envelope, SmtpCredentials, SmtpPool
from hubspot_tx.smtp.outcome import InvalidReason

from .lane_server import (
    BOUND,
    PATIENCE,
    LaneServer,
    exactly_once,
    lane_server,
    mid,
    msg,
    pool_for,
    until,
)


# -- cancellation at each job state -----------------------------------------------------------
async def _three_on_one_lane(server: LaneServer, pool: SmtpPool) -> list[asyncio.Task[Outcome]]:
    """t1 opens the lane; t2 and t3 queue on it (the slot is held); then J1's data goes, with
    J2's commands, and the reply to J1's final "." is held (``hold[(1, "end")]``)."""
    server.hold[(1, "end")] = asyncio.Event()
    server.hold[(1, "data")] = asyncio.Event()
    t1 = asyncio.create_task(pool.send(msg(1)))
    await asyncio.wait_for(server.at(1, "data").wait(), PATIENCE)
    t2 = asyncio.create_task(pool.send(msg(2)))
    t3 = asyncio.create_task(pool.send(msg(3)))
    await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == 2)
    server.hold[(1, "data")].set()
    await asyncio.wait_for(server.at(1, "end").wait(), PATIENCE)  # J1's data is in
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
            o1, o3 = await asyncio.wait_for(asyncio.gather(t1, t3), PATIENCE)
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
            o1, o2 = await asyncio.wait_for(asyncio.gather(t1, t2), PATIENCE)
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
            o2, o3 = await asyncio.wait_for(asyncio.gather(t2, t3), PATIENCE)
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
            assert (await asyncio.wait_for(pool.send(msg(9)), PATIENCE)).ok
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
            assert time.monotonic() - started < BOUND
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
                PATIENCE,
            )
            outcomes = await asyncio.wait_for(reading, PATIENCE)
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
        pool = pool_for(
            server,
            max_connections=2,
            on_outcome=reported.append,
            command_timeout=60,
            final_reply_timeout=60,
        )
        relay = pool.send_many((msg(i) for i in range(50)), concurrency=20)
        got: list[Outcome] = []

        async def read() -> None:
            async for o in relay:
                got.append(o)

        reading = asyncio.create_task(read())
        await asyncio.wait_for(server.at(4, "end").wait(), PATIENCE)
        closing = asyncio.create_task(pool.aclose(drain=drain, timeout=1.0))
        await asyncio.sleep(0.05)
        server.hold[(4, "end")].set()
        started = time.monotonic()
        await asyncio.wait_for(closing, PATIENCE)
        assert time.monotonic() - started < BOUND
        await asyncio.wait_for(asyncio.gather(reading, return_exceptions=True), PATIENCE)
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
        pool = pool_for(server, max_connections=1, command_timeout=0.5, final_reply_timeout=60)
        t1 = asyncio.create_task(pool.send(msg(1)))
        await asyncio.wait_for(server.at(1, "end").wait(), PATIENCE)
        await asyncio.sleep(0.05)
        started = time.monotonic()
        try:
            await asyncio.wait_for(pool.aclose(drain=False), PATIENCE)
        finally:
            elapsed = time.monotonic() - started
            t1.cancel()
            await asyncio.gather(t1, return_exceptions=True)
        assert elapsed < BOUND, elapsed


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
            o1 = await asyncio.wait_for(t1, PATIENCE)
            (lane,) = pool._lanes
            server.hold[(2, "mail")].set()
            await asyncio.wait_for(server.at(2, "rset").wait(), PATIENCE)  # J2's task sent RSET
            assert lane._stalled
            t2.cancel()
            await asyncio.sleep(0.01)
            server.hold[(2, "rset")].set()
            o3 = await asyncio.wait_for(t3, PATIENCE)
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
            big = await asyncio.wait_for(pool.send(msg(1000, size=70_000)), PATIENCE)
            done_before_big = len(got)
            await asyncio.wait_for(reading, 2 * PATIENCE)
        assert big.ok
        exactly_once(got, server, 400)
        assert done_before_big < 200, f"{done_before_big} relay messages went before the big one"
