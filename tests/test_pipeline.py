"""The bulk engine (``hubspot_tx._pipeline``) when its work misbehaves under cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hubspot_tx._pipeline import Pipeline


class Closed(Exception):
    pass


async def test_a_work_that_swallows_its_cancellation_does_not_hang_aclose() -> None:
    """``asyncio.wait_for`` on Python 3.11 can drop a cancellation when the awaited reply lands
    at that moment (aiosmtplib reads every reply so): the worker then went back to waiting on
    its inbox, and ``Relay.aclose()`` waited for it for good (found by a fault soak)."""
    started = asyncio.Event()
    never = asyncio.Event()

    async def live_source() -> AsyncIterator[int]:
        yield 0
        yield 1
        async with asyncio.timeout(60):  # a live input with nothing more for now
            await never.wait()

    async def work(index: int, item: int) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "done anyway"  # the cancellation is lost here, as in the 3.11 race
        return "slept"

    pipeline: Pipeline[int, str] = Pipeline(
        live_source(),
        work,
        concurrency=2,
        fatal=lambda exc: False,
        abandoned=lambda index, item, exc, attempted: "abandoned",
        closed=Closed,
    )
    reader = asyncio.create_task(anext(pipeline))
    async with asyncio.timeout(10):
        await started.wait()
    async with asyncio.timeout(10):
        await pipeline.aclose()
    with contextlib.suppress(Closed):
        await asyncio.wait_for(reader, 10)
