"""A bounded concurrent map from an (async) iterable to one result per item.

The engine under both bulk APIs (the SMTP relay and bulk single-send): it reads its input lazily,
keeps at most ``concurrency`` items in work (and, from an async iterable, ``concurrency`` more
taken and waiting; a plain iterable is read by a worker when it is free) and ``2 *
concurrency`` results waiting to be read, and yields results in completion order.

Every item it takes gets exactly one result: a fatal error stops it reading (it never pulls an
item it will not take), the items already taken still get results, then the error is raised
once. Closing it early gives each taken, unfinished item an *abandoned* result, which the owner
reports through its own hook (the reader of the pipeline is gone by then).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, NoReturn, Self, TypeVar, cast

from ._logging import get_logger

__all__ = ["Pipeline"]

logger = get_logger("hubspot_tx.pipeline")
CLOSE_TIMEOUT = 30.0
"""Seconds ``aclose`` waits for the cancelled work to end."""

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")


class _Outbox(Generic[T]):
    """The results waiting to be read: ``asyncio.Queue``'s bounded put and get, minus its
    layers (a result handed on from a read costs a reader's wake-up and little more)."""

    __slots__ = ("_getters", "_loop", "_putters", "items", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def full(self) -> bool:
        return len(self.items) >= self.maxsize

    def put_nowait(self, item: T) -> None:
        """Add ``item`` (room or not: the caller checked, or it is an end marker)."""
        self.items.append(item)
        if self._getters:
            self._wake(self._getters)

    async def put(self, item: T) -> None:
        while len(self.items) >= self.maxsize:
            await self._wait(self._putters)
        self.put_nowait(item)

    def get_nowait(self) -> T:
        item = self.items.popleft()
        if self._putters:
            self._wake(self._putters)
        return item

    def getter(self) -> asyncio.Future[None]:
        """A future, in line for the next item: await it (then :meth:`give_up` if that
        raised), and take the item if there is one by then."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        waiter = self._loop.create_future()
        self._getters.append(waiter)
        return waiter

    def give_up(self, waiter: asyncio.Future[None]) -> None:
        """The awaiter of a :meth:`getter` was cancelled: a wake-up it took goes on."""
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._getters.remove(waiter)
        if self.items:
            self._wake(self._getters)

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _wait(self, waiters: deque[asyncio.Future[None]]) -> None:  # for putters
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        waiter = self._loop.create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:  # cancelled: a wake-up it took goes to the next in line
            waiter.cancel()
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if len(self.items) < self.maxsize:
                self._wake(waiters)
            raise


class Pipeline(Generic[In, Out]):
    """Iterate it (``async for result in pipeline``) to drive it.

    Args:
        items: the input, read lazily.
        work: produces the result of item number ``index``.
        concurrency: items in work at once.
        fatal: whether an exception raised by ``work`` stops the pipeline (any other
            exception is a bug and propagates).
        abandoned: the result of a taken item that will not be worked (or whose work raised
            the fatal error, ``attempted=True``), given the reason.
        closed: the exception the reader gets when the pipeline was closed under it.
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
        closed: Callable[[], Exception],
        on_result: Callable[[Out], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._items = items
        self._work = work
        self._concurrency = concurrency
        self._is_fatal = fatal
        self._abandoned = abandoned
        self._closed_error = closed
        self._on_result = on_result
        self.consumed = 0
        self.exhausted = False  # the whole input was read
        self._inbox: asyncio.Queue[tuple[int, In] | None] = asyncio.Queue(concurrency)  # None: end
        self._outbox: _Outbox[Out | None] = _Outbox(2 * concurrency)  # None: end
        self._putting: tuple[int, In] | None = None  # taken, waiting for room in the inbox
        # A plain iterable is read by the workers themselves, an item when one is free (no
        # reader task to wake per item); an async one by a reader task, through the inbox.
        self._iterator: Iterator[In] | None = None  # set when the pipeline starts
        self._supervisor: asyncio.Task[None] | None = None
        self.fatal: Exception | None = None
        self._input_error: Exception | None = None
        self._finished = False
        self._closed = False
        self._stop_reading = False
        self._stop_working: Exception | None = None

    # -- the pipeline -------------------------------------------------------------------------
    def _reading(self) -> bool:
        return self.fatal is None and not self._stop_reading and self._stop_working is None

    async def _read_input(self) -> None:
        try:
            # Check before pulling: an item pulled is an item taken.
            source = aiter(cast(AsyncIterable[In], self._items))
            while self._reading():
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    self.exhausted = True
                    break
                await self._take(item)
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self._input_error = exc
        # One end marker per worker. (If a worker died of a bug, the task group has cancelled
        # this reader already, so these puts cannot block forever.)
        for _ in range(self._concurrency):
            await self._inbox.put(None)

    def _pull(self, iterator: Iterator[In]) -> tuple[int, In] | None:
        """The next item of a plain iterable, taken (``None``: the end, or stop reading)."""
        if not self._reading():
            return None
        try:
            item = next(iterator)
        except StopIteration:
            self.exhausted = self._stop_reading = True
            return None
        except Exception as exc:  # the caller's iterator failed: finish what was taken
            self._input_error = exc
            self._stop_reading = True
            return None
        index = self.consumed
        self.consumed += 1
        return index, item

    async def _take(self, item: In) -> None:
        entry = (self.consumed, item)
        self.consumed += 1
        self._putting = entry
        await self._inbox.put(entry)
        self._putting = None

    async def _worker(self) -> None:
        inbox, outbox, iterator = self._inbox, self._outbox, self._iterator
        while True:
            # get_nowait / put_nowait when they can: no coroutine per item for the common case.
            if iterator is not None:
                entry = self._pull(iterator)
            else:
                entry = inbox.get_nowait() if inbox.qsize() else await inbox.get()
            if entry is None:
                break
            index, item = entry
            reason = self.fatal or self._stop_working
            if reason is not None:
                result = self._abandoned(index, item, reason, False)
            else:
                try:
                    result = await self._work(index, item)
                except Exception as exc:
                    if not self._is_fatal(exc):
                        raise
                    result = self.fail(index, item, exc)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The work swallowed this task's cancellation (``asyncio.wait_for`` on 3.11
                # can, in aiosmtplib's reads, when a reply lands at that moment): honour it, or
                # this worker would wait on the inbox for good and ``aclose`` with it.
                if not outbox.full():
                    outbox.put_nowait(result)
                raise asyncio.CancelledError
            if len(outbox.items) >= outbox.maxsize:
                await outbox.put(result)
            else:
                outbox.put_nowait(result)

    async def _supervise(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:  # a bug in one task stops them all
                if isinstance(self._items, AsyncIterable):
                    group.create_task(self._read_input())
                else:
                    try:
                        self._iterator = iter(self._items)
                    except Exception as exc:  # not iterable after all: nothing was taken
                        self._input_error = exc
                        self._iterator = iter(())
                for _ in range(self._concurrency):
                    group.create_task(self._worker())
        except BaseExceptionGroup as group_error:
            if len(group_error.exceptions) == 1:
                raise group_error.exceptions[0] from None
            raise
        finally:
            if not self._closed:
                await self._outbox.put(None)

    # -- for work that goes on from callbacks, without its worker task ------------------------
    def take_now(self) -> tuple[int, In] | None:
        """The next item, taken now (it must get a result, through :meth:`emit` or from the
        work that took it), or ``None`` if none can be without waiting (or none may be)."""
        if self._iterator is not None:
            return self._pull(self._iterator)
        inbox = self._inbox
        if not self._reading() or not inbox.qsize():
            return None
        entry = inbox.get_nowait()
        if entry is None:  # the end markers come last: this one goes back, for a worker
            inbox.put_nowait(entry)
        return entry

    def has_room(self, count: int) -> bool:
        """Whether :meth:`emit` may be called ``count`` times now."""
        outbox = self._outbox
        return outbox.maxsize - len(outbox.items) >= count

    def emit(self, result: Out) -> None:
        """Hand the result of an item taken by :meth:`take_now` to the reader (after
        :meth:`has_room`)."""
        self._outbox.put_nowait(result)

    def fail(self, index: int, item: In, exc: Exception) -> Out:
        """The work of a taken item raised the fatal error ``exc``: the pipeline stops taking
        input, and this is the item's result."""
        if self.fatal is None:
            self.fatal = exc
        return self._abandoned(index, item, exc, True)

    async def put(self, result: Out) -> None:
        """:meth:`emit`, waiting for room."""
        await self._outbox.put(result)

    # -- iteration ----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Out]:
        return self

    async def __anext__(self) -> Out:
        if self._closed:
            raise self._closed_error()
        if self._finished:
            raise StopAsyncIteration
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())
        outbox = self._outbox
        while not outbox.items:  # (no coroutine per wait: one wake-up per result, or fewer)
            waiter = outbox.getter()
            try:
                await waiter
            except BaseException:
                outbox.give_up(waiter)
                raise
        result = outbox.get_nowait()
        if self._closed:
            raise self._closed_error()
        if result is None:
            await self._finish()
        if self._on_result is not None:
            self._on_result(result)
        return result

    async def _finish(self) -> NoReturn:
        """The end marker was read: raise ``StopAsyncIteration``, or the error that ended it."""
        self._finished = True
        self._done()
        if self._supervisor is not None:
            await self._supervisor  # re-raises a bug in the pipeline, if any
        if self.fatal is not None:
            raise self.fatal
        if self._input_error is not None:
            raise self._input_error
        raise StopAsyncIteration

    def _done(self) -> None:
        """Called once when the last result has been read (or the pipeline closed)."""

    def stop_reading(self) -> None:
        """Take no more input; what was taken still gets its results."""
        self._stop_reading = True

    def stop_working(self, reason: Exception) -> None:
        """Take no more input and start no more work: what is taken and not started is
        abandoned for ``reason``; work in progress finishes."""
        self._stop_working = reason

    async def aclose(self) -> None:
        """Stop now. Work in progress is cancelled (its owner reports how it ended); taken items
        not started are abandoned. A reader still iterating gets the ``closed`` error."""
        if self._closed:
            return
        self._closed = True
        reason = self._closed_error()
        self._stop_working = reason
        if self._supervisor is not None:
            self._supervisor.cancel()
            # Bounded: a task that lost its cancellation deeper down must not hang the close.
            _, pending = await asyncio.wait([self._supervisor], timeout=CLOSE_TIMEOUT)
            if pending:
                logger.warning(
                    "a bulk send's tasks did not stop within %g s of being cancelled: left behind",
                    CLOSE_TIMEOUT,
                )
            elif not self._supervisor.cancelled():
                self._supervisor.exception()  # retrieved: it was cancelled, its error is moot
        leftovers = [self._putting] if self._putting is not None else []
        while not self._inbox.empty():
            entry = self._inbox.get_nowait()
            if entry is not None and entry is not self._putting:
                leftovers.append(entry)
        for index, item in leftovers:
            self._abandoned(index, item, reason, False)
        if not self._finished:
            self._finished = True
            self._done()
        self._outbox.items.clear()  # results nobody will read (their owner reported them)
        self._outbox.put_nowait(None)  # wake a reader waiting for the next result

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
