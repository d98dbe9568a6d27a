"""The exceptions hubspot-tx raises. Catch :class:`HubSpotError` to catch them all.

```
HubSpotError
├── APIError                      HubSpot answered with an error status
│   ├── BadRequestError           400 / 422 (category VALIDATION_ERROR and friends)
│   ├── AuthenticationError       401
│   │   └── OAuthRefreshError     HubSpot refused the OAuth refresh token (revoked, unknown)
│   ├── PermissionDeniedError     403 (missing scope, add-on not purchased)
│   ├── NotFoundError             404
│   ├── ConflictError             409
│   ├── RateLimitError            429, with ``retry_after`` and ``policy_name``
│   └── ServerError               5xx
├── APIConnectionError            (also ConnectionError) the request did not complete
│   └── APITimeoutError           (also TimeoutError)
├── ConfigurationError            (also ValueError) an argument or variable that cannot work
├── ResponseDecodeError           a 2xx body that is not the documented shape
├── PaginationError               a list cursor that does not advance
├── SendStatusTimeout             (also TimeoutError) ``send_status.wait`` gave up
└── SmtpError                     the SMTP bridge
    ├── SmtpConnectError          (also ConnectionError) no session could be opened
    │   └── SmtpTLSError          TLS handshake or certificate verification failed (fatal)
    ├── SmtpAuthError             the server refused the credentials (fatal)
    ├── InsecureAuthError         AUTH would cross an unencrypted connection (fatal)
    ├── PoolClosedError           the pool is closed or closing
    └── DeliveryError             raised by ``Outcome.raise_for_status()``
        ├── RecipientsRefusedError every recipient refused (``refused`` has each code)
        ├── MessageRejectedError  the server refused the message (5xx)
        ├── TemporaryFailureError 4xx until the retries ran out
        ├── DeliveryUnknownError  the connection died after the final "."
        └── InvalidMessageError   (also ValueError) not a sendable message
```

A *fatal* SMTP error (``SmtpTLSError``, ``SmtpAuthError``, ``InsecureAuthError``) stops a bulk
relay: it takes no more input and, after every taken message got its outcome, raises the error
with ``consumed`` set to the number of messages it took.

No exception carries a header, a request body or a credential: only what HubSpot's error body says
(``category``, ``correlation_id``, ``message``, ...), the HTTP method and the URL path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models.errors import ErrorDetail
    from .models.single_send import SendStatus
    from .smtp.outcome import InvalidReason, Outcome

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "DeliveryError",
    "DeliveryUnknownError",
    "HubSpotError",
    "InsecureAuthError",
    "InvalidMessageError",
    "MessageRejectedError",
    "NotFoundError",
    "OAuthRefreshError",
    "PaginationError",
    "PermissionDeniedError",
    "PoolClosedError",
    "RateLimitError",
    "RecipientsRefusedError",
    "ResponseDecodeError",
    "SendStatusTimeout",
    "ServerError",
    "SmtpAuthError",
    "SmtpConnectError",
    "SmtpError",
    "SmtpTLSError",
    "TemporaryFailureError",
]


class HubSpotError(Exception):
    """Root of every error raised by hubspot-tx."""


class APIError(HubSpotError):
    """HubSpot answered with a non-success status.

    Attributes:
        status: the HTTP status code.
        message: HubSpot's human-readable message.
        category: HubSpot's error category, e.g. ``VALIDATION_ERROR``.
        sub_category: the finer category, when given.
        correlation_id: quote this to HubSpot support.
        errors: per-field details of a validation error.
        context: HubSpot's ``context`` map.
        method: the HTTP method of the request.
        path: the URL path of the request (never the query string).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        category: str | None = None,
        sub_category: str | None = None,
        correlation_id: str | None = None,
        errors: Sequence[ErrorDetail] = (),
        context: Mapping[str, Sequence[str]] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        self.status = status
        self.category = category
        self.sub_category = sub_category
        self.correlation_id = correlation_id
        self.errors = tuple(errors)
        self.context = dict(context or {})
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.status} {self.category or 'error'}"
        where = f" ({self.method} {self.path})" if self.path else ""
        cid = f" [correlation_id={self.correlation_id}]" if self.correlation_id else ""
        return f"{head}: {self.message}{where}{cid}"


class BadRequestError(APIError):
    """400 or 422: the request was invalid (``errors`` says which field)."""


class AuthenticationError(APIError):
    """401: the access token is missing, expired or wrong."""


class OAuthRefreshError(AuthenticationError):
    """HubSpot refused the OAuth refresh token (revoked, unknown, wrong client secret), or its
    token endpoint was unavailable (``status`` 429 or 5xx: not remembered, the next call tries
    again)."""


class PermissionDeniedError(APIError):
    """403: the token lacks a scope, or the account lacks the transactional add-on."""


class NotFoundError(APIError):
    """404: no such object."""


class ConflictError(APIError):
    """409: the request conflicts with the object's current state."""


class RateLimitError(APIError):
    """429: a HubSpot rate limit was hit.

    Attributes:
        retry_after: seconds to wait, from ``Retry-After`` or HubSpot's interval header.
        policy_name: ``TEN_SECONDLY_ROLLING``, ``SECONDLY``, ``DAILY``, ... when given.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        policy_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        self.policy_name = policy_name
        super().__init__(message, **kwargs)

    @property
    def is_daily(self) -> bool:
        """True for the daily limit, which resets at midnight in the account's time zone."""
        return self.policy_name == "DAILY"


class ServerError(APIError):
    """5xx: HubSpot failed; the request may or may not have been carried out."""


class APIConnectionError(HubSpotError, ConnectionError):
    """The request did not complete (connection refused, reset, TLS failure, ...)."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        self.method = method
        self.path = path
        super().__init__(f"{message} ({method} {path})" if path else message)


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request timed out."""


class ConfigurationError(HubSpotError, ValueError):
    """The arguments and ``HUBSPOT_*`` variables do not make a client that can work (or that is
    safe): the message says what to pass or set."""


class ResponseDecodeError(HubSpotError):
    """A success response whose body is not the documented shape."""


class PaginationError(HubSpotError):
    """A list endpoint returned a cursor that does not advance; iteration stopped."""


class SendStatusTimeout(HubSpotError, TimeoutError):
    """``send_status.wait`` ran out of time before the send reached a terminal state.

    Attributes:
        last: the last status seen (``None`` if none was read).
    """

    def __init__(self, message: str, *, last: SendStatus | None) -> None:
        self.last = last
        super().__init__(message)


class SmtpError(HubSpotError):
    """Root of the SMTP bridge's errors.

    Attributes:
        code: the SMTP reply code, when there was one.
        consumed: set when raised out of a bulk relay: how many messages it took from its input
            (each of them has an outcome).
    """

    fatal: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        self.consumed: int | None = None
        super().__init__(message)

    def __str__(self) -> str:
        text = super().__str__()
        if self.consumed is not None:
            text += f" (relay stopped after taking {self.consumed} message(s) from its input)"
        return text


class SmtpConnectError(SmtpError, ConnectionError):
    """No SMTP session could be opened (refused, reset, timeout, 421 greeting)."""


class SmtpTLSError(SmtpConnectError):
    """TLS failed: certificate not trusted or for another host, or no STARTTLS offered."""

    fatal = True


class SmtpAuthError(SmtpError):
    """The server refused the credentials (535): a wrong, reset or deleted token."""

    fatal = True


class InsecureAuthError(SmtpError):
    """The password would cross an unencrypted connection; pass ``allow_plaintext_auth=True``
    to allow it (only ever on a trusted network)."""

    fatal = True


class PoolClosedError(SmtpError):
    """The pool is closed, or closing and taking no new messages."""


class DeliveryError(SmtpError):
    """A message was not (certainly) delivered. ``outcome`` holds the details (``None`` when
    the message was refused before any outcome existed, e.g. while parsing it)."""

    def __init__(self, message: str, *, outcome: Outcome | None = None) -> None:
        self.outcome = outcome
        super().__init__(message, code=outcome.code if outcome is not None else None)


class RecipientsRefusedError(DeliveryError):
    """Every recipient was refused; ``outcome.refused`` lists each with its code."""


class MessageRejectedError(DeliveryError):
    """The server refused the message itself (5xx to MAIL, DATA or the end of data)."""


class TemporaryFailureError(DeliveryError):
    """The server kept answering 4xx until the retries ran out."""


class DeliveryUnknownError(DeliveryError):
    """The connection died after the final "." and before the reply: the message may or may not
    have been accepted. It is never retried automatically (that could send it twice)."""


class InvalidMessageError(DeliveryError, ValueError):
    """The message cannot be sent as given (no recipients, no sender, not RFC 5322).

    Attributes:
        reason: which rule it broke (an :class:`~hubspot_tx.smtp.InvalidReason`), when known.
        key, message_id: the message's key and Message-ID, when they could be read.
    """

    def __init__(
        self, message: str, *, outcome: Outcome | None = None, reason: InvalidReason | None = None
    ) -> None:
        self.reason = reason if reason is not None else (outcome.reason if outcome else None)
        self.key: str | None = outcome.key if outcome else None
        self.message_id: str | None = outcome.message_id if outcome else None
        super().__init__(message, outcome=outcome)
