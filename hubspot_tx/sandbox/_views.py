"""What the inspection API returns: the sandbox's state as stable, documented JSON shapes.

These structs are the inspection API's contract (``/_sandbox/v1``); the OpenAPI document the
sandbox serves is generated from them, so the two cannot drift apart.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any, Literal

import msgspec

from ._faults import Chaos, RestFault, SmtpFault
from ._index import clean_text
from ._state import SandboxEvent, SandboxState, SendRecord, StoredMessage, TokenRecord

__all__ = [
    "Attachment",
    "CampaignList",
    "CampaignView",
    "ChaosRequest",
    "ChaosView",
    "EventList",
    "EventView",
    "FaultList",
    "FaultView",
    "MessageDetail",
    "MessageList",
    "MessageSummary",
    "RestFaultRequest",
    "SendList",
    "SendView",
    "SmtpFaultRequest",
    "Stats",
    "TimelineEntry",
    "TokenList",
    "TokenView",
    "attachment_bytes",
    "attachment_filename",
    "attachments_of",
    "chaos_view",
    "event_view",
    "fault_view",
    "message_detail",
    "message_summary",
    "send_view",
    "stored_attachments",
    "token_view",
]


class _View(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    pass


class MessageSummary(_View):
    """A message accepted over SMTP, as the inbox lists it."""

    id: int
    """Its number in this sandbox (never reused, even after a reset)."""
    message_id: str | None
    """Its ``Message-ID`` header, or the one the sandbox assigned if it had none."""
    message_id_assigned: bool
    """The message came without a Message-ID; ``messageId`` is the sandbox's."""
    received_at: datetime
    mail_from: str
    """The envelope sender (``MAIL FROM``)."""
    rcpt_to: list[str]
    """The envelope recipients (``RCPT TO``), Bcc included."""
    from_: str | None = msgspec.field(name="from")
    """The ``From`` header."""
    to: list[str]
    """The ``To`` and ``Cc`` headers' addresses."""
    subject: str | None
    size: int
    token_id: str | None
    """The SMTP token that logged in."""
    campaign_id: str | None
    """The token's ``emailCampaignId``."""
    session_id: int
    arrival: int
    """1 for the first message with its Message-ID, 2 for a duplicate, ..."""
    status: str
    """The latest email event for it (``DELIVERED``, ``BOUNCE`` ...), or ``ACCEPTED``."""


class Attachment(_View):
    filename: str | None
    content_type: str
    size: int
    url: str
    """Where to download it (``/_sandbox/v1/messages/{id}/attachments/{n}``)."""


class EventView(_View):
    """An email event, as HubSpot's events API would report it."""

    id: str
    type: str
    recipient: str
    created: datetime
    campaign_id: str | None
    smtp_id: str | None
    """The Message-ID of the SMTP message it follows."""
    send_id: str | None
    """The ``sendId`` of the single-send it follows."""
    drop_reason: str | None


class MessageDetail(MessageSummary):
    """One message, opened: headers, bodies, attachments and events."""

    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]
    events: list[EventView]


class MessageList(_View):
    total: int
    """Messages matching the filters, on every page: exact when ``totalExact``, else an
    estimate (a listing looks at about a page's worth of messages, never at all of them)."""
    total_exact: bool
    results: list[MessageSummary]
    next_after: int | None
    """Oldest first: pass as ``after`` for the next page (``None``: this was the last one)."""
    next_before: int | None
    """Newest first (``order=desc``): pass as ``before`` for the next page."""
    generation: int
    """The sandbox's change counter (pass it as ``since``, with ``wait``, to long-poll for the
    next change of any kind)."""


class EventList(_View):
    total: int
    """Events matching the filters: exact when ``totalExact``, else an estimate."""
    total_exact: bool
    results: list[EventView]


class TimelineEntry(_View):
    status: str
    at: datetime


class SendView(_View):
    """A single-send request and the status it went through."""

    status_id: str
    send_id: str | None
    email_id: int
    to: str
    from_: str | None = msgspec.field(name="from")
    status: str
    send_result: str | None
    """Known once ``COMPLETE``."""
    duplicate: bool
    requested_at: datetime
    timeline: list[TimelineEntry]
    contact_properties: dict[str, Any]
    custom_properties: dict[str, Any]
    campaign_id: str | None = None
    """The email's ``primaryEmailCampaignId``: its events are keyed by it, not by ``emailId``."""


class CampaignView(_View):
    """A campaign (an SMTP token's ``emailCampaignId``, or a marketing email's
    ``primaryEmailCampaignId``, which single-send events are keyed by)."""

    campaign_id: str
    name: str | None
    """The token's ``campaignName`` or the email's name, when one names it."""
    messages: int
    events: dict[str, int]
    """Visible events by type."""


class CampaignList(_View):
    total: int
    results: list[CampaignView]


class SendList(_View):
    total: int
    results: list[SendView]


class TokenView(_View):
    """An SMTP token (never its password)."""

    id: str
    campaign_name: str
    email_campaign_id: str
    create_contact: bool
    created_at: datetime
    created_by: str
    messages: int
    """Messages it relayed."""


class TokenList(_View):
    total: int
    results: list[TokenView]


class SmtpFaultRequest(msgspec.Struct, rename="camel", kw_only=True, tag_field="kind", tag="smtp"):
    """Arm an SMTP fault: a ``reply`` (``code``/``text``), a ``drop`` or a ``delay``
    (``seconds``) at ``stage``, the first ``times`` times (``null``: until cleared)."""

    stage: Literal["connect", "mail", "rcpt", "data", "end", "stored", "noop", "quit"]
    action: Literal["reply", "drop", "delay"] = "reply"
    code: int = 451
    text: str = ""
    recipient: str | None = None
    times: int | None = 1
    seconds: float = 0.0


class RestFaultRequest(msgspec.Struct, rename="camel", kw_only=True, tag_field="kind", tag="rest"):
    """Arm a REST fault: ``error`` (``status``), ``commit_then_error``, ``rate_limit`` (429)
    or ``delay`` (``seconds``), for requests matching ``method`` and the ``path`` prefix."""

    action: Literal["error", "commit_then_error", "rate_limit", "delay"] = "error"
    status: int = 500
    times: int | None = 1
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0
    retry_after: float | None = None


class FaultView(_View):
    kind: Literal["smtp", "rest"]
    index: int
    action: str
    times: int | None
    hits: int
    stage: str | None = None
    code: int | None = None
    text: str | None = None
    recipient: str | None = None
    status: int | None = None
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0


class ChaosRequest(_View):
    """Random faults, the same for the same seed and traffic."""

    seed: int
    smtp_rate: float = 0.0
    rest_rate: float = 0.0
    smtp_stages: list[Literal["connect", "mail", "rcpt", "end"]] = msgspec.field(
        default_factory=lambda: ["mail", "rcpt", "end"]
    )


class ChaosView(ChaosRequest):
    hits: int = 0


class FaultList(_View):
    results: list[FaultView]
    chaos: ChaosView | None


class Stats(_View):
    """Counters of the sandbox since it started (or since the last reset)."""

    messages: int
    events: int
    single_sends: int
    tokens: int
    smtp_sessions_open: int
    smtp_sessions_peak: int
    smtp_sessions_total: int
    smtp_refused_connections: int
    smtp_refused_messages: int
    rest_allowed: int
    rest_rate_limited: int
    generation: int


def _iso(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def message_summary(m: StoredMessage, status: str) -> MessageSummary:
    """A message as listed: its fields were read once, at arrival (no parsing here)."""
    return MessageSummary(
        id=m.seq,
        message_id=m.message_id,
        message_id_assigned=m.message_id_assigned,
        received_at=_iso(m.received_at),
        mail_from=m.mail_from,
        rcpt_to=list(m.rcpt_to),
        from_=m.from_header,
        to=list(m.to),
        subject=m.subject,
        size=len(m.data),
        token_id=m.token_id,
        campaign_id=m.email_campaign_id,
        session_id=m.session_id,
        arrival=m.arrival,
        status=status,
    )


def _content(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: show what can be shown
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


# What the standard library's MIME parser raises on some hostile bytes (a NUL in a charset
# parameter, a bare ``filename*``): such a message still opens, with what could be read.
_MIME_ERRORS = (IndexError, ValueError, TypeError, AttributeError, LookupError)


def _header_list(data: bytes, parsed: EmailMessage | None) -> list[tuple[str, str]]:
    if parsed is not None:
        try:
            return [(k, clean_text(str(v))) for k, v in parsed.items()]
        except Exception:  # a header policy.default cannot read: every one read raw
            ...
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    return [(k, clean_text(str(v))) for k, v in raw.items()]


def attachments_of(parsed: EmailMessage) -> list[EmailMessage]:
    """The message's attachments, in order (their index is their number in URLs); those of a
    multipart attached part (a forward's own attachments) are listed one by one."""
    found: list[EmailMessage] = []
    for part in parsed.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        if part.get_content_maintype() == "multipart":
            found += attachments_of(part)
        else:
            found.append(part)
    return found


def stored_attachments(m: StoredMessage) -> list[EmailMessage]:
    """:func:`attachments_of` the stored message (none if its MIME structure cannot be read)."""
    try:
        return attachments_of(m.message)
    except _MIME_ERRORS:
        return []


def attachment_bytes(part: EmailMessage) -> bytes:
    """An attachment's content, transfer encoding undone (an attached message as its own
    bytes, without the part's MIME headers)."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if part.get_content_maintype() == "message" and isinstance(inner, list) and inner:
        attached = inner[0]
        if isinstance(attached, Message):
            return attached.as_bytes()
    return part.as_bytes() if part.is_multipart() else b""


def attachment_filename(part: EmailMessage) -> str | None:
    try:
        name = part.get_filename()
    except _MIME_ERRORS:
        return None
    return None if name is None else clean_text(name)


def _bodies(m: StoredMessage) -> tuple[EmailMessage | None, str | None, str | None]:
    try:
        parsed = m.message
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        return (
            parsed,
            None if not isinstance(text, EmailMessage) else _content(text),
            None if not isinstance(html, EmailMessage) else _content(html),
        )
    except _MIME_ERRORS:
        return None, None, None


def message_detail(m: StoredMessage, status: str, events: Iterable[SandboxEvent]) -> MessageDetail:
    parsed, text, html = _bodies(m)
    summary = message_summary(m, status)
    attachments = [
        Attachment(
            filename=attachment_filename(part),
            content_type=part.get_content_type(),
            size=len(attachment_bytes(part)),
            url=f"/_sandbox/v1/messages/{m.seq}/attachments/{n}",
        )
        for n, part in enumerate(stored_attachments(m))
    ]
    return MessageDetail(
        **{f: getattr(summary, f) for f in summary.__struct_fields__},
        headers=_header_list(m.data, parsed),
        text=text,
        html=html,
        attachments=attachments,
        events=[event_view(e) for e in events],
    )


def event_view(e: SandboxEvent) -> EventView:
    return EventView(
        id=e.id,
        type=e.type,
        recipient=e.recipient,
        created=_iso(e.created),
        campaign_id=e.email_campaign_id,
        smtp_id=e.smtp_id,
        send_id=e.send_id,
        drop_reason=e.drop_reason,
    )


def send_view(state: SandboxState, r: SendRecord) -> SendView:
    status = state.send_status(r)
    requested = _iso(r.requested_at)
    timeline = [TimelineEntry(status="PENDING", at=requested)]
    if status.started_at is not None and not r.duplicate:
        timeline.append(TimelineEntry(status="PROCESSING", at=status.started_at))
    if status.completed_at is not None:
        timeline.append(TimelineEntry(status="COMPLETE", at=status.completed_at))
    message = r.request.message
    email = state.emails.get(r.request.email_id)
    return SendView(
        status_id=r.status_id,
        send_id=message.send_id,
        email_id=r.request.email_id,
        to=message.to,
        from_=message.from_,
        status=str(status.status),
        send_result=None if status.send_result is None else str(status.send_result),
        duplicate=r.duplicate,
        requested_at=requested,
        timeline=timeline,
        contact_properties=dict(r.request.contact_properties or {}),
        custom_properties=dict(r.request.custom_properties or {}),
        campaign_id=email.campaign_ids[0] if email is not None else None,
    )


def token_view(t: TokenRecord, messages: int) -> TokenView:
    return TokenView(
        id=t.id,
        campaign_name=t.campaign_name,
        email_campaign_id=t.email_campaign_id,
        create_contact=t.create_contact,
        created_at=t.created_at,
        created_by=t.created_by,
        messages=messages,
    )


def fault_view(index: int, f: SmtpFault | RestFault) -> FaultView:
    if isinstance(f, SmtpFault):
        return FaultView(
            kind="smtp",
            index=index,
            action=f.action,
            times=f.times,
            hits=f.hits,
            stage=f.stage,
            code=f.code if f.action == "reply" else None,
            text=f.text or None,
            recipient=f.recipient,
            seconds=f.seconds,
        )
    return FaultView(
        kind="rest",
        index=index,
        action=f.action,
        times=f.times,
        hits=f.hits,
        status=f.status,
        method=f.method,
        path=f.path,
        seconds=f.seconds,
    )


def chaos_view(c: Chaos) -> ChaosView:
    return ChaosView(
        seed=c.seed,
        smtp_rate=c.smtp_rate,
        rest_rate=c.rest_rate,
        smtp_stages=list(c.smtp_stages),  # type: ignore[arg-type]
        hits=c.hits,
    )
