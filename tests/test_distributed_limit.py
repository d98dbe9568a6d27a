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
JITTER = 0.25
"""Seconds a message may take from its rate-limit slot to its arrival at the server.

The limiter grants slots exactly ``1 / RATE`` apart (``test_limiter_paces_and_allows_the_burst``
checks the arithmetic against measured call times); the server sees arrivals, each its slot
plus MAIL, RCPT and DATA round trips and the body, on a machine whose event loops (the
sandbox's here, the workers') lag under load. The old bounds (mean within 10 %, any second at
most RATE + BURST) held only when that delay did not vary: under load they failed (a mean of
59.7/s when the first arrival of a 3 s run came 0.4 s after its slot). The bounds below allow
``JITTER`` of it, and still tell a shared limit (50/s) from per-process ones (150/s)."""


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
    slack = RATE * JITTER
    span = (MESSAGES - BURST) / RATE  # of the slots: the burst goes at once
    assert mean <= (MESSAGES - 1) / (span - JITTER)
    # Not far below the rate either: only a loose bound, since a loaded machine may not keep
    # up with 50/s (the limiter only caps; slots asked for late are granted late).
    assert mean >= RATE / 2
    assert busiest <= RATE + BURST + slack
