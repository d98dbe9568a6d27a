"""Every response type decoded from HubSpot-shaped payloads (hand-written from the facts of
HubSpot's specs and legacy docs): any subset of the optional fields absent, unknown fields
added, every enum value and unknown ones, legacy shapes (numeric ids, epoch-ms times)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_tx.models import EmailEventType, SendResult, SendState
from hubspot_tx.models._base import ResponseDecoder
from hubspot_tx.models.marketing_emails import email_decoder, email_page_decoder
from hubspot_tx.models.single_send import send_status_decoder
from hubspot_tx.models.smtp_tokens import SmtpToken, SmtpTokenPage
from hubspot_tx.models.tracking import (
    campaign_decoder,
    event_decoder,
    event_page_decoder,
    histogram_decoder,
    statistics_decoder,
)

_STATS = {
    "counters": {"sent": 4, "delivered": 3, "bounce": 1},
    "ratios": {"bounceratio": 25.0},
    "deviceBreakdown": {"open_device_type": {"computer": 2, "mobile": 1}},
    "qualifierStats": {"bounced": {"HARD_BOUNCE": 1}, "dropped": {"PREVIOUSLY_BOUNCED": 2}},
}
# name -> (decoder, a full HubSpot-shaped payload, the keys its schema requires)
SHAPES: dict[str, tuple[ResponseDecoder[Any], dict[str, Any], set[str]]] = {
    "EmailSendStatusView": (
        send_status_decoder,
        {
            "statusId": "s-1",
            "status": "COMPLETE",
            "sendResult": "SENT",
            "message": "",
            "requestedAt": "2026-01-01T00:00:00Z",
            "startedAt": "2026-01-01T00:00:01Z",
            "completedAt": "2026-01-01T00:00:02Z",
            "eventId": {
                "id": "3f1a2d3e-0000-4000-8000-000000000001",
                "created": "2026-01-01T00:00:02Z",
            },
        },
        {"statusId"},
    ),
    "SmtpApiTokenView": (
        ResponseDecoder(SmtpToken),
        {
            "id": "3a0b7c1d9e2f4a5b@62515.smtp.hubspot.net",
            "campaignName": "Receipts",
            "emailCampaignId": "123456789",
            "createContact": False,
            "createdAt": "2026-01-01T00:00:00Z",
            "createdBy": "ops@example.com",
        },
        {"id"},
    ),
    "CollectionResponseSmtpApiTokenView": (
        ResponseDecoder(SmtpTokenPage),
        {
            "results": [{"id": "a@62515.smtp.hubspot.net", "campaignName": "x"}],
            "paging": {"next": {"after": "NTI1Cg%3D%3D", "link": "https://api.hubapi.com/x"}},
        },
        set(),
    ),
    "EmailEvent": (
        event_decoder,
        {
            "id": "e-1",
            "type": "CLICK",
            "recipient": "a@example.org",
            "created": 1767225600000,
            "portalId": 62515,
            "appId": 113,
            "appName": "BatchTransactional",
            "emailCampaignId": 123456789,
            "hmid": "h-1",
            "smtpId": "<1@x>",
            "sentBy": {"id": "s", "created": 1767225500000},
            "obsoletedBy": {"id": "o", "created": 1767225700000},
            "causedBy": {"id": "c", "created": 1767225400000},
            "url": "https://example.com",
            "referer": "",
            "linkId": 7,
            "userAgent": "UA",
            "deviceType": "COMPUTER",
            "filteredEvent": False,
            "browser": {"name": "Firefox", "family": "Firefox", "version": ["128"]},
            "location": {"city": "Berlin", "country": "Germany", "latitude": 52.5},
        },
        {"id"},
    ),
    "EmailEventPage": (
        event_page_decoder,
        {"events": [{"id": "u", "created": 1767225600000}], "hasMore": True, "offset": "abc"},
        set(),
    ),
    "CampaignData": (
        campaign_decoder,
        {
            "id": 123456789,
            "appId": 113,
            "appName": "BatchTransactional",
            "contentId": 1001,
            "name": "Receipts",
            "subject": "Your order",
            "type": "BATCH_EMAIL",
            "subType": "single_send_api",
            "numIncluded": 4,
            "numQueued": 0,
            "counters": {"sent": 4, "open": 2},
        },
        {"id"},
    ),
    "AggregateEmailStatistics": (
        statistics_decoder,
        {"emails": [1001], "aggregate": _STATS, "campaignAggregations": {"123456789": _STATS}},
        set(),
    ),
    "CollectionResponseWithTotalEmailStatisticInterval": (
        histogram_decoder,
        {
            "total": 1,
            "results": [
                {
                    "interval": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"},
                    "aggregations": _STATS,
                }
            ],
        },
        set(),
    ),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_subset_of_optional_fields_and_unknown_ones_decode(name: str, data: Any) -> None:
    decoder, full, required = SHAPES[name]
    optional = sorted(set(full) - required)
    dropped = data.draw(st.sets(st.sampled_from(optional)) if optional else st.just(set()))
    unknown = data.draw(
        st.dictionaries(
            # Prefixed: a random key could be one of the struct's own optional fields.
            st.text(min_size=1, max_size=8).map(lambda k: "zz-" + k),
            st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers())),
            max_size=3,
        )
    )
    payload = {k: v for k, v in full.items() if k not in dropped} | unknown
    decoded = decoder.decode(json.dumps(payload).encode())
    assert decoded is not None


def test_every_enum_value_and_unknown_ones_decode() -> None:
    for state in [*SendState.__members__, "CANCELLED", "COMPLETED", "SOMETHING_NEW"]:
        body = {"statusId": "s", "status": state}
        assert send_status_decoder.decode(json.dumps(body).encode()).status.value
    for result in [*SendResult.__members__, "SOMETHING_NEW"]:
        body = {"statusId": "s", "status": "COMPLETE", "sendResult": result}
        decoded = send_status_decoder.decode(json.dumps(body).encode())
        assert decoded.send_result is not None
        assert decoded.send_result.value == result
    for kind in [*EmailEventType.__members__, "SOMETHING_NEW"]:
        event = event_decoder.decode(json.dumps({"id": "e", "type": kind}).encode())
        assert event.type.value == kind


def test_legacy_numeric_ids_and_epoch_millis() -> None:
    status = send_status_decoder.decode(
        b'{"statusId":"s","status":"COMPLETE","requestedAt":1767225600000,'
        b'"eventId":{"id":"x","created":1767225600000}}'
    )
    assert status.requested_at is not None
    assert status.requested_at.year == 2026
    campaign = campaign_decoder.decode(b'{"id":123,"counters":{}}')
    assert campaign.id == "123"


def test_a_fractional_open_duration_does_not_fail_the_page() -> None:
    """HubSpot's guide types ``duration`` as an integer of milliseconds; a fractional one
    failed the whole page of events."""
    page = event_page_decoder.decode(
        json.dumps(
            {
                "events": [
                    {"id": "o-1", "type": "OPEN", "created": 1767225600000, "duration": 2750.5},
                    {"id": "o-2", "type": "OPEN", "created": 1767225600001, "duration": 1200},
                    {"id": "c-1", "type": "CLICK", "created": 1767225600002},
                ],
                "hasMore": False,
            }
        ).encode()
    )
    assert [e.duration for e in page.events] == [2750.5, 1200, None]


def test_a_marketing_email_without_id_decodes() -> None:
    """``PublicEmail`` requires ``isAb`` only (v3, 2026-03, 2026-09): ``id`` may be absent."""
    email = email_decoder.decode(b'{"isAb": false, "name": "Receipt", "type": "AUTOMATED_EMAIL"}')
    assert email.id == ""
    assert email.name == "Receipt"
    page = email_page_decoder.decode(b'{"total": 1, "results": [{"isAb": true, "state": "DRAFT"}]}')
    assert page.results[0].id == ""
    assert page.results[0].is_ab
