"""The sandbox's marketing-emails API (``/marketing/v3/emails`` and its dated twins) and the
legacy campaign listing (``/email/public/v1/campaigns``, ``/by-id``), over the shared state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from ..models.marketing_emails import EmailCreateRequest, EmailType, MarketingEmail
from ..models.smtp_tokens import NextPage, Paging
from ..models.tracking import StatisticsData
from ._emails import EmailRecord
from ._state import CursorError, SandboxState
from ._tracking import aggregate
from ._web import STATE_KEY, error_response, json_response

__all__ = ["routes"]

DEFAULT_EMAIL_LIMIT = 10
DEFAULT_CAMPAIGN_LIMIT = 10
MAX_CAMPAIGN_LIMIT = 1000
LEGACY_CAMPAIGNS = "/email/public/v1/campaigns"
_APP = {"appId": 22709, "appName": "hubspot-tx sandbox"}
_SORTS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "publishedAt": "published_at",
    "name": "name",
}

_create_decoder = msgspec.json.Decoder(EmailCreateRequest)


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]


def _invalid(message: str, field: str) -> web.Response:
    errors = [{"message": message, "in": field, "code": "INVALID"}]
    return error_response(400, "VALIDATION_ERROR", message, errors=errors)


def _flag(request: web.Request, name: str) -> bool | None:
    """A boolean query parameter; ``ValueError`` if it is not ``true``/``false``."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise ValueError(name)
    return raw.lower() == "true"


def _limit(request: web.Request, default: int, maximum: int | None = None) -> int:
    raw = request.query.get("limit", str(default))
    value = int(raw) if raw.lstrip("-").isdigit() else 0
    if value < 1 or (maximum is not None and value > maximum):
        raise ValueError("limit")
    return value


def _page_start(request: web.Request, name: str, scope: str) -> int:
    cursor = request.query.get(name)
    return _state(request).read_cursor(cursor, scope) if cursor else 0


# -- marketing emails -------------------------------------------------------------------------
def _sorted(emails: list[EmailRecord], specs: list[str]) -> list[EmailRecord]:
    """``emails`` by id, then by each ``sort`` spec (``name``, ``-updatedAt``, ...);
    ``ValueError`` for a property the sandbox cannot sort by."""
    ordered = sorted(emails, key=lambda e: e.id)
    for spec in reversed(specs):
        name = spec.lstrip("-")
        attr = _SORTS.get(name)
        if attr is None:
            raise ValueError("sort")
        ordered.sort(  # stable: the earlier specs win ties
            key=lambda e, attr=attr: (
                (getattr(e, attr) or 0.0)  # type: ignore[misc]
                if attr != "name"
                else e.name.lower()
            ),
            reverse=spec.startswith("-"),
        )
    return ordered


async def list_emails(request: web.Request) -> web.Response:
    q = request.query
    kind = q.get("type")
    if kind is not None and kind not in EmailType.__members__:
        return _invalid(f"type must be one of {', '.join(EmailType.__members__)}", "type")
    try:
        published = _flag(request, "isPublished")
        stats = _flag(request, "includeStats")
        archived = _flag(request, "archived")
        limit = _limit(request, DEFAULT_EMAIL_LIMIT)
        sort = q.getall("sort", [])
        scope = "|".join([kind or "", str(published), str(archived), *sort])
        start = _page_start(request, "after", scope)
        matching = [
            e
            for e in _state(request).emails
            if not archived  # the sandbox archives nothing
            and (kind is None or e.type == kind)
            and (published is None or e.published == published)
        ]
        matching = _sorted(matching, sort)
    except CursorError as exc:
        return _invalid(f"Invalid 'after' cursor: {exc}", "after")
    except ValueError as exc:  # raised with the parameter's name
        name = str(exc.args[0]) if exc.args else "query"
        return _invalid(f"invalid value for the query parameter {name}", name)
    page = matching[start : start + limit]
    paging = None
    if start + limit < len(matching):
        after = _state(request).make_cursor(start + limit, scope)
        link = str(request.url.with_query([*q.items(), ("after", after)]))
        paging = Paging(next=NextPage(after=after, link=link))
    state = _state(request)
    results = [_with_stats(state, e) if stats else e.view() for e in page]
    return json_response({"total": len(matching), "results": results, "paging": paging})


def _with_stats(state: SandboxState, record: EmailRecord) -> MarketingEmail:
    """The email with ``stats``: its campaigns' visible events, aggregated."""
    campaigns = set(record.campaign_ids)
    events = [e for e in state.visible_events() if e.email_campaign_id in campaigns]
    return record.view(msgspec.convert(aggregate(events), StatisticsData))


async def create_email(request: web.Request) -> web.Response:
    raw = await request.read()
    dated = "/v3/" not in request.path
    try:
        if dated:  # the dated specs require no field; v3 requires ``name``
            parsed = msgspec.json.decode(raw)
            if isinstance(parsed, dict):
                parsed.setdefault("name", "Untitled email")
            raw = msgspec.json.encode(parsed)
        body = _create_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return _invalid(f"Invalid input JSON: {exc}", "body")
    record = _state(request).create_email(body)
    response = json_response(record.view(), status=201)
    response.headers["Location"] = str(request.url.with_path(f"{request.path}/{record.id}"))
    return response


def _email(request: web.Request) -> EmailRecord | web.Response:
    email_id = request.match_info["emailId"]
    record = _state(request).emails.get(email_id) if email_id.isdigit() else None
    if record is None:
        return error_response(404, "OBJECT_NOT_FOUND", f"email {email_id} does not exist")
    return record


async def get_email(request: web.Request) -> web.Response:
    record = _email(request)
    if isinstance(record, web.Response):
        return record
    try:
        stats = _flag(request, "includeStats")
    except ValueError:
        return _invalid("includeStats must be true or false", "includeStats")
    return json_response(_with_stats(_state(request), record) if stats else record.view())


async def publish_email(request: web.Request) -> web.Response:
    record = _email(request)
    if isinstance(record, web.Response):
        return record
    if not record.subject.strip():
        return _invalid("The email has no subject; it cannot be published.", "subject")
    _state(request).publish_email(record)
    return web.Response(status=204)


# -- legacy campaign listing ------------------------------------------------------------------
def _campaigns(state: SandboxState) -> dict[str, float]:
    """Every email campaign id -> when it last changed (its latest visible event, else its
    creation)."""
    when: dict[str, float] = {}
    for email in state.emails:
        for c in email.campaign_ids:
            when[c] = email.updated_at
    for token in state.tokens.values():
        when[token.email_campaign_id] = token.created_at.timestamp()
    for event in state.visible_events():
        if event.email_campaign_id is not None:
            when[event.email_campaign_id] = max(
                when.get(event.email_campaign_id, 0.0), event.created
            )
    return when


async def _list_campaigns(request: web.Request, *, recent: bool) -> web.Response:
    state = _state(request)
    scope = "recent" if recent else "by-id"
    try:
        limit = _limit(request, DEFAULT_CAMPAIGN_LIMIT, MAX_CAMPAIGN_LIMIT)
        start = _page_start(request, "offset", scope)
    except CursorError as exc:
        return _invalid(f"Invalid offset: {exc}", "offset")
    except ValueError:
        return _invalid(f"limit must be between 1 and {MAX_CAMPAIGN_LIMIT}", "limit")
    when = _campaigns(state)

    def numeric(c: str) -> tuple[int, str]:
        return (int(c), c) if c.isdigit() else (0, c)

    if recent:
        ids = sorted(when, key=lambda c: (-when[c], numeric(c)))
    else:
        ids = sorted(when, key=numeric)
    page = ids[start : start + limit]
    more = start + limit < len(ids)
    campaigns: list[dict[str, Any]] = []
    for c in page:
        entry: dict[str, Any] = {"id": int(c) if c.isdigit() else c, **_APP}
        if recent:
            entry["lastUpdatedTime"] = int(when[c] * 1000)
        campaigns.append(entry)
    body: dict[str, Any] = {"campaigns": campaigns, "hasMore": more}
    if more:
        body["offset"] = state.make_cursor(start + limit, scope)
    return json_response(body)


async def recent_campaigns(request: web.Request) -> web.Response:
    return await _list_campaigns(request, recent=True)


async def campaigns_by_id(request: web.Request) -> web.Response:
    return await _list_campaigns(request, recent=False)


def routes(email_paths: Iterable[str]) -> list[web.RouteDef]:
    """The marketing-email routes under every API version's path, and the legacy listing
    (registered before ``/email/public/v1/campaigns/{campaignId}``, which would take
    ``by-id``)."""
    table = [
        web.get(LEGACY_CAMPAIGNS, recent_campaigns),
        web.get(LEGACY_CAMPAIGNS + "/by-id", campaigns_by_id),
    ]
    for path in sorted(set(email_paths)):
        table += [
            web.get(path, list_emails),
            web.post(path, create_email),
            web.get(path + "/{emailId}", get_email),
            web.post(path + "/{emailId}/publish", publish_email),
        ]
    return table
