"""The sandbox's marketing emails: what a single-send sends, and the campaign ids its events are
keyed by.

An email has an id (a single-send's ``emailId``) and, from its creation, an email campaign id
(``primaryEmailCampaignId``, also in ``allEmailCampaignIds``) from another number range, so
code that confuses the two fails here as it fails against HubSpot. A single-send of an email
that does not exist or is not published ends ``MISSING_CONTENT``; one whose subject or body
names a ``{{ custom.X }}`` / ``{{ contact.X }}`` property the request does not fill ends
``MISSING_TEMPLATE_PROPERTIES``; otherwise the placeholders are filled in (as text: HubL does
not escape them) and the rendered message lands in the outbox.

The sandbox's reading of HubSpot's create request: ``subcategory`` picks the type
(``single_send_api`` gives a transactional ``SINGLE_SEND_API`` email, ``marketing_single_send_api``
a ``MARKETING_SINGLE_SEND_API`` one, ``automated`` an ``AUTOMATED_EMAIL``, anything else a
``BATCH_EMAIL``); automated kinds are drafted ``AUTOMATED_DRAFT`` and published ``AUTOMATED``,
the others ``DRAFT`` and ``PUBLISHED``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from ..models.marketing_emails import (
    EmailContent,
    EmailCreateRequest,
    EmailFrom,
    EmailState,
    EmailSubscription,
    EmailType,
    MarketingEmail,
)
from ..models.tracking import StatisticsData
from ._rules import is_address

__all__ = [
    "EmailBook",
    "EmailRecord",
    "RenderedEmail",
    "missing_properties",
    "render",
]

FIRST_SEED_CAMPAIGN_ID = 24_931_501
FIRST_CREATED_EMAIL_ID = 190_000_000_001
SANDBOX_DOMAIN = "sandbox.hubspot-tx.invalid"

_PLACEHOLDER = re.compile(r"\{\{\s*(custom|contact)\.([A-Za-z0-9_\-]+)\s*\}\}")
_TYPES = {
    "single_send_api": EmailType.SINGLE_SEND_API,
    "marketing_single_send_api": EmailType.MARKETING_SINGLE_SEND_API,
    "automated": EmailType.AUTOMATED_EMAIL,
}
_PUBLISHED_STATES = frozenset(
    {"AUTOMATED", "AUTOMATED_SENDING", "PUBLISHED", "PUBLISHED_OR_SCHEDULED", "SCHEDULED"}
)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def missing_properties(
    texts: Iterable[str | None], custom: Mapping[str, Any], contact: Mapping[str, Any]
) -> list[str]:
    """The ``custom.X`` / ``contact.X`` placeholders of ``texts`` that the properties do not
    fill, in order of first appearance."""
    missing: list[str] = []
    for text in texts:
        for kind, name in _PLACEHOLDER.findall(text or ""):
            source = custom if kind == "custom" else contact
            key = f"{kind}.{name}"
            if source.get(name) is None and key not in missing:
                missing.append(key)
    return missing


def render(text: str, custom: Mapping[str, Any], contact: Mapping[str, Any]) -> str:
    """``text`` with its placeholders filled (check :func:`missing_properties` first)."""

    def fill(match: re.Match[str]) -> str:
        source = custom if match[1] == "custom" else contact
        value = source.get(match[2])
        return match[0] if value is None else _text(value)

    return _PLACEHOLDER.sub(fill, text)


def _html_of(content: EmailContent | None) -> str | None:
    """The HTML of the email's rich-text modules, in module order."""
    if content is None:
        return None
    parts = []
    for widget in content.widgets.values():
        body = widget.get("body") if isinstance(widget, dict) else None
        html = body.get("html") if isinstance(body, dict) else None
        if isinstance(html, str):
            parts.append(html)
    return "\n".join(parts) if parts else None


@dataclass(slots=True, frozen=True)
class RenderedEmail:
    """A single-send's message, ready for the outbox."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    message_id: str
    data: bytes


@dataclass(slots=True)
class EmailRecord:
    """One marketing email as the sandbox keeps it."""

    id: int
    name: str
    subject: str
    subcategory: str
    type: str
    state: str
    transactional: bool
    campaign_ids: list[str]
    created_at: float
    updated_at: float
    published_at: float | None = None
    from_: EmailFrom | None = None
    content: EmailContent | None = None
    subscription: EmailSubscription | None = None
    language: str | None = None
    campaign: str | None = None

    @property
    def published(self) -> bool:
        return self.state in _PUBLISHED_STATES

    @property
    def html(self) -> str | None:
        return _html_of(self.content)

    @property
    def plain_text(self) -> str | None:
        return self.content.plain_text_version if self.content else None

    def templates(self) -> tuple[str | None, ...]:
        """The texts a send renders: subject, HTML body, plain-text body."""
        return (self.subject, self.html, self.plain_text)

    def view(self, stats: StatisticsData | None = None) -> MarketingEmail:
        def at(t: float | None) -> datetime | None:
            return None if t is None else datetime.fromtimestamp(t, UTC)

        return MarketingEmail(
            id=str(self.id),
            name=self.name,
            subject=self.subject,
            type=EmailType(self.type),
            state=EmailState(self.state),
            subcategory=self.subcategory,
            is_transactional=self.transactional,
            is_published=self.published,
            is_ab=False,
            archived=False,
            primary_email_campaign_id=self.campaign_ids[0],
            all_email_campaign_ids=list(self.campaign_ids),
            campaign=self.campaign,
            from_=self.from_,
            content=self.content,
            subscription_details=self.subscription,
            language=self.language,
            created_at=at(self.created_at),
            updated_at=at(self.updated_at),
            published_at=at(self.published_at),
            stats=stats,
        )

    def render(
        self,
        *,
        to: str,
        from_: str | None,
        cc: Iterable[str],
        bcc: Iterable[str],
        reply_to: Iterable[str],
        custom: Mapping[str, Any],
        contact: Mapping[str, Any],
        when: float,
    ) -> RenderedEmail:
        """The message a single-send of this email to ``to`` sends (placeholders filled)."""
        sender = from_ or (self.from_.reply_to if self.from_ else None) or ""
        if not is_address(sender):
            sender = f"noreply@{SANDBOX_DOMAIN}"
        name = self.from_.from_name if self.from_ and not from_ else None
        cc = [a for a in cc if is_address(a)]
        bcc = [a for a in bcc if is_address(a)]
        reply_to = [a for a in reply_to if is_address(a)]
        # Built by hand: the email package's EmailMessage costs ~10 ms a message here.
        subject = " ".join(render(self.subject, custom, contact).splitlines())  # no line breaks
        message_id = make_msgid(domain=SANDBOX_DOMAIN)
        head = [
            f"From: {formataddr((name or '', sender), charset='utf-8')}",
            f"To: {to}",
            *([f"Cc: {', '.join(cc)}"] if cc else []),
            *([f"Reply-To: {', '.join(reply_to)}"] if reply_to else []),
            f"Subject: {_header(subject)}",
            f"Date: {formatdate(when, usegmt=True)}",
            f"Message-ID: {message_id}",
            f"X-HubSpot-Email-Id: {self.id}",
            "MIME-Version: 1.0",
        ]
        html, plain = self.html, self.plain_text
        text = _part("plain", render(plain, custom, contact) if plain is not None else "")
        if html is None:
            lines = [*head, *text]
        else:
            boundary = f"=_{secrets.token_hex(12)}"
            lines = [
                *head,
                f'Content-Type: multipart/alternative; boundary="{boundary}"',
                "",
                f"--{boundary}",
                *text,
                f"--{boundary}",
                *_part("html", render(html, custom, contact)),
                f"--{boundary}--",
            ]
        return RenderedEmail(
            mail_from=sender,
            rcpt_to=(to, *cc, *bcc),
            message_id=message_id,
            data=("\r\n".join(lines) + "\r\n").encode(),
        )


def _header(value: str) -> str:
    """A header value: as is when short ASCII, else RFC 2047 encoded words, folded."""
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _part(subtype: str, text: str) -> list[str]:
    """A UTF-8 text part, base64 (any byte, any line length)."""
    body = base64.encodebytes(text.encode()).decode().rstrip("\n").split("\n")
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        *body,
    ]


class EmailBook:
    """Every marketing email of the sandbox, by id.

    ``seed`` ids are published transactional single-send emails that exist from the start
    (and again after :meth:`reset`), with campaign ids that do not change between runs.
    """

    def __init__(self, seed: Iterable[int], clock_start: float) -> None:
        self._seed = sorted(set(seed))
        self._clock_start = clock_start
        self.emails: dict[int, EmailRecord] = {}
        self.reset()

    def reset(self) -> None:
        """Forget created emails; the seeded ones come back as they started."""
        self.emails.clear()
        self._campaign_ids = itertools.count(FIRST_SEED_CAMPAIGN_ID)
        self._email_ids = itertools.count(max([FIRST_CREATED_EMAIL_ID, *self._seed]) + 1)
        for email_id in self._seed:
            self.emails[email_id] = EmailRecord(
                id=email_id,
                name=f"Sandbox transactional email {email_id}",
                subject=f"Sandbox email {email_id}",
                subcategory="single_send_api",
                type=EmailType.SINGLE_SEND_API.value,
                state=EmailState.AUTOMATED.value,
                transactional=True,
                campaign_ids=[str(next(self._campaign_ids))],
                created_at=self._clock_start,
                updated_at=self._clock_start,
                published_at=self._clock_start,
                content=EmailContent(
                    plain_text_version=f"This is sandbox email {email_id}.",
                    widgets={
                        "primary_rich_text_module": {
                            "body": {"html": f"<p>This is sandbox email {email_id}.</p>"}
                        }
                    },
                ),
            )

    def __iter__(self) -> Iterator[EmailRecord]:
        return iter(self.emails.values())

    def get(self, email_id: int | str) -> EmailRecord | None:
        try:
            return self.emails.get(int(email_id))
        except ValueError:
            return None

    def create(self, request: EmailCreateRequest, now: float) -> EmailRecord:
        """Store a new draft (or, with a published ``state``, a published email)."""
        subcategory = request.subcategory or "batch"
        kind = _TYPES.get(subcategory, EmailType.BATCH_EMAIL)
        automated = kind is not EmailType.BATCH_EMAIL
        state = request.state or ("AUTOMATED_DRAFT" if automated else "DRAFT")
        record = EmailRecord(
            id=next(self._email_ids),
            name=request.name,
            subject=request.subject or "",
            subcategory=subcategory,
            type=kind.value,
            state=state,
            transactional=subcategory == "single_send_api",
            campaign_ids=[str(next(self._campaign_ids))],
            created_at=now,
            updated_at=now,
            from_=request.from_,
            content=request.content,
            subscription=request.subscription_details,
            language=request.language,
            campaign=request.campaign,
        )
        if record.published:
            record.published_at = now
        self.emails[record.id] = record
        return record

    def publish(self, record: EmailRecord, now: float) -> None:
        """Publish ``record`` (again: a no-op)."""
        if record.published:
            return
        automated = record.type != EmailType.BATCH_EMAIL.value
        record.state = "AUTOMATED" if automated else "PUBLISHED"
        record.published_at = record.updated_at = now

    def restore(self, records: Iterable[EmailRecord]) -> None:
        """Put back stored emails (a restart); new ids and campaign ids continue after theirs."""
        for record in records:
            self.emails[record.id] = record
        ids = [FIRST_CREATED_EMAIL_ID, *self.emails]
        campaigns = [int(c) for e in self.emails.values() for c in e.campaign_ids if c.isdigit()]
        self._email_ids = itertools.count(max(ids) + 1)
        self._campaign_ids = itertools.count(max([FIRST_SEED_CAMPAIGN_ID, *campaigns]) + 1)

    def owner(self, campaign_id: str) -> EmailRecord | None:
        """The email whose campaign ids include ``campaign_id``."""
        return next((e for e in self.emails.values() if campaign_id in e.campaign_ids), None)
