"""The shared rate limit: N messages/s across 1 and 3 worker processes, measured at the server."""

from __future__ import annotations

import bisect
from pathlib import Path

import pytest

from hubspot_tx.distributed import DistributedRelay, RedisServer
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message
from .distributed_support import redis_srv
from .test_distributed_kill import workers

__all__ = ["redis_srv"]

RATE = 50
BURST = 5
MESSAGES = 150  # 3 s at 50/s


def max_window(times: list[float], width: float = 1.0) -> int:
    """The most arrivals in any window ``[t, t + width)`` starting at an arrival."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + width) - i for i, t in enumerate(times))


def test_max_window() -> None:
    assert max_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5)
    assert max_window([0.0, 2.0]) == 1


@pytest.mark.parametrize("processes", [1, 3])
async def test_rate_is_shared_by_every_worker(
    redis_srv: RedisServer, tmp_path: Path, processes: int
) -> None:
    namespace = f"limit{processes}"
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="limit")
        options = ["--processes", str(processes), "--namespace", namespace]
        options += ["--rate", str(RATE), "--burst", str(BURST), "--connections", "5"]
        async with (
            DistributedRelay(redis_srv.url, namespace=namespace, batch_size=10) as relay,
            workers(sb, token, redis_srv.url, tmp_path / "w.log", *options) as (_, pids),
        ):
            assert len(pids) == processes
            submission = await relay.submit(make_message(i) for i in range(MESSAGES))
            results = [r async for r in relay.results(keys=submission.keys, timeout=30)]
    assert all(r.outcome.ok for r in results)
    assert len(results) == MESSAGES
    times = sorted(m.received_at for m in sb.outbox())
    assert len(times) == MESSAGES
    mean = (len(times) - 1) / (times[-1] - times[0])
    busiest = max_window(times)
    print(
        f"\nlimit {RATE}/s burst {BURST}, {processes} worker(s): "
        f"mean {mean:.1f}/s, max 1 s window {busiest}"
    )
    assert abs(mean - RATE) <= 0.1 * RATE
    assert busiest <= RATE + BURST
