"""Single-send (v3) requests and the send status they return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ._base import Model, OpenEnum, ResponseDecoder

__all__ = [
    "EventId",
    "SendResult",
    "SendState",
    "SendStatus",
    "SingleSendMessage",
    "SingleSendRequest",
]


class SendState(OpenEnum):
    """Where a send is in its life. HubSpot's guide spells two of them differently; both decode."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    CANCELED = "CANCELED"
    COMPLETE = "COMPLETE"

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {"CANCELLED": "CANCELED", "COMPLETED": "COMPLETE"}

    @property
    def is_terminal(self) -> bool:
        """True once the send will not change any more."""
        return self in (SendState.CANCELED, SendState.COMPLETE)


class SendResult(OpenEnum):
    """Why a send went out or not. HubSpot adds values; unknown ones decode and are kept."""

    SENT = "SENT"
    QUEUED = "QUEUED"
    IDEMPOTENT_IGNORE = "IDEMPOTENT_IGNORE"
    IDEMPOTENT_FAIL = "IDEMPOTENT_FAIL"
    THROTTLED = "THROTTLED"
    PORTAL_SUSPENDED = "PORTAL_SUSPENDED"
    INVALID_TO_ADDRESS = "INVALID_TO_ADDRESS"
    BLOCKED_DOMAIN = "BLOCKED_DOMAIN"
    PREVIOUSLY_BOUNCED = "PREVIOUSLY_BOUNCED"
    PREVIOUS_SPAM = "PREVIOUS_SPAM"
    EMAIL_DISABLED = "EMAIL_DISABLED"
    INVALID_FROM_ADDRESS = "INVALID_FROM_ADDRESS"
    MISSING_CONTENT = "MISSING_CONTENT"
    MISSING_TEMPLATE_PROPERTIES = "MISSING_TEMPLATE_PROPERTIES"
    CAMPAIGN_CANCELLED = "CAMPAIGN_CANCELLED"
    QUARANTINED_ADDRESS = "QUARANTINED_ADDRESS"
    ADDRESS_OPTED_OUT = "ADDRESS_OPTED_OUT"
    PREVIOUSLY_UNSUBSCRIBED_MESSAGE = "PREVIOUSLY_UNSUBSCRIBED_MESSAGE"
    PREVIOUSLY_UNSUBSCRIBED_PORTAL = "PREVIOUSLY_UNSUBSCRIBED_PORTAL"
    INVALID_EMAIL = "INVALID_EMAIL"
    TOO_MANY_RECIPIENTS = "TOO_MANY_RECIPIENTS"
    HUBL_LIMIT_EXCEEDED = "HUBL_LIMIT_EXCEEDED"
    LOW_CONTACT_QUALITY_SCORE = "LOW_CONTACT_QUALITY_SCORE"

    @property
    def is_sent(self) -> bool:
        """True when the email went (or will go) out: ``SENT`` or ``QUEUED``."""
        return self in (SendResult.SENT, SendResult.QUEUED)


class EventId(Model, frozen=True):
    """The id of the email event a completed send produced."""

    id: str | None = None
    created: datetime | None = None


class SendStatus(Model, frozen=True):
    """A send's status (``EmailSendStatusView``), as returned by send and by status polling."""

    status_id: str
    status: SendState = SendState.PENDING
    send_result: SendResult | None = None
    requested_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    event_id: EventId | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the status will not change any more."""
        return self.status.is_terminal


class SingleSendMessage(
    msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True
):
    """The ``message`` of a single-send: recipients and overrides."""

    to: str
    from_: str | None = msgspec.field(default=None, name="from")
    send_id: str | None = None
    reply_to: list[str] | None = None
    cc: list[str] | None = None
    bcc: list[str] | None = None


class SingleSendRequest(
    msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True
):
    """Body of ``POST /marketing/v3/transactional/single-email/send``."""

    email_id: int
    message: SingleSendMessage
    contact_properties: dict[str, Any] | None = None
    custom_properties: dict[str, Any] | None = None


send_status_decoder = ResponseDecoder(SendStatus)
