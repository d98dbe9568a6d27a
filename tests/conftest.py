"""Shared fixtures: a real sandbox on loopback, clients over HTTP and verified HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hubspot_tx import HubSpot, RetryPolicy, SmtpRetry, SmtpTokenWithPassword
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
