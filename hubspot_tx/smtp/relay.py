"""Bulk relay: the bounded pipeline from any (async) iterable to one outcome per message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING

from .._exceptions import SmtpError, SmtpTLSError
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
    Leaving the loop early: use ``async with`` or call :meth:`aclose`, which stops it (messages
    in flight get their outcomes through the pool's ``on_outcome`` hook).

    Memory is bounded: at most ``concurrency`` messages are in flight, ``concurrency`` more
    wait taken from the input, and ``2 * concurrency`` outcomes wait to be read.
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
            lambda index, message: pool._send(message, key=None, index=index),
            concurrency=concurrency,
            fatal=lambda exc: isinstance(exc, SmtpError) and exc.fatal,
            abandoned=self._abandoned_outcome,
            on_result=self._count,
        )

    async def __anext__(self) -> Outcome:
        try:
            return await super().__anext__()
        except SmtpError as exc:
            if exc is self.fatal:
                exc.consumed = self.consumed
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
        category = FailureCategory.TLS if isinstance(exc, SmtpTLSError) else FailureCategory.AUTH
        return self._pool._report(
            Outcome(
                key=message.key if isinstance(message, Envelope) else None,
                status=OutcomeStatus.FAILED,
                category=category,  # attempts=0 tells the ones never tried
                code=exc.code if isinstance(exc, SmtpError) else None,
                reply=str(exc) if attempted else f"not attempted: {exc}",
                attempts=1 if attempted else 0,
                index=index,
            )
        )
