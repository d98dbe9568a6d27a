"""Shared fixtures: a real sandbox on loopback, clients over HTTP and verified HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hubspot_tx import HubSpot, RetryPolicy
from hubspot_tx.sandbox import Sandbox

# Retries as in production, but with millisecond waits so the suite stays fast.
FAST_RETRY = RetryPolicy(max_retries=3, initial_backoff=0.01, max_backoff=0.05, max_elapsed=10)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(pending_seconds=0.02, processing_seconds=0.03) as sb:
        yield sb


@pytest.fixture(params=["http", "https"])
async def hs(request: pytest.FixtureRequest, sandbox: Sandbox) -> AsyncIterator[HubSpot]:
    """A client of the sandbox, once over plain HTTP and once over verified HTTPS."""
    async with sandbox.client(https=request.param == "https", retry=FAST_RETRY) as client:
        yield client


@pytest.fixture
async def hs_http(sandbox: Sandbox) -> AsyncIterator[HubSpot]:
    """A plain-HTTP client, for tests about behaviour rather than transport."""
    async with sandbox.client(retry=FAST_RETRY) as client:
        yield client
