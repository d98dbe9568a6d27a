"""Bulk relay: the bounded pipeline from any (async) iterable to one outcome per message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, NoReturn

from .._exceptions import PoolClosedError, SmtpError, SmtpTLSError
from .._pipeline import Pipeline
from .envelope import Envelope, MessageInput
from .outcome import FailureCategory, Outcome, OutcomeStatus, RelaySummary

if TYPE_CHECKING:
    from .pool import SmtpPool

__all__ = ["Relay"]


class Relay(Pipeline[MessageInput, Outcome]):
    """The running relay returned by :meth:`SmtpPool.send_many`.

    Iterate it (``async for outcome in relay``) to drive it; each message taken from the input
    yields exactly one :class:`Outcome`, in completion order. ``summary`` counts as it goes.
    Leaving the loop early: use ``async with`` or call :meth:`aclose`. Messages it had taken
    and not finished then get their outcomes through the pool's ``on_outcome`` hook
    (``cancelled`` if not sent, ``delivery_unknown`` if cut after the final "."), as do those
    of a relay still running when its pool is closed.

    Memory is bounded: at most ``concurrency`` messages are in flight, ``concurrency`` more
    wait taken from an async iterable (none from a plain one), and ``2 * concurrency`` outcomes
    wait to be read.
    """

    def __init__(
        self,
        pool: SmtpPool,
        messages: Iterable[MessageInput] | AsyncIterable[MessageInput],
        concurrency: int,
        progress: Callable[[RelaySummary], None] | None,
    ) -> None:
        self._pool = pool
        self._progress = progress
        self.summary = RelaySummary()
        super().__init__(
            messages,
            lambda index, message: pool._send(message, key=None, index=index, relayed=self),
            concurrency=concurrency,
            fatal=lambda exc: isinstance(exc, SmtpError) and exc.fatal,
            abandoned=self._abandoned_outcome,
            closed=lambda: PoolClosedError("the relay was closed before this message was sent"),
            on_result=self._count,
        )

    async def _finish(self) -> NoReturn:
        try:
            await super()._finish()
        except SmtpError as exc:
            if exc is self.fatal:
                exc.consumed = self.consumed
            raise
        except StopAsyncIteration:
            stopped = self._stop_working
            if stopped is not None and not self.exhausted:
                # Its pool closed before the input ran out: the end is no "all sent".
                self._stop_working = None
                raise stopped from None
            raise

    def _count(self, outcome: Outcome) -> None:
        self.summary.consumed = self.consumed
        self.summary.add(outcome)
        if self._progress is not None:
            self._progress(self.summary)

    def _done(self) -> None:
        self.summary.consumed = self.consumed
        self.summary.finished = time.monotonic()

    def _abandoned_outcome(
        self, index: int, message: MessageInput, exc: Exception, attempted: bool
    ) -> Outcome:
        if isinstance(exc, PoolClosedError):
            category = FailureCategory.CANCELLED
        elif isinstance(exc, SmtpTLSError):
            category = FailureCategory.TLS
        else:
            category = FailureCategory.AUTH
        return self._pool._report(
            Outcome(
                key=message.key if isinstance(message, Envelope) else None,
                status=OutcomeStatus.FAILED,
                category=category,  # attempts=0 tells the ones never tried
                code=exc.code if isinstance(exc, SmtpError) and attempted else None,
                reply=str(exc) if attempted else f"not sent: {exc}",
                attempts=1 if attempted else 0,
                index=index,
            )
        )
