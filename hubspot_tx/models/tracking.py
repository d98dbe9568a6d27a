"""What follows a send: email events, campaign data and email statistics.

Shapes follow HubSpot's reference for the legacy Email Events and Email Campaign Data APIs
(``/email/public/v1/...``) and the v3 email statistics API; every field is optional and
unknown fields are ignored, as HubSpot advises.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ._base import Model, OpenEnum, ResponseDecoder

__all__ = [
    "Browser",
    "CampaignData",
    "EmailEvent",
    "EmailEventPage",
    "EmailEventType",
    "EmailStatistics",
    "Location",
    "SentBy",
    "StatisticsData",
    "StatisticsHistogram",
    "StatisticsInterval",
    "TimeInterval",
]


class EmailEventType(OpenEnum):
    """An email event's type. New types decode and are kept."""

    PROCESSED = "PROCESSED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    DEFERRED = "DEFERRED"
    BOUNCE = "BOUNCE"
    DROPPED = "DROPPED"
    OPEN = "OPEN"
    CLICK = "CLICK"
    SPAMREPORT = "SPAMREPORT"
    STATUSCHANGE = "STATUSCHANGE"
    PRINT = "PRINT"
    FORWARD = "FORWARD"


class Browser(Model, frozen=True):
    """The client that opened or clicked (``browser``)."""

    name: str | None = None
    family: str | None = None
    producer: str | None = None
    producer_url: str | None = None
    type: str | None = None
    url: str | None = None
    version: list[str] = msgspec.field(default_factory=list)


class Location(Model, frozen=True):
    """Where an open or click came from (``location``)."""

    city: str | None = None
    country: str | None = None
    state: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class SentBy(Model, frozen=True):
    """The SENT event an event follows (``sentBy``)."""

    id: str | None = None
    created: datetime | None = None


class EmailEvent(Model, frozen=True):
    """One email event.

    Attributes:
        id: the event id (with ``created``, the key of ``events.get``).
        type: PROCESSED, SENT, DELIVERED, DEFERRED, BOUNCE, DROPPED, OPEN, CLICK, ...
        recipient: the address the event is about.
        created: when it happened.
        email_campaign_id: the campaign (an SMTP token's ``email_campaign_id``).
        smtp_id: the message's Message-ID header, for messages relayed over SMTP.
        sent_by: the SENT event this one follows.
    """

    id: str
    type: EmailEventType
    recipient: str | None = None
    created: datetime | None = None
    email_campaign_id: str | None = None
    app_id: str | None = None
    app_name: str | None = None
    portal_id: int | None = None
    smtp_id: str | None = None
    send_id: str | None = None
    hmid: str | None = None
    subject: str | None = None
    response: str | None = None
    user_agent: str | None = None
    sent_by: SentBy | None = None
    browser: Browser | None = None
    location: Location | None = None
    category: str | None = None  # BOUNCE: e.g. HARD_BOUNCE
    status: str | None = None  # BOUNCE: the SMTP status
    drop_reason: str | None = None  # DROPPED
    drop_message: str | None = None
    attempt: int | None = None  # DEFERRED


class EmailEventPage(Model, frozen=True):
    """One page of ``GET /email/public/v1/events`` (offset paging)."""

    events: list[EmailEvent] = msgspec.field(default_factory=list)
    has_more: bool = False
    offset: str | None = None

    @property
    def results(self) -> list[EmailEvent]:
        return self.events

    @property
    def after(self) -> str | None:
        """The offset of the next page, or ``None`` on the last page."""
        return self.offset if self.has_more and self.offset else None


class CampaignData(Model, frozen=True):
    """``GET /email/public/v1/campaigns/{id}``: a campaign and its counters."""

    id: str
    app_id: str | None = None
    app_name: str | None = None
    content_id: int | None = None
    name: str | None = None
    subject: str | None = None
    type: str | None = None
    sub_type: str | None = None
    num_included: int | None = None
    num_queued: int | None = None
    counters: dict[str, int] = msgspec.field(default_factory=dict)

    def count(self, event_type: str) -> int:
        """The counter of ``event_type`` (any case), 0 when absent."""
        return self.counters.get(event_type.lower(), 0)


class StatisticsData(Model, frozen=True):
    """Aggregated counters and ratios (percentages)."""

    counters: dict[str, int] = msgspec.field(default_factory=dict)
    ratios: dict[str, float] = msgspec.field(default_factory=dict)
    device_breakdown: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    qualifier_stats: dict[str, int] = msgspec.field(default_factory=dict)


class EmailStatistics(Model, frozen=True):
    """``GET /marketing/v3/emails/statistics/list``."""

    emails: list[int] = msgspec.field(default_factory=list)
    aggregate: StatisticsData = msgspec.field(default_factory=StatisticsData)
    campaign_aggregations: dict[str, StatisticsData] = msgspec.field(default_factory=dict)


class TimeInterval(Model, frozen=True):
    start: datetime | None = None
    end: datetime | None = None


class StatisticsInterval(Model, frozen=True):
    """One bucket of a histogram."""

    interval: TimeInterval = msgspec.field(default_factory=TimeInterval)
    aggregations: StatisticsData = msgspec.field(default_factory=StatisticsData)


class StatisticsHistogram(Model, frozen=True):
    """``GET /marketing/v3/emails/statistics/histogram``."""

    total: int = 0
    results: list[StatisticsInterval] = msgspec.field(default_factory=list)


event_decoder = ResponseDecoder(EmailEvent)
event_page_decoder = ResponseDecoder(EmailEventPage)
campaign_decoder = ResponseDecoder(CampaignData)
statistics_decoder = ResponseDecoder(EmailStatistics)
histogram_decoder = ResponseDecoder(StatisticsHistogram)
