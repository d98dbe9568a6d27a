"""Helpers of the distributed-relay tests: a throwaway redis-server that must exist in CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest

from hubspot_tx.distributed import RedisServer, redis_server

SKIP_VARIABLE = "HUBSPOT_TX_ALLOW_SKIP_REDIS"


def require_redis_server() -> None:
    """Fail (never skip silently) when redis-server is missing, unless explicitly allowed."""
    if shutil.which("redis-server") is not None:
        return
    message = (
        "redis-server is not on PATH: the distributed-relay tests need it "
        "(apt-get install redis-server; .ci/run installs it)"
    )
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{message}; skipped because {SKIP_VARIABLE}=1")
    pytest.fail(f"{message}, or set {SKIP_VARIABLE}=1 to skip these tests")


@pytest.fixture
async def redis_srv() -> AsyncIterator[RedisServer]:
    """A fresh redis-server on 127.0.0.1 (ephemeral port), stopped after the test."""
    require_redis_server()
    async with redis_server() as server:
        yield server
