"""The :class:`HubSpot` client: one aiohttp session, the resources hanging off it."""

from __future__ import annotations

import ssl as ssl_module
import urllib.parse
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self

import aiohttp

from . import _env
from ._auth import AuthProvider, OAuth, StaticToken
from ._config import DEFAULT_BASE_URL, DEFAULT_RETRY, DEFAULT_TIMEOUT, RetryPolicy, Timeout
from ._exceptions import ConfigurationError
from ._hooks import Hooks
from ._http import HTTPClient
from ._pacing import Pacer, RateLimit
from ._paths import API_VERSIONS, DEFAULT_API_VERSION, ApiVersion
from ._secret import Secret
from .resources import (
    Campaigns,
    Events,
    MarketingEmails,
    SendStatuses,
    SingleSend,
    SmtpTokens,
    Statistics,
)

__all__ = ["HubSpot"]

#: Where ``$HUBSPOT_ACCESS_TOKEN`` may go besides ``$HUBSPOT_BASE_URL``: HubSpot's API hosts.
HUBSPOT_API_DOMAINS = ("hubapi.com", "hubspot.com")

ACCESS_TOKEN_ENV = _env.ACCESS_TOKEN
BASE_URL_ENV = _env.BASE_URL


class HubSpot:
    """Async client of HubSpot's transactional-email REST API.

    Use one client per application and share it between tasks; close it with ``async with`` or
    :meth:`aclose`.

    Example:
        >>> async with HubSpot(access_token="pat-...") as hs:
        ...     token = await hs.smtp_tokens.create(campaign_name="Receipts")
        ...     status = await hs.single_send.send(email_id=123, to="a@example.com")
        ...     final = await hs.send_status.wait(status)

    Args:
        access_token: a private-app access token, a :class:`Secret`, or an
            :class:`AuthProvider` such as :class:`OAuth` (refreshing access tokens).
            Defaults to ``$HUBSPOT_ACCESS_TOKEN``, which is sent only to ``$HUBSPOT_BASE_URL``
            or to HubSpot's own ``https://`` hosts: with a ``base_url`` elsewhere, pass the
            token for it (else :class:`ConfigurationError`).
        base_url: the API root; ``$HUBSPOT_BASE_URL`` or ``https://api.hubapi.com``.
        timeout: per-attempt limits, a :class:`Timeout` or a total in seconds.
        retry: a :class:`RetryPolicy`, or ``None`` to never retry.
        ssl: ``True`` (verify against the system's trust store, plus ``$HUBSPOT_CA_FILE`` when
            set), an ``ssl.SSLContext`` (e.g. the sandbox's), or ``False`` to disable
            verification (not recommended).
        trust_env: read proxy settings and ``.netrc`` from the environment.
        max_connections: the most simultaneous connections to HubSpot.
        rate_limit: ``"auto"`` (learn HubSpot's limits from its headers and pace every call
            of this client under them), a :class:`RateLimit` to pace under a known budget, or
            ``None`` to send without pacing.
        api_version: ``"2026-09"`` (the default: the newest path HubSpot publishes for each
            API), ``"2026-03"``, or ``"v3"`` (the classic v1-v4 paths, which HubSpot stops
            serving in 2027).
        hooks: :class:`Hooks` called around every attempt (for metrics and tracing).
        trace_configs: aiohttp ``TraceConfig`` objects, passed to the session.
    """

    def __init__(
        self,
        access_token: str | Secret | AuthProvider | None = None,
        *,
        base_url: str | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        ssl: ssl_module.SSLContext | bool = True,
        trust_env: bool = False,
        max_connections: int = 100,
        rate_limit: RateLimit | Literal["auto"] | None = "auto",
        api_version: ApiVersion = DEFAULT_API_VERSION,
        hooks: Hooks | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        env_base_url = _env.get(BASE_URL_ENV)
        self.base_url = (base_url or env_base_url or DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("https://", "http://")):
            origin = "base_url" if base_url else f"${BASE_URL_ENV}"
            raise ConfigurationError(
                f"{origin} must start with https:// or http://, got {self.base_url!r}"
            )
        if access_token is None:
            access_token = _env.get(ACCESS_TOKEN_ENV)
            if access_token is None:
                raise ConfigurationError(
                    f"no access_token given and ${ACCESS_TOKEN_ENV} is not set"
                )
            if not _env_token_may_go_to(self.base_url, env_base_url):
                # The variable's token belongs to the variable's API root (or HubSpot's): it
                # must not leak to another server named in code.
                raise ConfigurationError(
                    f"base_url {self.base_url} is neither ${BASE_URL_ENV} nor HubSpot's: "
                    f"${ACCESS_TOKEN_ENV} is not sent there; pass access_token= for it "
                    f"(CLI: --access-token), or set ${BASE_URL_ENV} to it"
                )
        auth = access_token if isinstance(access_token, AuthProvider) else StaticToken(access_token)
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {sorted(API_VERSIONS)}")
        paths = API_VERSIONS[api_version]
        custom_context = not isinstance(ssl, bool)
        ca_file = _env.get(_env.CA_FILE) if ssl is True else None
        if ca_file is not None:
            ssl = _env.ssl_context()
        self.api_version = api_version
        if rate_limit == "auto":
            pacer: Pacer | None = Pacer()
        elif isinstance(rate_limit, RateLimit):
            pacer = Pacer(rate_limit, learn=False)
        else:
            pacer = None
        self._http = HTTPClient(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout if isinstance(timeout, Timeout) else Timeout(total=timeout),
            retry=retry or RetryPolicy.disabled(),
            ssl=ssl,
            trust_env=trust_env,
            max_connections=max_connections,
            pacer=pacer,
            hooks=hooks,
            trace_configs=trace_configs,
            tls_advice=_env.tls_advice(ca_file, custom_context=custom_context),
        )
        if isinstance(auth, OAuth):
            http, token_path = self._http, paths.oauth_token

            async def token_endpoint(fields: dict[str, str]) -> tuple[int, bytes]:
                return await http.post_token_form(fields, token_path)

            auth.bind(token_endpoint)
        self.smtp_tokens = SmtpTokens(self._http, paths)
        """SMTP API tokens: list, get, create, delete, reset_password."""
        self.single_send = SingleSend(self._http, paths)
        """Single-send: ``send`` (transactional, v3), ``send_v4`` (marketing), ``send_many``."""
        self.send_status = SendStatuses(self._http, paths)
        """Send statuses: get, wait."""
        self.events = Events(self._http, paths)
        """Email events: list (every page), get, outcomes (per-recipient latest state)."""
        self.campaigns = Campaigns(self._http, paths)
        """Email campaign data: list, list_by_id (legacy listings), get (with counters)."""
        self.statistics = Statistics(self._http, paths)
        """Email statistics: list, histogram."""
        self.marketing_emails = MarketingEmails(self._http, paths)
        """Marketing emails (what single-send sends): list, get, create_transactional,
        publish, and ``campaign_ids`` (the ids its events are keyed by)."""

    async def aclose(self) -> None:
        """Close the HTTP session. Idempotent."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<HubSpot base_url={self.base_url!r} api_version={self.api_version!r}>"


def _env_token_may_go_to(base_url: str, env_base_url: str | None) -> bool:
    """Whether the environment's access token may be sent to ``base_url``."""
    if env_base_url is not None and base_url == env_base_url.rstrip("/"):
        return True
    url = urllib.parse.urlsplit(base_url)
    host = (url.hostname or "").rstrip(".")
    return url.scheme == "https" and any(
        host == domain or host.endswith("." + domain) for domain in HUBSPOT_API_DOMAINS
    )
