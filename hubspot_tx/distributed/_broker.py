"""The doorbell: a taskiq broker on a Redis stream, and the two tasks it carries.

A task carries message *keys* only (never a body, never a credential); the bodies wait in the
ledger. taskiq delivers at least once (a killed worker's task comes back after an idle
timeout, or never if nobody reads the stream again): the ledger's compare-and-set claims make a
second delivery harmless, and :func:`~hubspot_tx.distributed.reconcile` makes a lost one
harmless too.

A task is deleted from the stream when it is acknowledged (the stream has one consumer group,
so an acknowledged entry is never read again): the stream holds only tasks not yet done, and
does not grow with every message ever sent. Unread and unacknowledged entries are never
trimmed (no ``MAXLEN``), which keeps delivery at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq import AsyncTaskiqDecoratedTask
from taskiq_redis import RedisStreamBroker

__all__ = ["GROUP", "RECONCILE_TASK", "SEND_TASK", "Tasks", "make_broker"]

SEND_TASK = "hubspot_tx.distributed.send_batch"
RECONCILE_TASK = "hubspot_tx.distributed.reconcile"
logger = logging.getLogger("hubspot_tx.distributed")

GROUP = "hstx-workers"
"""The consumer group of the task stream (its consumers are named after their worker)."""


class Handler(Protocol):
    """What a worker process does with the tasks it receives."""

    async def send_batch(self, keys: list[str]) -> int: ...

    async def reconcile(self) -> dict[str, int]: ...


class _StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, deleting each task once it is acknowledged."""

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        async def _ack() -> None:
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    pipe = redis.pipeline(transaction=True)
                    pipe.xack(queue_name, self.consumer_group_name, id)
                    pipe.xdel(queue_name, id)
                    await pipe.execute()
            except RedisError as exc:
                # The task stays pending under this live worker: reconcile no longer waits
                # for it (see _reconcile), and its keys were settled by the task itself.
                logger.warning("cannot acknowledge task %s: %s: %s", id, type(exc).__name__, exc)

        return _ack


@dataclass(frozen=True, slots=True)
class Tasks:
    """A broker and its registered tasks."""

    broker: RedisStreamBroker
    send_batch: AsyncTaskiqDecoratedTask[[list[str]], Coroutine[Any, Any, int]]
    reconcile: AsyncTaskiqDecoratedTask[[], Coroutine[Any, Any, dict[str, int]]]

    async def kick(self, keys: Sequence[str], batch_size: int) -> int:
        """Enqueue ``keys`` as tasks of ``batch_size`` keys; how many tasks."""
        tasks = 0
        for start in range(0, len(keys), batch_size):
            await self.send_batch.kiq(list(keys[start : start + batch_size]))
            tasks += 1
        return tasks


def make_broker(
    redis_url: str,
    stream: str,
    *,
    handler: Handler | None = None,
    consumer_name: str | None = None,
    idle_timeout: float = 600.0,
    xread_block: float = 1.0,
    **connection_kwargs: Any,
) -> Tasks:
    """A :class:`RedisStreamBroker` on ``stream`` with the relay's tasks registered.

    Args:
        redis_url: where Redis is.
        stream: the task stream's key.
        handler: the worker that runs the tasks (``None`` in a producer: it only kicks).
        consumer_name: this worker's consumer name in the group (its ledger owner id).
        idle_timeout: seconds after which taskiq-redis hands a task left unacknowledged by
            another consumer to this one (a task running longer is run twice: harmless).
        xread_block: seconds one read of the stream blocks.
    """
    broker = _StreamBroker(
        redis_url,
        queue_name=stream,
        consumer_group_name=GROUP,
        consumer_name=consumer_name,
        consumer_id="0",  # a group created after the first tasks were kicked still sees them
        xread_block=int(xread_block * 1000),
        xread_count=1,  # take one batch at a time, so that idle workers get the others
        idle_timeout=int(idle_timeout * 1000),
        # A worker killed while holding taskiq-redis's reclaim lock must not block the others.
        unacknowledged_lock_timeout=10.0,
        **connection_kwargs,
    )

    async def send_batch(keys: list[str]) -> int:
        if handler is None:
            raise RuntimeError("this process only submits; run `hubspot-tx worker` to send")
        return await handler.send_batch(keys)

    async def reconcile() -> dict[str, int]:
        if handler is None:
            raise RuntimeError("this process only submits; run `hubspot-tx worker` to send")
        return await handler.reconcile()

    return Tasks(
        broker,
        broker.register_task(send_batch, task_name=SEND_TASK),
        broker.register_task(reconcile, task_name=RECONCILE_TASK),
    )
