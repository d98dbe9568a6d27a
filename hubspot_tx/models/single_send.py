"""Single-send requests (transactional and marketing, every version) and the send status they
return."""

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
    "encode_request",
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
    """Why a send went out or not: the 51 values of HubSpot's ``EmailSendStatusView`` (v3, v4,
    2026-03; 2026-09 lists 49 of them). HubSpot adds values; unknown ones decode and are kept."""

    ADDRESS_LIST_BOMBED = "ADDRESS_LIST_BOMBED"
    ADDRESS_ONLY_ACCEPTED_ON_PROD = "ADDRESS_ONLY_ACCEPTED_ON_PROD"
    ADDRESS_OPTED_OUT = "ADDRESS_OPTED_OUT"
    ATTACHMENT_DOWNLOAD_QUEUE_FULL = "ATTACHMENT_DOWNLOAD_QUEUE_FULL"
    BLOCKED_ADDRESS = "BLOCKED_ADDRESS"
    BLOCKED_DOMAIN = "BLOCKED_DOMAIN"
    BRAND_RECIPIENT_FATIGUE_SUPPRESSED = "BRAND_RECIPIENT_FATIGUE_SUPPRESSED"
    CAMPAIGN_CANCELLED = "CAMPAIGN_CANCELLED"
    CANCELLED_ABUSE = "CANCELLED_ABUSE"
    CONTACT_VIEW_PERMISSION = "CONTACT_VIEW_PERMISSION"
    CORRUPT_INPUT = "CORRUPT_INPUT"
    EMAIL_DISABLED = "EMAIL_DISABLED"
    EMAIL_UNCONFIRMED = "EMAIL_UNCONFIRMED"
    GDPR_DOI_ENABLED = "GDPR_DOI_ENABLED"
    GRAYMAIL_SUPPRESSED = "GRAYMAIL_SUPPRESSED"
    HUBL_LIMIT_EXCEEDED = "HUBL_LIMIT_EXCEEDED"
    IDEMPOTENT_FAIL = "IDEMPOTENT_FAIL"
    IDEMPOTENT_IGNORE = "IDEMPOTENT_IGNORE"
    INVALID_APP_ID_ATTRIBUTION = "INVALID_APP_ID_ATTRIBUTION"
    INVALID_FROM_ADDRESS = "INVALID_FROM_ADDRESS"
    INVALID_TO_ADDRESS = "INVALID_TO_ADDRESS"
    LOW_CONTACT_QUALITY_SCORE = "LOW_CONTACT_QUALITY_SCORE"
    MARKETING_ACTIVATION_DISALLOWED = "MARKETING_ACTIVATION_DISALLOWED"
    MISSING_CONTENT = "MISSING_CONTENT"
    MISSING_REQUIRED_PARAMETER = "MISSING_REQUIRED_PARAMETER"
    MISSING_TEMPLATE_PROPERTIES = "MISSING_TEMPLATE_PROPERTIES"
    MTA_IGNORE = "MTA_IGNORE"
    NON_MARKETABLE_CONTACT = "NON_MARKETABLE_CONTACT"
    PORTAL_AUTHENTICATION_FAILURE = "PORTAL_AUTHENTICATION_FAILURE"
    PORTAL_EXPIRED = "PORTAL_EXPIRED"
    PORTAL_MISSING_MARKETING_SCOPE = "PORTAL_MISSING_MARKETING_SCOPE"
    PORTAL_NOT_AUTHORIZED_FOR_APPLICATION = "PORTAL_NOT_AUTHORIZED_FOR_APPLICATION"
    PORTAL_OVER_LIMIT = "PORTAL_OVER_LIMIT"
    PORTAL_SUSPENDED = "PORTAL_SUSPENDED"
    PREVIOUSLY_BOUNCED = "PREVIOUSLY_BOUNCED"
    PREVIOUSLY_UNSUBSCRIBED_BRAND = "PREVIOUSLY_UNSUBSCRIBED_BRAND"
    PREVIOUSLY_UNSUBSCRIBED_BUSINESS_UNIT = "PREVIOUSLY_UNSUBSCRIBED_BUSINESS_UNIT"
    PREVIOUSLY_UNSUBSCRIBED_MESSAGE = "PREVIOUSLY_UNSUBSCRIBED_MESSAGE"
    PREVIOUSLY_UNSUBSCRIBED_PORTAL = "PREVIOUSLY_UNSUBSCRIBED_PORTAL"
    PREVIOUS_SPAM = "PREVIOUS_SPAM"
    QUARANTINED_ADDRESS = "QUARANTINED_ADDRESS"
    QUEUED = "QUEUED"
    RECIPIENT_FATIGUE_SUPPRESSED = "RECIPIENT_FATIGUE_SUPPRESSED"
    SENT = "SENT"
    TEMPLATE_RENDER_EXCEPTION = "TEMPLATE_RENDER_EXCEPTION"
    THROTTLED = "THROTTLED"
    TOO_MANY_RECIPIENTS = "TOO_MANY_RECIPIENTS"
    UBB_GOVERNANCE_MISSING = "UBB_GOVERNANCE_MISSING"
    UNCONFIGURED_SENDING_DOMAIN = "UNCONFIGURED_SENDING_DOMAIN"
    UNDELIVERABLE = "UNDELIVERABLE"
    VALIDATION_FAILED = "VALIDATION_FAILED"

    @property
    def is_sent(self) -> bool:
        """True when the email went (or will go) out: ``SENT`` or ``QUEUED``."""
        return self in (SendResult.SENT, SendResult.QUEUED)


class EventId(Model, frozen=True):
    """The id of the email event a completed send produced."""

    id: str | None = None
    created: datetime | None = None


class SendStatus(Model, frozen=True):
    """A send's status (``EmailSendStatusView``), as returned by send and by status polling.

    ``status`` and ``status_id`` are the only fields HubSpot's schema requires."""

    status_id: str
    status: SendState = SendState.PENDING
    send_result: SendResult | None = None
    requested_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    event_id: EventId | None = None
    message: str | None = None
    """HubSpot's explanation of the result (why a send failed), when it gives one."""

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
    """Body of a single-send (``PublicSingleSendRequestEgg``).

    HubSpot's schema types ``contactProperties`` values as strings and ``customProperties``
    values as any JSON value. The dated versions (2026-03, 2026-09) require
    ``contactProperties``, ``customProperties`` and ``message.cc/bcc/replyTo``:
    :func:`encode_request` sends them empty when unset.
    """

    email_id: int
    message: SingleSendMessage
    contact_properties: dict[str, str] | None = None
    custom_properties: dict[str, Any] | None = None


_request_encoder = msgspec.json.Encoder()


def encode_request(request: SingleSendRequest, *, dated: bool) -> bytes:
    """The JSON body of ``request``; ``dated``: with the fields the dated schemas require."""
    if not dated:
        return _request_encoder.encode(request)
    body = msgspec.to_builtins(request)
    message = body["message"]
    for name in ("cc", "bcc", "replyTo"):
        message.setdefault(name, [])
    body.setdefault("contactProperties", {})
    body.setdefault("customProperties", {})
    return _request_encoder.encode(body)


send_status_decoder = ResponseDecoder(SendStatus)
