"""The SMTP bridge: relay complete MIME messages through smtp.hubapi.com."""

from ._connection import TlsMode
from .credentials import SmtpCredentials
from .envelope import Envelope, MessageInput, prepare, strip_bcc
from .outcome import (
    FailureCategory,
    InvalidReason,
    Outcome,
    OutcomeStatus,
    RecipientRefusal,
    RelaySummary,
)
from .pool import HOSTS, SmtpPool, SmtpRetry
from .relay import Relay

__all__ = [
    "HOSTS",
    "Envelope",
    "FailureCategory",
    "InvalidReason",
    "MessageInput",
    "Outcome",
    "OutcomeStatus",
    "RecipientRefusal",
    "Relay",
    "RelaySummary",
    "SmtpCredentials",
    "SmtpPool",
    "SmtpRetry",
    "TlsMode",
    "prepare",
    "strip_bcc",
]
