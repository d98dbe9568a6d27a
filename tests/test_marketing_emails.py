"""Marketing emails (the templates single-send sends) and the campaign ids their events are keyed
by: the SDK against the sandbox on loopback, and HubSpot-shaped payloads decoded."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubspot_tx import HubSpot, NotFoundError, SendResult, SendStatus
from hubspot_tx._exceptions import BadRequestError
from hubspot_tx.models.marketing_emails import (
    EmailState,
    EmailType,
    LegacyCampaignPage,
    MarketingEmail,
    MarketingEmailPage,
    email_decoder,
    email_page_decoder,
    legacy_campaign_page_decoder,
)
from hubspot_tx.resources.marketing_emails import SINGLE_SEND_TYPES
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.sandbox._emails import missing_properties, render

from .conftest import FAST_RETRY

SETTLE = 6  # event steps until a send's last event is visible


async def _settle(sb: Sandbox, hs: HubSpot, statuses: list[SendStatus]) -> None:
    for status in statuses:
        await hs.send_status.wait(status, timeout=10)
    await asyncio.sleep(SETTLE * sb.state.event_step)


async def _receipt(hs: HubSpot, *, publish: bool = True) -> MarketingEmail:
    created = await hs.marketing_emails.create_transactional(
        name="Receipt",
        subject="Your order {{ custom.order_id }}",
        html="<p>Hi {{contact.firstname}}, thanks for order {{ custom.order_id }}.</p>",
        plain_text="Hi {{contact.firstname}}, thanks for order {{ custom.order_id }}.",
        from_name="Shop",
        reply_to="shop@example.com",
    )
    if publish:
        await hs.marketing_emails.publish(created.id)
    return created


# -- the SDK against the sandbox ---------------------------------------------------------------
@pytest.mark.parametrize("api_version", ["v3", "2026-03", "2026-09"])
async def test_create_get_publish_list_on_every_version(sandbox: Sandbox, api_version: str) -> None:
    async with sandbox.client(api_version=api_version, retry=FAST_RETRY) as hs:
        draft = await _receipt(hs, publish=False)
        assert draft.type is EmailType.SINGLE_SEND_API
        assert draft.is_transactional is True
        assert draft.is_published is False
        assert draft.state is EmailState.AUTOMATED_DRAFT
        assert draft.primary_email_campaign_id
        assert draft.all_email_campaign_ids == [draft.primary_email_campaign_id]
        assert draft.primary_email_campaign_id != draft.id  # two id spaces

        await hs.marketing_emails.publish(draft.id)
        got = await hs.marketing_emails.get(draft.id)
        assert (got.is_published, got.state) == (True, EmailState.AUTOMATED)
        assert got.subject == "Your order {{ custom.order_id }}"
        assert got.published_at is not None

        unpublished = [e.id async for e in hs.marketing_emails.list(is_published=False)]
        published = [e.id async for e in hs.marketing_emails.list(is_published=True)]
        assert draft.id in published
        assert draft.id not in unpublished
        singles = [e async for e in hs.marketing_emails.list(type=EmailType.SINGLE_SEND_API)]
        assert {e.type for e in singles} == {EmailType.SINGLE_SEND_API}
        assert draft.id in {e.id for e in singles}
        assert [e async for e in hs.marketing_emails.list(type="BATCH_EMAIL")] == []
    paths = {r.path for r in sandbox.requests}
    base = "/marketing/v3/emails" if api_version == "v3" else f"/marketing/emails/{api_version}"
    assert {base, f"{base}/{draft.id}", f"{base}/{draft.id}/publish"} <= paths


async def test_list_pages_with_a_cursor_and_total(hs_http: HubSpot) -> None:
    for i in range(5):
        await hs_http.marketing_emails.create_transactional(name=f"e{i}", subject=f"s{i}")
    first = await hs_http.marketing_emails.list(limit=3, sort=["name"])
    assert first.total == 7  # the 5 created and the sandbox's 2 seeded emails
    assert len(first.results) == 3
    assert first.after
    names = [e.name async for e in hs_http.marketing_emails.list(limit=3, sort=["name"])]
    assert names == sorted(names, key=lambda n: (n or "").lower())
    assert len(names) == 7
    assert (await hs_http.marketing_emails.list(archived=True)).results == []


async def test_bad_filters_are_validation_errors(hs_http: HubSpot) -> None:
    with pytest.raises(BadRequestError):
        await hs_http.marketing_emails.list(type="NOT_A_TYPE")
    with pytest.raises(BadRequestError):
        await hs_http.marketing_emails.list(sort=["colour"])
    with pytest.raises(ValueError, match="limit"):
        hs_http.marketing_emails.list(limit=0)
    with pytest.raises(ValueError, match="email_id"):
        await hs_http.marketing_emails.get("../smtp-tokens")


async def test_unknown_email_is_not_found(hs_http: HubSpot) -> None:
    with pytest.raises(NotFoundError):
        await hs_http.marketing_emails.get(404404)
    with pytest.raises(NotFoundError):
        await hs_http.marketing_emails.publish(404404)


async def test_publishing_needs_a_subject(hs_http: HubSpot) -> None:
    draft = await hs_http.marketing_emails.create_transactional(name="no subject", subject="")
    with pytest.raises(BadRequestError):
        await hs_http.marketing_emails.publish(draft.id)


async def test_single_send_of_a_draft_or_unknown_email_is_missing_content(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    draft = await _receipt(hs_http, publish=False)
    props = {"order_id": "1"}
    for api in ("send", "send_v4"):
        send = getattr(hs_http.single_send, api)
        for email_id in (int(draft.id), 999):
            status = await send(
                email_id=email_id,
                to="a@example.org",
                custom_properties=props,
                contact_properties={"firstname": "A"},
            )
            final = await hs_http.send_status.wait(status, timeout=10)
            assert final.send_result is SendResult.MISSING_CONTENT, (api, email_id)
    assert sandbox.state.messages == []


@pytest.mark.parametrize("api_version", ["v3", "2026-03", "2026-09"])
async def test_unfilled_placeholders_are_missing_template_properties(
    sandbox: Sandbox, api_version: str
) -> None:
    async with sandbox.client(api_version=api_version, retry=FAST_RETRY) as hs:
        receipt = await _receipt(hs)
        cases: list[tuple[dict[str, str | None], dict[str, str]]] = [
            ({}, {}),
            ({"order_id": "7"}, {}),  # contact.firstname unfilled
            ({}, {"firstname": "Ada"}),  # custom.order_id unfilled
            ({"order_id": None}, {"firstname": "Ada"}),  # null fills nothing
        ]
        for custom, contact in cases:
            for send in (hs.single_send.send, hs.single_send.send_v4):
                status = await send(
                    email_id=int(receipt.id),
                    to="ada@example.org",
                    custom_properties=custom,
                    contact_properties=contact,
                )
                final = await hs.send_status.wait(status, timeout=10)
                assert final.send_result is SendResult.MISSING_TEMPLATE_PROPERTIES
        await asyncio.sleep(SETTLE * sandbox.state.event_step)
        campaign = receipt.campaign_ids[0]
        assert [e async for e in hs.events.list(campaign_id=campaign)] == []
    assert sandbox.state.messages == []


async def test_filled_placeholders_render_into_the_outbox(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    receipt = await _receipt(hs_http)
    status = await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="ada@example.org",
        cc=["bob@example.org"],
        custom_properties={"order_id": "A-17"},
        contact_properties={"firstname": "Ada"},
    )
    final = await hs_http.send_status.wait(status, timeout=10)
    assert final.send_result is SendResult.SENT
    [stored] = sandbox.outbox(recipient="ada@example.org")
    assert stored.rcpt_to == ("ada@example.org", "bob@example.org")
    assert stored.email_campaign_id == receipt.primary_email_campaign_id
    msg = stored.message
    assert msg["Subject"] == "Your order A-17"
    assert msg["From"].addresses[0].display_name == "Shop"
    assert msg["Cc"] == "bob@example.org"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Hi Ada, thanks for order A-17." in text.get_content()
    assert "<p>Hi Ada, thanks for order A-17.</p>" in html.get_content()
    assert "{{" not in stored.data.decode()


async def test_rendered_send_shows_in_the_inbox_api(sandbox: Sandbox, hs_http: HubSpot) -> None:
    receipt = await _receipt(hs_http)
    await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="grace@example.org",
        custom_properties={"order_id": "9"},
        contact_properties={"firstname": "Grace"},
    )
    async with aiohttp.ClientSession() as http:
        url = f"{sandbox.base_url}/_sandbox/v1/messages"
        async with http.get(url, params={"recipient": "grace@example.org"}) as resp:
            assert resp.status == 200
            body = await resp.json()
    [summary] = body["results"]
    assert summary["subject"] == "Your order 9"


async def test_events_are_keyed_by_the_campaign_id_not_the_email_id(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    receipt = await _receipt(hs_http)
    statuses = [
        await hs_http.single_send.send(
            email_id=int(receipt.id),
            to=to,
            custom_properties={"order_id": "1"},
            contact_properties={"firstname": "O"},
        )
        for to in ("openme@example.org", "bounced@example.org")
    ]
    await _settle(sandbox, hs_http, statuses)

    assert [e async for e in hs_http.events.list(campaign_id=receipt.id)] == []
    [campaign] = await hs_http.marketing_emails.campaign_ids(receipt.id)
    assert campaign == receipt.primary_email_campaign_id
    events = [e async for e in hs_http.events.list(campaign_id=campaign)]
    by_recipient: dict[str, list[str]] = {}
    for e in events:
        assert e.email_campaign_id == campaign
        by_recipient.setdefault(e.recipient or "", []).append(e.type.value)
    assert by_recipient == {
        # newest first, as HubSpot lists them
        "openme@example.org": ["OPEN", "DELIVERED", "SENT", "PROCESSED"],
        "bounced@example.org": ["DROPPED", "PROCESSED"],
    }
    data = await hs_http.campaigns.get(campaign)
    assert data.name == "Receipt"
    assert data.content_id == int(receipt.id)
    assert data.count("processed") == 2
    assert data.count("open") == 1
    with pytest.raises(NotFoundError):
        await hs_http.campaigns.get(receipt.id)

    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=1)
    stats = await hs_http.statistics.list(start, end, email_ids=[receipt.id])
    assert stats.emails == [int(receipt.id)]
    assert set(stats.campaign_aggregations) == {campaign}
    assert stats.aggregate.counters["sent"] == 1


async def test_seeded_emails_are_published_transactional_single_send_emails(
    hs_http: HubSpot,
) -> None:
    for email_id in (1001, 12345678):
        seeded = await hs_http.marketing_emails.get(email_id)
        assert seeded.is_published
        assert seeded.is_transactional
        assert seeded.type in SINGLE_SEND_TYPES
        [campaign] = await hs_http.marketing_emails.campaign_ids(email_id)
        assert campaign != str(email_id)


async def test_seeded_campaign_ids_survive_a_reset(sandbox: Sandbox, hs_http: HubSpot) -> None:
    before = await hs_http.marketing_emails.campaign_ids(1001)
    created = await hs_http.marketing_emails.create_transactional(name="x", subject="y")
    sandbox.reset()
    assert await hs_http.marketing_emails.campaign_ids(1001) == before
    with pytest.raises(NotFoundError):
        await hs_http.marketing_emails.get(created.id)


# -- legacy campaign listing -------------------------------------------------------------------
async def test_legacy_campaign_listings(sandbox: Sandbox, hs_http: HubSpot) -> None:
    token = await hs_http.smtp_tokens.create(campaign_name="relay")
    receipt = await _receipt(hs_http)
    status = await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="a@example.org",
        custom_properties={"order_id": "1"},
        contact_properties={"firstname": "A"},
    )
    await _settle(sandbox, hs_http, [status])
    expected = {
        token.email_campaign_id,
        *receipt.campaign_ids,
        *await hs_http.marketing_emails.campaign_ids(1001),
        *await hs_http.marketing_emails.campaign_ids(12345678),
    }
    by_id = [c async for c in hs_http.campaigns.list_by_id(limit=2)]
    assert [c.id for c in by_id] == sorted(expected, key=lambda c: int(c or 0))
    assert all(c.app_id and c.app_name for c in by_id)
    first = await hs_http.campaigns.list_by_id(limit=2)
    assert first.has_more
    assert first.offset
    assert len(first.campaigns) == 2

    recent = [c async for c in hs_http.campaigns.list(limit=3)]
    assert {c.id for c in recent} == expected
    assert recent[0].id == receipt.primary_email_campaign_id  # its events are the latest
    stamps = [c.last_updated_time or 0 for c in recent]
    assert stamps == sorted(stamps, reverse=True)
    with pytest.raises(ValueError, match="limit"):
        hs_http.campaigns.list(limit=0)
    with pytest.raises(BadRequestError):
        await hs_http.campaigns.list_by_id(offset="forged")
    paths = {r.path for r in sandbox.requests}
    assert {"/email/public/v1/campaigns", "/email/public/v1/campaigns/by-id"} <= paths


# -- HubSpot-shaped payloads -------------------------------------------------------------------
# Hand-written from the fields of HubSpot's PublicEmail schema (v3, 2026-03, 2026-09).
PUBLIC_EMAIL = {
    "id": "184993428780",
    "name": "Order receipt",
    "subject": "Your order {{ custom.order_id }}",
    "type": "AUTOMATED_EMAIL",
    "state": "AUTOMATED",
    "subcategory": "automated",
    "isTransactional": True,
    "isPublished": True,
    "isAb": False,
    "archived": False,
    "primaryEmailCampaignId": "312207771",
    "allEmailCampaignIds": ["312207771", "312207790"],
    "emailCampaignGroupId": "312207770",
    "campaign": "6f7e0b1c-9b4e-4c61-8f4e-1f0b6a2b5c3d",
    "from": {"fromName": "Shop", "replyTo": "shop@example.com"},
    "content": {
        "plainTextVersion": "Hi",
        "templatePath": "@hubspot/email/dnd/welcome.html",
        "widgets": {"module-0-0-0": {"body": {"html": "<p>Hi</p>"}, "type": "module"}},
        "smartFields": {},
        "styleSettings": {"backgroundColor": "#fff"},
    },
    "subscriptionDetails": {"subscriptionId": "12345", "officeLocationId": "99"},
    "language": "en",
    "createdAt": "2026-03-02T10:00:00Z",
    "updatedAt": "2026-03-02T10:05:00.123Z",
    "publishedAt": "2026-03-02T10:05:00Z",
    "webversion": {"enabled": False},
    "testing": {"abTestPercentage": 50},
    "to": {"limitSendFrequency": False, "suppressGraymail": True},
    "workflowNames": ["Receipts"],
    "someFieldHubSpotAddsLater": {"x": 1},
}


def test_decode_a_full_public_email() -> None:
    e = email_decoder.decode(msgspec.json.encode(PUBLIC_EMAIL))
    assert e.type is EmailType.AUTOMATED_EMAIL
    assert e.state is EmailState.AUTOMATED
    assert e.campaign_ids == ["312207771", "312207790"]
    assert e.from_ is not None
    assert e.from_.from_name == "Shop"
    assert e.content is not None
    assert e.content.widgets["module-0-0-0"]["body"]["html"] == "<p>Hi</p>"
    assert e.updated_at == datetime(2026, 3, 2, 10, 5, 0, 123000, tzinfo=UTC)


def test_decode_the_minimum_and_unknown_enum_values() -> None:
    e = email_decoder.decode(b'{"id": "1", "isAb": false, "type": "HOLOGRAM_EMAIL", "state": "X"}')
    assert e.type is not None
    assert e.type.value == "HOLOGRAM_EMAIL"
    assert not e.type.is_known
    assert e.state is not None
    assert e.state.value == "X"
    assert e.campaign_ids == []
    assert e.is_transactional is None


def test_numeric_campaign_ids_decode_as_strings() -> None:
    raw = {**PUBLIC_EMAIL, "id": 184993428780, "primaryEmailCampaignId": 312207771,
           "allEmailCampaignIds": [312207771, 312207790]}  # fmt: skip
    e = email_decoder.decode(msgspec.json.encode(raw))
    assert e.id == "184993428780"
    assert e.campaign_ids == ["312207771", "312207790"]


def test_campaign_ids_put_the_primary_first_without_repeats() -> None:
    e = email_decoder.decode(
        b'{"id": "1", "primaryEmailCampaignId": "5", "allEmailCampaignIds": ["4", "5", "4"]}'
    )
    assert e.campaign_ids == ["5", "4"]


def test_decode_a_page_with_paging() -> None:
    body = {
        "total": 3,
        "results": [PUBLIC_EMAIL, {"id": "2", "isAb": False}],
        "paging": {"next": {"after": "Mg%3D%3D", "link": "https://api.hubapi.com/x"}},
    }
    page = email_page_decoder.decode(msgspec.json.encode(body))
    assert isinstance(page, MarketingEmailPage)
    assert page.total == 3
    assert page.after == "Mg%3D%3D"
    assert len(page.results) == 2
    assert email_page_decoder.decode(b'{"total": 0, "results": []}').after is None


def test_legacy_campaign_pages() -> None:
    # Shapes of HubSpot's legacy "get campaigns" and "get campaign IDs" responses: numeric ids.
    recent = legacy_campaign_page_decoder.decode(
        b'{"hasMore": true, "offset": "CJTqzRwQ", "campaigns": ['
        b'{"id": 1156263, "appId": 113, "appName": "Batch", "lastUpdatedTime": 1429887610000},'
        b'{"id": 22744716, "appId": 22709, "appName": "Workflow", "groupId": 7}]}'
    )
    assert isinstance(recent, LegacyCampaignPage)
    assert [c.id for c in recent.campaigns] == ["1156263", "22744716"]
    assert recent.campaigns[0].app_id == "113"
    assert recent.after == "CJTqzRwQ"
    assert recent.campaigns[0].last_updated_time == 1429887610000
    done = legacy_campaign_page_decoder.decode(
        b'{"hasMore": false, "offset": "x", "campaigns": []}'
    )
    assert done.after is None


# -- the sandbox's renderer, on its own --------------------------------------------------------
def test_placeholders_with_and_without_spaces() -> None:
    text = "{{custom.a}} {{ custom.a }} {{  contact.first_name  }} {{ other.x }} {{custom.b}}"
    assert missing_properties([text], {"a": 1}, {}) == ["contact.first_name", "custom.b"]
    filled = render(text, {"a": 1, "b": [1, 2]}, {"first_name": "Zoë"})
    assert filled == "1 1 Zoë {{ other.x }} [1,2]"


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
        max_size=5,
    )
)
def test_every_filled_placeholder_renders_its_value(values: dict[str, str]) -> None:
    template = " ".join(f"[{{{{ custom.{k} }}}}]" for k in values)
    assert missing_properties([template], values, {}) == []
    assert render(template, values, {}) == " ".join(f"[{v}]" for v in values.values())


async def test_hostile_property_values_do_not_break_the_message(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    receipt = await _receipt(hs_http)
    status = await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="ada@example.org",
        custom_properties={"order_id": "1\r\nBcc: evil@example.org\r\n"},
        contact_properties={"firstname": "<script>x</script>\u00e9"},
    )
    final = await hs_http.send_status.wait(status, timeout=10)
    assert final.send_result is SendResult.SENT
    [stored] = sandbox.outbox(recipient="ada@example.org")
    parsed = email.message_from_bytes(stored.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Bcc"] is None
    assert stored.rcpt_to == ("ada@example.org",)
    assert parsed["Subject"] == "Your order 1 Bcc: evil@example.org"


async def test_data_dir_keeps_created_emails_and_their_campaigns(tmp_path: Path) -> None:
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb, sb.client() as hs:
        receipt = await _receipt(hs)
        draft = await hs.marketing_emails.create_transactional(name="draft", subject="d")
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb, sb.client() as hs:
        kept = await hs.marketing_emails.get(receipt.id)
        assert kept.is_published
        assert kept.campaign_ids == receipt.campaign_ids
        assert (await hs.marketing_emails.get(draft.id)).is_published is False
        status = await hs.single_send.send(
            email_id=int(receipt.id),
            to="a@example.org",
            custom_properties={"order_id": "1"},
            contact_properties={"firstname": "A"},
        )
        assert (await hs.send_status.wait(status, timeout=10)).send_result is SendResult.SENT
        fresh = await hs.marketing_emails.create_transactional(name="new", subject="n")
        assert int(fresh.id) > int(draft.id)
        taken = {*receipt.campaign_ids, *draft.campaign_ids}
        assert not taken & set(fresh.campaign_ids)


def test_an_older_sdk_shape_without_campaign_ids_decodes() -> None:
    # hubspot-api-client 12's PublicEmail has no isAb, primaryEmailCampaignId or
    # allEmailCampaignIds; HubSpot's current specs have all three.
    e = email_decoder.decode(b'{"id": "7", "name": "n", "type": "SINGLE_SEND_API"}')
    assert e.campaign_ids == []
    assert e.is_ab is False


@pytest.mark.parametrize(
    ("path", "status"),
    [("/marketing/v3/emails", 400), ("/marketing/emails/2026-03", 201)],
)
async def test_create_without_a_name(sandbox: Sandbox, path: str, status: int) -> None:
    # v3's EmailCreateRequest requires ``name``; the dated schemas require nothing.
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    async with aiohttp.ClientSession() as http:
        url = sandbox.base_url + path
        async with http.post(url, json={"subject": "s"}, headers=headers) as resp:
            assert resp.status == status
            body = await resp.json()
    if status == 400:
        assert body["category"] == "VALIDATION_ERROR"
    else:
        assert body["name"]
        assert body["primaryEmailCampaignId"] in body["allEmailCampaignIds"]


async def test_non_ascii_and_long_values_render_and_parse_back(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    receipt = await _receipt(hs_http)
    order = "Zoë-" + "x" * 200
    status = await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="ada@example.org",
        custom_properties={"order_id": order},
        contact_properties={"firstname": "Zoë 😀"},
    )
    assert (await hs_http.send_status.wait(status, timeout=10)).send_result is SendResult.SENT
    [stored] = sandbox.outbox(recipient="ada@example.org")
    assert all(len(line) <= 998 for line in stored.data.split(b"\r\n"))
    msg = stored.message
    assert msg["Subject"] == f"Your order {order}"
    text = msg.get_body(("plain",))
    assert text is not None
    assert f"Hi Zoë 😀, thanks for order {order}." in text.get_content()


async def test_every_email_is_listed_once_whatever_the_page_size_and_sort(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    created = [
        await hs_http.marketing_emails.create_transactional(name=f"n{i % 3}", subject="s")
        for i in range(7)
    ]
    every = {e.id for e in created} | {"1001", "12345678"}
    for limit in (1, 2, 3, 4, 9, 10):
        for sort in ([], ["name"], ["-updatedAt"], ["-name", "createdAt"]):
            seen = [e.id async for e in hs_http.marketing_emails.list(limit=limit, sort=sort)]
            assert sorted(seen) == sorted(every), (limit, sort)
    page = await hs_http.marketing_emails.list(limit=2, sort=["name"])
    with pytest.raises(BadRequestError):  # a cursor is bound to its listing's filters
        await hs_http.marketing_emails.list(limit=2, after=page.after)


async def test_include_stats_counts_the_emails_campaign_events(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    receipt = await _receipt(hs_http)
    status = await hs_http.single_send.send(
        email_id=int(receipt.id),
        to="openme@example.org",
        custom_properties={"order_id": "1"},
        contact_properties={"firstname": "O"},
    )
    await _settle(sandbox, hs_http, [status])
    plain = await hs_http.marketing_emails.get(receipt.id)
    assert plain.stats is None
    got = await hs_http.marketing_emails.get(receipt.id, include_stats=True)
    assert got.stats is not None
    assert got.stats.counters["sent"] == 1
    assert got.stats.counters["open"] == 1
    listed = [
        e
        async for e in hs_http.marketing_emails.list(include_stats=True)
        if e.id in (receipt.id, "1001")
    ]
    by_id = {e.id: e.stats for e in listed}
    assert by_id[receipt.id] == got.stats
    assert by_id["1001"] is not None
    assert by_id["1001"].counters == {}


@given(
    keys=st.sets(st.sampled_from(sorted(set(PUBLIC_EMAIL) - {"id"}))),
    kind=st.sampled_from([*EmailType.__members__, "SOME_NEW_TYPE"]),
    state=st.sampled_from([*EmailState.__members__, "SOME_NEW_STATE"]),
    numeric=st.booleans(),
)
def test_any_subset_of_the_fields_with_any_enum_value_decodes(
    keys: set[str], kind: str, state: str, numeric: bool
) -> None:
    raw: dict[str, object] = {k: PUBLIC_EMAIL[k] for k in keys}
    raw.update(id=184993428780 if numeric else "184993428780", type=kind, state=state)
    e = email_decoder.decode(msgspec.json.encode(raw))
    assert e.id == "184993428780"
    assert e.type is not None
    assert e.type.value == kind
    assert e.state is not None
    assert e.state.value == state
    expected = ["312207771", "312207790"] if "allEmailCampaignIds" in keys else []
    if "primaryEmailCampaignId" in keys:
        expected = ["312207771", *[c for c in expected if c != "312207771"]]
    assert e.campaign_ids == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"isPublished": "yes"}, "isPublished"),
        ({"includeStats": "1"}, "includeStats"),
        ({"sort": "colour"}, "sort"),
        ({"type": "NOT_A_TYPE"}, "type"),
    ],
)
async def test_bad_query_parameters_name_themselves(
    sandbox: Sandbox, query: dict[str, str], field: str
) -> None:
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    async with aiohttp.ClientSession() as http:
        url = sandbox.base_url + "/marketing/v3/emails"
        async with http.get(url, params=query, headers=headers) as resp:
            assert resp.status == 400
            body = await resp.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert [e["in"] for e in body["errors"]] == [field]
