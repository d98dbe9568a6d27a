"""hubspot-tx: asyncio SDK and SMTP bridge for HubSpot transactional email.

Names are imported on first use (PEP 562), so that ``import hubspot_tx`` and ``hubspot-tx --help``
do not load the HTTP and SMTP stacks until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._auth import AuthProvider, OAuth, OAuthTokens, StaticToken
    from ._client import HubSpot
    from ._config import RetryPolicy, Timeout
    from ._exceptions import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        ConflictError,
        DeliveryError,
        DeliveryUnknownError,
        HubSpotError,
        InsecureAuthError,
        InvalidMessageError,
        MessageRejectedError,
        NotFoundError,
        OAuthRefreshError,
        PaginationError,
        PermissionDeniedError,
        PoolClosedError,
        RateLimitError,
        RecipientsRefusedError,
        ResponseDecodeError,
        SendStatusTimeout,
        ServerError,
        SmtpAuthError,
        SmtpConnectError,
        SmtpError,
        SmtpTLSError,
        TemporaryFailureError,
    )
    from ._hooks import Hooks, RequestEvent, ResponseEvent
    from ._logging import RedactingFilter
    from ._pacing import RateLimit
    from ._pagination import AsyncPager
    from ._paths import ApiVersion
    from ._secret import Secret
    from .models import (
        CampaignData,
        EmailEvent,
        EmailEventType,
        EmailStatistics,
        EmailType,
        MarketingEmail,
        SendResult,
        SendState,
        SendStatus,
        SingleSendMessage,
        SingleSendRequest,
        SmtpToken,
        SmtpTokenPage,
        SmtpTokenWithPassword,
        StatisticsHistogram,
    )
    from .resources.single_send import BulkSend, BulkSendSummary, SendOutcome
    from .resources.tracking import RecipientOutcome
    from .smtp import (
        Envelope,
        FailureCategory,
        InvalidReason,
        Outcome,
        OutcomeStatus,
        RecipientRefusal,
        Relay,
        RelaySummary,
        SmtpCredentials,
        SmtpPool,
        SmtpRetry,
    )

# public name -> the module that defines it
_EXPORTS = {
    "APIConnectionError": "._exceptions",
    "APIError": "._exceptions",
    "APITimeoutError": "._exceptions",
    "ApiVersion": "._paths",
    "AsyncPager": "._pagination",
    "AuthProvider": "._auth",
    "AuthenticationError": "._exceptions",
    "BadRequestError": "._exceptions",
    "BulkSend": ".resources.single_send",
    "BulkSendSummary": ".resources.single_send",
    "CampaignData": ".models",
    "ConflictError": "._exceptions",
    "DeliveryError": "._exceptions",
    "DeliveryUnknownError": "._exceptions",
    "EmailEvent": ".models",
    "EmailEventType": ".models",
    "EmailStatistics": ".models",
    "EmailType": ".models",
    "Envelope": ".smtp",
    "FailureCategory": ".smtp",
    "Hooks": "._hooks",
    "HubSpot": "._client",
    "HubSpotError": "._exceptions",
    "InsecureAuthError": "._exceptions",
    "InvalidMessageError": "._exceptions",
    "InvalidReason": ".smtp",
    "MarketingEmail": ".models",
    "MessageRejectedError": "._exceptions",
    "NotFoundError": "._exceptions",
    "OAuth": "._auth",
    "OAuthRefreshError": "._exceptions",
    "OAuthTokens": "._auth",
    "Outcome": ".smtp",
    "OutcomeStatus": ".smtp",
    "PaginationError": "._exceptions",
    "PermissionDeniedError": "._exceptions",
    "PoolClosedError": "._exceptions",
    "RateLimit": "._pacing",
    "RateLimitError": "._exceptions",
    "RecipientOutcome": ".resources.tracking",
    "RecipientRefusal": ".smtp",
    "RecipientsRefusedError": "._exceptions",
    "RedactingFilter": "._logging",
    "Relay": ".smtp",
    "RelaySummary": ".smtp",
    "RequestEvent": "._hooks",
    "ResponseDecodeError": "._exceptions",
    "ResponseEvent": "._hooks",
    "RetryPolicy": "._config",
    "Secret": "._secret",
    "SendOutcome": ".resources.single_send",
    "SendResult": ".models",
    "SendState": ".models",
    "SendStatus": ".models",
    "SendStatusTimeout": "._exceptions",
    "ServerError": "._exceptions",
    "ConfigurationError": "._exceptions",
    "SingleSendMessage": ".models",
    "SingleSendRequest": ".models",
    "SmtpAuthError": "._exceptions",
    "SmtpConnectError": "._exceptions",
    "SmtpCredentials": ".smtp",
    "SmtpError": "._exceptions",
    "SmtpPool": ".smtp",
    "SmtpRetry": ".smtp",
    "SmtpTLSError": "._exceptions",
    "SmtpToken": ".models",
    "SmtpTokenPage": ".models",
    "SmtpTokenWithPassword": ".models",
    "StaticToken": "._auth",
    "StatisticsHistogram": ".models",
    "TemporaryFailureError": "._exceptions",
    "Timeout": "._config",
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ApiVersion",
    "AsyncPager",
    "AuthProvider",
    "AuthenticationError",
    "BadRequestError",
    "BulkSend",
    "BulkSendSummary",
    "CampaignData",
    "ConfigurationError",
    "ConflictError",
    "DeliveryError",
    "DeliveryUnknownError",
    "EmailEvent",
    "EmailEventType",
    "EmailStatistics",
    "EmailType",
    "Envelope",
    "FailureCategory",
    "Hooks",
    "HubSpot",
    "HubSpotError",
    "InsecureAuthError",
    "InvalidMessageError",
    "InvalidReason",
    "MarketingEmail",
    "MessageRejectedError",
    "NotFoundError",
    "OAuth",
    "OAuthRefreshError",
    "OAuthTokens",
    "Outcome",
    "OutcomeStatus",
    "PaginationError",
    "PermissionDeniedError",
    "PoolClosedError",
    "RateLimit",
    "RateLimitError",
    "RecipientOutcome",
    "RecipientRefusal",
    "RecipientsRefusedError",
    "RedactingFilter",
    "Relay",
    "RelaySummary",
    "RequestEvent",
    "ResponseDecodeError",
    "ResponseEvent",
    "RetryPolicy",
    "Secret",
    "SendOutcome",
    "SendResult",
    "SendState",
    "SendStatus",
    "SendStatusTimeout",
    "ServerError",
    "SingleSendMessage",
    "SingleSendRequest",
    "SmtpAuthError",
    "SmtpConnectError",
    "SmtpCredentials",
    "SmtpError",
    "SmtpPool",
    "SmtpRetry",
    "SmtpTLSError",
    "SmtpToken",
    "SmtpTokenPage",
    "SmtpTokenWithPassword",
    "StaticToken",
    "StatisticsHistogram",
    "TemporaryFailureError",
    "Timeout",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
