"""Client-side pacing under HubSpot's rate limits, shared by every call of one client.

HubSpot counts requests per app in a rolling window (``X-HubSpot-RateLimit-Max`` requests per
``X-HubSpot-RateLimit-Interval-Milliseconds``) and per account per day. The pacer learns both
from response headers and delays requests *before* HubSpot would answer 429:

- until the first response tells the limit, one request at a time is sent (a probe), so a burst
  of concurrent calls at start-up cannot overrun an unknown limit;
- then a rolling log of this client's sends admits at most ``Max`` per interval (plus a small
  margin for clock and network jitter); callers wait in FIFO order;
- when HubSpot's ``Remaining`` says the app has used more than this client sent (other processes
  share the limit), the pacer counts the difference as if it had sent it;
- a 429 pauses every caller for the wait HubSpot asked for;
- once the daily remaining reaches 0, calls fail at once with a ``DAILY`` :class:`RateLimitError`
  instead of spending HubSpot's error budget; one call every ``daily_probe_interval`` seconds
  goes through as a probe, so the pacer relearns the count after HubSpot's daily reset.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ._exceptions import RateLimitError

__all__ = ["DEFAULT_ASSUMED_LIMIT", "Pacer", "RateLimit"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A request budget: ``max_requests`` per ``interval`` seconds (and optionally per day)."""

    max_requests: int
    interval: float
    daily: int | None = None

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.interval <= 0:
            raise ValueError("max_requests must be >= 1 and interval > 0")


#: Assumed when HubSpot's responses carry no rate-limit headers: the lowest published tier.
DEFAULT_ASSUMED_LIMIT = RateLimit(max_requests=100, interval=10.0)


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Pacer:
    """Admits requests under a learned or configured :class:`RateLimit`.

    Args:
        limit: a known limit; ``None`` to learn it from HubSpot's headers.
        learn: update the limit from response headers.
        margin: extra fraction of the interval added to the window (jitter between this
            client's clock and HubSpot's).
        daily_probe_interval: while the daily limit is used up, let one request through this
            often (seconds) to learn whether it was reset.
        clock: monotonic seconds (injectable for tests, with ``sleep``).
        sleep: waits that many seconds of ``clock``.
    """

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        learn: bool = True,
        margin: float = 0.05,
        daily_probe_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.learn = learn
        self.margin = margin
        self.daily_probe_interval = daily_probe_interval
        self._clock = clock
        self._sleep = sleep
        self._daily_probe_at = 0.0
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._learned = asyncio.Event()
        if limit is not None:
            self._learned.set()
        self._probing = False
        self._paused_until = 0.0
        self._daily_remaining: int | None = None

    def _window(self, limit: RateLimit) -> float:
        return limit.interval * (1 + self.margin) + 0.02

    async def acquire(self) -> bool:
        """Wait until a request may be sent, then count it as sent.

        Returns True when this request is the probe sent while the limit is unknown: its
        caller must then report how it ended with ``observe(..., probe=True)``.
        """
        if self._daily_remaining is not None and self._daily_remaining <= 0:
            now = self._clock()
            if now >= self._daily_probe_at:
                # Probe: after the daily reset HubSpot answers with a fresh remaining count.
                self._daily_probe_at = now + self.daily_probe_interval
            else:
                raise RateLimitError(
                    "the daily request limit is used up (it resets at midnight in the "
                    "account's time zone); not sent",
                    status=429,
                    policy_name="DAILY",
                    category="RATE_LIMIT",
                )
        async with self._lock:  # FIFO: callers are admitted in arrival order
            while True:
                now = self._clock()
                if self._paused_until > now:
                    await self._sleep(self._paused_until - now)
                    continue
                limit = self.limit
                if limit is None:
                    if not self._probing:
                        self._probing = True
                        self._sent.append(now)
                        return True
                    await self._learned.wait()
                    continue
                window = self._window(limit)
                while self._sent and self._sent[0] <= now - window:
                    self._sent.popleft()
                if len(self._sent) < limit.max_requests:
                    self._sent.append(now)
                    return False
                await self._sleep(self._sent[0] + window - now)

    def observe(
        self, headers: Mapping[str, str] | None, *, status: int = 0, probe: bool = False
    ) -> None:
        """Learn from a response's headers (``None``: the request failed without a response).

        ``probe``: this was the probe; if it did not tell the limit, assume the default. A 429's
        ``Remaining`` is not reconciled: the wait it asks for is applied by :meth:`pause`.
        """
        if headers is not None and self.learn:
            max_requests = _int(headers, "X-HubSpot-RateLimit-Max")
            interval_ms = _int(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
            if max_requests and interval_ms:
                daily = _int(headers, "X-HubSpot-RateLimit-Daily")
                self.limit = limit = RateLimit(max(max_requests, 1), interval_ms / 1000, daily)
                remaining = _int(headers, "X-HubSpot-RateLimit-Remaining")
                if remaining is not None and status != 429:
                    self._reconcile(limit, max_requests, remaining)
            daily_remaining = _int(headers, "X-HubSpot-RateLimit-Daily-Remaining")
            if daily_remaining is not None:
                latched = self._daily_remaining is not None and self._daily_remaining <= 0
                if daily_remaining <= 0 and not latched:  # just used up: probe again later
                    self._daily_probe_at = self._clock() + self.daily_probe_interval
                self._daily_remaining = daily_remaining
        if self.limit is None and probe:
            # The probe ended without telling the limit: assume the lowest published tier.
            self.limit = DEFAULT_ASSUMED_LIMIT
        if self.limit is not None and not self._learned.is_set():
            self._learned.set()

    def _reconcile(self, limit: RateLimit, max_requests: int, remaining: int) -> None:
        """Count requests of other clients of the same app that HubSpot saw in its window."""
        now = self._clock()
        window = self._window(limit)
        ours = sum(1 for t in self._sent if t > now - window)
        theirs = (max_requests - remaining) - ours
        for _ in range(min(theirs, max_requests)):
            self._sent.append(now)

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (after a 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
