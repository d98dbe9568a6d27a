"""After the send: email events, campaign data, email statistics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from .._http import HTTPClient, Replay
from .._pagination import AsyncPager
from .._paths import API_VERSIONS, DEFAULT_API_VERSION, ApiPaths
from ..models.marketing_emails import (
    LegacyCampaign,
    LegacyCampaignPage,
    legacy_campaign_page_decoder,
)
from ..models.tracking import (
    CampaignData,
    EmailEvent,
    EmailEventPage,
    EmailEventType,
    EmailStatistics,
    StatisticsHistogram,
    campaign_decoder,
    event_decoder,
    event_page_decoder,
    histogram_decoder,
    statistics_decoder,
)

__all__ = ["Campaigns", "Events", "HistogramInterval", "RecipientOutcome", "Statistics"]

HistogramInterval = Literal[
    "YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "QUARTER_HOUR", "MINUTE", "SECOND"
]

# How far along its life an event puts a recipient (ties: the later event wins).
_RANK = {
    EmailEventType.PROCESSED: 0,
    EmailEventType.SENT: 1,
    EmailEventType.DEFERRED: 2,
    EmailEventType.DELIVERED: 3,
    EmailEventType.BOUNCE: 3,
    EmailEventType.DROPPED: 3,
    EmailEventType.OPEN: 4,
    EmailEventType.CLICK: 5,
}


def _iso(moment: datetime) -> str:
    """ISO 8601 with an offset (a naive datetime is taken as UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _ms(moment: datetime | None) -> str | None:
    return None if moment is None else str(int(moment.timestamp() * 1000))


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """What happened to the email(s) sent to one recipient, from their events.

    Attributes:
        state: the furthest event reached (PROCESSED < SENT < DEFERRED < DELIVERED / BOUNCE /
            DROPPED < OPEN < CLICK; among equals, the latest).
        smtp_ids: the Message-IDs the events were about.
    """

    recipient: str
    state: EmailEventType
    last_event_at: datetime | None
    delivered: bool
    bounced: bool
    dropped: bool
    deferred: bool
    opened: bool
    clicked: bool
    smtp_ids: tuple[str, ...]


class Events:
    """Email events (``/email/public/v1/events``), paged with ``offset`` + ``hasMore``."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._path = paths.email_events

    def list(
        self,
        *,
        campaign_id: str | int | None = None,
        recipient: str | None = None,
        event_type: EmailEventType | str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        app_id: str | int | None = None,
        exclude_filtered_events: bool | None = None,
        limit: int | None = None,
        offset: str | None = None,
    ) -> AsyncPager[EmailEvent, EmailEventPage]:
        """Events matching the filters, newest first: ``async for`` walks every page;
        ``await`` reads one (its ``offset`` continues). ``exclude_filtered_events=True`` leaves
        out the opens and clicks HubSpot judged automated (bots, link scanners)."""
        if limit is not None and not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        params = {
            k: str(v)
            for k, v in {
                "campaignId": campaign_id,
                "recipient": recipient,
                "eventType": event_type,
                "startTimestamp": _ms(start),
                "endTimestamp": _ms(end),
                "appId": app_id,
                "excludeFilteredEvents": None
                if exclude_filtered_events is None
                else str(exclude_filtered_events).lower(),
                "limit": limit,
            }.items()
            if v is not None
        }

        async def fetch(cursor: str | None) -> EmailEventPage:
            query = params if cursor is None else {**params, "offset": cursor}
            resp = await self._http.request("GET", self._path, params=query, replay=Replay.SAFE)
            return event_page_decoder.decode(resp.content)

        return AsyncPager(fetch, offset)

    async def get(self, created: datetime | int, event_id: str) -> EmailEvent:
        """One event, by its ``created`` time (or epoch ms) and id."""
        stamp = created if isinstance(created, int) else int(created.timestamp() * 1000)
        resp = await self._http.request(
            "GET", f"{self._path}/{stamp}/{quote(event_id, safe='')}", replay=Replay.SAFE
        )
        return event_decoder.decode(resp.content)

    async def outcomes(
        self,
        campaign_id: str | int,
        *,
        since: datetime | None = None,
        message_ids: Iterable[str] | None = None,
    ) -> dict[str, RecipientOutcome]:
        """Per recipient, the latest state of what a campaign sent: delivered, bounced,
        dropped, deferred, opened, clicked. ``message_ids`` keeps only events about those
        Message-IDs (e.g. the keys of a relay's outcomes). Opens and clicks HubSpot marks as
        filtered (automated: bots, link scanners) do not count."""
        wanted = set(message_ids) if message_ids is not None else None
        seen: dict[str, list[EmailEvent]] = {}
        async for event in self.list(
            campaign_id=campaign_id, start=since, exclude_filtered_events=True, limit=1000
        ):
            if event.recipient is None or event.filtered_event:
                continue
            if wanted is not None and event.smtp_id not in wanted:
                continue
            seen.setdefault(event.recipient, []).append(event)
        return {recipient: _summarise(recipient, events) for recipient, events in seen.items()}


def _summarise(recipient: str, events: list[EmailEvent]) -> RecipientOutcome:
    types = {e.type for e in events}
    epoch = datetime.min
    furthest = max(
        events,
        key=lambda e: (
            _RANK.get(e.type, -1),
            e.created.replace(tzinfo=None) if e.created else epoch,
        ),
    )
    latest = max((e.created for e in events if e.created), default=None)
    return RecipientOutcome(
        recipient=recipient,
        state=furthest.type,
        last_event_at=latest,
        delivered=EmailEventType.DELIVERED in types,
        bounced=EmailEventType.BOUNCE in types,
        dropped=EmailEventType.DROPPED in types,
        deferred=EmailEventType.DEFERRED in types,
        opened=EmailEventType.OPEN in types,
        clicked=EmailEventType.CLICK in types,
        smtp_ids=tuple(sorted({e.smtp_id for e in events if e.smtp_id})),
    )


class Campaigns:
    """Email campaign data (``/email/public/v1/campaigns``): the campaigns of the account
    (:meth:`list`, :meth:`list_by_id`) and one campaign's counters (:meth:`get`)."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._path = paths.email_campaigns

    def _listing(
        self, path: str, limit: int | None, offset: str | None
    ) -> AsyncPager[LegacyCampaign, LegacyCampaignPage]:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        params = {} if limit is None else {"limit": str(limit)}

        async def fetch(cursor: str | None) -> LegacyCampaignPage:
            query = params if cursor is None else {**params, "offset": cursor}
            resp = await self._http.request("GET", path, params=query, replay=Replay.SAFE)
            return legacy_campaign_page_decoder.decode(resp.content)

        return AsyncPager(fetch, offset)

    def list(
        self, *, limit: int | None = None, offset: str | None = None
    ) -> AsyncPager[LegacyCampaign, LegacyCampaignPage]:
        """The account's email campaigns, most recently active first
        (``GET /email/public/v1/campaigns``), each with ``lastUpdatedTime``."""
        return self._listing(self._path, limit, offset)

    def list_by_id(
        self, *, limit: int | None = None, offset: str | None = None
    ) -> AsyncPager[LegacyCampaign, LegacyCampaignPage]:
        """Every email campaign id of the account (``GET /email/public/v1/campaigns/by-id``)."""
        return self._listing(f"{self._path}/by-id", limit, offset)

    async def get(self, campaign_id: str | int, *, app_id: str | int | None = None) -> CampaignData:
        """A campaign with its counters (sent, delivered, open, click, bounce, ...);
        ``app_id``: the app that sent it (HubSpot's ``appId`` query parameter)."""
        resp = await self._http.request(
            "GET",
            f"{self._path}/{quote(str(campaign_id), safe='')}",
            params=None if app_id is None else {"appId": str(app_id)},
            replay=Replay.SAFE,
        )
        return campaign_decoder.decode(resp.content)


class Statistics:
    """Email statistics (``/marketing/v3/emails/statistics/...``)."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._path = paths.email_statistics

    @staticmethod
    def _params(
        start: datetime | None, end: datetime | None, email_ids: Iterable[int | str] | None
    ) -> list[tuple[str, str]]:
        params = [
            (name, _iso(moment))
            for name, moment in (("startTimestamp", start), ("endTimestamp", end))
            if moment is not None
        ]
        params += [("emailIds", str(e)) for e in email_ids or ()]
        return params

    async def list(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        email_ids: Iterable[int | str] | None = None,
        property: str | None = None,
    ) -> EmailStatistics:
        """Counters and ratios aggregated over ``[start, end)``, overall and per campaign.

        ``start`` and ``end`` are optional (HubSpot's defaults apply); a naive datetime is
        taken as UTC."""
        params = self._params(start, end, email_ids)
        if property is not None:
            params.append(("property", property))
        resp = await self._http.request(
            "GET", f"{self._path}/list", params=params, replay=Replay.SAFE
        )
        return statistics_decoder.decode(resp.content)

    async def histogram(
        self,
        interval: HistogramInterval,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        email_ids: Iterable[int | str] | None = None,
    ) -> StatisticsHistogram:
        """Counters per ``interval`` (``"HOUR"``, ``"DAY"``, ...) over ``[start, end)``."""
        params = [("interval", interval), *self._params(start, end, email_ids)]
        resp = await self._http.request(
            "GET", f"{self._path}/histogram", params=params, replay=Replay.SAFE
        )
        return histogram_decoder.decode(resp.content)
