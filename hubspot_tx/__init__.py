"""hubspot-tx: asyncio SDK and SMTP bridge for HubSpot transactional email."""

from ._auth import AuthProvider, StaticToken
from ._client import HubSpot
from ._config import RetryPolicy, Timeout
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HubSpotError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    SendStatusTimeout,
    ServerError,
)
from ._pagination import AsyncPager
from ._secret import Secret
from ._version import __version__
from .models import (
    SendResult,
    SendState,
    SendStatus,
    SmtpToken,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncPager",
    "AuthProvider",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "HubSpot",
    "HubSpotError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "RetryPolicy",
    "Secret",
    "SendResult",
    "SendState",
    "SendStatus",
    "SendStatusTimeout",
    "ServerError",
    "SmtpToken",
    "SmtpTokenPage",
    "SmtpTokenWithPassword",
    "StaticToken",
    "Timeout",
    "__version__",
]
