"""Bulk relay: a bounded pipeline from any (async) iterable to one outcome per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from .._exceptions import SmtpError
from .envelope import MessageInput
from .outcome import FailureCategory, Outcome, OutcomeStatus, RelaySummary

if TYPE_CHECKING:
    from .pool import SmtpPool

__all__ = ["Relay"]

_FATAL_CATEGORY = {"SmtpAuthError": FailureCategory.AUTH, "SmtpTLSError": FailureCategory.TLS}


class Relay:
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
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._pool = pool
        self._messages = messages
        self._concurrency = concurrency
        self._progress = progress
        self.summary = RelaySummary()
        # ``None`` marks the end in both queues.
        self._inbox: asyncio.Queue[tuple[int, MessageInput] | None] = asyncio.Queue(concurrency)
        self._outbox: asyncio.Queue[Outcome | None] = asyncio.Queue(maxsize=2 * concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self._fatal: SmtpError | None = None
        self._input_error: BaseException | None = None
        self._finished = False
        self._stop_reading = False

    # -- the pipeline -------------------------------------------------------------------------
    async def _read_input(self) -> None:
        try:
            if isinstance(self._messages, AsyncIterable):
                async for message in self._messages:
                    if self._fatal is not None or self._stop_reading:
                        break
                    await self._take(message)
            else:
                for message in self._messages:
                    if self._fatal is not None or self._stop_reading:
                        break
                    await self._take(message)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self._input_error = exc
        finally:
            for _ in range(self._concurrency):
                await self._inbox.put(None)

    async def _take(self, message: MessageInput) -> None:
        index = self.summary.consumed
        self.summary.consumed += 1
        await self._inbox.put((index, message))

    async def _work(self) -> None:
        while True:
            item = await self._inbox.get()
            if item is None:
                return
            index, message = item
            if self._fatal is not None:
                outcome = self._not_attempted(index, message)
            else:
                try:
                    outcome = await self._pool._send(message, key=None, index=index)
                except SmtpError as exc:
                    if not exc.fatal:
                        raise
                    if self._fatal is None:
                        self._fatal = exc
                    outcome = self._not_attempted(index, message, exc)
            await self._outbox.put(outcome)

    def _not_attempted(
        self, index: int, message: MessageInput, exc: SmtpError | None = None
    ) -> Outcome:
        fatal = exc or self._fatal
        assert fatal is not None
        key = getattr(message, "key", None)
        outcome = Outcome(
            key=key if isinstance(key, str) else None,
            status=OutcomeStatus.FAILED,
            category=_FATAL_CATEGORY.get(type(fatal).__name__, FailureCategory.AUTH),
            code=fatal.code,
            reply=str(fatal) if exc is not None else f"not attempted: {fatal}",
            attempts=1 if exc is not None else 0,
            index=index,
        )
        return self._pool._report(outcome)

    async def _supervise(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        reader = asyncio.create_task(self._read_input())
        self._tasks.extend([*workers, reader])
        try:
            await asyncio.gather(reader, *workers)
        finally:
            await self._outbox.put(None)

    # -- iteration ----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Outcome]:
        return self

    async def __anext__(self) -> Outcome:
        if self._finished:
            raise StopAsyncIteration
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._supervise()))
        item = await self._outbox.get()
        if item is None:
            self._finished = True
            self.summary.finished = time.monotonic()
            supervisor = self._tasks[0]
            await supervisor  # re-raises a bug in the pipeline, if any
            if self._fatal is not None:
                self._fatal.consumed = self.summary.consumed
                raise self._fatal
            if self._input_error is not None:
                raise self._input_error
            raise StopAsyncIteration
        self.summary.add(item)
        if self._progress is not None:
            self._progress(self.summary)
        return item

    def stop_reading(self) -> None:
        """Take no more input; what was taken still gets its outcomes."""
        self._stop_reading = True

    async def aclose(self) -> None:
        """Stop the relay: take no more input, cancel what is in flight."""
        self._finished = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.summary.finished is None:
            self.summary.finished = time.monotonic()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
