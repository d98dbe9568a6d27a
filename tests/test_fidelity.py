"""Fidelity to HubSpot's own published specs (HubSpot-public-api-spec-collection): the paths of
each API version, the request bodies the dated schemas require, the response shapes HubSpot
sends, and the sandbox answering as HubSpot would. Payloads here are hand-written from the
facts of those specs and of HubSpot's legacy Email Events documentation."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest

from hubspot_tx import HubSpot, OAuthRefreshError
from hubspot_tx._pacing import Pacer, RateLimit
from hubspot_tx._paths import API_VERSIONS, DEFAULT_API_VERSION
from hubspot_tx.models import (
    EmailEventType,
    SendResult,
    SendState,
    SingleSendMessage,
    SingleSendRequest,
)
from hubspot_tx.models.single_send import encode_request, send_status_decoder
from hubspot_tx.models.tracking import event_decoder, event_page_decoder, statistics_decoder
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY

# The 51 sendResult values of HubSpot's EmailSendStatusView (v3, v4, 2026-03 specs).
HUBSPOT_SEND_RESULTS = [
    "ADDRESS_LIST_BOMBED",
    "ADDRESS_ONLY_ACCEPTED_ON_PROD",
    "ADDRESS_OPTED_OUT",
    "ATTACHMENT_DOWNLOAD_QUEUE_FULL",
    "BLOCKED_ADDRESS",
    "BLOCKED_DOMAIN",
    "BRAND_RECIPIENT_FATIGUE_SUPPRESSED",
    "CAMPAIGN_CANCELLED",
    "CANCELLED_ABUSE",
    "CONTACT_VIEW_PERMISSION",
    "CORRUPT_INPUT",
    "EMAIL_DISABLED",
    "EMAIL_UNCONFIRMED",
    "GDPR_DOI_ENABLED",
    "GRAYMAIL_SUPPRESSED",
    "HUBL_LIMIT_EXCEEDED",
    "IDEMPOTENT_FAIL",
    "IDEMPOTENT_IGNORE",
    "INVALID_APP_ID_ATTRIBUTION",
    "INVALID_FROM_ADDRESS",
    "INVALID_TO_ADDRESS",
    "LOW_CONTACT_QUALITY_SCORE",
    "MARKETING_ACTIVATION_DISALLOWED",
    "MISSING_CONTENT",
    "MISSING_REQUIRED_PARAMETER",
    "MISSING_TEMPLATE_PROPERTIES",
    "MTA_IGNORE",
    "NON_MARKETABLE_CONTACT",
    "PORTAL_AUTHENTICATION_FAILURE",
    "PORTAL_EXPIRED",
    "PORTAL_MISSING_MARKETING_SCOPE",
    "PORTAL_NOT_AUTHORIZED_FOR_APPLICATION",
    "PORTAL_OVER_LIMIT",
    "PORTAL_SUSPENDED",
    "PREVIOUSLY_BOUNCED",
    "PREVIOUSLY_UNSUBSCRIBED_BRAND",
    "PREVIOUSLY_UNSUBSCRIBED_BUSINESS_UNIT",
    "PREVIOUSLY_UNSUBSCRIBED_MESSAGE",
    "PREVIOUSLY_UNSUBSCRIBED_PORTAL",
    "PREVIOUS_SPAM",
    "QUARANTINED_ADDRESS",
    "QUEUED",
    "RECIPIENT_FATIGUE_SUPPRESSED",
    "SENT",
    "TEMPLATE_RENDER_EXCEPTION",
    "THROTTLED",
    "TOO_MANY_RECIPIENTS",
    "UBB_GOVERNANCE_MISSING",
    "UNCONFIGURED_SENDING_DOMAIN",
    "UNDELIVERABLE",
    "VALIDATION_FAILED",
]


# -- paths and versions ----------------------------------------------------------------------
def test_the_default_api_version_is_the_newest_dated_one() -> None:
    assert DEFAULT_API_VERSION == "2026-09"
    assert HubSpot("t").api_version == "2026-09"
    paths = API_VERSIONS["2026-09"]
    assert paths.single_send == "/marketing/transactional/2026-09/single-email/send"
    assert paths.marketing_single_send == "/marketing/email-campaigns/2026-09/single-send"
    assert paths.email_statistics == "/marketing/emails/2026-09/statistics"
    assert paths.smtp_tokens == "/marketing/transactional/2026-03/smtp-tokens"
    assert paths.oauth_token == "/oauth/2026-09/token"
    assert API_VERSIONS["2026-03"].oauth_token == "/oauth/2026-03/token"
    assert API_VERSIONS["v3"].oauth_token == "/oauth/v3/token"


async def test_2026_09_calls_reach_the_paths_hubspot_publishes(sandbox: Sandbox) -> None:
    async with sandbox.client(api_version="2026-09", retry=FAST_RETRY) as hs:
        await hs.single_send.send(email_id=1001, to="a@example.org")
        await hs.single_send.send_v4(email_id=1001, to="b@example.org")
        now = datetime.now(UTC)
        await hs.statistics.list(now - timedelta(hours=1), now)
    paths = [r.path for r in sandbox.requests]
    assert paths == [
        "/marketing/transactional/2026-09/single-email/send",
        "/marketing/email-campaigns/2026-09/single-send",
        "/marketing/emails/2026-09/statistics/list",
    ]
    assert all(r.status == 200 for r in sandbox.requests)


async def test_paths_hubspot_does_not_publish_are_404(sandbox: Sandbox) -> None:
    body = {
        "emailId": 1001,
        "message": {"to": "a@example.org", "cc": [], "bcc": [], "replyTo": []},
        "contactProperties": {},
        "customProperties": {},
    }
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    async with aiohttp.ClientSession() as http:
        for path in (
            "/marketing/email-campaigns/2026-12/single-send",
            "/marketing/transactional/2026-09/smtp-tokens",
        ):
            async with http.post(sandbox.base_url + path, json=body, headers=headers) as resp:
                assert resp.status == 404, path
                error = await resp.json()
                assert error["status"] == "error"
                assert error["correlationId"]


# -- request bodies ----------------------------------------------------------------------------
def _request() -> SingleSendRequest:
    return SingleSendRequest(email_id=7, message=SingleSendMessage(to="a@example.org"))


def test_dated_bodies_carry_the_fields_the_dated_schemas_require() -> None:
    dated = json.loads(encode_request(_request(), dated=True))
    assert dated == {
        "emailId": 7,
        "message": {"to": "a@example.org", "cc": [], "bcc": [], "replyTo": []},
        "contactProperties": {},
        "customProperties": {},
    }
    classic = json.loads(encode_request(_request(), dated=False))
    assert classic == {"emailId": 7, "message": {"to": "a@example.org"}}


def test_contact_property_values_must_be_strings() -> None:
    with pytest.raises(TypeError, match="contact_properties"):
        HubSpot("t").single_send.build(
            email_id=1,
            to="a@example.org",
            contact_properties={"age": 3},  # type: ignore[dict-item]
        )
    request = HubSpot("t").single_send.build(
        email_id=1, to="a@example.org", custom_properties={"order": {"items": [1, 2]}}
    )
    assert request.custom_properties == {"order": {"items": [1, 2]}}


@pytest.mark.parametrize("version", ["2026-03", "2026-09"])
async def test_every_dated_send_is_accepted_by_the_validating_sandbox(
    sandbox: Sandbox, version: str
) -> None:
    async with sandbox.client(api_version=version, retry=FAST_RETRY) as hs:
        status = await hs.single_send.send(email_id=1001, to="a@example.org")
        v4 = await hs.single_send.send_v4(email_id=1001, to="b@example.org")
    assert status.status_id
    assert v4.status_id


async def _post(sandbox: Sandbox, path: str, body: object) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sandbox.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("send", ["single_send", "marketing_single_send"])
async def test_the_sandbox_refuses_what_the_dated_schema_refuses(
    sandbox: Sandbox, send: str
) -> None:
    classic_body = {"emailId": 1001, "message": {"to": "a@example.org"}}
    status, _ = await _post(sandbox, getattr(API_VERSIONS["v3"], send), classic_body)
    assert status == 200  # v3's (and v4's) schema requires only emailId, message, message.to
    status, error = await _post(sandbox, getattr(API_VERSIONS["2026-09"], send), classic_body)
    assert status == 400
    assert error["category"] == "VALIDATION_ERROR"
    assert error["status"] == "error"
    assert error["correlationId"]
    assert error["message"]
    errors = error["errors"]
    assert isinstance(errors, list)
    assert sorted(e["in"] for e in errors) == [
        "contactProperties",
        "customProperties",
        "message.bcc",
        "message.cc",
        "message.replyTo",
    ]
    assert {e["code"] for e in errors} == {"REQUIRED"}
    assert all(e["message"] for e in errors)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"message": {"to": "a@example.org"}}, "emailId"),
        ({"emailId": "1001", "message": {"to": "a@example.org"}}, "emailId"),
        ({"emailId": 1001, "message": {}}, "message.to"),
        ({"emailId": 1001, "message": {"to": 5}}, "message.to"),
        ({"emailId": 1001, "message": {"to": "a@x.org", "cc": "b@x.org"}}, "message.cc"),
        (
            {"emailId": 1001, "message": {"to": "a@x.org"}, "contactProperties": {"n": 1}},
            "contactProperties",
        ),
        ([1, 2], "body"),
    ],
)
async def test_the_sandbox_names_what_is_wrong(sandbox: Sandbox, body: object, where: str) -> None:
    status, error = await _post(sandbox, API_VERSIONS["v3"].single_send, body)
    assert status == 400
    assert error["category"] == "VALIDATION_ERROR"
    errors = error["errors"]
    assert isinstance(errors, list)
    assert [e["in"] for e in errors] == [where]
    assert errors[0]["code"] in ("REQUIRED", "INVALID_TYPE")


async def test_smtp_token_create_requires_both_fields(sandbox: Sandbox) -> None:
    status, error = await _post(sandbox, API_VERSIONS["v3"].smtp_tokens, {"campaignName": "x"})
    assert status == 400
    assert error["errors"] == [
        {"message": "createContact is required", "in": "createContact", "code": "REQUIRED"}
    ]


# -- send status -------------------------------------------------------------------------------
def test_send_result_knows_every_value_hubspot_publishes() -> None:
    assert sorted(SendResult.__members__) == sorted(HUBSPOT_SEND_RESULTS)
    assert len(HUBSPOT_SEND_RESULTS) == 51
    # Not one of HubSpot's, yet decodes (as an unknown value) like any value HubSpot may add.
    assert not SendResult("INVALID_EMAIL").is_known


def test_send_status_decodes_hubspots_message() -> None:
    status = send_status_decoder.decode(
        b'{"statusId":"s1","status":"COMPLETE","sendResult":"MISSING_TEMPLATE_PROPERTIES",'
        b'"message":"custom.order_id is missing","requestedAt":"2026-01-01T00:00:00Z",'
        b'"somethingNew":{"x":1}}'
    )
    assert status.send_result is SendResult.MISSING_TEMPLATE_PROPERTIES
    assert status.message == "custom.order_id is missing"
    minimal = send_status_decoder.decode(b'{"statusId":"s2","status":"PENDING"}')
    assert minimal.message is None
    assert minimal.send_result is None


async def test_every_send_result_can_be_produced_in_the_sandbox() -> None:
    async with (
        Sandbox(pending_seconds=0.0, processing_seconds=0.0) as sb,
        sb.client(retry=FAST_RETRY) as hs,
    ):
        for value in HUBSPOT_SEND_RESULTS:
            status = await hs.single_send.send(
                email_id=1001, to=f"sendresult-{value.lower()}@example.org"
            )
            final = await hs.send_status.wait(status, timeout=5)
            assert final.status is SendState.COMPLETE
            assert final.send_result == SendResult(value), value
            if not final.send_result.is_sent:
                assert final.message, value


async def test_the_v4_answer_has_no_echoed_message_object(sandbox: Sandbox) -> None:
    body = {
        "emailId": 1001,
        "message": {"to": "a@example.org", "cc": [], "bcc": [], "replyTo": []},
        "contactProperties": {},
        "customProperties": {},
    }
    status, answer = await _post(sandbox, API_VERSIONS["2026-09"].marketing_single_send, body)
    assert status == 200
    assert not isinstance(answer.get("message"), dict)  # HubSpot's `message` is a string


# -- statistics ------------------------------------------------------------------------------
def test_statistics_decode_hubspots_maps_of_maps() -> None:
    stats = statistics_decoder.decode(
        b'{"emails":[1],"aggregate":{"counters":{"sent":3,"bounce":1},"ratios":{"bounceratio":33.3},'
        b'"deviceBreakdown":{"open_device_type":{"computer":1,"mobile":2}},'
        b'"qualifierStats":{"bounced":{"HARD_BOUNCE":1},"dropped":{"PREVIOUSLY_BOUNCED":2}}},'
        b'"campaignAggregations":{}}'
    )
    assert stats.aggregate.qualifier_stats == {
        "bounced": {"HARD_BOUNCE": 1},
        "dropped": {"PREVIOUSLY_BOUNCED": 2},
    }
    assert stats.aggregate.device_breakdown["open_device_type"]["mobile"] == 2


async def test_the_sandbox_emits_qualifier_stats_and_device_breakdown(sandbox: Sandbox) -> None:
    sandbox.state.event_step = 0.01
    async with sandbox.client(retry=FAST_RETRY) as hs:
        start = datetime.now(UTC) - timedelta(seconds=1)
        for to in ("bounce@example.org", "click@example.org", "x@blocked.example"):
            await hs.send_status.wait(await hs.single_send.send(email_id=1001, to=to))
        await asyncio.sleep(0.2)
        end = datetime.now(UTC) + timedelta(seconds=1)
        stats = await hs.statistics.list(start, end)
        histogram = await hs.statistics.histogram("HOUR", start, end)
    assert stats.aggregate.qualifier_stats == {
        "bounced": {"HARD_BOUNCE": 1},
        "dropped": {"BLOCKED_DOMAIN": 1},
    }
    assert stats.aggregate.device_breakdown == {
        "open_device_type": {"computer": 1},
        "click_device_type": {"computer": 1},
    }
    merged: dict[str, int] = {}
    for bucket in histogram.results:
        for reason, n in bucket.aggregations.qualifier_stats.get("bounced", {}).items():
            merged[reason] = merged.get(reason, 0) + n
    assert merged == {"HARD_BOUNCE": 1}


# -- events ----------------------------------------------------------------------------------
def test_an_unbounce_event_without_type_decodes() -> None:
    page = event_page_decoder.decode(
        b'{"hasMore":false,"offset":"x","events":['
        b'{"id":"u1","created":1767225600000,"portalId":62515,"hmid":"h","sentBy":'
        b'{"id":"s","created":1767225500000}},'
        b'{"id":"e2","type":"OPEN","recipient":"a@x.org","created":1767225600000}]}'
    )
    assert [e.type for e in page.events] == [EmailEventType.UNBOUNCE, EmailEventType.OPEN]


def test_event_fields_of_every_type_decode() -> None:
    raw = {
        "id": "e1",
        "type": "CLICK",
        "recipient": "a@x.org",
        "created": 1767225600000,
        "emailCampaignId": 12,
        "url": "https://example.com/p",
        "referer": "https://mail.example/",
        "linkId": 4,
        "duration": 1200,
        "deviceType": "MOBILE",
        "filteredEvent": True,
        "from": "Shop <shop@x.org>",
        "cc": ["c@x.org"],
        "bcc": [],
        "replyTo": ["r@x.org"],
        "obsoletedBy": {"id": "o", "created": 1767225700000},
        "causedBy": {"id": "c", "created": 1767225500000},
        "source": "SOURCE_HUBSPOT_CUSTOMER",
        "requestedBy": "admin@x.org",
        "portalSubscriptionStatus": "UNSUBSCRIBED",
        "subscriptions": [{"id": 1, "status": "UNSUBSCRIBED"}],
        "bounced": False,
        "anUnknownField": [1],
    }
    event = event_decoder.decode(json.dumps(raw).encode())
    assert event.url == "https://example.com/p"
    assert event.link_id == 4
    assert event.referer == "https://mail.example/"
    assert event.duration == 1200
    assert event.device_type == "MOBILE"
    assert event.filtered_event is True
    assert event.from_ == "Shop <shop@x.org>"
    assert event.reply_to == ["r@x.org"]
    assert event.cc == ["c@x.org"]
    assert event.bcc == []
    assert event.obsoleted_by is not None
    assert event.obsoleted_by.id == "o"
    assert event.caused_by is not None
    assert event.caused_by.id == "c"
    assert event.portal_subscription_status == "UNSUBSCRIBED"
    assert event.subscriptions is not None
    assert event.subscriptions[0]["status"] == "UNSUBSCRIBED"
    assert event.source == "SOURCE_HUBSPOT_CUSTOMER"
    assert event.requested_by == "admin@x.org"


async def test_filtered_opens_and_clicks_are_excluded(sandbox: Sandbox) -> None:
    sandbox.state.event_step = 0.01
    async with sandbox.client(retry=FAST_RETRY) as hs:
        for to in ("bot@example.org", "click@example.org"):
            await hs.send_status.wait(await hs.single_send.send(email_id=1001, to=to))
        await asyncio.sleep(0.2)
        [campaign, *_] = await hs.marketing_emails.campaign_ids(1001)
        every = [e async for e in hs.events.list(campaign_id=campaign)]
        kept = [e async for e in hs.events.list(campaign_id=campaign, exclude_filtered_events=True)]
        outcomes = await hs.events.outcomes(campaign)
    bot = [e for e in every if e.recipient == "bot@example.org" and e.type.value == "OPEN"]
    assert bot
    assert bot[0].filtered_event is True
    assert not [e for e in kept if e.filtered_event]
    assert {e.type.value for e in kept if e.recipient == "bot@example.org"} == {
        "PROCESSED",
        "SENT",
        "DELIVERED",
    }
    assert not outcomes["bot@example.org"].opened
    assert not outcomes["bot@example.org"].clicked
    assert outcomes["click@example.org"].clicked


async def test_sandbox_events_newest_first_10_by_default_end_inclusive(
    sandbox: Sandbox,
) -> None:
    sandbox.state.event_step = 0.01
    async with sandbox.client(retry=FAST_RETRY) as hs:
        for n in range(4):
            await hs.send_status.wait(
                await hs.single_send.send(email_id=1001, to=f"r{n}@example.org")
            )
        await asyncio.sleep(0.2)
        [campaign, *_] = await hs.marketing_emails.campaign_ids(1001)
        page = await hs.events.list(campaign_id=campaign)
        every = [e async for e in hs.events.list(campaign_id=campaign)]
        last = every[0]
        assert last.created is not None
        upto = await hs.events.list(campaign_id=campaign, end=last.created, limit=1000)
    assert len(page.events) == 10
    assert page.has_more
    stamps = [e.created for e in every]
    assert stamps == sorted(stamps, reverse=True)  # type: ignore[type-var]
    assert last.id in {e.id for e in upto.events}  # the end is inclusive


# -- SMTP token ids --------------------------------------------------------------------------
async def test_token_ids_are_shaped_like_hubspots_and_survive_the_path(
    sandbox: Sandbox,
) -> None:
    async with sandbox.client(retry=FAST_RETRY) as hs:
        token = await hs.smtp_tokens.create(campaign_name="ids")
        assert token.id.endswith("@62515.smtp.hubspot.net")
        assert (await hs.smtp_tokens.get(token.id)).id == token.id
        await hs.smtp_tokens.reset_password(token.id)
        await hs.smtp_tokens.delete(token.id)
    assert any("%40" in r.path or "@" in r.path for r in sandbox.requests)


# -- OAuth ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("v3", "/oauth/v3/token"),
        ("2026-03", "/oauth/2026-03/token"),
        ("2026-09", "/oauth/2026-09/token"),
    ],
)
async def test_oauth_refreshes_at_the_versions_token_endpoint(version: str, path: str) -> None:
    async with Sandbox() as sb:
        async with sb.client(auth=sb.oauth(), api_version=version, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()
        assert next(r.path for r in sb.requests) == path
        assert sb.state.oauth_refreshes == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_a_transient_token_endpoint_error_is_not_remembered(status: int) -> None:
    async with Sandbox() as sb:
        async with sb.client(auth=sb.oauth(), retry=FAST_RETRY) as hs:
            sb.faults.rest_error(status, times=None, path="/oauth/2026-09/token")
            with pytest.raises(OAuthRefreshError) as caught:
                await hs.smtp_tokens.list()
            assert caught.value.status == status
            sb.faults.clear()
            await hs.smtp_tokens.list()  # the refresh token was fine all along
        assert sb.state.oauth_refreshes == 1


@pytest.mark.parametrize(
    "path", ["/oauth/v1/token", "/oauth/v3/token", "/oauth/2026-03/token", "/oauth/2026-09/token"]
)
async def test_a_malformed_token_form_is_a_400_not_a_500(sandbox: Sandbox, path: str) -> None:
    """A multipart Content-Type without a boundary crashed the sandbox's form parsing (500)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url + path, data=b"x", headers={"Content-Type": "multipart/form-data"}
        ) as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
    assert "form" in body["message"]


@pytest.mark.parametrize("version", ["v3", "2026-03", "2026-09"])
async def test_hubspots_oauth_introspect_and_revoke_are_served(version: str) -> None:
    """HubSpot publishes token, token/introspect and token/revoke under v3, 2026-03 and
    2026-09; the sandbox answered 404 to all but two token paths."""
    async with Sandbox() as sb:
        client_id, secret, refresh = sb.state.register_oauth_app()
        app = {"client_id": client_id, "client_secret": secret}
        base = f"{sb.base_url}/oauth/{version}/token"
        async with aiohttp.ClientSession() as http:

            async def post(path: str, **form: str) -> tuple[int, Any]:
                async with http.post(base + path, data=form) as resp:
                    return resp.status, (await resp.json() if await resp.read() else None)

            status, tokens = await post(
                "", grant_type="refresh_token", refresh_token=refresh, **app
            )
            assert status == 200
            assert tokens["token_use"] == "access_token"
            access = tokens["access_token"]
            status, info = await post("/introspect", token=access, **app)
            assert (status, info["active"], info["token_use"]) == (200, True, "access_token")
            assert info["client_id"] == client_id
            assert info["scopes"] == ["transactional-email"]
            status, info = await post("/introspect", token=refresh, **app)
            assert (status, info["active"], info["token_use"]) == (200, True, "refresh_token")
            status, error = await post("/introspect", token=access, client_id=client_id)
            assert (status, error["category"]) == (400, "BAD_CLIENT_SECRET")

            assert (await post("/revoke", token=access, **app))[0] == 200
            assert (await post("/introspect", token=access, **app))[1] == {"active": False}
            assert (await post("/revoke", token=refresh, **app))[0] == 200
            status, error = await post("", grant_type="refresh_token", refresh_token=refresh, **app)
            assert (status, error["category"]) == (400, "BAD_REFRESH_TOKEN")


async def test_a_refused_refresh_token_at_the_dated_endpoint_is_typed() -> None:
    async with Sandbox() as sb:
        good = sb.oauth()
        from hubspot_tx import OAuth

        bad = OAuth(client_id=good.client_id, client_secret="nope", refresh_token="x")
        async with sb.client(auth=bad, retry=FAST_RETRY) as hs:
            for _ in range(2):
                with pytest.raises(OAuthRefreshError, match="BAD_CLIENT_SECRET"):
                    await hs.smtp_tokens.list()
        assert len(sb.requests) == 1  # refused once, remembered


# -- the daily latch ---------------------------------------------------------------------------
async def test_the_daily_latch_probes_again_after_the_interval() -> None:
    now = [1000.0]
    pacer = Pacer(RateLimit(100, 10.0), learn=True, daily_probe_interval=300, clock=lambda: now[0])
    headers = {
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Daily-Remaining": "0",
    }
    pacer.observe(headers, status=200)
    from hubspot_tx import RateLimitError

    with pytest.raises(RateLimitError):
        await pacer.acquire()
    now[0] += 299
    with pytest.raises(RateLimitError):
        await pacer.acquire()
    now[0] += 2
    await pacer.acquire()  # one probe after the interval
    with pytest.raises(RateLimitError):
        await pacer.acquire()  # only one
    pacer.observe({**headers, "X-HubSpot-RateLimit-Daily-Remaining": "249999"}, status=200)
    for _ in range(5):
        await pacer.acquire()  # the daily count was reset: back to normal


# -- the served OpenAPI document ---------------------------------------------------------------
async def test_the_served_openapi_is_the_sandboxs_own(sandbox: Sandbox) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sandbox.base_url + "/_sandbox/openapi.json") as resp,
    ):
        spec = await resp.json()
    assert spec["info"]["title"] == "hubspot-tx sandbox"
    assert "not HubSpot's specification" in spec["info"]["description"]
    for v in API_VERSIONS.values():
        for path in (v.single_send, v.marketing_single_send, v.smtp_tokens):
            assert path in spec["paths"], path
    assert "/marketing/transactional/2026-09/smtp-tokens" not in spec["paths"]
    _, ours = msgspec.json.schema_components(
        [SendState], ref_template="#/components/schemas/{name}"
    )
    schemas = spec["components"]["schemas"]
    assert set(schemas["SendStatus"]["properties"]) >= {"statusId", "status", "message"}
    assert schemas["SendState"] == ours["SendState"]
    assert schemas["DatedSingleSendRequest"]["required"] == [
        "contactProperties",
        "customProperties",
        "emailId",
        "message",
    ]


async def test_the_served_openapi_describes_every_hubspot_route_served(sandbox: Sandbox) -> None:
    """README: ``/_sandbox/openapi.json`` describes all of it. The marketing emails, the legacy
    campaign listing and the OAuth token endpoints were served but not described."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(sandbox.base_url + "/_sandbox/openapi.json") as resp,
    ):
        spec = await resp.json()
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in sandbox._app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not route.resource.canonical.startswith("/_sandbox/")
        and route.resource.canonical != "/"
    }
    described = {(m, p) for p, item in spec["paths"].items() for m in item if m != "parameters"}
    assert served - described == set()
    assert {"MarketingEmail", "MarketingEmailPage", "EmailCreateRequest"} <= set(
        spec["components"]["schemas"]
    )


@pytest.mark.parametrize(
    "path",
    [
        API_VERSIONS["2026-09"].single_send,
        API_VERSIONS["2026-09"].marketing_single_send,
        API_VERSIONS["v3"].single_send,
    ],
)
async def test_the_sandbox_accepts_and_refuses_as_its_served_schema_says(path: str) -> None:
    from .test_conformance import schemathesis

    async with Sandbox(rate_limit=None) as sb:
        code, out = await schemathesis(
            sb,
            "--include-path",
            path,
            "--max-examples",
            "25",
            spec=sb.base_url + "/_sandbox/openapi.json",
        )
    assert code == 0, out[-4000:]
    assert "generated" in out


# -- scopes ---------------------------------------------------------------------------------
async def test_an_oauth_token_without_the_scope_gets_hubspots_403() -> None:
    from hubspot_tx import PermissionDeniedError

    async with Sandbox() as sb:
        auth = sb.oauth(scopes=["content"])
        async with sb.client(auth=auth, retry=FAST_RETRY) as hs:
            with pytest.raises(PermissionDeniedError) as caught:
                await hs.smtp_tokens.list()
            with pytest.raises(PermissionDeniedError):
                await hs.single_send.send(email_id=1001, to="a@example.org")
        err = caught.value
        assert err.status == 403
        assert err.category == "MISSING_SCOPES"
        assert "transactional-email" in str(err)
        assert err.errors[0].context == {"requiredGranularScopes": ["transactional-email"]}
        marketing = sb.oauth(scopes=["marketing-email"])
        async with sb.client(auth=marketing, retry=FAST_RETRY) as hs:
            await hs.single_send.send_v4(email_id=1001, to="a@example.org")  # either scope
            with pytest.raises(PermissionDeniedError):
                await hs.single_send.send(email_id=1001, to="a@example.org")
