"""Typed models of HubSpot's transactional-email API (msgspec Structs)."""

from ._base import Model, OpenEnum, encode
from .errors import ErrorBody, ErrorDetail
from .single_send import (
    EventId,
    SendResult,
    SendState,
    SendStatus,
    SingleSendMessage,
    SingleSendRequest,
)
from .smtp_tokens import (
    NextPage,
    Paging,
    SmtpToken,
    SmtpTokenCreateRequest,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "EventId",
    "Model",
    "NextPage",
    "OpenEnum",
    "Paging",
    "SendResult",
    "SendState",
    "SendStatus",
    "SingleSendMessage",
    "SingleSendRequest",
    "SmtpToken",
    "SmtpTokenCreateRequest",
    "SmtpTokenPage",
    "SmtpTokenWithPassword",
    "encode",
]
