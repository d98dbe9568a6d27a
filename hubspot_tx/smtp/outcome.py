"""What became of each message: :class:`Outcome`, and the running :class:`RelaySummary`."""

from __future__ import annotations

import enum
import time
from typing import Self

import msgspec

from .._exceptions import (
    DeliveryError,
    DeliveryUnknownError,
    InvalidMessageError,
    MessageRejectedError,
    RecipientsRefusedError,
    TemporaryFailureError,
)

__all__ = [
    "FailureCategory",
    "InvalidReason",
    "Outcome",
    "OutcomeStatus",
    "RecipientRefusal",
    "RelaySummary",
]


class OutcomeStatus(enum.StrEnum):
    """Whether the message was handed over to the server."""

    SENT = "sent"
    FAILED = "failed"


class FailureCategory(enum.StrEnum):
    """Why a message failed."""

    AUTH = "auth"  #: the credentials were refused; nothing was sent
    TLS = "tls"  #: TLS could not be set up (untrusted or wrong certificate, no STARTTLS)
    CONNECTION = "connection"  #: no session could be opened within the retries
    RECIPIENTS_REFUSED = "recipients_refused"  #: every recipient was refused (see ``refused``)
    REJECTED = "rejected"  #: the server refused the message (5xx)
    TEMPORARY_EXHAUSTED = "temporary_exhausted"  #: 4xx until the retries ran out
    DELIVERY_UNKNOWN = "delivery_unknown"  #: connection lost after the final "."
    INVALID_MESSAGE = "invalid_message"  #: not sendable as given; nothing was sent
    CANCELLED = "cancelled"  #: the caller was cancelled before the final "." was written


class InvalidReason(enum.StrEnum):
    """Why a message is ``invalid_message`` (nothing of it was sent). These are all of them."""

    NOT_A_MESSAGE = "not_a_message"  #: not bytes, EmailMessage or Envelope; or empty
    UNREADABLE = "unreadable"  #: the EmailMessage could not be flattened to bytes
    NO_SENDER = "no_sender"  #: no From (or Sender) address
    NO_RECIPIENTS = "no_recipients"  #: no To, Cc or Bcc address (or an empty envelope)
    BAD_ADDRESS = "bad_address"  #: control characters, spaces, angle brackets, or no "@"
    ADDRESS_NOT_UTF8 = "address_not_utf8"  #: an address holds bytes that are not UTF-8
    NUL_BYTE = "nul_byte"  #: a NUL byte in the message
    LINE_TOO_LONG = "line_too_long"  #: a line over 998 bytes (RFC 5322 2.1.1)
    NEEDS_SMTPUTF8 = "needs_smtputf8"  #: non-ASCII address or header; server lacks SMTPUTF8
    NEEDS_8BITMIME = "needs_8bitmime"  #: 8-bit bytes; the server lacks 8BITMIME
    TOO_BIG = "too_big"  #: over the size limit the server announced (SIZE)


_ERRORS: dict[FailureCategory, type[DeliveryError]] = {
    FailureCategory.RECIPIENTS_REFUSED: RecipientsRefusedError,
    FailureCategory.REJECTED: MessageRejectedError,
    FailureCategory.TEMPORARY_EXHAUSTED: TemporaryFailureError,
    FailureCategory.DELIVERY_UNKNOWN: DeliveryUnknownError,
    FailureCategory.INVALID_MESSAGE: InvalidMessageError,
}


class RecipientRefusal(msgspec.Struct, frozen=True, array_like=True):
    """A recipient the server refused, with its reply."""

    recipient: str
    code: int
    message: str


class Outcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The one result of one message.

    Attributes:
        key: the caller's key for the message, else its Message-ID (``None`` if neither).
        status: ``sent`` (the server accepted it for at least one recipient) or ``failed``.
        category: why it failed (``None`` when sent).
        code: the SMTP reply code that decided it (``None`` without a reply).
        reply: the server's reply text (or why there was none).
        accepted: the recipients the server accepted the message for.
        refused: the recipients it refused for good (5xx), with their codes.
        unsent: recipients who certainly did not get it, though not refused for good: still
            refused for now (4xx) when the retries ran out, or never tried because the message
            was stopped (a fatal error, a cancellation); with the last reply (code 0: none).
        in_doubt: recipients who may or may not have it: the connection was cut after the
            final "." (category ``delivery_unknown``, or ``sent`` if others were accepted).
        attempts: SMTP transactions (or connection attempts) it took.
        index: its position in the input of ``send_many``.
        message_id: the Message-ID header, when present.
        reason: why it is ``invalid_message`` (``None`` for every other outcome).
    """

    key: str | None
    status: OutcomeStatus
    category: FailureCategory | None = None
    code: int | None = None
    reply: str = ""
    accepted: tuple[str, ...] = ()
    refused: tuple[RecipientRefusal, ...] = ()
    unsent: tuple[RecipientRefusal, ...] = ()
    in_doubt: tuple[str, ...] = ()
    attempts: int = 0
    index: int | None = None
    message_id: str | None = None
    reason: InvalidReason | None = None

    @property
    def ok(self) -> bool:
        """True when sent."""
        return self.status is OutcomeStatus.SENT

    def raise_for_status(self) -> Self:
        """Return the outcome if sent; raise the matching :class:`DeliveryError` otherwise."""
        if self.ok:
            return self
        cls = _ERRORS.get(self.category, DeliveryError) if self.category else DeliveryError
        what = self.key or self.message_id or "message"
        code = f" {self.code}" if self.code is not None else ""
        category = self.category.value if self.category else "failed"
        raise cls(f"{what}: {category}{code} {self.reply}".rstrip(), outcome=self)


class RelaySummary(msgspec.Struct, kw_only=True):
    """Counts of a relay so far (updated as outcomes are yielded).

    Attributes:
        consumed: messages taken from the input.
        sent: outcomes ``sent``.
        failed: outcomes ``failed``, by category.
        retried: outcomes that needed more than one attempt.
        partial: ``sent`` outcomes with some recipients refused, unsent or in doubt.
        started: ``time.monotonic()`` at the start.
        finished: ``time.monotonic()`` at the end (``None`` while running).
    """

    consumed: int = 0
    sent: int = 0
    failed: dict[str, int] = msgspec.field(default_factory=dict)
    retried: int = 0
    partial: int = 0
    started: float = msgspec.field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> int:
        """Outcomes so far."""
        return self.sent + sum(self.failed.values())

    @property
    def elapsed(self) -> float:
        """Seconds since the start (until the end, once finished)."""
        return (self.finished or time.monotonic()) - self.started

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        if outcome.ok:
            self.sent += 1
            if outcome.refused or outcome.unsent or outcome.in_doubt:
                self.partial += 1
        else:
            category = outcome.category.value if outcome.category else "unknown"
            self.failed[category] = self.failed.get(category, 0) + 1
        if outcome.attempts > 1:
            self.retried += 1
