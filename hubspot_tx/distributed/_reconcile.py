"""Reconcile: finish what dead workers and lost tasks left behind.

Run periodically by every worker (and on demand: ``DistributedRelay.reconcile()``, or the
``reconcile`` task). Every step is an atomic script, so any number may run at once.

1. Keys whose lease ran out: ``claimed`` ones go back to ``queued`` and into a new task (they
   never reached the server); ``sending`` ones end ``delivery_unknown`` (never resent).
2. Tasks a dead worker had taken from the stream (taskiq-redis only reclaims them after an
   idle timeout, and only when some worker reads the stream again): they are put back on it.
3. Keys ``queued`` for longer than ``grace`` when no task could still carry them, or for
   longer than ``requeue_after`` in any case: they get a new task (a duplicate task is
   harmless). No task can carry them when nothing in the stream is unread and every task
   taken was taken more than ``grace`` ago: a worker claims all of a task's keys as it starts
   it, so a key still ``queued`` is not in a task that started. This covers a producer that
   died between storing and kicking, a key released while Redis was unreachable (its new task
   was lost), and a task left pending under a live worker because its acknowledgement was
   lost (it would otherwise hold every queued key back for ``requeue_after``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ._broker import GROUP, Tasks
from ._ledger import DEFAULT_MAX_CLAIMS, Ledger

__all__ = ["ReconcileReport", "reconcile"]

logger = logging.getLogger("hubspot_tx.distributed")

# KEYS: the task stream. ARGV: group, consumer, ids... -> how many tasks were put back.
_RESCUE = """
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #p > 0 then
    local e = redis.call('XRANGE', KEYS[1], id, id)
    if #e > 0 then
      redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
      n = n + 1
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
  end
end
return n
"""

_PENDING_SCAN = 1000
"""Pending tasks looked at to decide whether the stream is idle (more: it is not)."""

_ROUNDS = 10
"""Rounds of 1000 keys per step of one pass: a larger backlog waits for the next pass."""

WORKER_PREFIX = "hstx-"
"""Consumer names of the relay's workers start with this (other consumers are left alone)."""


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one :func:`reconcile` pass did.

    Attributes:
        retried: expired ``claimed`` keys queued again.
        unknown: expired ``sending`` keys made final ``delivery_unknown``.
        abandoned: keys made final ``cancelled`` after too many dead claimants.
        rescued_tasks: tasks of dead workers put back on the stream.
        requeued: ``queued`` keys given a new task.
    """

    retried: int = 0
    unknown: int = 0
    abandoned: int = 0
    rescued_tasks: int = 0
    requeued: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "retried": self.retried,
            "unknown": self.unknown,
            "abandoned": self.abandoned,
            "rescued_tasks": self.rescued_tasks,
            "requeued": self.requeued,
        }


async def _rescue_dead_consumers(ledger: Ledger, dead_after: float) -> int:
    redis: Any = ledger.redis
    stream = ledger.tasks_key
    try:
        consumers = await redis.xinfo_consumers(stream, GROUP)
    except Exception:  # no stream or no group yet: nothing was ever taken
        return 0
    script = redis.register_script(_RESCUE)
    rescued = 0
    for consumer in consumers:
        name = consumer["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        if not name.startswith(WORKER_PREFIX):
            continue
        if int(consumer["idle"]) < dead_after * 1000:
            continue
        if await ledger.owner_heartbeat(name) is not None:
            continue  # alive (only idle: it has had nothing to read)
        while True:
            pending = await redis.xpending_range(
                stream, GROUP, min="-", max="+", count=100, consumername=name
            )
            if not pending:
                break
            ids = [p["message_id"] for p in pending]
            rescued += int(await script(keys=[stream], args=[GROUP, name, *ids]))
        await redis.xgroup_delconsumer(stream, GROUP, name)
    return rescued


async def _stream_idle(ledger: Ledger, grace: float) -> bool:
    """True when no task in the stream can still carry a ``queued`` key: nothing unread, and
    every task taken was taken at least ``grace`` seconds ago (it has claimed its keys)."""
    redis: Any = ledger.redis
    try:
        groups = await redis.xinfo_groups(ledger.tasks_key)
    except Exception:
        return True
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            lag = group.get("lag")
            if lag is None or int(lag) != 0:
                return False
            if int(group["pending"]) == 0:
                return True
            pending = await redis.xpending_range(
                ledger.tasks_key, GROUP, min="-", max="+", count=_PENDING_SCAN
            )
            if len(pending) >= _PENDING_SCAN:
                return False  # too many to tell: requeue_after decides
            young = [p for p in pending if int(p["time_since_delivered"]) < grace * 1000]
            return not young
    return True


async def reconcile(
    ledger: Ledger,
    tasks: Tasks,
    *,
    batch_size: int = 100,
    dead_after: float = 30.0,
    requeue_after: float = 600.0,
    grace: float = 5.0,
    max_claims: int = DEFAULT_MAX_CLAIMS,
) -> ReconcileReport:
    """One reconcile pass (see the module's docstring).

    Args:
        ledger: the namespace's ledger.
        tasks: the broker to enqueue new tasks on.
        batch_size: keys per new task.
        dead_after: seconds without a heartbeat after which a worker is dead.
        requeue_after: seconds after which a ``queued`` key gets a new task in any case.
        grace: seconds a ``queued`` key may wait for the task its producer is kicking.
        max_claims: claims after which a key whose claimants all died fails.

    Raises:
        ValueError: ``requeue_after`` or ``grace`` is not positive (with 0, the keys given a
            new task would at once be stale again).
    """
    if not requeue_after > 0 or not grace > 0:
        raise ValueError("requeue_after and grace must be positive")
    retried = unknown = abandoned = 0
    for _ in range(_ROUNDS):
        expiry = await ledger.expire(max_claims=max_claims)
        if expiry.retry:
            await tasks.kick(expiry.retry, batch_size)
        retried += len(expiry.retry)
        unknown += len(expiry.unknown)
        abandoned += len(expiry.abandoned)
        if expiry.unknown:
            logger.warning(
                "%d message(s) held by lost workers after the server's 354: delivery_unknown",
                len(expiry.unknown),
            )
        if len(expiry.retry) + len(expiry.unknown) + len(expiry.abandoned) < 1000:
            break
    rescued = await _rescue_dead_consumers(ledger, dead_after)
    older_than = grace if await _stream_idle(ledger, grace) else requeue_after
    requeued = 0
    for _ in range(_ROUNDS):
        stale = await ledger.stale_queued(older_than)
        if stale:
            await tasks.kick(stale, batch_size)
        requeued += len(stale)
        if len(stale) < 1000:
            break
    return ReconcileReport(retried, unknown, abandoned, rescued, requeued)
