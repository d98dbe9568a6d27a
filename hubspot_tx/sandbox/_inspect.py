"""The inspection API: the sandbox's state over HTTP under ``/_sandbox/v1``, for tests in any
language, CI jobs and the web inbox. Its shapes are in ``_views.py``; its OpenAPI document is
served at ``/_sandbox/openapi.json``.

It needs no bearer token and is not rate limited or fault injected: it is the test's side of
the sandbox, not HubSpot's (the sandbox listens on loopback unless told otherwise).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, overload
from urllib.parse import quote

import msgspec
from aiohttp import web

from ._faults import Faults
from ._index import chunks
from ._state import SandboxEvent, SandboxState, StoredMessage
from ._views import (
    CampaignList,
    CampaignView,
    ChaosRequest,
    EventList,
    FaultList,
    MessageList,
    RestFaultRequest,
    SendList,
    SmtpFaultRequest,
    Stats,
    TokenList,
    attachment_bytes,
    attachment_filename,
    chaos_view,
    event_view,
    fault_view,
    message_detail,
    message_summary,
    send_view,
    stored_attachments,
    token_view,
)
from ._web import FAULTS_KEY, STATE_KEY, error_response

__all__ = ["CLOSING_KEY", "CONTROL_KEY", "PREFIX", "Control", "end_long_polls", "routes"]

PREFIX = "/_sandbox/v1"
MAX_WAIT = 30.0
MAX_LIMIT = 1000

_fault_decoder = msgspec.json.Decoder(SmtpFaultRequest | RestFaultRequest)
_chaos_decoder = msgspec.json.Decoder(ChaosRequest)


class Control(Protocol):
    """What the inspection API asks of the sandbox beyond its state and faults."""

    def reset(self) -> None: ...

    def stats(self) -> Stats: ...


CONTROL_KEY = web.AppKey("control", Control)
CLOSING_KEY = web.AppKey("closing", asyncio.Event)


async def end_long_polls(app: web.Application) -> None:
    """On shutdown, answer every long-poll at once: stopping the sandbox must not wait out
    a ``wait`` (a browser left on the web inbox always holds one open)."""
    app[CLOSING_KEY].set()
    app[STATE_KEY].changed()  # wakes the waiters, who then see the flag


_encode = msgspec.json.Encoder().encode


def json_response(view: msgspec.Struct, status: int = 200) -> web.Response:
    """A view as JSON, every field present (``null`` when empty): a stable shape."""
    return web.Response(body=_encode(view), status=status, content_type="application/json")


class _BadQuery(ValueError):
    pass


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _BadQuery(f"{name} must be an integer") from None


def _bad(message: str) -> web.Response:
    return error_response(400, "VALIDATION_ERROR", message)


def _filters(request: web.Request) -> dict[str, str]:
    """The message filters asked for, normalised as the index keeps them."""
    q = request.query
    found = {
        name: value
        for name in ("messageId", "subject", "tokenId", "campaignId")
        if (value := q.get(name)) is not None
    }
    if recipient := (q.get("recipient") or "").lower():
        found["recipient"] = recipient
    if text := (q.get("q") or "").lower():
        found["q"] = text
    return found


def _matcher(state: SandboxState, filters: dict[str, str]) -> Callable[[StoredMessage], bool]:
    recipient, text = filters.get("recipient"), filters.get("q")
    message_id, subject = filters.get("messageId"), filters.get("subject")
    token_id, campaign_id = filters.get("tokenId"), filters.get("campaignId")

    def match(m: StoredMessage) -> bool:
        if recipient is not None and recipient not in (r.lower() for r in m.rcpt_to):
            return False
        if message_id is not None and m.message_id != message_id:
            return False
        if token_id is not None and m.token_id != token_id:
            return False
        if campaign_id is not None and m.email_campaign_id != campaign_id:
            return False
        if subject is not None and m.subject != subject:
            return False
        return text is None or text in state.index.text(m.seq)

    return match


def _limit(request: web.Request, default: int) -> int:
    limit = _int(request, "limit", default)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise _BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


#: How many candidates a listing checks beyond its page to count its ``total`` exactly; past
#: it the total is estimated (``totalExact`` false), so that no call costs more than a page.
COUNT_BUDGET = 2000
#: A search whose matches are rare may have to check many candidates to fill its page (a one- or
#: two-letter one, every message): it gives the event loop back every this many, so SMTP
#: sessions and other calls go on meanwhile.
CHUNK = 2000


async def _page(request: web.Request, state: SandboxState) -> MessageList:
    after = _int(request, "after", 0) or 0
    before = _int(request, "before")
    limit = _limit(request, 100)
    order = request.query.get("order", "asc")
    if order not in ("asc", "desc"):
        raise _BadQuery("order must be asc or desc")
    newest_first = order == "desc"
    filters = _filters(request)
    index = state.index
    postings = index.candidates(filters)
    # No filter narrows it: the messages themselves (ascending, no stale entry, all match).
    candidates = _Seqs(state.messages) if postings is None else postings
    in_window = _count_window(candidates, after, before)
    match = _matcher(state, filters)
    page: list[StoredMessage] = []
    matched = checked = 0
    full = False
    # A chunk at a time, the event loop given back between chunks: a search that matches
    # little (a one-letter one looks at every message) never holds up SMTP sessions.
    for chunk in chunks(candidates, after, before, newest_first, CHUNK):
        for seq in chunk:
            checked += 1
            m = index.get(seq)
            if m is None or not match(m):
                continue
            matched += 1
            if len(page) < limit:
                page.append(m)
            elif not filters or checked > limit + COUNT_BUDGET:
                full = True
                break
        if full:
            break
        if len(chunk) == CHUNK:
            await asyncio.sleep(0)
    exhausted = checked >= in_window
    if exhausted or not filters:
        total, exact = (matched if exhausted else in_window), True
    else:  # the share that matched so far, over the rest of the window
        total, exact = max(matched, round(matched / checked * in_window)), False
    more = matched > len(page)
    return MessageList(
        total=total,
        total_exact=exact,
        results=[message_summary(m, state.message_status(m.message_id)) for m in page],
        next_after=page[-1].seq if more and not newest_first else None,
        next_before=page[-1].seq if more and newest_first else None,
        generation=state.generation,
    )


class _Seqs(Sequence[int]):
    """The seqs of the (ascending) message list, without copying them."""

    def __init__(self, messages: list[StoredMessage]) -> None:
        self._messages = messages

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [m.seq for m in self._messages[i]]
        return self._messages[i].seq


def _count_window(seqs: Sequence[int], after: int, before: int | None) -> int:
    lo = bisect.bisect_right(seqs, after)
    hi = len(seqs) if before is None else bisect.bisect_left(seqs, before)
    return max(0, hi - lo)


async def list_messages(request: web.Request) -> web.Response:
    """Messages, oldest first (``order=desc``: newest first), filtered; ``wait=S`` long-polls:
    with nothing to return, it answers when a matching message comes or after ``S`` seconds,
    and with ``since=G`` also as soon as the sandbox's generation is not ``G`` (a deletion,
    a reset, a single-send, a token: the inbox's cue to refresh what it shows)."""
    state, closing = request.app[STATE_KEY], request.app[CLOSING_KEY]
    try:
        wait = float(request.query.get("wait", 0))
        if not 0 <= wait <= MAX_WAIT:  # also refuses NaN
            raise _BadQuery(f"wait must be between 0 and {MAX_WAIT:g} seconds")
        since = _int(request, "since")
        page = await _page(request, state)
        deadline = time.monotonic() + wait
        while (
            not page.results
            and since in (None, page.generation)
            and not closing.is_set()
            and (left := deadline - time.monotonic()) > 0
        ):
            await state.wait_changed(state.generation, left)
            page = await _page(request, state)
    except _BadQuery as exc:
        return _bad(str(exc))
    except ValueError:
        return _bad("wait must be a number of seconds")
    return json_response(page)


def _stored(request: web.Request) -> StoredMessage:
    state = request.app[STATE_KEY]
    try:
        seq = int(request.match_info["id"])
    except ValueError:
        seq = -1
    message = state.message(seq)
    if message is None:
        missing = error_response(
            404, "OBJECT_NOT_FOUND", f"message {request.match_info['id']} does not exist"
        )
        raise web.HTTPNotFound(text=missing.text, content_type="application/json")
    return message


async def get_message(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    m = _stored(request)
    events = state.message_events(m.message_id)
    status = state.message_status(m.message_id)
    return json_response(message_detail(m, status, events))


async def raw_message(request: web.Request) -> web.Response:
    return web.Response(body=_stored(request).data, content_type="message/rfc822")


# The HTML part is served on its own, to an iframe that has no scripts, with headers that say
# the same: no script runs, no request leaves for the network, whatever the mail contains.
_HTML_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def html_message(request: web.Request) -> web.Response:
    m = _stored(request)
    html = message_detail(m, "", ()).html
    if html is None:
        raise web.HTTPNotFound(text=f"message {m.seq} has no HTML part")
    return web.Response(text=html, content_type="text/html", headers=_HTML_HEADERS)


async def attachment(request: web.Request) -> web.Response:
    """One attachment's bytes, always as a download: whatever its declared type, it never
    renders on the inbox's origin (``Content-Disposition: attachment``, a CSP sandbox)."""
    m = _stored(request)
    parts = stored_attachments(m)
    try:
        part = parts[int(request.match_info["n"])]
    except (ValueError, IndexError):
        raise web.HTTPNotFound(text=f"message {m.seq} has no such attachment") from None
    name = attachment_filename(part) or f"attachment-{request.match_info['n']}"
    disposition = "attachment; filename*=UTF-8''" + quote(name, safe="")
    headers = {**_HTML_HEADERS, "Content-Disposition": disposition}
    return web.Response(
        body=attachment_bytes(part), content_type=part.get_content_type(), headers=headers
    )


async def delete_message(request: web.Request) -> web.Response:
    m = _stored(request)
    request.app[STATE_KEY].delete_messages([m.seq])
    return web.Response(status=204)


async def delete_messages(request: web.Request) -> web.Response:
    request.app[STATE_KEY].delete_messages()
    return web.Response(status=204)


def _event_matcher(request: web.Request) -> Callable[[SandboxEvent], bool] | None:
    """The events filter asked for (``None``: no filter)."""
    q = request.query
    wanted = {
        k: v
        for k, v in (
            ("email_campaign_id", q.get("campaignId")),
            ("type", q.get("type")),
            ("smtp_id", q.get("messageId")),
            ("send_id", q.get("sendId")),
        )
        if v is not None
    }
    recipient = (q.get("recipient") or "").lower() or None
    if not wanted and recipient is None:
        return None

    def match(e: SandboxEvent) -> bool:
        if recipient is not None and e.recipient.lower() != recipient:
            return False
        return all(getattr(e, k) == v for k, v in wanted.items())

    return match


async def list_events(request: web.Request) -> web.Response:
    """Email events whose time has come, oldest first, filtered (like ``/messages``: about a
    page of events is looked at; past the budget a filtered ``total`` is an estimate)."""
    state = request.app[STATE_KEY]
    try:
        limit = _limit(request, MAX_LIMIT)
    except _BadQuery as exc:
        return _bad(str(exc))
    message_id = request.query.get("messageId")
    source: Iterable[SandboxEvent]
    if message_id is None:
        size = state.visible_count()
        source = state.iter_visible(size)
    else:  # one message's few events, from its index
        source = state.message_events(message_id)
        size = len(source)
    match = _event_matcher(request)
    if match is None:
        return json_response(
            EventList(
                total=size,
                total_exact=True,
                results=[event_view(e) for e in itertools.islice(source, limit)],
            )
        )
    page: list[SandboxEvent] = []
    matched = checked = 0
    for e in source:
        checked += 1
        if checked % CHUNK == 0:
            await asyncio.sleep(0)
        if not match(e):
            continue
        matched += 1
        if len(page) < limit:
            page.append(e)
        elif checked > limit + COUNT_BUDGET:
            break
    exact = checked >= size
    total = matched if exact else max(matched, round(matched / checked * size))
    return json_response(
        EventList(total=total, total_exact=exact, results=[event_view(e) for e in page])
    )


async def list_campaigns(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    tokens = {t.email_campaign_id: t.campaign_name for t in state.tokens.values()}
    names = {c: e.name for e in state.emails for c in e.campaign_ids} | tokens
    counts = state.campaign_event_counts()
    messages = {c: n for (kind, c), n in state.index.counts.items() if kind == "campaign" and n}
    ids = sorted(set(tokens) | set(counts) | set(messages), key=lambda c: (len(c), c))
    results = [
        CampaignView(
            campaign_id=c,
            name=names.get(c),
            messages=messages.get(c, 0),
            events=counts.get(c, {}),
        )
        for c in ids
    ]
    return json_response(CampaignList(total=len(results), results=results))


async def list_sends(request: web.Request) -> web.Response:
    """Single-sends, oldest first, with their status timelines (``to`` filters)."""
    state = request.app[STATE_KEY]
    to = (request.query.get("to") or "").lower() or None
    records = [r for r in state.sends.values() if to is None or r.request.message.to.lower() == to]
    return json_response(
        SendList(total=len(records), results=[send_view(state, r) for r in records])
    )


async def get_send(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    record = state.sends.get(request.match_info["statusId"])
    if record is None:
        return error_response(404, "OBJECT_NOT_FOUND", "no such single-send")
    return json_response(send_view(state, record))


async def list_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    counts = state.index.counts
    views = [token_view(t, counts["token", t.id]) for t in state.tokens.values()]
    return json_response(TokenList(total=len(views), results=views))


def _fault_list(faults: Faults) -> FaultList:
    armed: Iterable[tuple[int, object]] = [*enumerate(faults.smtp), *enumerate(faults.rest)]
    return FaultList(
        results=[fault_view(i, f) for i, f in armed],  # type: ignore[arg-type]
        chaos=None if faults.random is None else chaos_view(faults.random),
    )


async def list_faults(request: web.Request) -> web.Response:
    return json_response(_fault_list(request.app[FAULTS_KEY]))


async def add_fault(request: web.Request) -> web.Response:
    """Arm one fault (``{"kind": "smtp", ...}`` or ``{"kind": "rest", ...}``)."""
    faults = request.app[FAULTS_KEY]
    try:
        spec = _fault_decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        return _bad(f"Invalid fault: {exc}")
    if isinstance(spec, SmtpFaultRequest):
        if spec.action == "reply":
            faults.smtp_reply(
                spec.stage, spec.code, spec.text, recipient=spec.recipient, times=spec.times
            )
        elif spec.action == "drop":
            faults.smtp_drop(spec.stage, recipient=spec.recipient, times=spec.times)
        else:
            faults.smtp_slow(spec.stage, spec.seconds, times=spec.times)
        view = fault_view(len(faults.smtp) - 1, faults.smtp[-1])
    else:
        times, method, path = spec.times, spec.method, spec.path
        if spec.action == "error":
            faults.rest_error(spec.status, times=times, method=method, path=path)
        elif spec.action == "commit_then_error":
            faults.rest_commit_then_error(spec.status, times=times, method=method, path=path)
        elif spec.action == "rate_limit":
            faults.rest_429(retry_after=spec.retry_after, times=times, method=method, path=path)
        else:
            faults.rest_slow(spec.seconds, times=times, method=method, path=path)
        view = fault_view(len(faults.rest) - 1, faults.rest[-1])
    return json_response(view, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].clear()
    return web.Response(status=204)


async def set_chaos(request: web.Request) -> web.Response:
    try:
        spec = _chaos_decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        return _bad(f"Invalid chaos: {exc}")
    chaos = request.app[FAULTS_KEY].chaos(
        seed=spec.seed,
        smtp_rate=spec.smtp_rate,
        rest_rate=spec.rest_rate,
        smtp_stages=tuple(spec.smtp_stages),
    )
    return json_response(chaos_view(chaos))


async def stop_chaos(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].random = None
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    """Forget every token, message, event and single-send, disarm faults, refill limits."""
    request.app[CONTROL_KEY].reset()
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[CONTROL_KEY].stats())


async def openapi(request: web.Request) -> web.Response:
    from ._openapi import openapi_document  # built on first request

    return web.Response(text=openapi_document(), content_type="application/json")


def routes() -> list[web.RouteDef]:
    """The inspection API's routes (under :data:`PREFIX`) and the OpenAPI document."""
    p = PREFIX
    return [
        web.get("/_sandbox/openapi.json", openapi),
        web.get(p + "/messages", list_messages),
        web.delete(p + "/messages", delete_messages),
        web.get(p + "/messages/{id}", get_message),
        web.delete(p + "/messages/{id}", delete_message),
        web.get(p + "/messages/{id}/raw", raw_message),
        web.get(p + "/messages/{id}/html", html_message),
        web.get(p + "/messages/{id}/attachments/{n:\\d+}", attachment),
        web.get(p + "/events", list_events),
        web.get(p + "/campaigns", list_campaigns),
        web.get(p + "/single-sends", list_sends),
        web.get(p + "/single-sends/{statusId}", get_send),
        web.get(p + "/tokens", list_tokens),
        web.get(p + "/faults", list_faults),
        web.post(p + "/faults", add_fault),
        web.delete(p + "/faults", clear_faults),
        web.put(p + "/faults/chaos", set_chaos),
        web.delete(p + "/faults/chaos", stop_chaos),
        web.post(p + "/reset", reset),
        web.get(p + "/stats", stats),
    ]
