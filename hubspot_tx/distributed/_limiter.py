"""A rate limit shared by every worker: GCRA (the generic cell rate algorithm) in one Lua script.

The whole state is one number in Redis, the *theoretical arrival time* (TAT) of the next
message. A worker reserves a slot in one round trip and is told how long to wait for it, so
workers never poll; the clock is Redis's (``TIME``), so workers' clocks need not agree. Over
any window of ``w`` seconds at most ``rate * w + burst`` slots are granted.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RateLimiter"]

# KEYS: the TAT. ARGV: interval_us, tolerance_us, max_wait_us.
# -> the wait in microseconds before the reserved slot (>= 0), or -(wait) without reserving
#    when the wait would be over max_wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return -wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait
"""


class RateLimiter:
    """At most ``rate`` messages per second across every process using ``key``, with bursts of
    up to ``burst`` messages.

    Example:
        >>> limiter = RateLimiter(redis, "hstx:{default}:limit", rate=50, burst=5)
        >>> await limiter.acquire()  # returns when this message's slot has come

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        key: the Redis key holding the limiter's state (shared by all its users).
        rate: messages per second.
        burst: messages that may go at once after a quiet spell (at least 1).
        max_wait: the longest wait reserved at once; a longer one is waited out unreserved
            and asked again (bounds how far ahead reservations reach).
    """

    def __init__(
        self, redis: Redis, key: str, *, rate: float, burst: int = 1, max_wait: float = 30.0
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.redis = redis
        self.key = key
        self.rate = rate
        self.burst = burst
        self._interval_us = max(1, round(1_000_000 / rate))
        self._tolerance_us = (burst - 1) * self._interval_us
        self._max_wait_us = int(max_wait * 1_000_000)
        self._script = redis.register_script(_GCRA)

    async def reserve(self) -> float:
        """Reserve the next slot: seconds to wait for it (``< 0``: none reserved, wait that
        long and ask again)."""
        args = [self._interval_us, self._tolerance_us, self._max_wait_us]
        wait_us = int(await self._script(keys=[self.key], args=args))
        return wait_us / 1_000_000

    async def acquire(self) -> None:
        """Wait for a slot (one Redis round trip, then a local sleep)."""
        while True:
            wait = await self.reserve()
            if wait >= 0:
                if wait > 0:
                    await asyncio.sleep(wait)
                return
            await asyncio.sleep(-wait - self._max_wait_us / 1_000_000)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.rate:g}/s burst={self.burst} key={self.key!r}>"
