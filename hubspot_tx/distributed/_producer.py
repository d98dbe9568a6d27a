"""The producer side: :class:`DistributedRelay` stores messages in the ledger and rings the
doorbell (enqueues tasks of keys); workers anywhere send them."""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import Any, Self

from .. import _env
from .._exceptions import InvalidMessageError
from ..smtp import Envelope, prepare
from ._broker import Tasks, make_broker
from ._client import DEFAULT_REDIS_TIMEOUT, check_durability, connect, timeout_options
from ._ledger import DEFAULT_RETENTION, KeyInfo, KeyState, Ledger
from ._reconcile import ReconcileReport, reconcile
from ._results import DEFAULT_RESULTS_TIMEOUT, DistributedResult, read_results

__all__ = ["DEFAULT_REDIS_URL", "DistributedRelay", "Submission"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

Submittable = bytes | bytearray | memoryview | Message | tuple[str, "bytes | Message"]
"""A message (keyed by its Message-ID), or ``(key, message)``."""


@dataclass(slots=True)
class Submission:
    """What :meth:`DistributedRelay.submit` did.

    Attributes:
        keys: every key submitted, in input order.
        new: how many were stored now (and enqueued).
        existing: keys already in the ledger, with their state (not sent again; those still
            ``queued`` are enqueued again).
        tasks: tasks enqueued.
    """

    keys: list[str] = field(default_factory=list)
    new: int = 0
    existing: dict[str, KeyState] = field(default_factory=dict)
    tasks: int = 0


def _keyed(item: Submittable) -> tuple[str, bytes]:
    key: str | None = None
    message: bytes | bytearray | memoryview | Message
    if isinstance(item, tuple):
        key, message = item
    else:
        message = item
    if isinstance(message, Envelope):
        raise TypeError("submit bytes or an EmailMessage (an Envelope cannot be stored)")
    if isinstance(message, Message):
        policy = email.policy.SMTP if message.policy is not email.policy.compat32 else None
        raw = message.as_bytes(policy=policy) if policy else message.as_bytes()
    elif isinstance(message, bytes | bytearray | memoryview):
        raw = bytes(message)
    else:
        raise TypeError(f"cannot submit a {type(message).__name__}: give bytes or an EmailMessage")
    if key is None:
        try:
            key = prepare(raw)[1]
        except InvalidMessageError:  # still submitted: its outcome will say why
            header = email.parser.BytesHeaderParser().parsebytes(raw).get("Message-ID")
            key = str(header).strip() if header else None
    if not key:
        raise ValueError("a message without a Message-ID needs a key: submit (key, message)")
    return key, raw


class DistributedRelay:
    """Submit messages to workers through Redis; read one result per key.

    Example:
        >>> async with DistributedRelay("redis://127.0.0.1:6379/0") as relay:
        ...     submission = await relay.submit(messages)
        ...     async for result in relay.results(keys=submission.keys):
        ...         print(result.key, result.outcome.status)

    Args:
        redis_url: the Redis the workers use; default ``$HUBSPOT_TX_REDIS_URL``, else
            ``redis://127.0.0.1:6379/0`` (as for ``hubspot-tx worker``).
        namespace: the relay's namespace (the workers' ``--namespace``).
        retention: seconds a final key and its result are kept; resubmitting a key within
            them returns its state and sends nothing.
        batch_size: keys per task.
        redis_timeout: seconds any one Redis call may take.
        allow_unsafe_redis: submit to a Redis that can lose acknowledged writes (not AOF with
            ``appendfsync always``; also ``$HUBSPOT_TX_ALLOW_UNSAFE_REDIS=1``): messages can
            then be sent twice (see the README).

    Raises:
        UnsafeRedisError: (when it starts) Redis can lose acknowledged writes, not allowed.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str = "default",
        retention: float = DEFAULT_RETENTION,
        batch_size: int = 100,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
        allow_unsafe_redis: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        redis_url = redis_url or _env.get(_env.REDIS_URL) or DEFAULT_REDIS_URL
        self.redis_url = redis_url
        self.batch_size = batch_size
        self.allow_unsafe_redis = allow_unsafe_redis
        redis: Any = connect(redis_url, redis_timeout)
        self._redis = redis
        self.ledger = Ledger(redis, namespace, retention=retention)
        self._tasks: Tasks = make_broker(
            redis_url, self.ledger.tasks_key, **timeout_options(redis_timeout)
        )
        self._started = False

    async def _start(self) -> Tasks:
        if not self._started:
            await check_durability(self._redis, allow_unsafe=self.allow_unsafe_redis)
            await self._tasks.broker.startup()  # creates the stream and the workers' group
            self._started = True
        return self._tasks

    async def submit(
        self, messages: Iterable[Submittable] | AsyncIterable[Submittable]
    ) -> Submission:
        """Store each message once in the ledger and enqueue the new ones.

        A message is keyed by its Message-ID, or by the key of a ``(key, message)`` pair. A
        key already in the ledger (queued, in flight, or final within the retention window)
        is not stored or sent again: :attr:`Submission.existing` gives its state.

        Raises:
            ValueError: a message has neither a key nor a Message-ID.
        """
        tasks = await self._start()
        submission = Submission()
        batch: list[tuple[str, bytes]] = []

        async def flush() -> None:
            states = await self.ledger.submit(batch)
            new = [key for (key, _), state in zip(batch, states, strict=True) if state is None]
            for (key, _), state in zip(batch, states, strict=True):
                if state is not None:
                    submission.existing[key] = state
            submission.new += len(new)
            # A key still ``queued`` may have no task (our earlier kick was lost, or a reply
            # was lost and redis-py retried the submit): ring again; a duplicate is harmless.
            waiting = [
                key
                for (key, _), state in zip(batch, states, strict=True)
                if state is KeyState.QUEUED
            ]
            submission.tasks += await tasks.kick(new + waiting, self.batch_size)
            batch.clear()

        if isinstance(messages, AsyncIterable):
            async for item in messages:
                batch.append(_keyed(item))
                submission.keys.append(batch[-1][0])
                if len(batch) >= self.batch_size:
                    await flush()
        else:
            for item in messages:
                batch.append(_keyed(item))
                submission.keys.append(batch[-1][0])
                if len(batch) >= self.batch_size:
                    await flush()
        if batch:
            await flush()
        return submission

    def results(
        self,
        *,
        keys: Collection[str] | None = None,
        since: str = "0",
        block: float = 1.0,
        timeout: float | None = DEFAULT_RESULTS_TIMEOUT,
    ) -> AsyncIterator[DistributedResult]:
        """Results from the stream (see :func:`~hubspot_tx.distributed.read_results`).

        Raises:
            TimeoutError: ``timeout`` seconds (an hour by default) passed before every key of
                ``keys`` was final. ``None`` waits without end: only for a follower without
                ``keys``.
        """
        return read_results(self.ledger, keys=keys, since=since, block=block, timeout=timeout)

    async def reconcile(self, **options: Any) -> ReconcileReport:
        """One reconcile pass from here (see :func:`~hubspot_tx.distributed.reconcile`)."""
        return await reconcile(self.ledger, await self._start(), **options)

    async def info(self, key: str) -> KeyInfo | None:
        """What the ledger holds for ``key``."""
        return await self.ledger.info(key)

    async def aclose(self) -> None:
        """Close the Redis connections. Idempotent."""
        if self._started:
            self._started = False
            await self._tasks.broker.shutdown()
        await self._redis.aclose()

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<DistributedRelay {self.ledger.namespace!r} batch_size={self.batch_size}>"
