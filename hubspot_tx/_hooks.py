"""Request/response hooks: what each REST attempt did, for metrics and tracing exporters.

Hooks receive plain values (method, path, status, duration, attempt, correlation id), never a
header, a body or a credential. A hook may be a function or a coroutine function; one that
raises is logged and ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ._logging import get_logger

__all__ = ["Hooks", "RequestEvent", "ResponseEvent"]

logger = get_logger("hubspot_tx.hooks")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """An attempt is about to be sent (called before it waits for the pacer, if any)."""

    method: str
    path: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """An attempt finished: with a response (``status``) or without (``error``).

    Attributes:
        duration: seconds from sending to the end of the body.
        correlation_id: HubSpot's ``X-HubSpot-Correlation-Id`` (or the error body's).
        error: the exception class name when there was no response.
        rate_limit_remaining: ``X-HubSpot-RateLimit-Remaining``, when given.
        paced: seconds this attempt waited for the rate limiter before being sent.
    """

    method: str
    path: str
    attempt: int
    status: int | None
    duration: float
    correlation_id: str | None = None
    error: str | None = None
    rate_limit_remaining: int | None = None
    paced: float = 0.0


@dataclass(frozen=True, slots=True)
class Hooks:
    """Callables run around every REST attempt (retries included)."""

    on_request: Sequence[Callable[[RequestEvent], Awaitable[None] | None]] = field(default=())
    on_response: Sequence[Callable[[ResponseEvent], Awaitable[None] | None]] = field(default=())


async def run_hooks(hooks: Sequence[Callable[[E], Awaitable[None] | None]], event: E) -> None:
    for hook in hooks:
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("hook %r failed", hook)
