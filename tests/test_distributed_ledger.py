"""The ledger's Lua scripts against a real redis-server: claims, leases, final-once, retention."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from hubspot_tx import Outcome, OutcomeStatus, SmtpTokenWithPassword
from hubspot_tx.distributed import (
    KeyState,
    Ledger,
    RateLimiter,
    RedisServer,
    make_broker,
    read_results,
    reconcile,
)
from hubspot_tx.distributed._broker import GROUP
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import FailureCategory

from .conftest import make_message
from .distributed_support import redis_srv

__all__ = ["redis_srv"]

SENT = Outcome(key="k1", status=OutcomeStatus.SENT, code=250, reply="OK", accepted=("a@x.org",))


@pytest.fixture
async def ledger(redis_srv: RedisServer) -> AsyncIterator[Ledger]:
    redis = Redis.from_url(redis_srv.url)
    try:
        yield Ledger(redis, "t", retention=60)
    finally:
        await redis.aclose()


async def test_submit_stores_once_and_resubmit_returns_the_state(ledger: Ledger) -> None:
    assert await ledger.submit([("k1", b"one"), ("k2", b"two")]) == [None, None]
    assert await ledger.submit([("k1", b"other body"), ("k3", b"three")]) == [
        KeyState.QUEUED,
        None,
    ]
    claimed = await ledger.claim("w1", ["k1"], lease=10)
    assert claimed["k1"].body == b"one"  # the first body, not the resubmitted one
    assert await ledger.submit([("k1", b"again")]) == [KeyState.CLAIMED]
    info = await ledger.info("k1")
    assert info is not None
    assert info.ttl_ms is None


async def test_claim_is_a_compare_and_set(ledger: Ledger) -> None:
    await ledger.submit([("k1", b"one"), ("k2", b"two")])
    first, second = await asyncio.gather(
        ledger.claim("w1", ["k1", "k2"], lease=10), ledger.claim("w2", ["k1", "k2"], lease=10)
    )
    assert sorted([*first, *second]) == ["k1", "k2"]  # each key to exactly one worker
    assert not set(first) & set(second)
    assert await ledger.claim("w3", ["k1", "k2", "unknown"], lease=10) == {}
    info = await ledger.info("k1")
    assert info is not None
    assert info.state is KeyState.CLAIMED
    assert info.claims == 1
    assert info.owner == ("w1" if "k1" in first else "w2")


async def test_begin_only_for_the_owner(ledger: Ledger) -> None:
    await ledger.submit([("k1", b"one")])
    token = (await ledger.claim("w1", ["k1"], lease=10))["k1"].token
    assert not await ledger.begin("w2", "k1", token, lease=10)
    assert not await ledger.begin("w1", "k1", "not-the-token", lease=10)
    assert await ledger.begin("w1", "k1", token, lease=10)
    assert await ledger.begin("w1", "k1", token, lease=10)  # a retry of the same transaction
    info = await ledger.info("k1")
    assert info is not None
    assert info.state is KeyState.SENDING


async def test_finish_once_deletes_the_body_and_sets_the_ttl(ledger: Ledger) -> None:
    await ledger.submit([("k1", b"one")])
    token = (await ledger.claim("w1", ["k1"], lease=10))["k1"].token
    assert await ledger.finish("w2", "k1", token, SENT) is None  # not the owner
    assert await ledger.finish("w1", "k1", "stale", SENT) is None  # not the current claim
    await ledger.begin("w1", "k1", token, lease=10)
    result_id = await ledger.finish("w1", "k1", token, SENT)
    assert result_id is not None
    failed = Outcome(key="k1", status=OutcomeStatus.FAILED, category=FailureCategory.REJECTED)
    assert await ledger.finish("w1", "k1", token, failed) is None  # never overwritten
    info = await ledger.info("k1")
    assert info is not None
    assert info.state is KeyState.SENT
    assert info.outcome == SENT
    assert info.result_id == result_id
    assert not info.has_body
    assert info.owner is None
    assert info.ttl_ms is not None
    assert 55_000 < info.ttl_ms <= 60_000
    entries: Any = await ledger.redis.xrange(ledger.results_key)
    assert [(e[0].decode(), e[1][b"k"]) for e in entries] == [(result_id, b"k1")]
    assert msgspec.json.decode(entries[0][1][b"r"], type=Outcome) == SENT
    assert await ledger.submit([("k1", b"one")]) == [KeyState.SENT]  # a no-op now
    assert await ledger.claim("w1", ["k1"], lease=10) == {}
    assert await ledger.redis.xlen(ledger.results_key) == 1


async def test_expired_claim_is_queued_again_expired_sending_is_unknown(ledger: Ledger) -> None:
    await ledger.submit([("claimed", b"a"), ("sending", b"b"), ("live", b"c")])
    dead = (await ledger.claim("dead", ["claimed", "sending"], lease=0.1))["claimed"].token
    alive = (await ledger.claim("alive", ["live"], lease=0.1))["live"].token
    await ledger.begin("dead", "sending", dead, lease=0.1)
    await asyncio.sleep(0.05)
    held = [("live", alive), ("claimed", alive), ("claimed", dead)]
    assert (await ledger.renew("alive", held, lease=10))[0] == 1  # only its own
    await asyncio.sleep(0.1)
    report = await ledger.expire()
    assert report.retry == ["claimed"]
    assert report.unknown == ["sending"]
    assert not report.abandoned
    states = await ledger.states(["claimed", "sending", "live"])
    assert states == [KeyState.QUEUED, KeyState.FAILED, KeyState.CLAIMED]
    unknown = await ledger.info("sending")
    assert unknown is not None
    assert unknown.outcome is not None
    assert unknown.outcome.category is FailureCategory.DELIVERY_UNKNOWN
    assert not unknown.has_body
    assert unknown.ttl_ms is not None
    # The dead worker comes back: it may neither send nor record anything.
    assert not await ledger.begin("dead", "claimed", dead, lease=10)
    assert await ledger.finish("dead", "sending", dead, SENT) is None
    assert await ledger.redis.xlen(ledger.results_key) == 1
    assert (await ledger.claim("next", ["claimed"], lease=10))["claimed"].body == b"a"


async def test_release_only_unstarted_keys_and_abandon_after_max_claims(ledger: Ledger) -> None:
    await ledger.submit([("a", b"a"), ("b", b"b")])
    token = (await ledger.claim("w1", ["a", "b"], lease=10))["a"].token
    await ledger.begin("w1", "b", token, lease=10)
    assert await ledger.release("w1", [("a", "stale")]) == []
    # "b" may have reached the server: only "a" goes back.
    assert await ledger.release("w1", [("a", token), ("b", token)], refund=True) == ["a"]
    # A stopping worker's release gives the claim back: "a" was claimed 0 times net.
    for _ in range(2):
        await ledger.claim("w2", ["a"], lease=0.05)
        await asyncio.sleep(0.08)
        report = await ledger.expire(max_claims=2)
    assert report.abandoned == ["a"]
    info = await ledger.info("a")
    assert info is not None
    assert info.outcome is not None
    assert info.outcome.category is FailureCategory.CANCELLED


async def test_a_release_after_an_error_counts_and_max_claims_ends_the_key(ledger: Ledger) -> None:
    """The old release lowered the claim counter: a key released after each error was claimed
    again forever. Now each such release is an attempt; the claim after ``max_claims`` of
    them ends the key failed, with the reason, instead of claiming it."""
    await ledger.submit([("p", b"poison")])
    for _ in range(3):
        token = (await ledger.claim("w1", ["p"], lease=10, max_claims=3))["p"].token
        assert await ledger.release("w1", [("p", token)]) == ["p"]
    assert await ledger.claim("w1", ["p"], lease=10, max_claims=3) == {}
    info = await ledger.info("p")
    assert info is not None
    assert info.state is KeyState.FAILED
    assert info.outcome is not None
    assert info.outcome.category is FailureCategory.CANCELLED
    assert "claimed 3 times" in (info.outcome.reply or "")
    assert not info.has_body


async def test_a_stale_claim_of_the_same_owner_can_never_begin(ledger: Ledger) -> None:
    """One process claims a key, loses the lease (requeued), claims it again: only the
    current claim may begin, finish, renew or release (the owner alone is not enough)."""
    await ledger.submit([("k", b"body")])
    stale = (await ledger.claim("w1", ["k"], lease=0.05))["k"].token
    await asyncio.sleep(0.1)
    assert not await ledger.begin("w1", "k", stale, lease=10)  # lease ran out: refused
    assert (await ledger.expire()).retry == ["k"]
    current = (await ledger.claim("w1", ["k"], lease=10))["k"].token
    assert current != stale
    assert not await ledger.begin("w1", "k", stale, lease=10)
    assert (await ledger.renew("w1", [("k", stale)], lease=10))[0] == 0
    assert await ledger.release("w1", [("k", stale)]) == []
    assert await ledger.begin("w1", "k", current, lease=10)
    assert not await ledger.begin("w1", "k", stale, lease=10)  # nor once it is sending
    assert await ledger.finish("w1", "k", stale, SENT) is None
    assert await ledger.finish("w1", "k", current, SENT) is not None
    assert await ledger.redis.xlen(ledger.results_key) == 1


async def test_stale_queued(ledger: Ledger) -> None:
    await ledger.submit([("a", b"a")])
    assert await ledger.stale_queued(10) == []
    await asyncio.sleep(0.05)
    assert await ledger.stale_queued(0.01) == ["a"]
    assert await ledger.stale_queued(0.01) == []  # its time was reset


async def test_limiter_paces_and_allows_the_burst(redis_srv: RedisServer) -> None:
    """The slots granted after the burst are one interval apart, however long each call
    took: a slot is (when the call ran) + (the wait it returned), known to within the call's
    own duration, which is measured rather than assumed (an AOF-always Redis fsyncs each)."""
    redis = Redis.from_url(redis_srv.url)
    calls: list[tuple[float, float, float]] = []  # (start, end, wait)
    try:
        limiter = RateLimiter(redis, "t:limit", rate=20, burst=5)
        for _ in range(12):
            start = time.monotonic()
            wait = await limiter.reserve()
            calls.append((start, time.monotonic(), wait))
    finally:
        await redis.aclose()
    assert [wait for _, _, wait in calls[:5]] == [0.0] * 5
    paced = [(a, b, w) for a, b, w in calls if w > 0]
    assert len(paced) >= 3, calls  # calls take far less than the 50 ms interval
    for (a1, b1, w1), (a2, b2, w2) in itertools.pairwise(paced):
        gap = (a2 + b2) / 2 + w2 - ((a1 + b1) / 2 + w1)
        assert abs(gap - 0.05) <= (b1 - a1 + b2 - a2) / 2 + 0.002, calls


async def test_before_data_hook_runs_after_354_and_aborts_when_it_raises(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    calls: list[int] = []

    async def ok() -> None:
        calls.append(len(sandbox.outbox()))

    async def refuse() -> None:
        raise LookupError("lease lost")

    async with sandbox.smtp_pool(token) as pool:
        outcome = await pool.send(make_message(1), before_data=ok)
        assert outcome.ok
        assert calls == [0]
        with pytest.raises(LookupError):
            await pool.send(make_message(2), before_data=refuse)
        assert (await pool.send(make_message(3))).ok  # the pool carries on
    assert sandbox.smtp_handler.mail_commands == 3  # the refused one got as far as DATA
    assert [m.message_id for m in sandbox.outbox()] == [
        "<m1@hubspot-tx.test>",
        "<m3@hubspot-tx.test>",
    ]


async def test_the_producers_retention_wins_over_the_finishers(redis_srv: RedisServer) -> None:
    """A producer's ``retention`` is stored with each key it submits: the worker that
    finishes it (or reconcile, expiring it) applies it, not its own setting."""
    redis = Redis.from_url(redis_srv.url)
    try:
        producer = Ledger(redis, "r", retention=60)
        worker = Ledger(redis, "r", retention=7 * 24 * 3600)
        await producer.submit([("sent", b"a"), ("lost", b"b")])
        claims = await worker.claim("w1", ["sent", "lost"], lease=0.2)
        for key in ("sent", "lost"):
            assert await worker.begin("w1", key, claims[key].token, lease=0.2)
        assert await worker.finish("w1", "sent", claims["sent"].token, SENT) is not None
        await asyncio.sleep(0.3)
        assert (await worker.expire()).unknown == ["lost"]
        for key in ("sent", "lost"):
            info = await worker.info(key)
            assert info is not None
            assert info.ttl_ms is not None
            assert 55_000 < info.ttl_ms <= 60_000, key
    finally:
        await redis.aclose()


async def test_results_for_a_key_never_submitted_raise_instead_of_waiting(
    ledger: Ledger,
) -> None:
    await ledger.submit([("k1", b"one")])
    token = (await ledger.claim("w1", ["k1"], lease=10))["k1"].token
    await ledger.begin("w1", "k1", token, lease=10)
    await ledger.finish("w1", "k1", token, SENT)
    seen: list[str] = []

    async def read() -> None:
        async with asyncio.timeout(10):  # without the check it would wait forever
            async for result in read_results(ledger, keys=["k1", "nobody"], block=0.1):
                seen.append(result.key)

    with pytest.raises(LookupError, match="1 key"):
        await read()
    assert seen == ["k1"]


async def test_a_queued_key_is_requeued_within_one_pass_despite_a_task_pending_under_a_live_worker(
    ledger: Ledger, redis_srv: RedisServer
) -> None:
    """Issue 18, item 6: after an outage a key sat ``queued`` with no task (its new task was
    lost), while another task stayed pending under a live worker (its ack was lost). The old
    reconcile waited for the stream to have nothing pending: the key waited ``requeue_after``
    (600 s by default). Now a task taken more than ``grace`` ago does not hold keys back."""
    tasks = make_broker(redis_srv.url, ledger.tasks_key)
    await tasks.broker.startup()
    try:
        redis: Any = ledger.redis
        await tasks.kick(["done-long-ago"], batch_size=10)
        # A live worker took that task and never acknowledged it (its ack was lost).
        await redis.xreadgroup(GROUP, "hstx-live", {ledger.tasks_key: ">"}, count=1)
        await redis.set(ledger.worker_prefix + "hstx-live", "1@host", px=60_000)
        await ledger.submit([("orphan", b"body")])  # queued, its task lost
        await asyncio.sleep(0.3)
        report = await reconcile(ledger, tasks, grace=0.2, requeue_after=600, dead_after=600)
        assert report.requeued == 1
        assert report.rescued_tasks == 0  # the live worker's task is left to it
        # The new task is unread: until a worker takes it, nothing more is requeued.
        report = await reconcile(ledger, tasks, grace=0.2, requeue_after=600, dead_after=600)
        assert report.requeued == 0
    finally:
        await tasks.broker.shutdown()


async def test_a_ledger_counter_that_went_back_refuses_begins_and_recover_settles_unknown(
    ledger: Ledger,
) -> None:
    """A Redis that restarted from older data: the counter is below what a worker saw. No
    begin may pass (a key ``sent`` in the lost writes is ``queued`` again); recover() makes
    every unfinished key ``delivery_unknown`` (never resent) and moves the counter past."""
    await ledger.submit([("a", b"a"), ("b", b"b"), ("c", b"c")])
    token = (await ledger.claim("w1", ["a", "b"], lease=10))["a"].token
    seen = await ledger.begin("w1", "a", token, lease=10)
    assert seen == 1
    await ledger.redis.set(ledger.seq_key, 0)  # the rollback, as the worker would see it
    assert await ledger.begin("w1", "b", token, lease=10, min_seq=seen) == -1
    assert (await ledger.info("b")) is not None
    settled: list[str] = []
    for _ in range(10):
        batch = await ledger.recover(seen)
        if not batch:
            break
        settled += batch
    assert sorted(settled) == ["a", "b", "c"]
    for key in settled:
        info = await ledger.info(key)
        assert info is not None
        assert info.outcome is not None
        assert info.outcome.category is FailureCategory.DELIVERY_UNKNOWN
    assert await ledger.counter() > seen  # later begins pass again
