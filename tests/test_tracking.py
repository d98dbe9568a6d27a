"""Email events, campaign data and statistics: against the sandbox; HubSpot's shapes decoded."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from hubspot_tx import HubSpot, SmtpTokenWithPassword
from hubspot_tx.models._base import ResponseDecoder
from hubspot_tx.models.tracking import (
    CampaignData,
    EmailEventPage,
    EmailEventType,
    EmailStatistics,
    StatisticsHistogram,
)
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope

from .conftest import make_message

# The test's own table of the sandbox's documented rules (README, sandbox section): the events a
# delivered message goes through, by recipient. Expected counts come from here, not the sandbox.
RULES = {
    "plain": ["PROCESSED", "SENT", "DELIVERED"],
    "bounce": ["PROCESSED", "SENT", "BOUNCE"],
    "defer": ["PROCESSED", "SENT", "DEFERRED", "DELIVERED"],
    "open": ["PROCESSED", "SENT", "DELIVERED", "OPEN"],
    "click": ["PROCESSED", "SENT", "DELIVERED", "OPEN", "CLICK"],
    "blocked": ["PROCESSED", "DROPPED"],
}
FURTHEST = {
    "plain": "DELIVERED",
    "bounce": "BOUNCE",
    "defer": "DELIVERED",
    "open": "OPEN",
    "click": "CLICK",
    "blocked": "DROPPED",
}


def recipient(i: int) -> tuple[str, str]:
    kind = list(RULES)[i % len(RULES)]
    if kind == "blocked":
        return kind, f"user{i}@blocked.example"
    return kind, f"{'' if kind == 'plain' else kind}user{i}@example.org"


async def test_500_relayed_messages_events_counters_statistics_agree(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    kinds: dict[str, str] = {}
    envelopes = []
    for i in range(500):
        kind, address = recipient(i)
        kinds[address] = kind
        envelopes.append(
            Envelope(mail_from="s@example.com", rcpt_to=(address,), data=make_message(i))
        )
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with sandbox.smtp_pool(token, max_connections=4) as pool:
        outcomes = [o async for o in pool.send_many(envelopes)]
    assert all(o.ok for o in outcomes)
    expected_types = Counter(t for k in kinds.values() for t in RULES[k])
    expected_per_recipient = {a: Counter(RULES[k]) for a, k in kinds.items()}
    await asyncio.sleep(6 * sandbox.state.event_step)  # the last events' time comes
    campaign = token.email_campaign_id
    assert campaign is not None

    async with sandbox.client() as hs:
        pages = 0
        per_recipient: dict[str, Counter[str]] = {}
        async for page in hs.events.list(campaign_id=campaign, limit=200).pages():
            pages += 1
            for event in page.events:
                assert event.recipient is not None
                per_recipient.setdefault(event.recipient, Counter())[event.type.value] += 1
        assert pages == -(-sum(expected_types.values()) // 200)  # several pages, none repeated
        assert per_recipient == expected_per_recipient
        assert sum(per_recipient.values(), Counter()) == expected_types

        data = await hs.campaigns.get(campaign)
        assert data.counters == {t.lower(): n for t, n in expected_types.items()}
        assert data.name == "tests"

        end = datetime.now(UTC) + timedelta(seconds=1)
        stats = await hs.statistics.list(started, end, email_ids=[campaign])
        assert stats.aggregate.counters == data.counters
        assert stats.campaign_aggregations[campaign].counters == data.counters
        assert stats.aggregate.ratios["deliveredratio"] == round(
            100 * expected_types["DELIVERED"] / expected_types["SENT"], 2
        )
        histogram = await hs.statistics.histogram("SECOND", started, end, email_ids=[campaign])
        summed = sum((Counter(b.aggregations.counters) for b in histogram.results), Counter())
        assert dict(summed) == data.counters
        assert histogram.total == len(histogram.results) >= 2

        outcomes_by_recipient = await hs.events.outcomes(campaign)
        assert {r: o.state.value for r, o in outcomes_by_recipient.items()} == {
            a: FURTHEST[k] for a, k in kinds.items()
        }
        some = outcomes_by_recipient["clickuser4@example.org"]
        assert some.delivered
        assert some.opened
        assert some.clicked
        assert not some.bounced
        assert some.smtp_ids == ("<m4@hubspot-tx.test>",)
        only = await hs.events.outcomes(campaign, message_ids=["<m1@hubspot-tx.test>"])
        assert list(only) == ["bounceuser1@example.org"]

        one = (await hs.events.list(campaign_id=campaign, event_type="BOUNCE", limit=1)).events[0]
        assert one.created is not None
        again = await hs.events.get(one.created, one.id)
        assert again == one
        assert again.category == "HARD_BOUNCE"


async def test_single_send_events(sandbox: Sandbox) -> None:
    async with sandbox.client() as hs:
        sent = await hs.single_send.send(email_id=1001, to="openme@example.org")
        refused = await hs.single_send.send(email_id=1001, to="bounced@example.org")
        for status in (sent, refused):
            await hs.send_status.wait(status)
        await asyncio.sleep(5 * sandbox.state.event_step)
        # As in HubSpot, events are keyed by the email's campaign id, never by its email id.
        assert [e async for e in hs.events.list(campaign_id=1001)] == []
        [campaign] = await hs.marketing_emails.campaign_ids(1001)
        events = [e async for e in hs.events.list(campaign_id=campaign)]
    by_recipient: dict[str, list[str]] = {}
    for e in events:
        assert e.recipient is not None
        by_recipient.setdefault(e.recipient, []).append(e.type.value)
    assert by_recipient == {
        # newest first, as HubSpot lists them
        "openme@example.org": ["OPEN", "DELIVERED", "SENT", "PROCESSED"],
        "bounced@example.org": ["DROPPED", "PROCESSED"],
    }
    dropped = next(e for e in events if e.type is EmailEventType.DROPPED)
    assert dropped.drop_reason == "PREVIOUSLY_BOUNCED"
    opened = next(e for e in events if e.type is EmailEventType.OPEN)
    assert opened.sent_by is not None
    assert opened.location is not None


async def test_events_appear_as_their_time_comes(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.state.event_step = 0.5
    async with sandbox.smtp_pool(token) as pool:
        await pool.send(
            Envelope(mail_from="s@x.org", rcpt_to=("a@example.org",), data=make_message(1))
        )
    async with sandbox.client() as hs:
        first = [e.type.value async for e in hs.events.list(campaign_id=token.email_campaign_id)]
        await asyncio.sleep(1.1)
        later = [e.type.value async for e in hs.events.list(campaign_id=token.email_campaign_id)]
    assert first == ["PROCESSED"]
    assert later == ["DELIVERED", "SENT", "PROCESSED"]  # newest first


async def test_tampered_offset_and_unknown_campaign(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    from hubspot_tx import BadRequestError, NotFoundError

    async with sandbox.smtp_pool(token) as pool:
        for i in range(3):
            await pool.send(make_message(i))
    await asyncio.sleep(0.2)
    async with sandbox.client() as hs:
        page = await hs.events.list(campaign_id=token.email_campaign_id, limit=2)
        assert page.has_more
        assert page.offset
        with pytest.raises(BadRequestError):
            await hs.events.list(campaign_id=token.email_campaign_id, offset=page.offset + "x")
        with pytest.raises(NotFoundError):
            await hs.campaigns.get("999")


SHAPES = json.loads((Path(__file__).parent / "data" / "tracking_shapes.json").read_text())


def shape(name: str) -> bytes:
    return msgspec.json.encode(SHAPES[name])


def test_decode_documented_event_shapes() -> None:
    page = ResponseDecoder(EmailEventPage).decode(shape("events_page"))
    assert page.has_more
    assert page.after == SHAPES["events_page"]["offset"]
    opened, sent, bounce, future = page.events
    assert opened.type is EmailEventType.OPEN
    assert opened.app_id == "113"
    assert opened.email_campaign_id == "24931547"
    assert opened.portal_id == 62515
    assert opened.created == datetime(2015, 4, 15, 14, 19, 0, 812000, tzinfo=UTC)
    assert opened.sent_by is not None
    assert opened.sent_by.created == datetime(2015, 4, 15, 14, 8, 50, 812000, tzinfo=UTC)
    assert opened.browser is not None
    assert opened.browser.version == ["41.0.2272.118"]
    assert opened.browser.producer_url == "http://www.google.com/"
    assert opened.location is not None
    assert opened.location.latitude == 42.3626
    assert sent.created == opened.sent_by.created  # ISO and epoch-ms decode alike
    assert sent.app_id == "22709"
    assert sent.smtp_id == "<order-1@shop.example.com>"
    assert bounce.category == "HARD_BOUNCE"
    assert future.type.value == "SOME_FUTURE_TYPE"
    assert not future.type.is_known


def test_decode_documented_campaign_and_statistics() -> None:
    campaign = ResponseDecoder(CampaignData).decode(shape("campaign"))
    assert campaign.id == "24931547"
    assert campaign.app_id == "113"
    assert campaign.count("OPEN") == 5
    assert campaign.count("bounce") == 0
    assert campaign.content_id == 2728458
    assert campaign.sub_type == "batch"
    stats = ResponseDecoder(EmailStatistics).decode(shape("statistics"))
    assert stats.emails == [24931547]
    assert stats.aggregate.counters["delivered"] == 9
    assert stats.aggregate.device_breakdown == {"open_device_type": {"computer": 3, "mobile": 2}}
    assert stats.campaign_aggregations["24931547"].counters == {"sent": 10}
    histogram = ResponseDecoder(StatisticsHistogram).decode(shape("histogram"))
    first, second = histogram.results
    assert first.interval.start == datetime(2015, 4, 15, tzinfo=UTC)
    assert second.interval.start == datetime(2015, 4, 16, tzinfo=UTC)


def test_event_list_limit_is_checked() -> None:
    hs = HubSpot("t")
    with pytest.raises(ValueError, match="limit"):
        hs.events.list(limit=5000)
