"""A bounded concurrent map from an (async) iterable to one result per item.

The engine under both bulk APIs (the SMTP relay and bulk single-send): it reads its input lazily,
keeps at most ``concurrency`` items in work, ``concurrency`` more taken and waiting, and
``2 * concurrency`` results waiting to be read, and yields results in completion order. A fatal
error stops it reading; every item it took still gets a result; then the error is raised once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Generic, Self, TypeVar

__all__ = ["Pipeline"]

In = TypeVar("In")
Out = TypeVar("Out")


class Pipeline(Generic[In, Out]):
    """Iterate it (``async for result in pipeline``) to drive it.

    Args:
        items: the input, read lazily.
        work: produces the result of item number ``index``.
        concurrency: items in work at once.
        fatal: decides whether an exception raised by ``work`` stops the pipeline (others
            propagate as bugs).
        abandoned: the result of an item taken but not worked because of the fatal error (or
            the one whose work raised it).
        on_result: called with each result as it is read.
    """

    def __init__(
        self,
        items: Iterable[In] | AsyncIterable[In],
        work: Callable[[int, In], Awaitable[Out]],
        *,
        concurrency: int,
        fatal: Callable[[Exception], bool],
        abandoned: Callable[[int, In, Exception, bool], Out],
        on_result: Callable[[Out], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._items = items
        self._work = work
        self._concurrency = concurrency
        self._is_fatal = fatal
        self._abandoned = abandoned
        self._on_result = on_result
        self.consumed = 0
        # ``None`` marks the end in both queues.
        self._inbox: asyncio.Queue[tuple[int, In] | None] = asyncio.Queue(concurrency)
        self._outbox: asyncio.Queue[Out | None] = asyncio.Queue(2 * concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self.fatal: Exception | None = None
        self._input_error: Exception | None = None
        self._finished = False
        self._stop_reading = False

    async def _read_input(self) -> None:
        try:
            if isinstance(self._items, AsyncIterable):
                async for item in self._items:
                    if self._stopped():
                        break
                    await self._take(item)
            else:
                for item in self._items:
                    if self._stopped():
                        break
                    await self._take(item)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self._input_error = exc
        finally:
            for _ in range(self._concurrency):
                await self._inbox.put(None)

    def _stopped(self) -> bool:
        return self.fatal is not None or self._stop_reading

    async def _take(self, item: In) -> None:
        index = self.consumed
        self.consumed += 1
        await self._inbox.put((index, item))

    async def _worker(self) -> None:
        while (entry := await self._inbox.get()) is not None:
            index, item = entry
            if self.fatal is not None:
                result = self._abandoned(index, item, self.fatal, False)
            else:
                try:
                    result = await self._work(index, item)
                except Exception as exc:
                    if not self._is_fatal(exc):
                        raise
                    if self.fatal is None:
                        self.fatal = exc
                    result = self._abandoned(index, item, exc, True)
            await self._outbox.put(result)

    async def _supervise(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self._concurrency)]
        reader = asyncio.create_task(self._read_input())
        self._tasks.extend([*workers, reader])
        try:
            await asyncio.gather(reader, *workers)
        finally:
            await self._outbox.put(None)

    def __aiter__(self) -> AsyncIterator[Out]:
        return self

    async def __anext__(self) -> Out:
        if self._finished:
            raise StopAsyncIteration
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._supervise()))
        result = await self._outbox.get()
        if result is None:
            self._finished = True
            self._done()
            await self._tasks[0]  # re-raises a bug in the pipeline, if any
            if self.fatal is not None:
                raise self.fatal
            if self._input_error is not None:
                raise self._input_error
            raise StopAsyncIteration
        if self._on_result is not None:
            self._on_result(result)
        return result

    def _done(self) -> None:
        """Called once when the last result has been read (or the pipeline closed)."""

    def stop_reading(self) -> None:
        """Take no more input; what was taken still gets its results."""
        self._stop_reading = True

    async def aclose(self) -> None:
        """Stop: take no more input, cancel what is in work."""
        if not self._finished:
            self._finished = True
            self._done()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
