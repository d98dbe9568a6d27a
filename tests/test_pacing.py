"""Pacing under HubSpot's rate limits: learned from headers, shared by concurrent calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from hubspot_tx import HubSpot, RateLimit, RateLimitError
from hubspot_tx._pacing import DEFAULT_ASSUMED_LIMIT, Pacer
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY

ODD = RateLimit(max_requests=37, interval=2.0)


class SharedClock:
    """One clock for the pacer and the sandbox's limiter. It moves only when the pacer waits,
    and only once every request the pacer let through has reached the limiter: on it a request
    arrives when it was let through, however loaded the machine (in real life the pacer's
    margin covers that transit time; here the test needs no assumption about it)."""

    def __init__(self, arrived: Callable[[], int]) -> None:
        self.now = 1000.0
        self.admitted = 0
        self.arrived = arrived

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        async with asyncio.timeout(60):
            while self.arrived() < self.admitted:  # noqa: ASYNC110 - counters, no event
                await asyncio.sleep(0.001)
        self.now += seconds
        await asyncio.sleep(0)


class CountingPacer(Pacer):
    """The client's pacer on the shared clock, counting the requests it lets through."""

    def __init__(self, clock: SharedClock) -> None:
        super().__init__(clock=clock, sleep=clock.sleep)
        self.shared = clock

    async def acquire(self) -> bool:
        probe = await super().acquire()
        self.shared.admitted += 1
        return probe


async def test_200_concurrent_calls_under_an_untold_odd_limit() -> None:
    async with Sandbox(rate_limit=ODD) as sb:
        limits = sb.limits
        assert limits is not None
        clock = SharedClock(lambda: limits.allowed + limits.served_429)
        limits.clock = clock
        limits.reset()
        async with sb.client(retry=FAST_RETRY) as hs:
            hs._http.pacer = CountingPacer(clock)
            token = await hs.smtp_tokens.create(campaign_name="paced")
            started = clock.now
            results = await asyncio.gather(*(hs.smtp_tokens.get(token.id) for _ in range(200)))
        assert all(r.id == token.id for r in results)
        assert limits.served_429 == 0  # the limit, learned from the headers, was never crossed
        assert clock.admitted == limits.allowed == 201
        # 201 calls at 37 per 2 s: a full bucket, then 18.5 a second.
        assert clock.now - started >= (201 - 37) / 18.5


async def test_without_pacing_the_same_burst_meets_429s() -> None:
    async with Sandbox(rate_limit=ODD) as sb:
        assert sb.limits is not None
        # The sandbox's bucket on a clock that stands still: the burst meets exactly the 37
        # tokens, however long a loaded machine takes to send it (a moving clock refills it).
        sb.limits.clock = lambda: 1000.0
        sb.limits.reset()
        async with sb.client(retry=None, rate_limit=None) as hs:
            outcomes = await asyncio.gather(
                *(hs.smtp_tokens.list() for _ in range(100)), return_exceptions=True
            )
        limited = [o for o in outcomes if isinstance(o, RateLimitError)]
        assert len(limited) == 100 - 37  # what pacing prevents
        assert sb.limits.allowed == 37
        assert limited[0].policy_name == "ROLLING"
        assert limited[0].retry_after == 2.0


async def test_explicit_limit_paces_from_the_first_call() -> None:
    async with Sandbox(rate_limit=None) as sb, sb.client(rate_limit=RateLimit(5, 0.5)) as hs:
        started = time.monotonic()
        await asyncio.gather(*(hs.smtp_tokens.list() for _ in range(11)))
        elapsed = time.monotonic() - started
    assert elapsed >= 2 * 0.5  # 11 calls, 5 per window: two full windows waited


async def test_the_daily_limit_fails_fast_once_used_up() -> None:
    sb = Sandbox(rate_limit=RateLimit(100, 1.0, daily=3))
    async with sb, sb.client(retry=FAST_RETRY) as hs:
        for _ in range(3):
            await hs.smtp_tokens.list()
        with pytest.raises(RateLimitError) as info:
            await hs.smtp_tokens.list()
        assert info.value.is_daily
        served = len(sb.requests)
        with pytest.raises(RateLimitError, match="daily"):
            await hs.smtp_tokens.list()  # raised by the client: nothing sent
        assert len(sb.requests) == served


async def test_unknown_limit_probes_with_one_request_first() -> None:
    pacer = Pacer()
    assert await pacer.acquire() is True  # the probe
    second = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0.05)
    assert not second.done()  # everyone else waits for what the probe learns
    pacer.observe(
        {
            "X-HubSpot-RateLimit-Max": "10",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
            "X-HubSpot-RateLimit-Remaining": "9",
        },
        probe=True,
    )
    assert await asyncio.wait_for(second, 1) is False
    assert pacer.limit == RateLimit(10, 1.0)


async def test_probe_without_headers_assumes_the_lowest_tier() -> None:
    pacer = Pacer()
    assert await pacer.acquire()
    pacer.observe(None, probe=True)
    assert pacer.limit == DEFAULT_ASSUMED_LIMIT


async def test_other_clients_use_of_the_budget_slows_this_one() -> None:
    pacer = Pacer(RateLimit(10, 0.5))
    await pacer.acquire()
    # HubSpot says only 2 remain although this client sent 1: 7 went to someone else.
    pacer.observe(
        {
            "X-HubSpot-RateLimit-Max": "10",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "500",
            "X-HubSpot-RateLimit-Remaining": "2",
        },
        status=200,
    )
    started = time.monotonic()
    for _ in range(3):
        await pacer.acquire()
    assert time.monotonic() - started >= 0.45  # the third had to wait for the window


async def test_a_429_pauses_every_caller() -> None:
    pacer = Pacer(RateLimit(100, 1.0))
    pacer.pause(0.3)
    started = time.monotonic()
    await asyncio.gather(pacer.acquire(), pacer.acquire())
    assert time.monotonic() - started >= 0.29


def test_rate_limit_validation() -> None:
    with pytest.raises(ValueError, match="max_requests"):
        RateLimit(0, 1.0)


async def test_client_option_off_means_no_pacer(sandbox: Sandbox) -> None:
    hs = HubSpot("t", base_url=sandbox.base_url, rate_limit=None)
    assert hs._http.pacer is None
    await hs.aclose()
