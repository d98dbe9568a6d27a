"""The one place where REST calls are made, retried and turned into typed errors."""

from __future__ import annotations

import asyncio
import email.utils
import ssl as ssl_module
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from . import _env
from ._auth import AuthProvider
from ._config import RetryPolicy, Timeout
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._hooks import Hooks, RequestEvent, ResponseEvent, run_hooks
from ._logging import get_logger
from ._pacing import Pacer
from ._version import __version__
from .models.errors import error_body_decoder

__all__ = ["HTTPClient", "Replay", "Response"]

logger = get_logger("hubspot_tx.http")
TOKEN_PATH = "/oauth/v1/token"

USER_AGENT = (
    f"hubspot-tx/{__version__} python/{sys.version_info.major}.{sys.version_info.minor} "
    f"aiohttp/{aiohttp.__version__}"
)

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


class Replay(Enum):
    """Whether a request may be sent again after a failure."""

    #: Repeating it cannot do harm (GET, DELETE, a single-send carrying a ``sendId``):
    #: retried on 429, 5xx, timeouts and connection errors.
    SAFE = "safe"
    #: It may create something twice (token create, password reset): retried only on a 429
    #: or when the connection could not be opened, i.e. the request provably never left.
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class Response:
    """A finished HTTP exchange (only 2xx ones, and those ``ok_on_retry`` lets through)."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes
    attempts: int


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (delta or HTTP date), else HubSpot's interval header."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval:
        try:
            return max(0.0, float(interval) / 1000)
        except ValueError:
            return None
    return None


def _status_error(
    status: int, headers: Mapping[str, str], content: bytes, method: str, path: str
) -> APIError:
    """Translate an error response into its typed exception (never carrying headers)."""
    cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else APIError)
    try:
        body = error_body_decoder.decode(content) if content else None
    except Exception:  # a proxy's HTML page, a truncated body: keep the status, drop the body
        body = None
    common: dict[str, Any] = {"status": status, "method": method, "path": path}
    if body is None:
        message = f"HTTP {status} with a body that is not HubSpot's error JSON"
    else:
        message = body.message or f"HTTP {status}"
        scopes = sorted(
            {s for e in body.errors for s in (e.context or {}).get("requiredGranularScopes", ())}
        )
        if scopes:  # a 403 MISSING_SCOPES: say which, so the fix is obvious
            message += f" Required scopes (any one): {', '.join(scopes)}."
        common.update(
            category=body.category or body.error_type,
            sub_category=body.sub_category,
            correlation_id=body.correlation_id,
            errors=body.errors,
            context=body.context,
        )
    if cls is RateLimitError:
        return RateLimitError(
            message,
            retry_after=_retry_after(headers),
            policy_name=body.policy_name if body else None,
            **common,
        )
    return cls(message, **common)


class HTTPClient:
    """Owns the aiohttp session; paces, sends and retries requests; raises typed errors.

    The session is created lazily inside the running event loop, so a client can be built at
    import time or in a synchronous factory and used later.
    """

    def __init__(
        self,
        *,
        base_url: str,
        auth: AuthProvider,
        timeout: Timeout,
        retry: RetryPolicy,
        ssl: ssl_module.SSLContext | bool,
        trust_env: bool,
        max_connections: int,
        pacer: Pacer | None = None,
        hooks: Hooks | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        tls_advice: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tls_advice = tls_advice
        self.auth = auth
        self.timeout = timeout
        self.retry = retry
        self.pacer = pacer
        self.hooks = hooks or Hooks()
        self._ssl = ssl
        self._trust_env = trust_env
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this HubSpot client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                ssl=True if self._ssl is True else self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout.total, sock_connect=self.timeout.connect
                ),
                trust_env=self._trust_env,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                raise_for_status=False,
                trace_configs=self._trace_configs or None,
                # HubSpot's API authenticates by header and sets no cookie it needs back: no
                # cookie jar to filter and update on every request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def post_token_form(
        self, fields: dict[str, str], path: str = TOKEN_PATH
    ) -> tuple[int, bytes]:
        """POST a form to HubSpot's OAuth token endpoint ``path`` (no bearer, not paced).

        Retried like a safe request on connection errors and 5xx: a refresh grant can be
        repeated.
        """
        session = self._get_session()
        policy = self.retry
        for attempt in range(1, policy.max_retries + 2):
            try:
                async with session.post(
                    self.base_url + path, data=fields, allow_redirects=False
                ) as resp:
                    content = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt > policy.max_retries:
                    raise APIConnectionError(
                        f"token endpoint unreachable: {type(exc).__name__}",
                        method="POST",
                        path=path,
                    ) from None
            else:
                if resp.status < 500 or attempt > policy.max_retries:
                    return resp.status, content
            await asyncio.sleep(policy.backoff(attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path: str,
        *,
        replay: Replay,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json: bytes | None = None,
        ok_on_retry: frozenset[int] = frozenset(),
    ) -> Response:
        """Send one logical request, retrying as ``replay`` and the retry policy allow.

        ``ok_on_retry`` lists statuses accepted as success on a retry only: a DELETE whose
        first attempt may have succeeded finds nothing on the second. A 401 is retried once
        when the auth provider refreshed its credential (OAuth).
        """
        session = self._get_session()
        url = self.base_url + path
        policy = self.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.max_elapsed
        content_type = {"Content-Type": "application/json"} if json is not None else {}
        attempt = 0
        reauthorized = False
        while True:
            attempt += 1
            wait: float | None = None
            authorization = await self.auth.authorization()
            if self.hooks.on_request:
                await run_hooks(self.hooks.on_request, RequestEvent(method, path, attempt))
            paced, probe = await self._pace()
            # No await between pacing and the try: the pacer always hears how it ended.
            started = loop.time()
            headers: Mapping[str, str] | None = None
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    data=json,
                    headers={**content_type, "Authorization": authorization},
                    allow_redirects=False,
                ) as resp:
                    content = await resp.read()
                headers = resp.headers
            except TimeoutError:
                error: Exception = APITimeoutError("request timed out", method=method, path=path)
                retryable = replay is Replay.SAFE
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                # A TLS failure will not fix itself by retrying.
                error = APIConnectionError(
                    _tls_failure(exc, self._tls_advice), method=method, path=path
                )
                error.__cause__ = exc
                retryable = False
            except aiohttp.ClientConnectorError as exc:
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                error = APIConnectionError(
                    f"cannot connect to {exc.host}:{exc.port}: {reason}; check the API root "
                    f"(${_env.BASE_URL} / --base-url) and the network",
                    method=method,
                    path=path,
                )
                retryable = True  # the request never left this machine
            except aiohttp.ClientError as exc:
                error = APIConnectionError(
                    f"connection failed: {type(exc).__name__}", method=method, path=path
                )
                retryable = replay is Replay.SAFE
            finally:
                if self.pacer is not None:
                    # Also on failure and cancellation: an unanswered probe must not stall
                    # every other caller.
                    self.pacer.observe(
                        headers, status=resp.status if headers is not None else 0, probe=probe
                    )
            duration = loop.time() - started
            on_response = self.hooks.on_response
            if headers is None:
                if on_response:
                    event = ResponseEvent(
                        method,
                        path,
                        attempt,
                        None,
                        duration,
                        error=type(error).__name__,
                        paced=paced,
                    )
                    await run_hooks(on_response, event)
            else:
                status = resp.status
                if on_response:  # no event to build when nobody listens
                    event = ResponseEvent(
                        method,
                        path,
                        attempt,
                        status,
                        duration,
                        correlation_id=headers.get("X-HubSpot-Correlation-Id"),
                        rate_limit_remaining=_remaining(headers),
                        paced=paced,
                    )
                    await run_hooks(on_response, event)
                logger.debug(
                    "%s %s -> %d in %.1f ms (attempt %d)",
                    method,
                    path,
                    status,
                    duration * 1000,
                    attempt,
                )
                # Only a 2xx is an answer: a 3xx (HubSpot sends none; a proxy or a wrong
                # base_url might) is an APIError, never a body to decode.
                if 200 <= status < 300 or (attempt > 1 and status in ok_on_retry):
                    return Response(status, resp.headers, content, attempt)
                error = _status_error(status, headers, content, method, path)
                if status == 401 and not reauthorized:
                    reauthorized = True
                    if await self.auth.unauthorized(authorization):
                        attempt -= 1  # a refreshed credential is not a retry of the request
                        continue
                if isinstance(error, RateLimitError):
                    retryable = not error.is_daily
                    wait = error.retry_after
                    if wait is not None and wait > policy.max_retry_after:
                        retryable = False
                    if retryable and wait is not None and self.pacer is not None:
                        self.pacer.pause(wait)  # every caller of this client waits, not just us
                        wait = 0.0
                else:
                    retryable = status >= 500 and replay is Replay.SAFE
            if not retryable or attempt > policy.max_retries:
                raise error
            delay = policy.backoff(attempt - 1) if wait is None else wait
            if loop.time() + delay > deadline:
                raise error
            logger.info(
                "%s %s failed (%s); retry %d/%d in %.2f s",
                method,
                path,
                type(error).__name__,
                attempt,
                policy.max_retries,
                delay,
            )
            await asyncio.sleep(delay)

    async def _pace(self) -> tuple[float, bool]:
        """Wait for the rate limiter: (seconds waited, whether this attempt is its probe)."""
        if self.pacer is None:
            return 0.0, False
        started = asyncio.get_running_loop().time()
        probe = await self.pacer.acquire()
        return asyncio.get_running_loop().time() - started, probe


def _remaining(headers: Mapping[str, str]) -> int | None:
    value = headers.get("X-HubSpot-RateLimit-Remaining")
    return int(value) if value is not None and value.isdigit() else None


def _tls_failure(
    exc: aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError, advice: str
) -> str:
    """What failed (host, port and OpenSSL's reason) and what to do about it."""
    certificate = getattr(exc, "certificate_error", None)
    where = f"{exc.host}:{exc.port}"
    if certificate is not None:
        detail = getattr(certificate, "verify_message", None) or certificate
        reason = f"certificate verify failed: {detail}"
    else:
        # Not the certificate (e.g. WRONG_VERSION_NUMBER: https:// at a plain-HTTP port): the
        # CA advice would send the user the wrong way.
        reason = getattr(exc.os_error, "reason", None) or str(exc.os_error)
        advice = f"is {where} an HTTPS port? check ${_env.BASE_URL} / --base-url"
    return f"TLS with {where} failed: {reason}" + (f"; {advice}" if advice else "")
