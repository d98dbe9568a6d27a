"""Cursor paging: an object that is both awaitable (one page) and async-iterable (every item)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from ._exceptions import PaginationError

__all__ = ["AsyncPager", "CursorPage"]

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")
P = TypeVar("P", bound="CursorPage[Any]")


class CursorPage(Protocol[T_co]):
    """A page of results with the cursor of the next one (``None`` on the last page)."""

    @property
    def results(self) -> Sequence[T_co]: ...  # pragma: no cover

    @property
    def after(self) -> str | None: ...  # pragma: no cover


class AsyncPager(Generic[T, P]):
    """The result of a list call.

    - ``await pager`` fetches one page (from ``after`` if one was given) with its ``after``;
    - ``async for item in pager`` walks every item of every following page;
    - ``async for page in pager.pages()`` walks the pages.

    A cursor that repeats one already seen ends the walk with :class:`PaginationError`
    instead of looping forever.
    """

    __slots__ = ("_after", "_fetch")

    def __init__(self, fetch: Callable[[str | None], Awaitable[P]], after: str | None) -> None:
        self._fetch = fetch
        self._after = after

    def __await__(self) -> Generator[Any, None, P]:
        return self._fetch(self._after).__await__()

    async def pages(self) -> AsyncIterator[P]:
        """Yield every page, starting from the pager's ``after``."""
        after = self._after
        seen: set[str] = set()
        while True:
            page = await self._fetch(after)
            yield page
            nxt = page.after
            if not nxt:
                return
            if nxt == after or nxt in seen:
                raise PaginationError(
                    f"the list cursor did not advance (after page {len(seen) + 1})"
                )
            seen.add(nxt)
            after = nxt

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.results:
                yield item
