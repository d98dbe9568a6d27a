"""The distributed relay against Redis faults and bad messages, with real redis-server processes:
a paused (SIGSTOPped) Redis, a snapshot-only Redis, a message whose send raises, a server that
times out DATA while the rate limit makes messages wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubspot_tx.distributed import (
    DistributedRelay,
    RateLimiter,
    RedisServer,
    UnsafeRedisError,
    Worker,
    WorkerSettings,
    redis_server,
)
from hubspot_tx.smtp import FailureCategory, Outcome, SmtpCredentials

from .conftest import make_message
from .distributed_support import redis_srv, require_redis_server
from .fault_server import FaultServer

__all__ = ["redis_srv"]


@contextlib.contextmanager
def paused(server: RedisServer) -> Any:
    """Redis SIGSTOPped (it accepts nothing, answers nothing) until the block ends."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_every_redis_call_times_out_against_a_paused_redis(redis_srv: RedisServer) -> None:
    """The old clients had no socket timeout: against a stopped Redis each call below waited
    forever (here: until the test's own 20 s guard)."""
    timeout = 3.0
    async with DistributedRelay(redis_srv.url, namespace="pause", redis_timeout=timeout) as relay:
        first = await relay.submit([make_message(1)])
        limiter = RateLimiter(relay.ledger.redis, relay.ledger.limiter_key, rate=10)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "submit": lambda: relay.submit([make_message(2)]),
            "claim": lambda: relay.ledger.claim("w", first.keys, lease=10),
            "limiter": limiter.acquire,
            "results": lambda: anext(aiter(relay.results(keys=first.keys, timeout=60))),
        }
        with paused(redis_srv):
            for name, call in calls.items():
                started = time.monotonic()
                async with asyncio.timeout(20):  # the guard: the call itself must give up first
                    with pytest.raises(RedisTimeoutError):
                        await call()
                took = time.monotonic() - started
                assert took < 3 * timeout, (name, took)


async def test_a_snapshot_only_redis_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ledger's "at most once" needs every acknowledged write to survive a Redis crash."""
    require_redis_server()
    monkeypatch.delenv("HUBSPOT_TX_ALLOW_UNSAFE_REDIS", raising=False)
    async with redis_server(durable=False) as server:
        with pytest.raises(UnsafeRedisError, match="appendonly"):
            async with DistributedRelay(server.url, namespace="unsafe"):
                pass
        worker = Worker(WorkerSettings(redis_url=server.url, namespace="unsafe"))
        with pytest.raises(UnsafeRedisError, match="--allow-unsafe-redis"):
            await worker.run(asyncio.Event())
        # The CLI: one line, exit 2, naming the setting and the opt-in.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "hubspot_tx.cli", "worker", "--redis-url", server.url),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HUBSPOT_TX_ALLOW_UNSAFE_REDIS": ""},
        )
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        lines = [line for line in err.decode().splitlines() if "error" in line]
        assert proc.returncode == 2, err
        assert len(lines) == 1, err  # one line, no traceback
        assert "appendonly no" in lines[0]
        assert "HUBSPOT_TX_ALLOW_UNSAFE_REDIS=1" in lines[0]
        assert "Traceback" not in err.decode()
        # Opted in: it runs.
        async with DistributedRelay(server.url, namespace="unsafe", allow_unsafe_redis=True) as r:
            assert (await r.submit([make_message(1)])).new == 1
        monkeypatch.setenv("HUBSPOT_TX_ALLOW_UNSAFE_REDIS", "1")
        async with DistributedRelay(server.url, namespace="unsafe") as relay:
            assert (await relay.submit([make_message(2)])).new == 1
    # appendfsync everysec loses up to a second of acknowledged writes: refused too.
    monkeypatch.delenv("HUBSPOT_TX_ALLOW_UNSAFE_REDIS")
    async with redis_server() as server:
        client: Any = Redis.from_url(server.url)
        await client.config_set("appendfsync", "everysec")
        await client.aclose()
        with pytest.raises(UnsafeRedisError, match="everysec"):
            async with DistributedRelay(server.url, namespace="unsafe"):
                pass
        # So does a Redis that may evict keys (a ledger key evicted is a message forgotten).
        client = Redis.from_url(server.url)
        await client.config_set("appendfsync", "always")
        await client.config_set("maxmemory-policy", "allkeys-lru")
        await client.aclose()
        with pytest.raises(UnsafeRedisError, match="allkeys-lru"):
            async with DistributedRelay(server.url, namespace="unsafe"):
                pass


@contextlib.asynccontextmanager
async def fault_smtp(**options: Any) -> AsyncIterator[FaultServer]:
    server = FaultServer(pipelining=True, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def in_process_worker(
    redis_url: str, smtp: FaultServer, namespace: str, **options: Any
) -> AsyncIterator[Worker]:
    settings = WorkerSettings(
        redis_url=redis_url,
        namespace=namespace,
        host="127.0.0.1",
        port=smtp.port,
        tls="none",
        reconcile_every=None,
        **options,
    )
    worker = Worker(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(10):
            while worker._pool is None or worker._tasks is None:  # noqa: ASYNC110 - run() starting
                await asyncio.sleep(0.01)
        yield worker
    finally:
        stop.set()
        async with asyncio.timeout(40):
            await asyncio.gather(task, return_exceptions=True)


async def _commandstats(redis_url: str) -> dict[str, int]:
    client: Any = Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_a_message_whose_send_raises_ends_failed_without_spinning(
    redis_srv: RedisServer,
) -> None:
    """The old worker released such a key (lowering its claim counter) and enqueued it again
    at once: a hot loop of ~200 tasks a second, and the key never got a result."""
    poison = "<m2@hubspot-tx.test>"
    async with (
        fault_smtp() as smtp,
        in_process_worker(redis_srv.url, smtp, "poison", max_attempts=3) as worker,
        DistributedRelay(redis_srv.url, namespace="poison") as relay,
    ):
        pool = worker._pool
        assert pool is not None
        real_send = pool.send
        raised = 0

        async def send(message: Any, *, key: str | None = None, **hooks: Any) -> Outcome:
            nonlocal raised
            if key == poison:
                raised += 1
                raise RuntimeError("injected: the SDK cannot handle this message")
            return await real_send(message, key=key, **hooks)

        pool.send = send  # type: ignore[method-assign]
        before = await _commandstats(redis_srv.url)
        submission = await relay.submit([make_message(i) for i in range(1, 4)])
        started = time.monotonic()
        results = {r.key: r async for r in relay.results(keys=submission.keys, timeout=20)}
        took = time.monotonic() - started
        after = await _commandstats(redis_srv.url)
    bad = results[poison].outcome
    assert bad.category is FailureCategory.CANCELLED
    assert "RuntimeError: injected" in (bad.reply or "")
    assert "3 attempts" in (bad.reply or "")
    assert raised == 3
    assert all(results[k].outcome.ok for k in submission.keys if k != poison)
    assert smtp.stored_ids()[poison] == 0
    assert took < 10  # a final result within seconds (3 attempts, 0.4 + 0.8 s apart)
    # No spin: one task for the three keys, no requeue; a handful of scripts per key.
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print(f"\nRedis commands while the poison message was settled: {delta}")
    assert delta.get("xadd", 0) <= 3 + 2, delta  # 1 task + 3 results (+1 slack)
    assert delta.get("evalsha", 0) + delta.get("eval", 0) <= 40, delta


async def test_results_default_timeout_is_finite_and_raises(redis_srv: RedisServer) -> None:
    import inspect

    async with DistributedRelay(redis_srv.url, namespace="nobody") as relay:
        default = inspect.signature(relay.results).parameters["timeout"].default
        assert default is not None
        assert 0 < default < float("inf")
        submission = await relay.submit([make_message(1)])  # no worker will ever take it
        async with asyncio.timeout(10):
            with pytest.raises(TimeoutError, match="1 key"):
                async for _ in relay.results(keys=submission.keys, timeout=0.5):
                    pass


async def test_the_rate_limit_waits_before_mail_not_inside_data(redis_srv: RedisServer) -> None:
    """A server that gives the body 0.3 s after its 354. At 4 messages/s with no burst, the
    old worker waited for its slot after the 354 (up to ~2 s for the 8th message): the server
    closed those sessions (421) and the messages were retried or failed."""
    async with (
        fault_smtp(data_timeout=0.3) as smtp,
        in_process_worker(
            redis_srv.url, smtp, "paced", rate=4.0, burst=1, connections=8
        ) as _worker,
        DistributedRelay(redis_srv.url, namespace="paced") as relay,
    ):
        submission = await relay.submit([make_message(i) for i in range(8)])
        results = [r async for r in relay.results(keys=submission.keys, timeout=30)]
    assert all(r.outcome.ok for r in results), [r.outcome for r in results]
    assert all(r.outcome.attempts == 1 for r in results), [r.outcome for r in results]
    assert smtp.data_timeouts == 0
    assert smtp.transactions == 8
    assert set(smtp.stored_ids().values()) == {1}


async def test_a_temporary_auth_failure_is_retried_not_fatal(redis_srv: RedisServer) -> None:
    """454 means the server could not check the credentials now. The old worker took any AUTH
    refusal as fatal: it stopped for good and no message was sent."""
    async with (
        fault_smtp(auth=True, auth_454=2) as smtp,
        in_process_worker(
            redis_srv.url,
            smtp,
            "auth454",
            connections=1,
            credentials=SmtpCredentials("user", "secret"),
            allow_plaintext_auth=True,
        ) as worker,
        DistributedRelay(redis_srv.url, namespace="auth454") as relay,
    ):
        submission = await relay.submit([make_message(i) for i in range(3)])
        results = [r async for r in relay.results(keys=submission.keys, timeout=30)]
        assert worker.fatal is None
    assert all(r.outcome.ok for r in results), [r.outcome for r in results]
    assert smtp.auth_attempts >= 3
    assert set(smtp.stored_ids().values()) == {1}
