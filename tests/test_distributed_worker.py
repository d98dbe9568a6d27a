"""One in-process worker against the sandbox and a real redis-server, with faults injected
into its Redis calls: lost leases, a failing heartbeat, failing releases, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hubspot_tx import SmtpTokenWithPassword
from hubspot_tx.distributed import (
    DistributedRelay,
    KeyState,
    RedisServer,
    Worker,
    WorkerSettings,
)
from hubspot_tx.distributed._worker import STOP_GRACE
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import SmtpCredentials

from .conftest import make_message
from .distributed_support import redis_srv

__all__ = ["redis_srv"]


@contextlib.asynccontextmanager
async def running_worker(
    redis_url: str, sandbox: Sandbox, token: SmtpTokenWithPassword, **options: Any
) -> AsyncIterator[tuple[Worker, DistributedRelay, asyncio.Event, asyncio.Task[None]]]:
    """A :class:`Worker` running in this process, and a relay on its namespace."""
    settings = WorkerSettings(
        redis_url=redis_url,
        namespace="w",
        host=sandbox.host,
        port=sandbox.smtp_port,
        credentials=SmtpCredentials.from_token(token),
        ssl_context=sandbox.ssl_context(),
        **options,
    )
    worker = Worker(settings)
    stop = asyncio.Event()
    async with DistributedRelay(redis_url, namespace="w") as relay:
        task = asyncio.create_task(worker.run(stop))
        try:
            async with asyncio.timeout(10):
                while worker._ledger is None:  # noqa: ASYNC110 - waiting for run() to start
                    await asyncio.sleep(0.01)
            yield worker, relay, stop, task
        finally:
            stop.set()
            async with asyncio.timeout(40):
                await asyncio.gather(task, return_exceptions=True)


async def test_a_worker_that_loses_a_lease_and_reclaims_the_key_sends_it_once(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """Coroutine A claims the key and waits for the 354; the worker's leases are not renewed
    (a stalled process), A's lease runs out and reconcile requeues the key; the same worker
    claims it again as B, which sends it. When A finally gets its 354 it must not send."""
    options = {"lease": 1.0, "reconcile_every": None, "connections": 5}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (w, relay, _, _):
        ledger = w._ledger
        assert ledger is not None
        renew = ledger.renew

        async def renew_nothing(owner: str, held: Any, lease: float, **kw: Any) -> tuple[int, int]:
            return await renew(owner, [], lease, **kw)  # the heartbeat lives, leases lapse

        ledger.renew = renew_nothing  # type: ignore[method-assign]
        slow_354 = sandbox.faults.smtp_slow("data", seconds=3.0, times=1)
        submission = await relay.submit([make_message(7)])
        async with asyncio.timeout(10):
            while slow_354.hits == 0:  # noqa: ASYNC110 - polling the fault's counter
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.3)  # A's lease runs out
        sandbox.faults.smtp_slow("end", seconds=3.0, times=1)  # B still in DATA when A wakes
        assert (await relay.reconcile()).retried == 1
        results = [r async for r in relay.results(keys=submission.keys, timeout=15)]
        await asyncio.sleep(3.5)  # A has had its 354 by now
        stream_len = await ledger.redis.xlen(ledger.results_key)
    assert [r.outcome.ok for r in results] == [True]
    assert stream_len == 1
    assert Counter(m.message_id for m in sandbox.outbox()) == {"<m7@hubspot-tx.test>": 1}


async def test_a_heartbeat_that_cannot_renew_stops_the_worker_before_it_begins_anything(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """Not only connection errors: a READONLY reply must not kill the heartbeat silently and
    leave the worker sending under lapsed leases. After a lease without renewal it stops, and
    a message whose 354 comes later is not begun."""
    options = {"lease": 1.0, "reconcile_every": None, "shutdown_timeout": 5.0}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (w, relay, _, task):
        ledger = w._ledger
        assert ledger is not None
        slow_354 = sandbox.faults.smtp_slow("data", seconds=2.5, times=1)
        submission = await relay.submit([make_message(1)])
        async with asyncio.timeout(10):
            while slow_354.hits == 0:  # noqa: ASYNC110 - polling the fault's counter
                await asyncio.sleep(0.01)

        async def readonly(*args: Any, **kwargs: Any) -> tuple[int, int]:
            raise ResponseError("READONLY You can't write against a read only replica.")

        ledger.renew = readonly  # type: ignore[method-assign]
        async with asyncio.timeout(8):
            await task  # the worker stops by itself
        assert w.unreachable
        await asyncio.sleep(1.0)  # the slow 354 has come and gone
        state = (await ledger.states(submission.keys))[0]
    assert state is KeyState.CLAIMED  # never begun: reconcile will queue it again
    assert sandbox.outbox() == []


async def test_a_key_whose_release_fails_is_not_renewed_forever(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """``begin`` fails (a Redis outage), then the release fails too: the worker must let the
    claim's lease run out (not keep renewing it) so reconcile queues it again and it is sent."""
    options = {"lease": 1.0, "reconcile_every": 0.5}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (w, relay, _, _):
        ledger = w._ledger
        assert ledger is not None
        begin, release = ledger.begin, ledger.release
        failures = {"begin": 1, "release": 1}

        async def failing_begin(*args: Any, **kwargs: Any) -> int:
            if failures["begin"]:
                failures["begin"] -= 1
                raise RedisConnectionError("simulated outage")
            return await begin(*args, **kwargs)

        async def failing_release(*args: Any, **kwargs: Any) -> list[str]:
            if failures["release"]:
                failures["release"] -= 1
                raise RedisConnectionError("simulated outage")
            return await release(*args, **kwargs)

        ledger.begin = failing_begin  # type: ignore[method-assign]
        ledger.release = failing_release  # type: ignore[method-assign]
        submission = await relay.submit([make_message(1)])
        results = [r async for r in relay.results(keys=submission.keys, timeout=15)]
        # The result is in the stream a moment before the worker forgets the claim it ended.
        for _ in range(100):
            if not w._held:
                break
            await asyncio.sleep(0.02)
        assert not w._held
    assert [r.outcome.ok for r in results] == [True]
    assert failures == {"begin": 0, "release": 0}
    assert [m.message_id for m in sandbox.outbox()] == ["<m1@hubspot-tx.test>"]


async def test_stopping_takes_no_more_tasks_and_done_tasks_leave_the_stream(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """A stopping worker waiting for a slow message must not take tasks only to hand them
    back (a busy loop that grew the task stream by thousands of entries a second); and an
    acknowledged task is deleted, so the stream does not keep every task ever kicked."""
    options = {"lease": 5.0, "reconcile_every": None, "batches": 2, "shutdown_timeout": 10.0}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (w, relay, stop, task):
        ledger = w._ledger
        assert ledger is not None
        redis: Any = ledger.redis
        relay.batch_size = 5
        done = await relay.submit([make_message(i) for i in range(20)])
        assert done.tasks == 4
        results = [r async for r in relay.results(keys=done.keys, timeout=15)]
        assert len(results) == 20
        async with asyncio.timeout(5):
            while await redis.xlen(ledger.tasks_key):  # noqa: ASYNC110 - polling Redis
                await asyncio.sleep(0.05)

        fault = sandbox.faults.smtp_slow("end", seconds=3.0, times=1)
        submission = await relay.submit([make_message(i) for i in range(100, 130)])
        async with asyncio.timeout(10):
            while fault.hits == 0:  # noqa: ASYNC110 - polling the fault's counter
                await asyncio.sleep(0.01)
        before = await redis.xlen(ledger.tasks_key)
        stop.set()
        async with asyncio.timeout(20):
            await task
        after = await redis.xlen(ledger.tasks_key)
        states = await ledger.states(submission.keys)
    # At most one task per batch handed back (released keys), never a loop.
    assert after - before <= 6, (before, after)
    assert all(s is KeyState.QUEUED or (s is not None and s.final) for s in states)


async def test_the_heartbeat_outlives_the_pools_drain(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """Stopped with a message in DATA for longer than ``shutdown_timeout``: the pool drains
    it (up to another ``shutdown_timeout``), and its lease must be renewed until then, or a
    reconcile elsewhere makes a delivered message ``delivery_unknown``."""
    options = {"lease": 0.9, "reconcile_every": None, "shutdown_timeout": 2.0}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (_, relay, stop, task):
        fault = sandbox.faults.smtp_slow("end", seconds=3.6, times=1)
        submission = await relay.submit([make_message(1)])
        async with asyncio.timeout(10):
            while fault.hits == 0:  # noqa: ASYNC110 - polling the fault's counter
                await asyncio.sleep(0.01)
        stop.set()
        await asyncio.sleep(3.15)  # the idle wait is over (2 s), the pool is draining
        report = await relay.reconcile()
        async with asyncio.timeout(10):
            await task
        results = [r async for r in relay.results(keys=submission.keys, timeout=5)]
    assert report.unknown == 0
    assert [r.outcome.ok for r in results] == [True]


async def test_resubmitting_a_queued_key_kicks_it_again(redis_srv: RedisServer) -> None:
    """A key the ledger already holds as ``queued`` may have no task (a lost kick, or a
    lost reply and a retried submit): submitting it again enqueues it again."""
    async with DistributedRelay(redis_srv.url, namespace="q") as relay:
        first = await relay.submit([make_message(1)])
        again = await relay.submit([make_message(1)])
        tasks = await relay.ledger.redis.xlen(relay.ledger.tasks_key)
    assert (first.new, first.tasks) == (1, 1)
    assert again.new == 0
    assert again.existing == {"<m1@hubspot-tx.test>": KeyState.QUEUED}
    assert again.tasks == 1
    assert tasks == 2


async def test_requeue_after_must_be_positive(redis_srv: RedisServer) -> None:
    """0 made reconcile's stale-key loop spin: each key requeued was stale again at once."""
    with pytest.raises(ValueError, match="requeue_after"):
        Worker(WorkerSettings(redis_url=redis_srv.url, requeue_after=0))
    async with DistributedRelay(redis_srv.url, namespace="v") as relay:
        await relay.submit([make_message(1)])
        with pytest.raises(ValueError, match="requeue_after"):
            await relay.reconcile(requeue_after=0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "worker",
        "--requeue-after",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"--requeue-after: must be greater than 0" in err


def test_worker_settings_repr_hides_the_redis_url() -> None:
    """A Redis URL may carry Redis's password: never in a repr (logs, tracebacks)."""
    settings = WorkerSettings(redis_url="redis://:hunter2-secret@127.0.0.1:6390/0")
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in repr(Worker(settings))


async def test_a_worker_stops_when_redis_stops_being_durable(
    redis_srv: RedisServer, sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """Checked at start only, a Redis whose settings change while the worker runs (a failover
    to a server configured otherwise, a CONFIG SET) would go on losing acknowledged writes
    under it: the heartbeat reads the settings anyway; the worker stops and says why."""
    import redis.asyncio as redis

    from hubspot_tx.distributed import UnsafeRedisError

    options = {"lease": 1.5, "reconcile_every": None}
    async with running_worker(redis_srv.url, sandbox, token, **options) as (w, _, _, task):
        client: Any = redis.Redis.from_url(redis_srv.url)
        try:
            await client.config_set("appendfsync", "everysec")
        finally:
            await client.aclose()
        done, _ = await asyncio.wait([task], timeout=15)
        assert done, "the worker went on running on a Redis that can lose writes"
        with pytest.raises(UnsafeRedisError, match="appendfsync everysec"):
            task.result()
        assert w.unsafe is not None


@pytest.mark.parametrize("after", [0.0, 0.005, 0.02, 0.05])
async def test_a_worker_stopped_as_it_starts_stops(redis_srv: RedisServer, after: float) -> None:
    """A SIGTERM right after the start line hung `hubspot-tx worker` for good: the cancel of
    the heartbeat, caught inside its Redis call, came out as an error it survived."""
    worker = Worker(WorkerSettings(redis_url=redis_srv.url, namespace=f"s{after}"))
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(after)
    stop.set()
    await asyncio.wait_for(run, 20)


async def test_a_receiver_that_swallows_its_cancellation_does_not_hang_the_stop(
    redis_srv: RedisServer,
) -> None:
    """redis-py can swallow a cancellation that lands in a blocking read (taskiq's XREADGROUP,
    redis/redis-py#2028): the README's `kill %1` then hung a worker for good. The stop is
    bounded: the task is left behind and counted, and the CLI exits without it."""
    worker = Worker(WorkerSettings(redis_url=redis_srv.url, namespace="swallow"))
    released = asyncio.Event()

    async def receive_swallowing(broker: object, finish: asyncio.Event) -> None:
        # A fault injected in place of taskiq's receiver: every cancel is caught, as redis-py
        # sometimes does inside a blocking read. Bounded, so the test leaves nothing running.
        async with asyncio.timeout(60):
            while not released.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()

    worker._receive = receive_swallowing  # type: ignore[method-assign]
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(10):
        while worker._ledger is None:  # noqa: ASYNC110 - waiting for run() to start
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    stop.set()
    try:
        await asyncio.wait_for(run, STOP_GRACE + 15)
        assert worker.stragglers == 1
    finally:
        released.set()
    # It shut down as usual meanwhile: its heartbeat key (a live worker's mark) is gone.
    ledger = worker._ledger
    assert ledger is not None
    client = Redis.from_url(redis_srv.url)
    try:
        assert not await client.exists(ledger.worker_prefix + worker.owner)
    finally:
        await client.aclose()
