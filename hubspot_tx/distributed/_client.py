"""The Redis clients of the relay: every call bounded in time, and the ledger's durability check.

Every socket the relay opens to Redis has a connect and a read/write timeout
(:data:`DEFAULT_REDIS_TIMEOUT`), longer than any blocking read it makes (a stream read blocks
for at most :data:`MAX_BLOCK` seconds), so a Redis that stops answering (paused, partitioned)
turns into a ``redis.exceptions.TimeoutError`` instead of a wait without end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .. import _env

__all__ = [
    "ALLOW_UNSAFE_VARIABLE",
    "DEFAULT_REDIS_TIMEOUT",
    "MAX_BLOCK",
    "Durability",
    "UnsafeRedisError",
    "check_durability",
    "connect",
    "timeout_options",
]

DEFAULT_REDIS_TIMEOUT = 10.0
"""Seconds any one Redis call (or connection attempt) may take."""
MAX_BLOCK = 2.0
"""The longest blocking read the relay makes (task stream, results stream), in seconds."""
ALLOW_UNSAFE_VARIABLE = _env.ALLOW_UNSAFE_REDIS
"""Set to ``1`` to run on a Redis that can lose acknowledged writes (see the README)."""


def timeout_options(timeout: float = DEFAULT_REDIS_TIMEOUT) -> dict[str, Any]:
    """The redis-py connection options bounding every call by ``timeout`` seconds.

    Raises:
        ValueError: ``timeout`` is not longer than :data:`MAX_BLOCK` (a blocking read would
            time out while merely waiting).
    """
    if not timeout > MAX_BLOCK:
        raise ValueError(f"the Redis timeout must be longer than {MAX_BLOCK} s, not {timeout}")
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def connect(url: str, timeout: float = DEFAULT_REDIS_TIMEOUT) -> Redis:
    """A ``redis.asyncio.Redis`` on ``url`` whose every call is bounded by ``timeout`` s."""
    client: Redis = Redis.from_url(url, **timeout_options(timeout))
    return client


class UnsafeRedisError(ValueError):
    """The Redis holding the ledger can lose writes it acknowledged (messages could be sent
    twice); the message says which setting and how to opt in anyway."""


@dataclass(frozen=True, slots=True)
class Durability:
    """What a Redis promises about the writes it acknowledged.

    Attributes:
        appendonly: AOF persistence on.
        appendfsync: ``always``, ``everysec``, ``no``, or ``None`` when CONFIG is not allowed.
        run_id: the server process's run id (changes with every restart or failover).
        eviction: ``maxmemory-policy`` (``None`` when CONFIG is not allowed).
    """

    appendonly: bool
    appendfsync: str | None
    run_id: str
    eviction: str | None = None

    @property
    def safe(self) -> bool:
        """True when an acknowledged write survives a crash of the Redis process or host, and
        no ledger key can be evicted."""
        return self.appendonly and self.appendfsync == "always" and self.eviction == "noeviction"

    def problem(self) -> str:
        """Why it is not safe (empty when it is)."""
        if not self.appendonly:
            return "Redis has no AOF (appendonly no): a restart loses the writes since its snapshot"
        if self.appendfsync is None:
            return "Redis does not allow CONFIG GET appendfsync: cannot tell that it is 'always'"
        if self.appendfsync != "always":
            return (
                f"Redis has appendfsync {self.appendfsync}: a crash loses the last acknowledged "
                "writes"
            )
        if self.eviction != "noeviction":
            return f"Redis has maxmemory-policy {self.eviction}: it may evict ledger keys"
        return ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def durability(redis: Redis) -> Durability:
    """Read ``INFO persistence`` / ``INFO server`` and ``CONFIG GET appendfsync``."""
    client: Any = redis
    persistence = await client.info("persistence")
    server = await client.info("server")
    values: dict[str, str] = {}
    for name in ("appendfsync", "maxmemory-policy"):
        # CONFIG renamed or forbidden (managed Redis): unknown, hence not safe. A timeout or
        # a lost connection is raised: it says nothing about the settings.
        with contextlib.suppress(ResponseError):
            config = await client.config_get(name)
            values.update({_text(k): _text(v) for k, v in config.items()})
    return Durability(
        appendonly=int(persistence.get("aof_enabled", 0)) == 1,
        appendfsync=values.get("appendfsync"),
        run_id=_text(server.get("run_id", "")),
        eviction=values.get("maxmemory-policy"),
    )


def unsafe_allowed(allow_unsafe: bool = False) -> bool:
    """The explicit opt-in: ``allow_unsafe`` or ``$HUBSPOT_TX_ALLOW_UNSAFE_REDIS=1``."""
    return allow_unsafe or _env.get(ALLOW_UNSAFE_VARIABLE) == "1"


async def check_durability(redis: Redis, *, allow_unsafe: bool = False) -> Durability:
    """The durability of ``redis``; refuses one that can lose acknowledged writes.

    Raises:
        UnsafeRedisError: not AOF with ``appendfsync always``, and no opt-in.
    """
    found = await durability(redis)
    if not found.safe and not unsafe_allowed(allow_unsafe):
        raise unsafe_error(found)
    return found


def unsafe_error(found: Durability) -> UnsafeRedisError:
    """The one-line error for an unsafe ``found``: which setting, and how to opt in."""
    return UnsafeRedisError(
        f"{found.problem()}, so a message could be sent twice; configure "
        "'appendonly yes', 'appendfsync always' and 'maxmemory-policy noeviction', or "
        "accept the risk with "
        f"--allow-unsafe-redis or {ALLOW_UNSAFE_VARIABLE}=1"
    )
