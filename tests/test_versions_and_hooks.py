"""API versions (v3 and the dated paths), v4 single-send, hooks, trace configs, log redaction."""

from __future__ import annotations

import logging
import types

import aiohttp
import pytest

from hubspot_tx import (
    Hooks,
    HubSpot,
    RedactingFilter,
    RequestEvent,
    ResponseEvent,
    SendResult,
)
from hubspot_tx._paths import API_VERSIONS
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY


@pytest.mark.parametrize("version", sorted(API_VERSIONS))
async def test_every_api_version_against_the_sandbox(sandbox: Sandbox, version: str) -> None:
    paths = API_VERSIONS[version]
    async with sandbox.client(api_version=version, retry=FAST_RETRY) as hs:
        assert hs.api_version == version
        token = await hs.smtp_tokens.create(campaign_name=f"v-{version}")
        assert [t.id async for t in hs.smtp_tokens.list()] == [token.id]
        assert (await hs.smtp_tokens.get(token.id)).id == token.id
        await hs.smtp_tokens.reset_password(token.id)
        sent = await hs.single_send.send(email_id=1001, to="a@example.com")
        marketing = await hs.single_send.send_v4(email_id=1001, to="b@example.com")
        assert (await hs.send_status.wait(sent)).send_result is SendResult.SENT
        assert (await hs.send_status.wait(marketing)).send_result is SendResult.SENT
        await hs.smtp_tokens.delete(token.id)
    used = {
        (r.method, r.path.rsplit("/", 1)[0] if r.method != "POST" else r.path)
        for r in sandbox.requests
    }
    assert ("POST", paths.smtp_tokens) in used
    assert ("POST", paths.single_send) in used
    assert ("POST", paths.marketing_single_send) in used
    assert ("GET", paths.send_statuses) in used
    assert ("DELETE", paths.smtp_tokens) in used


async def test_v4_echoes_the_message_and_dedupes_send_ids(sandbox: Sandbox) -> None:
    async with sandbox.client() as hs:
        first = await hs.single_send.send_v4(email_id=1001, to="a@example.com", send_id="v4-1")
        again = await hs.single_send.send_v4(email_id=1001, to="a@example.com", send_id="v4-1")
    assert first.status_id != again.status_id
    assert again.send_result is SendResult.IDEMPOTENT_IGNORE
    assert len(sandbox.state.sent_emails) == 1


def test_unknown_api_version() -> None:
    with pytest.raises(ValueError, match="api_version"):
        HubSpot("t", api_version="2020-01")  # type: ignore[arg-type]


async def test_hooks_see_every_attempt_without_secrets(sandbox: Sandbox) -> None:
    requests: list[RequestEvent] = []
    responses: list[ResponseEvent] = []

    async def on_response(event: ResponseEvent) -> None:
        responses.append(event)

    def broken(event: RequestEvent) -> None:
        raise RuntimeError("a broken hook must not break the call")

    hooks = Hooks(on_request=[requests.append, broken], on_response=[on_response])
    sandbox.faults.rest_error(503, method="GET")
    async with sandbox.client(hooks=hooks, retry=FAST_RETRY) as hs:
        await hs.smtp_tokens.list()
    assert [(e.method, e.attempt) for e in requests] == [("GET", 1), ("GET", 2)]
    assert [(e.status, e.attempt) for e in responses] == [(503, 1), (200, 2)]
    assert all(e.correlation_id for e in responses)
    assert responses[1].rate_limit_remaining is not None
    assert all(e.duration > 0 for e in responses)
    assert sandbox.access_token not in repr(requests) + repr(responses)


async def test_hooks_report_failures_without_a_response() -> None:
    responses: list[ResponseEvent] = []
    async with HubSpot(
        "t", base_url="http://127.0.0.1:9", retry=None, hooks=Hooks(on_response=[responses.append])
    ) as hs:
        with pytest.raises(Exception, match="cannot connect"):
            await hs.smtp_tokens.list()
    assert responses[0].status is None
    assert responses[0].error == "APIConnectionError"


async def test_trace_configs_pass_through(sandbox: Sandbox) -> None:
    started: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: types.SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        started.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with sandbox.client(trace_configs=[trace]) as hs:
        await hs.smtp_tokens.list()
    assert started == ["/marketing/transactional/2026-03/smtp-tokens"]


def test_redacting_filter() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "headers %s body %s",
        ({"Authorization": "Bearer pat-na1-abc.def"}, "client_secret=s3cr3t&refresh_token=rt-1"),
        None,
    )
    assert RedactingFilter().filter(record)
    text = record.getMessage()
    for secret in ("pat-na1-abc.def", "s3cr3t", "rt-1"):
        assert secret not in text
    assert "[REDACTED]" in text
