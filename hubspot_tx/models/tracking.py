"""What follows a send: email events, campaign data and email statistics.

Shapes follow HubSpot's reference for the legacy Email Events and Email Campaign Data APIs
(``/email/public/v1/...``) and the v3 email statistics API; every field is optional and
unknown fields are ignored, as HubSpot advises.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    SUPPRESSED = "SUPPRESSED"
    UNBOUNCE = "UNBOUNCE"


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
    """An event's key (``sentBy``, ``obsoletedBy``, ``causedBy``): its id and creation time."""

    id: str | None = None
    created: datetime | None = None


class EmailEvent(Model, frozen=True):
    """One email event (HubSpot's legacy Email Events API).

    Every field but ``id`` is optional; most belong to one event type. HubSpot's UNBOUNCE
    events are the only ones without ``type`` (nor ``recipient``): an event without ``type``
    decodes as ``UNBOUNCE``.

    Attributes:
        id: the event id (with ``created``, the key of ``events.get``).
        type: PROCESSED, SENT, DELIVERED, DEFERRED, BOUNCE, DROPPED, OPEN, CLICK, ...
        recipient: the address the event is about.
        created: when it happened.
        email_campaign_id: the campaign (an SMTP token's ``email_campaign_id``).
        smtp_id: the message's Message-ID header, for messages relayed over SMTP.
        sent_by: the SENT event this one follows.
        obsoleted_by: the later event that makes this one obsolete.
        caused_by: the event that caused this one (e.g. the bounce behind a STATUSCHANGE).
        filtered_event: OPEN/CLICK: HubSpot judged it automated (a bot or a scanner).
    """

    id: str
    type: EmailEventType = EmailEventType.UNBOUNCE
    recipient: str | None = None
    created: datetime | None = None
    email_campaign_id: str | None = None
    app_id: str | None = None
    app_name: str | None = None
    portal_id: int | None = None
    smtp_id: str | None = None
    send_id: str | None = None
    hmid: str | None = None
    sent_by: SentBy | None = None
    obsoleted_by: SentBy | None = None
    caused_by: SentBy | None = None
    # SENT
    subject: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    cc: list[str] | None = None
    bcc: list[str] | None = None
    reply_to: list[str] | None = None
    # DELIVERED, DEFERRED, BOUNCE
    response: str | None = None
    attempt: int | None = None  # DEFERRED
    category: str | None = None  # BOUNCE: e.g. HARD_BOUNCE
    status: str | None = None  # BOUNCE: the SMTP status
    drop_reason: str | None = None  # DROPPED
    drop_message: str | None = None
    # OPEN, CLICK
    user_agent: str | None = None
    browser: Browser | None = None
    location: Location | None = None
    device_type: str | None = None
    filtered_event: bool | None = None
    # OPEN: milliseconds the email was open. HubSpot's guide says an integer; a fractional
    # value decodes too, rather than failing its whole page.
    duration: float | None = None
    url: str | None = None  # CLICK
    referer: str | None = None
    link_id: int | None = None
    # STATUSCHANGE
    source: str | None = None
    requested_by: str | None = None
    portal_subscription_status: str | None = None
    subscriptions: list[dict[str, Any]] | None = None
    bounced: bool | None = None


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
    """Aggregated counters and ratios (percentages), ``EmailStatisticsData``.

    ``device_breakdown`` and ``qualifier_stats`` are maps of maps, e.g.
    ``{"open_device_type": {"computer": 3}}`` and ``{"bounced": {"HARD_BOUNCE": 1}}``.
    """

    counters: dict[str, int] = msgspec.field(default_factory=dict)
    ratios: dict[str, float] = msgspec.field(default_factory=dict)
    device_breakdown: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    qualifier_stats: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)


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
