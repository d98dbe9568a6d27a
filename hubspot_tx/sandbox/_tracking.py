"""The sandbox's tracking APIs: email events, campaign data and email statistics, computed from
the events the shared state recorded (see ``_rules.py``)."""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from ._rules import is_filtered
from ._state import CursorError, SandboxEvent, SandboxState
from ._web import STATE_KEY, error_response, json_response

__all__ = ["aggregate", "routes"]

DEFAULT_EVENT_LIMIT = 10  # HubSpot's default page size
MAX_EVENT_LIMIT = 1000
MAX_BUCKETS = 10_000
_SEQ_SPAN = 10**12  # an offset packs (created ms, seq) into one int
_FIXED = {
    "SECOND": timedelta(seconds=1),
    "MINUTE": timedelta(minutes=1),
    "QUARTER_HOUR": timedelta(minutes=15),
    "HOUR": timedelta(hours=1),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(weeks=1),
}
_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}


def _ms(t: float) -> int:
    return int(t * 1000)


def _eventjson_response(e: SandboxEvent) -> dict[str, object]:
    body: dict[str, object] = {
        "id": e.id,
        "type": e.type,
        "recipient": e.recipient,
        "created": _ms(e.created),
        "emailCampaignId": int(e.email_campaign_id) if e.email_campaign_id else None,
        "portalId": 62515,
        "appId": 22709,
        "appName": "hubspot-tx sandbox",
    }
    if e.smtp_id:
        body["smtpId"] = e.smtp_id
    if e.send_id:
        body["sendId"] = e.send_id
    if e.sent_by:
        body["sentBy"] = {"id": e.sent_by[0], "created": _ms(e.sent_by[1])}
    if e.type == "BOUNCE":
        body.update(category="HARD_BOUNCE", status="550 5.1.1 no such user (sandbox rule)")
    if e.type == "DROPPED":
        body.update(dropReason=e.drop_reason or "BLOCKED_DOMAIN", dropMessage="sandbox rule")
    if e.type == "DEFERRED":
        body.update(attempt=1, response="451 4.2.0 try again later (sandbox rule)")
    if e.type == "SENT":
        body.update(subject="", cc=[], bcc=[], replyTo=[])
    if e.type == "CLICK":
        body.update(url="https://example.com/", referer="", linkId=1)
    if e.type == "OPEN":
        body["duration"] = 3000
    if e.type in ("OPEN", "CLICK"):
        body["filteredEvent"] = is_filtered(e.recipient)
        body["deviceType"] = "COMPUTER"
        body["browser"] = {
            "name": "Firefox",
            "family": "Firefox",
            "type": "Browser",
            "version": ["128.0"],
        }
        body["location"] = {
            "city": "Cambridge",
            "state": "Massachusetts",
            "country": "United States",
            "latitude": 42.37,
            "longitude": -71.1,
        }
        body["userAgent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0"
    return body


def _error(status: int, category: str, message: str) -> web.Response:
    return error_response(status, category, message)


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]


def _time(value: str) -> float:
    """Epoch milliseconds or ISO 8601."""
    if value.lstrip("-").isdigit():
        return int(value) / 1000
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def list_events(request: web.Request) -> web.Response:
    state = _state(request)
    q = request.query
    try:
        limit = int(q.get("limit", DEFAULT_EVENT_LIMIT))
        start = _time(q["startTimestamp"]) if "startTimestamp" in q else None
        end = _time(q["endTimestamp"]) if "endTimestamp" in q else None
    except ValueError as exc:
        return _error(400, "VALIDATION_ERROR", f"bad query: {exc}")
    if not 1 <= limit <= MAX_EVENT_LIMIT:
        return _error(400, "VALIDATION_ERROR", f"limit must be between 1 and {MAX_EVENT_LIMIT}")
    scope = "|".join(
        q.get(k, "") for k in ("campaignId", "recipient", "eventType", "excludeFilteredEvents")
    )
    unfiltered = q.get("excludeFilteredEvents", "").lower() == "true"
    # Keyset (created in ms, seq), newest first as HubSpot lists them.
    after = (2**62, 0)
    if "offset" in q:
        try:
            created_ms, seq = divmod(state.read_cursor(q["offset"], scope), _SEQ_SPAN)
        except (CursorError, ValueError) as exc:
            return _error(400, "VALIDATION_ERROR", f"Invalid offset: {exc}")
        after = (created_ms, seq)

    def wanted(e: SandboxEvent) -> bool:
        return (
            (_ms(e.created), e.seq) < after
            and ("campaignId" not in q or e.email_campaign_id == q["campaignId"])
            and ("recipient" not in q or e.recipient.lower() == q["recipient"].lower())
            and ("eventType" not in q or e.type == q["eventType"])
            and (start is None or _ms(e.created) >= _ms(start))
            and (end is None or _ms(e.created) <= _ms(end))  # HubSpot's end is inclusive
            and not (unfiltered and e.type in ("OPEN", "CLICK") and is_filtered(e.recipient))
        )

    page: list[SandboxEvent] = []
    more = False
    newest_first = sorted(
        state.visible_events(), key=lambda e: (_ms(e.created), e.seq), reverse=True
    )
    for event in newest_first:
        if wanted(event):
            if len(page) == limit:
                more = True
                break
            page.append(event)
    body: dict[str, object] = {"events": [_eventjson_response(e) for e in page], "hasMore": more}
    if more:
        # Keyset on (created, seq): events that become visible later are newer, so they show
        # on a new listing's first page, never inside one being walked.
        last = page[-1]
        body["offset"] = state.make_cursor(_ms(last.created) * _SEQ_SPAN + last.seq, scope)
    return json_response(body)


async def get_event(request: web.Request) -> web.Response:
    state = _state(request)
    event_id = request.match_info["eventId"]
    created = request.match_info["created"]
    for event in state.visible_events():
        if event.id == event_id and str(_ms(event.created)) == created:
            return json_response(_eventjson_response(event))
    return _error(404, "OBJECT_NOT_FOUND", f"no event {created}/{event_id}")


def _counters(events: Iterable[SandboxEvent]) -> dict[str, int]:
    return dict(Counter(e.type.lower() for e in events))


async def get_campaign(request: web.Request) -> web.Response:
    state = _state(request)
    campaign_id = request.match_info["campaignId"]
    token = next((t for t in state.tokens.values() if t.email_campaign_id == campaign_id), None)
    owner = state.emails.owner(campaign_id)  # single-send events are keyed by its campaign
    events = [e for e in state.visible_events() if e.email_campaign_id == campaign_id]
    if token is None and owner is None and not events:
        return _error(404, "OBJECT_NOT_FOUND", f"no campaign {campaign_id}")
    counters = _counters(events)
    name = token.campaign_name if token else owner.name if owner else None
    return json_response(
        {
            "id": int(campaign_id) if campaign_id.isdigit() else campaign_id,
            "appId": 22709,
            "appName": "hubspot-tx sandbox",
            "contentId": owner.id if owner else None,
            "name": name or f"campaign {campaign_id}",
            "subject": owner.subject if owner else None,
            "type": owner.type if owner else "SMTP_TOKEN",
            "numIncluded": counters.get("processed", 0),
            "numQueued": 0,
            "counters": counters,
        }
    )


def aggregate(events: list[SandboxEvent]) -> dict[str, object]:
    """Counters and ratios of ``events`` (HubSpot's ``EmailStatisticsData``)."""
    counters = _counters(events)
    sent = counters.get("sent", 0)

    def ratio(name: str) -> float:
        return round(100 * counters.get(name, 0) / sent, 2) if sent else 0.0

    qualifiers: dict[str, dict[str, int]] = {}
    for e in events:
        if e.type == "BOUNCE":
            bounced = qualifiers.setdefault("bounced", {})
            bounced["HARD_BOUNCE"] = bounced.get("HARD_BOUNCE", 0) + 1
        elif e.type == "DROPPED":
            dropped = qualifiers.setdefault("dropped", {})
            reason = e.drop_reason or "BLOCKED_DOMAIN"
            dropped[reason] = dropped.get(reason, 0) + 1
    devices = {
        f"{kind}_device_type": {"computer": counters[kind]}
        for kind in ("open", "click")
        if counters.get(kind)
    }
    return {
        "counters": counters,
        "deviceBreakdown": devices,
        "qualifierStats": qualifiers,
        "ratios": {f"{n}ratio": ratio(n) for n in ("delivered", "open", "click", "bounce")},
    }


def _selected(request: web.Request) -> tuple[list[SandboxEvent], float, float] | web.Response:
    q = request.query
    try:
        # Both are optional in HubSpot's spec: the sandbox then spans every event it has.
        start = _time(q["startTimestamp"]) if "startTimestamp" in q else 0.0
        end = _time(q["endTimestamp"]) if "endTimestamp" in q else _state(request).clock() + 1
    except ValueError as exc:
        return _error(400, "VALIDATION_ERROR", f"bad timestamp: {exc}")
    state = _state(request)
    # HubSpot filters by email id; an SMTP token's campaign, which no email owns, by its own.
    wanted = set(q.getall("emailIds", []))
    campaigns = set(wanted)
    for email_id in wanted:
        owner = state.emails.get(email_id)
        campaigns.update(owner.campaign_ids if owner else ())
    events = [
        e
        for e in state.visible_events()
        if start <= e.created < end and (not wanted or e.email_campaign_id in campaigns)
    ]
    return events, start, end


async def statistics_list(request: web.Request) -> web.Response:
    selected = _selected(request)
    if isinstance(selected, web.Response):
        return selected
    events = selected[0]
    campaigns = sorted({e.email_campaign_id for e in events if e.email_campaign_id})
    state = _state(request)
    owners = [state.emails.owner(c) for c in campaigns]
    emails = {
        o.id if o else int(c) for o, c in zip(owners, campaigns, strict=True) if o or c.isdigit()
    }
    return json_response(
        {
            "emails": sorted(emails),
            "aggregate": aggregate(events),
            "campaignAggregations": {
                c: aggregate([e for e in events if e.email_campaign_id == c]) for c in campaigns
            },
        }
    )


def _bucket_start(moment: datetime, interval: str) -> datetime:
    if interval in _FIXED:
        if interval == "WEEK":  # weeks start on Monday
            day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
            return day - timedelta(days=day.weekday())
        size = _FIXED[interval].total_seconds()
        return datetime.fromtimestamp(moment.timestamp() // size * size, UTC)
    months = _MONTHS[interval]
    month = (moment.month - 1) // months * months + 1
    return moment.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(start: datetime, interval: str) -> datetime:
    if interval in _FIXED:
        return start + _FIXED[interval]
    years, month0 = divmod(start.month - 1 + _MONTHS[interval], 12)
    return start.replace(
        year=start.year + years,
        month=month0 + 1,
        day=min(start.day, calendar.monthrange(start.year + years, month0 + 1)[1]),
    )


async def statistics_histogram(request: web.Request) -> web.Response:
    interval = request.query.get("interval", "")
    if interval not in _FIXED and interval not in _MONTHS:
        return _error(400, "VALIDATION_ERROR", f"unknown interval {interval!r}")
    selected = _selected(request)
    if isinstance(selected, web.Response):
        return selected
    events, start, end = selected
    buckets: list[dict[str, object]] = []
    cursor = _bucket_start(datetime.fromtimestamp(start, UTC), interval)
    stop = datetime.fromtimestamp(end, UTC)
    while cursor < stop:
        if len(buckets) == MAX_BUCKETS:
            return _error(400, "VALIDATION_ERROR", "too many intervals; widen the interval")
        following = _next(cursor, interval)
        inside = [e for e in events if cursor.timestamp() <= e.created < following.timestamp()]
        buckets.append(
            {
                "interval": {"start": cursor.isoformat(), "end": following.isoformat()},
                "aggregations": aggregate(inside),
            }
        )
        cursor = following
    return json_response({"total": len(buckets), "results": buckets})


def routes(statistics_paths: Iterable[str]) -> list[web.RouteDef]:
    """The tracking routes (statistics under every API version's path)."""
    table = [
        web.get("/email/public/v1/events", list_events),
        web.get("/email/public/v1/events/{created}/{eventId}", get_event),
        web.get("/email/public/v1/campaigns/{campaignId}", get_campaign),
    ]
    for path in sorted(set(statistics_paths)):
        table.append(web.get(path + "/list", statistics_list))
        table.append(web.get(path + "/histogram", statistics_histogram))
    return table
