"""The distributed relay: many worker processes, one Redis ledger, one shared rate limit.

Needs the ``distributed`` extra: ``pip install 'hubspot-tx[distributed]'`` (taskiq,
taskiq-redis, redis). taskiq is the doorbell (at-least-once task delivery on a Redis stream);
the ledger the SDK keeps in Redis is the outbox, and makes each message's send happen at most
once and its result be recorded exactly once.
"""

try:
    import redis  # noqa: F401
    import taskiq  # noqa: F401
    import taskiq_redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hubspot_tx.distributed needs the 'distributed' extra: "
        "pip install 'hubspot-tx[distributed]'"
    ) from exc

from ._broker import Tasks, make_broker
from ._client import ALLOW_UNSAFE_VARIABLE, DEFAULT_REDIS_TIMEOUT, Durability, UnsafeRedisError
from ._ledger import DEFAULT_RETENTION, Claim, ExpiryReport, KeyInfo, KeyState, Ledger
from ._limiter import RateLimiter
from ._producer import DEFAULT_REDIS_URL, DistributedRelay, Submission
from ._reconcile import ReconcileReport, reconcile
from ._redis_server import RedisServer, redis_server
from ._results import DEFAULT_RESULTS_TIMEOUT, DistributedResult, read_results
from ._worker import Worker, WorkerSettings

__all__ = [
    "ALLOW_UNSAFE_VARIABLE",
    "DEFAULT_REDIS_TIMEOUT",
    "DEFAULT_REDIS_URL",
    "DEFAULT_RESULTS_TIMEOUT",
    "DEFAULT_RETENTION",
    "Claim",
    "DistributedRelay",
    "DistributedResult",
    "Durability",
    "ExpiryReport",
    "KeyInfo",
    "KeyState",
    "Ledger",
    "RateLimiter",
    "ReconcileReport",
    "RedisServer",
    "Submission",
    "Tasks",
    "UnsafeRedisError",
    "Worker",
    "WorkerSettings",
    "make_broker",
    "read_results",
    "reconcile",
    "redis_server",
]
