"""The sandbox's rate limits: REST (a token bucket per interval and a daily count, as HubSpot's
headers and 429 bodies describe them) and SMTP (connections and messages per second, answered
with 421 as the rate rises)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .._pacing import RateLimit

__all__ = ["HUBSPOT_PROFESSIONAL", "RestLimits", "SmtpLimits", "SmtpRateLimit", "TokenBucket"]

#: HubSpot's Professional / Enterprise per-app limit (190 per 10 s, 1 000 000 a day).
HUBSPOT_PROFESSIONAL = RateLimit(max_requests=190, interval=10.0, daily=1_000_000)


def _policy(interval: float) -> str:
    if interval == 10.0:
        return "TEN_SECONDLY_ROLLING"
    if interval == 1.0:
        return "SECONDLY"
    return "ROLLING"


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; a take spends one."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = float(capacity)
        self._stamp = clock()

    def refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> bool:
        """Spend a token if there is one."""
        self.refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True, slots=True)
class SmtpRateLimit:
    """What the sandbox's SMTP server lets through before it answers 421.

    Args:
        connections_per_second: new sessions per second (a 421 greeting beyond it).
        messages_per_second: transactions per second (a 421 to MAIL FROM beyond it).
        burst: how many may come at once before the rate applies (default: one second's worth).
    """

    connections_per_second: float | None = None
    messages_per_second: float | None = None
    burst: int | None = None


class SmtpLimits:
    """The buckets behind an :class:`SmtpRateLimit`, and how often each refused."""

    def __init__(self, limit: SmtpRateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Full buckets, counters at zero."""
        limit = self.limit

        def bucket(rate: float | None) -> TokenBucket | None:
            if rate is None:
                return None
            return TokenBucket(rate, limit.burst or max(1.0, rate), self.clock)

        self._connections = bucket(limit.connections_per_second)
        self._messages = bucket(limit.messages_per_second)
        self.refused_connections = 0
        self.refused_messages = 0

    def take_connection(self) -> bool:
        if self._connections is None or self._connections.take():
            return True
        self.refused_connections += 1
        return False

    def take_message(self) -> bool:
        if self._messages is None or self._messages.take():
            return True
        self.refused_messages += 1
        return False


class RestLimits:
    """A token bucket (``max_requests`` tokens, refilled evenly over ``interval``) and a daily
    counter that resets at midnight UTC. Counts what it allowed and the 429s it served."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """A full bucket, a new day, counters at zero."""
        limit = self.limit
        self._bucket = TokenBucket(
            limit.max_requests / limit.interval, limit.max_requests, self.clock
        )
        self._day = datetime.now(UTC).date()
        self.used_today = 0
        self.allowed = 0
        self.served_429 = 0

    @property
    def policy_name(self) -> str:
        return _policy(self.limit.interval)

    def _refill(self) -> None:
        self._bucket.refill()
        today = datetime.now(UTC).date()
        if today != self._day:
            self._day, self.used_today = today, 0

    def take(self) -> str | None:
        """Count one request; ``None`` if allowed, else the policy name it breaks."""
        self._refill()
        daily = self.limit.daily
        if daily is not None and self.used_today >= daily:
            self.served_429 += 1
            return "DAILY"
        if not self._bucket.take():
            self.served_429 += 1
            return self.policy_name
        self.used_today += 1
        self.allowed += 1
        return None

    def headers(self, *, oauth: bool) -> dict[str, str]:
        """HubSpot's rate-limit headers (no daily pair for OAuth calls, as HubSpot does)."""
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.limit.interval * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.limit.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(int(self._bucket.tokens)),
        }
        if self.limit.daily is not None and not oauth:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.limit.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.limit.daily - self.used_today)
            )
        return headers
