"""The sandbox's REST rate limits: a token bucket per interval and a daily count, as HubSpot's
headers and 429 bodies describe them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from .._pacing import RateLimit

__all__ = ["HUBSPOT_PROFESSIONAL", "RestLimits"]

#: HubSpot's Professional / Enterprise per-app limit (190 per 10 s, 1 000 000 a day).
HUBSPOT_PROFESSIONAL = RateLimit(max_requests=190, interval=10.0, daily=1_000_000)


def _policy(interval: float) -> str:
    if interval == 10.0:
        return "TEN_SECONDLY_ROLLING"
    if interval == 1.0:
        return "SECONDLY"
    return "ROLLING"


class RestLimits:
    """A token bucket (``max_requests`` tokens, refilled evenly over ``interval``) and a daily
    counter that resets at midnight UTC. Counts what it allowed and the 429s it served."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._tokens = float(limit.max_requests)
        self._stamp = clock()
        self._day = datetime.now(UTC).date()
        self.used_today = 0
        self.allowed = 0
        self.served_429 = 0

    @property
    def policy_name(self) -> str:
        return _policy(self.limit.interval)

    def _refill(self) -> None:
        now = self.clock()
        rate = self.limit.max_requests / self.limit.interval
        self._tokens = min(self.limit.max_requests, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
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
        if self._tokens < 1:
            self.served_429 += 1
            return self.policy_name
        self._tokens -= 1
        self.used_today += 1
        self.allowed += 1
        return None

    def headers(self, *, oauth: bool) -> dict[str, str]:
        """HubSpot's rate-limit headers (no daily pair for OAuth calls, as HubSpot does)."""
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.limit.interval * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.limit.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(int(self._tokens)),
        }
        if self.limit.daily is not None and not oauth:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.limit.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, self.limit.daily - self.used_today)
            )
        return headers
