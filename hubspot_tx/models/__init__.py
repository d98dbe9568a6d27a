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
from .tracking import (
    Browser,
    CampaignData,
    EmailEvent,
    EmailEventPage,
    EmailEventType,
    EmailStatistics,
    Location,
    SentBy,
    StatisticsData,
    StatisticsHistogram,
    StatisticsInterval,
    TimeInterval,
)

__all__ = [
    "Browser",
    "CampaignData",
    "EmailEvent",
    "EmailEventPage",
    "EmailEventType",
    "EmailStatistics",
    "ErrorBody",
    "ErrorDetail",
    "EventId",
    "Location",
    "Model",
    "NextPage",
    "OpenEnum",
    "Paging",
    "SendResult",
    "SendState",
    "SendStatus",
    "SentBy",
    "SingleSendMessage",
    "SingleSendRequest",
    "SmtpToken",
    "SmtpTokenCreateRequest",
    "SmtpTokenPage",
    "SmtpTokenWithPassword",
    "StatisticsData",
    "StatisticsHistogram",
    "StatisticsInterval",
    "TimeInterval",
    "encode",
]
