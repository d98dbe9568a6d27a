"""Small configuration objects with their defaults (timeouts, retries)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_RETRY", "DEFAULT_TIMEOUT", "RetryPolicy", "Timeout"]

DEFAULT_BASE_URL = "https://api.hubapi.com"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-attempt time limits of a REST call, in seconds (``None`` = no limit).

    Attributes:
        total: the whole attempt: connect, send, wait, read.
        connect: opening the connection (TCP + TLS), including waiting for a free one.
    """

    total: float | None = 30.0
    connect: float | None = 10.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How REST calls are retried. Only calls that are safe to repeat are retried at all.

    Attributes:
        max_retries: retries after the first attempt (0 = never retry).
        initial_backoff: the first backoff, doubled per retry.
        max_backoff: the cap of one exponential backoff.
        max_retry_after: the longest server-requested wait (``Retry-After`` or HubSpot's
            rate-limit interval) that is honoured; a longer one is raised at once.
        max_elapsed: the time budget of one call, retries and waits included.
    """

    max_retries: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    max_elapsed: float = 120.0

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_retries=0)

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0-based): exponential, capped, jittered."""
        base = min(self.initial_backoff * (2.0**retry), self.max_backoff)
        # Jitter spreads retries of many clients; never below half of the base wait.
        return base * (0.5 + random.random() / 2)


DEFAULT_TIMEOUT = Timeout()
DEFAULT_RETRY = RetryPolicy()
