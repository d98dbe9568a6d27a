"""Review of the lanes WITHOUT PIPELINING (``Connection._step``, HubSpot's and the sandbox's
case): refusals, drops, timeouts and cancellation at each step with jobs queued behind, slot
fairness with sends concurrent with a relay, sessions per connection, aclose.

``step_server`` is ``tests/lane_server.py``'s ``LaneServer`` without PIPELINING: it also records
every command that arrived before the reply to the one ahead had been sent (``ahead``): a
client that pipelines against a server that did not offer it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest

from hubspot_tx import FailureCategory, Outcome, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope, SmtpCredentials, SmtpPool

from .lane_server import (
    BOUND,
    FAST,
    PATIENCE,
    LaneServer,
    exactly_once,
    idle_slots,
    lane_server,
    mid,
    msg,
    pool_for,
    until,
)


def step_server(*, pipelining: bool = False) -> AbstractAsyncContextManager[LaneServer]:
    """The lanes server, without PIPELINING unless asked; a session whose client went away
    while a reply was held ends at once."""
    return lane_server(pipelining=pipelining, hangup_ends_hold=True)


# -- the basics: one command at a time, lanes, sessions ----------------------------------------
@pytest.mark.parametrize("per_session", [1, 2, 1000])
async def test_a_relay_in_lockstep(per_session: int) -> None:
    async with step_server() as server:
        async with pool_for(
            server, max_connections=2, max_messages_per_connection=per_session
        ) as pool:
            messages = [msg(i, rcpts=1 + i % 3) for i in range(60)]
            outcomes = [o async for o in pool.send_many(messages, concurrency=20)]
            await until(lambda: idle_slots(pool) == 2)
            assert pool.open_connections <= 2
        exactly_once(outcomes, server, 60, per_recipient=True)
        assert all(o.ok for o in outcomes)
        assert server.most <= 2
        assert max(Counter(server.txn_session.values()).values()) <= per_session


# -- fairness ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("connections", [1, 2])
async def test_a_relay_message_waiting_for_a_slot_is_not_starved(
    connections: int, pipelining: bool
) -> None:
    """Every relay worker's first message finds no lane (the first session is opening) and
    waits for a slot, uncounted (``_slot_waiters`` counts only big/hooked messages). A
    lockstep lane gives its slot back only when its queue runs dry, and the workers whose
    message went through keep its queue full: the others wait for the END of the input (for
    ever with a stream). Must: a message taken early finishes within a bounded number of
    messages taken after it."""
    async with step_server(pipelining=pipelining) as server:
        async with pool_for(server, max_connections=connections) as pool:
            order: list[int] = []
            relay = pool.send_many((msg(i) for i in range(300)), concurrency=10)
            async for o in relay:
                assert o.index is not None
                order.append(o.index)
        assert sorted(order) == list(range(300))
        # position in completion order minus position in the input
        lag = max(pos - i for pos, i in enumerate(order))
        late = [i for pos, i in enumerate(order) if pos - i > 50]
        assert lag <= 50, f"messages {late[:12]} finished {lag} messages late"


# -- cancellation at each step, with jobs queued behind -----------------------------------------
async def _queue_behind(
    server: LaneServer, pool: SmtpPool, phase: str, n: int = 3
) -> list[asyncio.Task[Outcome]]:
    """t1 opens the lane and its reply to ``phase`` is held; t2.. queue on the lane."""
    server.hold[(1, phase)] = asyncio.Event()
    t1 = asyncio.create_task(pool.send(msg(1, rcpts=2)))
    await asyncio.wait_for(server.at(1, phase).wait(), PATIENCE)
    rest = [asyncio.create_task(pool.send(msg(i))) for i in range(2, n + 1)]
    await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == n - 1)
    return [t1, *rest]


@pytest.mark.parametrize("phase", ["mail", "rcpt1", "rcpt2", "data", "end"])
async def test_cancel_the_running_job_at_each_step(phase: str) -> None:
    seen: list[Outcome] = []
    async with step_server() as server:
        async with pool_for(server, max_connections=1, on_outcome=seen.append) as pool:
            t1, *rest = await _queue_behind(server, pool, phase)
            t1.cancel()
            await asyncio.sleep(0.02)
            server.hold[(1, phase)].set()
            others = await asyncio.wait_for(asyncio.gather(*rest), PATIENCE)
            with pytest.raises(asyncio.CancelledError):
                await t1
            assert all(o.ok for o in others), others
            assert (await asyncio.wait_for(pool.send(msg(9)), PATIENCE)).ok
            await until(lambda: idle_slots(pool) == 1)
        (o1,) = [o for o in seen if o.message_id == mid(1)]
        if phase == "end":
            assert o1.category is FailureCategory.DELIVERY_UNKNOWN
            assert server.stored[mid(1)] == 1
        else:
            assert o1.category is FailureCategory.CANCELLED, o1
            assert server.stored[mid(1)] == 0
        assert server.stored[mid(2)] == server.stored[mid(3)] == server.stored[mid(9)] == 1
        assert set(server.delivered.values()) == {1}
        assert server.most == 1
        assert not server.ahead


@pytest.mark.parametrize("phase", ["mail", "rcpt2", "data", "end"])
async def test_cancel_a_queued_job_at_each_step_of_the_one_ahead(phase: str) -> None:
    seen: list[Outcome] = []
    async with step_server() as server:
        async with pool_for(server, max_connections=1, on_outcome=seen.append) as pool:
            t1, t2, t3 = await _queue_behind(server, pool, phase)
            t2.cancel()
            await asyncio.sleep(0.02)
            server.hold[(1, phase)].set()
            o1, o3 = await asyncio.wait_for(asyncio.gather(t1, t3), PATIENCE)
            with pytest.raises(asyncio.CancelledError):
                await t2
            assert o1.ok
            assert o3.ok
            await until(lambda: idle_slots(pool) == 1)
        (o2,) = [o for o in seen if o.message_id == mid(2)]
        assert o2.category is FailureCategory.CANCELLED
        assert o2.attempts == 1
        assert server.stored == {mid(1): 1, mid(3): 1}
        assert server.sessions == 1
        assert not server.ahead


# -- refusals, 421, drops and silence at each step, in the middle of a queue ------------------
STEPS = ["mail", "rcpt1", "rcpt2", "data", "end"]


@pytest.mark.parametrize("per_session", [2, 1000])
@pytest.mark.parametrize("phase", STEPS)
@pytest.mark.parametrize("reply", ["451 later", "550 no"])
async def test_a_refusal_at_each_step_in_the_middle_of_a_queue(
    phase: str, reply: str, per_session: int
) -> None:
    async with step_server() as server:
        server.plan[(5, phase)] = reply
        server.plan[(6, phase)] = reply
        async with pool_for(
            server, max_connections=2, max_messages_per_connection=per_session
        ) as pool:
            messages = [msg(i, rcpts=2) for i in range(30)]
            outcomes = [o async for o in pool.send_many(messages, concurrency=20)]
            await until(lambda: idle_slots(pool) == 2)
            assert (await pool.send(msg(99))).ok
        exactly_once(outcomes, server, 30, per_recipient=True)
        failed = [o for o in outcomes if not o.ok]
        partial = [o for o in outcomes if o.ok and o.refused]
        if reply.startswith("5") and phase.startswith("rcpt"):
            assert len(partial) == 2, partial
            assert not failed, failed
        elif reply.startswith("5"):
            assert len(failed) == 2, failed
        else:
            assert not failed, failed
        assert server.most <= 2


@pytest.mark.parametrize("phase", STEPS)
@pytest.mark.parametrize("how", ["421 closing", "drop"])
async def test_421_or_a_drop_at_each_step_in_the_middle_of_a_queue(phase: str, how: str) -> None:
    async with step_server() as server:
        server.plan[(5, phase)] = how
        server.plan[(13, phase)] = how
        async with pool_for(server, max_connections=2) as pool:
            messages = [msg(i, rcpts=2) for i in range(30)]
            outcomes = [o async for o in pool.send_many(messages, concurrency=20)]
            await until(lambda: idle_slots(pool) == 2)
            assert (await pool.send(msg(99))).ok
        exactly_once(outcomes, server, 30, per_recipient=True)
        unknown = [o for o in outcomes if o.category is FailureCategory.DELIVERY_UNKNOWN]
        assert len(unknown) == (2 if phase == "end" and how == "drop" else 0), unknown
        assert all(o.ok for o in outcomes if o not in unknown), outcomes
        assert server.most <= 2


@pytest.mark.parametrize("phase", STEPS)
async def test_silence_at_each_step_with_jobs_queued(phase: str) -> None:
    async with step_server() as server:
        server.plan[(3, phase)] = "hang"
        async with pool_for(
            server, max_connections=1, command_timeout=0.3, final_reply_timeout=0.3
        ) as pool:
            started = time.monotonic()
            messages = [msg(i, rcpts=2) for i in range(10)]
            outcomes = [o async for o in pool.send_many(messages, concurrency=8)]
            assert time.monotonic() - started < BOUND
            await until(lambda: idle_slots(pool) == 1)
        exactly_once(outcomes, server, 10, per_recipient=True)
        unknown = [o for o in outcomes if o.category is FailureCategory.DELIVERY_UNKNOWN]
        assert len(unknown) == (1 if phase == "end" else 0)
        assert all(o.ok for o in outcomes if o not in unknown)


# -- sends that need a session of their own, concurrent with a busy relay ----------------------
@pytest.mark.parametrize("kind", ["big", "before_mail", "before_data"])
@pytest.mark.parametrize("connections", [1, 2])
async def test_a_send_of_its_own_next_to_a_busy_lockstep_relay(kind: str, connections: int) -> None:
    async with step_server() as server:
        async with pool_for(server, max_connections=connections) as pool:
            relay = pool.send_many((msg(i) for i in range(400)), concurrency=30)
            got: list[Outcome] = []

            async def read() -> None:
                async for o in relay:
                    got.append(o)

            async def hook() -> None:
                await asyncio.sleep(0)

            reading = asyncio.create_task(read())
            await until(lambda: len(got) >= 20)
            at_submit = len(got)
            if kind == "big":
                own = pool.send(msg(1000, size=70_000))
            elif kind == "before_mail":
                own = pool.send(msg(1000), before_mail=hook)
            else:
                own = pool.send(msg(1000), before_data=hook)
            single = await asyncio.wait_for(own, PATIENCE)
            done_before = len(got)
            await asyncio.wait_for(reading, 2 * PATIENCE)
            await until(lambda: idle_slots(pool) == connections)
        assert single.ok
        exactly_once(got, server, 400, per_recipient=True)
        # bounded by the relay's concurrency (the workers already parked on the slots go
        # first), not by the length of its input
        assert done_before - at_submit <= 4 * 30, f"{done_before - at_submit} went first"
        assert server.most <= connections


@pytest.mark.parametrize("connections", [1, 2])
async def test_a_small_send_next_to_a_busy_lockstep_relay(connections: int) -> None:
    async with step_server() as server:
        async with pool_for(server, max_connections=connections) as pool:
            relay = pool.send_many((msg(i) for i in range(300)), concurrency=30)
            got: list[Outcome] = []

            async def read() -> None:
                async for o in relay:
                    got.append(o)

            reading = asyncio.create_task(read())
            await until(lambda: len(got) >= 20)
            singles = await asyncio.wait_for(
                asyncio.gather(*(pool.send(msg(1000 + i)) for i in range(5))), PATIENCE
            )
            done_before = len(got)
            await asyncio.wait_for(reading, 2 * PATIENCE)
        assert all(o.ok for o in singles)
        exactly_once(got, server, 300, per_recipient=True)
        assert done_before < 100, f"{done_before} relay messages went first"


# -- closing, credentials ------------------------------------------------------------------------
@pytest.mark.parametrize("drain", [True, False])
async def test_aclose_with_a_final_reply_held_and_jobs_queued(drain: bool) -> None:
    reported: list[Outcome] = []
    async with step_server() as server:
        server.hold[(1, "end")] = asyncio.Event()
        pool = pool_for(
            server,
            max_connections=1,
            on_outcome=reported.append,
            command_timeout=60,
            final_reply_timeout=60,
        )
        tasks = [asyncio.create_task(pool.send(msg(1)))]
        await asyncio.wait_for(server.at(1, "end").wait(), PATIENCE)
        tasks += [asyncio.create_task(pool.send(msg(i))) for i in (2, 3)]
        await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == 2)
        started = time.monotonic()
        closing = asyncio.create_task(pool.aclose(drain=drain, timeout=0.5))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(closing, PATIENCE)
        assert time.monotonic() - started < BOUND
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), PATIENCE)
        server.hold[(1, "end")].set()
        await asyncio.sleep(0.05)
        by_mid = Counter(o.message_id for o in reported)
        assert by_mid == {mid(1): 1, mid(2): 1, mid(3): 1}, reported
        for o in reported:
            if o.message_id == mid(1):
                assert o.category is FailureCategory.DELIVERY_UNKNOWN, o
            else:
                assert o.category is FailureCategory.CANCELLED, o
        assert server.stored[mid(2)] == server.stored[mid(3)] == 0
        assert idle_slots(pool) == 1


async def test_set_credentials_mid_lockstep_relay() -> None:
    async with step_server() as server:
        async with pool_for(server, max_connections=2) as pool:

            async def gen() -> AsyncIterator[Envelope]:
                for i in range(60):
                    if i in (20, 40):  # a new generation (the server has no AUTH)
                        pool.set_credentials(SmtpCredentials("u", "p"))
                        pool._credentials = None
                    yield msg(i)

            outcomes = [o async for o in pool.send_many(gen(), concurrency=30)]
            await until(lambda: idle_slots(pool) == 2)
        exactly_once(outcomes, server, 60, per_recipient=True)
        assert all(o.ok for o in outcomes)
        assert server.most <= 2
        assert server.sessions >= 3


# -- the sandbox: real STARTTLS + AUTH, no PIPELINING ------------------------------------------
async def test_a_chaotic_lockstep_relay_on_the_sandbox(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.chaos(seed=7, smtp_rate=0.1, smtp_stages=("mail", "rcpt", "data", "end"))
    sandbox.faults.smtp_drop_after_data(times=2)
    async with sandbox.smtp_pool(token, retry=FAST, max_connections=2) as pool:
        outcomes = [o async for o in pool.send_many([msg(i) for i in range(60)], concurrency=8)]
        assert all(not c.pipelining for c in [*pool._idle, *pool._busy])
        await until(lambda: idle_slots(pool) == 2)
        assert (await pool.send(msg(99))).ok
    stored = Counter(m.message_id for m in sandbox.state.messages)
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(60))
    assert set(stored.values()) <= {1}, stored
    for o in outcomes:
        assert o.index is not None
        if o.ok:
            assert stored[mid(o.index)] == 1, o
        elif o.category is not FailureCategory.DELIVERY_UNKNOWN:
            assert stored[mid(o.index)] == 0, o
    assert sandbox.state.smtp_sessions_total >= 1


@pytest.mark.parametrize("phase", ["mail", "rcpt", "data"])  # "rcpt": every RCPT
async def test_cancel_a_refused_job_during_its_rset_with_a_job_queued(phase: str) -> None:
    seen: list[Outcome] = []
    async with step_server() as server:
        server.plan[(1, phase)] = "451 busy"
        server.hold[(1, "rset")] = asyncio.Event()
        async with pool_for(server, max_connections=1, on_outcome=seen.append) as pool:
            t1, t2, t3 = await _queue_behind(server, pool, phase)
            server.hold[(1, phase)].set()
            await asyncio.wait_for(server.at(1, "rset").wait(), PATIENCE)
            t1.cancel()
            await asyncio.sleep(0.01)
            server.hold[(1, "rset")].set()
            o2, o3 = await asyncio.wait_for(asyncio.gather(t2, t3), PATIENCE)
            with pytest.raises(asyncio.CancelledError):
                await t1
            assert o2.ok
            assert o3.ok
            await until(lambda: idle_slots(pool) == 1)
            assert (await pool.send(msg(9))).ok
        (o1,) = [o for o in seen if o.message_id == mid(1)]
        assert o1.category is FailureCategory.CANCELLED
        assert server.stored == {mid(2): 1, mid(3): 1, mid(9): 1}
        assert not server.ahead
