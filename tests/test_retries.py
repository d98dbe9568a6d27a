"""Retries against the sandbox's injected faults: what is retried, what never is."""

from __future__ import annotations

import socket
import time

import pytest

from hubspot_tx import (
    APIConnectionError,
    APITimeoutError,
    HubSpot,
    RateLimitError,
    RetryPolicy,
    SendResult,
    ServerError,
    Timeout,
)
from hubspot_tx._paths import API_VERSIONS, DEFAULT_API_VERSION
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY

TOKENS = API_VERSIONS[DEFAULT_API_VERSION].smtp_tokens
SEND = API_VERSIONS[DEFAULT_API_VERSION].single_send


def statuses(sandbox: Sandbox, method: str, path: str) -> list[int]:
    return [r.status for r in sandbox.requests if r.method == method and r.path == path]


async def test_429_with_retry_after_is_retried_then_succeeds(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    fault = sandbox.faults.rest_429(times=2, retry_after=0.05, method="GET")
    started = time.monotonic()
    page = await hs_http.smtp_tokens.list()
    assert page.results == []
    assert fault.hits == 2
    assert time.monotonic() - started >= 0.1  # both Retry-After waits were honoured
    assert statuses(sandbox, "GET", TOKENS) == [429, 429, 200]


async def test_429_without_retry_after_waits_the_interval_header(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    sandbox.faults.rest_429(times=1, interval_ms=80, method="GET")
    started = time.monotonic()
    await hs_http.smtp_tokens.list()
    assert time.monotonic() - started >= 0.08
    assert statuses(sandbox, "GET", TOKENS) == [429, 200]


async def test_daily_429_is_raised_at_once(sandbox: Sandbox, hs_http: HubSpot) -> None:
    sandbox.faults.rest_429(times=5, policy_name="DAILY", retry_after=0.01)
    with pytest.raises(RateLimitError) as info:
        await hs_http.smtp_tokens.list()
    assert info.value.is_daily
    assert info.value.policy_name == "DAILY"
    assert info.value.category == "RATE_LIMIT"
    assert statuses(sandbox, "GET", TOKENS) == [429]


async def test_429_retries_are_bounded(sandbox: Sandbox, hs_http: HubSpot) -> None:
    sandbox.faults.rest_429(times=None, retry_after=0.01)
    with pytest.raises(RateLimitError) as info:
        await hs_http.smtp_tokens.list()
    assert info.value.retry_after == pytest.approx(0.01)
    assert info.value.policy_name == "TEN_SECONDLY_ROLLING"
    assert len(statuses(sandbox, "GET", TOKENS)) == 1 + FAST_RETRY.max_retries


async def test_retry_after_beyond_the_cap_is_raised_at_once(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    sandbox.faults.rest_429(times=1, retry_after=3600)
    with pytest.raises(RateLimitError) as info:
        await hs_http.smtp_tokens.list()
    assert info.value.retry_after == 3600
    assert len(statuses(sandbox, "GET", TOKENS)) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_get_retries_5xx(sandbox: Sandbox, hs_http: HubSpot, status: int) -> None:
    sandbox.faults.rest_error(status, times=2, method="GET")
    await hs_http.smtp_tokens.list()
    assert statuses(sandbox, "GET", TOKENS) == [status, status, 200]


async def test_5xx_exhausted_is_a_server_error(sandbox: Sandbox, hs_http: HubSpot) -> None:
    sandbox.faults.rest_error(503, times=None)
    with pytest.raises(ServerError) as info:
        await hs_http.smtp_tokens.list()
    assert info.value.status == 503
    assert info.value.correlation_id


async def test_token_create_is_not_retried_on_a_5xx(sandbox: Sandbox, hs_http: HubSpot) -> None:
    sandbox.faults.rest_commit_then_error(502, method="POST", path=TOKENS)
    with pytest.raises(ServerError):
        await hs_http.smtp_tokens.create(campaign_name="once")
    assert statuses(sandbox, "POST", TOKENS) == [502]
    assert len(sandbox.state.tokens) == 1  # it was created; a retry would have made two


async def test_password_reset_is_not_retried_on_a_5xx(sandbox: Sandbox, hs_http: HubSpot) -> None:
    token = await hs_http.smtp_tokens.create(campaign_name="r")
    sandbox.faults.rest_error(500, method="POST", path=f"{TOKENS}/{token.id}/password-reset")
    with pytest.raises(ServerError):
        await hs_http.smtp_tokens.reset_password(token.id)
    assert statuses(sandbox, "POST", f"{TOKENS}/{token.id}/password-reset") == [500]


async def test_token_create_is_retried_on_429(sandbox: Sandbox, hs_http: HubSpot) -> None:
    sandbox.faults.rest_429(times=1, retry_after=0.01, method="POST")
    await hs_http.smtp_tokens.create(campaign_name="after-429")
    assert statuses(sandbox, "POST", TOKENS) == [429, 201]
    assert len(sandbox.state.tokens) == 1


async def test_single_send_commit_then_502_sends_once_without_caller_send_id(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    sandbox.faults.rest_commit_then_error(502, method="POST", path=SEND)
    status = await hs_http.single_send.send(email_id=1001, to="a@example.com")
    assert statuses(sandbox, "POST", SEND) == [502, 200]
    # The retry carried the same generated sendId, so HubSpot ignored it.
    assert status.send_result is SendResult.IDEMPOTENT_IGNORE
    assert len(sandbox.state.sent_emails) == 1
    send_ids = {r.request.message.send_id for r in sandbox.state.sends.values()}
    assert len(send_ids) == 1


async def test_slow_reply_times_out_and_is_retried(sandbox: Sandbox) -> None:
    fault = sandbox.faults.rest_slow(1.0, method="GET")
    async with sandbox.client(retry=FAST_RETRY, timeout=Timeout(total=0.2)) as hs:
        await hs.smtp_tokens.list()
    assert fault.hits == 1  # the first attempt was abandoned by the client...
    assert statuses(sandbox, "GET", TOKENS) == [200]  # ...and the retry answered


async def test_timeout_of_an_unsafe_call_is_raised(sandbox: Sandbox) -> None:
    sandbox.faults.rest_slow(1.0, method="POST")
    async with sandbox.client(retry=FAST_RETRY, timeout=0.2) as hs:
        with pytest.raises(APITimeoutError) as info:
            await hs.smtp_tokens.create(campaign_name="slow")
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ConnectionError)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_retried_then_raised() -> None:
    policy = RetryPolicy(max_retries=2, initial_backoff=0.01, max_backoff=0.02)
    async with HubSpot("t", base_url=f"http://127.0.0.1:{_closed_port()}", retry=policy) as hs:
        started = time.monotonic()
        with pytest.raises(APIConnectionError) as info:
            await hs.smtp_tokens.create(campaign_name="nobody home")
    assert "cannot connect" in str(info.value)
    assert time.monotonic() - started < 5


async def test_untrusted_certificate_fails_without_retry(sandbox: Sandbox) -> None:
    # Verification is on by default: the sandbox's throwaway CA is not in the system store.
    async with HubSpot(sandbox.access_token, base_url=sandbox.https_url, retry=FAST_RETRY) as hs:
        with pytest.raises(APIConnectionError, match="TLS"):
            await hs.smtp_tokens.list()
    assert not sandbox.requests


async def test_wrong_access_token_is_an_authentication_error(sandbox: Sandbox) -> None:
    from hubspot_tx import AuthenticationError

    async with HubSpot("wrong", base_url=sandbox.base_url, retry=FAST_RETRY) as hs:
        with pytest.raises(AuthenticationError) as info:
            await hs.smtp_tokens.list()
    assert info.value.status == 401
    assert info.value.category == "INVALID_AUTHENTICATION"
    assert len(sandbox.requests) == 1  # a 401 is not retried


async def test_retry_disabled(sandbox: Sandbox) -> None:
    sandbox.faults.rest_error(503)
    async with sandbox.client(retry=None) as hs:
        with pytest.raises(ServerError):
            await hs.smtp_tokens.list()
    assert len(sandbox.requests) == 1
