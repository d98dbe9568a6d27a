"""Reading the results stream: one entry per key, written once, when the key became final."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError

from ..smtp import Outcome
from ._client import MAX_BLOCK
from ._ledger import Ledger, _str

__all__ = ["DEFAULT_RESULTS_TIMEOUT", "DistributedResult", "read_results"]

DEFAULT_RESULTS_TIMEOUT = 3600.0
"""Seconds reading results waits for every key by default (then ``TimeoutError``)."""

_OUTCOME = msgspec.json.Decoder(Outcome)


class DistributedResult(msgspec.Struct, frozen=True, kw_only=True):
    """The final result of one key.

    Attributes:
        key: the message key.
        outcome: its one outcome (``delivery_unknown`` if its worker was lost in DATA).
        id: its results-stream id (resume reading after it with ``since=id``).
    """

    key: str
    outcome: Outcome
    id: str


async def read_results(
    ledger: Ledger,
    *,
    keys: Collection[str] | None = None,
    since: str = "0",
    block: float = 1.0,
    timeout: float | None = DEFAULT_RESULTS_TIMEOUT,
    count: int = 500,
) -> AsyncIterator[DistributedResult]:
    """Yield results from the stream, oldest first, from after ``since``.

    With ``keys``, only theirs, and it stops once each has its result (a key whose stream
    entry was trimmed is read from the ledger). Without, it follows the stream until
    ``timeout``.

    Raises:
        TimeoutError: ``timeout`` seconds passed before every key of ``keys`` was final.
        LookupError: a key of ``keys`` is not in the ledger (never submitted, or past its
            retention): it would never get a result.
    """
    if not 0 < block <= MAX_BLOCK:
        raise ValueError(f"block must be in (0, {MAX_BLOCK}] s (below the Redis call timeout)")
    redis: Any = ledger.redis
    remaining = set(keys) if keys is not None else None
    deadline = None if timeout is None else time.monotonic() + timeout
    caught_up = False
    while remaining is None or remaining:
        wait = block
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                if remaining is None:
                    return
                raise TimeoutError(f"{len(remaining)} key(s) not final after {timeout} s")
            wait = min(block, left)
        try:
            reply = await redis.xread(
                {ledger.results_key: since}, count=count, block=max(1, int(wait * 1000))
            )
        except RedisConnectionError:
            # Redis restarting or failing over: the results wait in the stream; try again
            # until the deadline (which raises TimeoutError).
            await asyncio.sleep(min(1.0, wait))
            continue
        entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            since = _str(entry_id)
            key = _str(fields[b"k"])
            if remaining is not None:
                if key not in remaining:
                    continue
                remaining.discard(key)
            yield DistributedResult(key=key, outcome=_OUTCOME.decode(fields[b"r"]), id=since)
        if len(entries) < count and remaining and not caught_up:
            caught_up = True  # once, at the stream's end: later results all come through it
            async for result in _from_ledger(ledger, remaining):
                yield result


async def _from_ledger(ledger: Ledger, remaining: set[str]) -> AsyncIterator[DistributedResult]:
    """Final keys among ``remaining`` whose stream entry is gone (trimmed by retention)."""
    keys = list(remaining)
    unknown: list[str] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        pipe = ledger.redis.pipeline(transaction=False)
        for key in chunk:
            pipe.hmget(ledger.prefix + key, ["s", "r", "x"])
        for key, (state, result, result_id) in zip(chunk, await pipe.execute(), strict=True):
            if state is None:
                unknown.append(key)
            elif result is not None and _str(state) in ("sent", "failed"):
                remaining.discard(key)
                yield DistributedResult(
                    key=key, outcome=_OUTCOME.decode(result), id=_str(result_id or b"0")
                )
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise LookupError(f"{len(unknown)} key(s) not in the ledger (e.g. {shown})")
