"""Shared fixtures: a real sandbox on loopback, clients over HTTP and verified HTTPS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

try:
    import uvloop
except ImportError:  # uvloop has no Windows build
    uvloop = None  # type: ignore[assignment]

from hubspot_tx import HubSpot, RetryPolicy, SmtpRetry, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox

# The test modules of code that runs in the user's event loop (the SMTP relay, the REST client,
# the sandbox) run on asyncio's loop and on uvloop's, which most web backends run (uvicorn's
# standard extras): uvloop's transports, for one, are not asyncio.Transport subclasses.
BOTH_LOOPS = (
    "test_smtp_",
    "test_corpus",
    "test_single_send",
    "test_bulk_single_send",
    "test_retries",
    "test_reliability",
    "test_tracking",
    "test_sandbox_",
    "test_inspect_",
    "test_inbox_http",
    "test_oauth",
)
ASYNCIO: Mapping[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
ASYNCIO_AND_UVLOOP: Mapping[str, Callable[[], asyncio.AbstractEventLoop]] = {
    **ASYNCIO,
    **({"uvloop": uvloop.new_event_loop} if uvloop is not None else {}),  # not on Windows
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops an async test runs on (pytest-asyncio's hook): see ``BOTH_LOOPS``."""
    module = item.nodeid.rpartition("/")[2]
    return ASYNCIO_AND_UVLOOP if module.startswith(BOTH_LOOPS) else ASYNCIO


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


FAST_SMTP_RETRY = SmtpRetry(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
async def token(sandbox: Sandbox) -> SmtpTokenWithPassword:
    """An SMTP token created through the sandbox's REST API."""
    async with sandbox.client() as hs:
        return await hs.smtp_tokens.create(campaign_name="tests")


def make_message(
    i: int, *, to: str = "rcpt{i}@example.org", size: int = 0, **headers: str
) -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    lines = [
        "From: Sender <sender@example.com>",
        f"To: {to.format(i=i)}",
        f"Subject: message {i}",
        f"Message-ID: <m{i}@hubspot-tx.test>",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
        "",
        f"Body of message {i}.",
        "x" * size,
    ]
    return "\r\n".join(lines).encode() + b"\r\n"
