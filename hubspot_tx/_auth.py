"""Where the ``Authorization`` header comes from. OAuth providers plug in here later."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import msgspec

from ._exceptions import OAuthRefreshError
from ._secret import Secret

__all__ = ["AuthProvider", "OAuth", "OAuthTokens", "StaticToken", "TokenEndpoint"]


@runtime_checkable
class AuthProvider(Protocol):
    """Supplies the ``Authorization`` header value for each request."""

    async def authorization(self) -> str:
        """Return the full header value, e.g. ``"Bearer pat-..."``."""
        ...

    async def unauthorized(self, rejected: str) -> bool:
        """HubSpot answered 401 to the header value ``rejected``: return True to retry the
        request once (after refreshing the credential), False to raise."""
        ...


class StaticToken:
    """A private-app access token (or any bearer token that does not expire)."""

    __slots__ = ("_token",)

    def __init__(self, token: str | Secret) -> None:
        self._token = Secret(token)
        if not self._token:
            raise ValueError("access token is empty")

    async def authorization(self) -> str:
        return f"Bearer {self._token.get_secret_value()}"

    async def unauthorized(self, rejected: str) -> bool:
        return False  # a static token does not get better by asking again

    def __repr__(self) -> str:
        return "StaticToken(Secret('**********'))"


class TokenEndpoint(Protocol):
    """Posts a form to HubSpot's token endpoint; returns (status, body). Bound by the client."""

    async def __call__(self, fields: dict[str, str]) -> tuple[int, bytes]: ...


class OAuthTokens(msgspec.Struct, frozen=True):
    """What HubSpot's token endpoint (``/oauth/v1/token``, ``/oauth/2026-03/token``) returns."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None
    token_type: str = "bearer"


_tokens_decoder = msgspec.json.Decoder(OAuthTokens)


class OAuth:
    """OAuth 2 access tokens, refreshed before they expire and once after a 401.

    Concurrent callers share one refresh. A refresh token HubSpot refuses (revoked, unknown)
    raises :class:`OAuthRefreshError` once per call and is not tried again.

    Args:
        client_id: the app's client id.
        client_secret: the app's client secret.
        refresh_token: the refresh token of the installation.
        access_token: a current access token, if you have one (else one is fetched).
        expires_at: when ``access_token`` expires (epoch seconds); ``None`` = unknown.
        refresh_margin: refresh this many seconds before expiry (at most a tenth of the
            token's lifetime).
        on_refresh: called with the new tokens after each refresh (to persist a rotated
            refresh token); may be async.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | Secret,
        refresh_token: str | Secret,
        access_token: str | Secret | None = None,
        expires_at: float | None = None,
        refresh_margin: float = 60.0,
        on_refresh: Callable[[OAuthTokens], Awaitable[None] | None] | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = Secret(client_secret)
        self._refresh_token = Secret(refresh_token)
        self._access_token = Secret(access_token) if access_token else None
        self._refresh_at = expires_at - refresh_margin if expires_at is not None else None
        self.refresh_margin = refresh_margin
        self.on_refresh = on_refresh
        self._endpoint: TokenEndpoint | None = None
        self._lock = asyncio.Lock()
        self._failure: str | None = None
        # The refusal's HTTP status and category, repeated as HubSpot gave them (the dated
        # endpoints' categories are not documented: never assume one).
        self._failure_status = 400
        self._failure_category: str | None = None
        self.refreshes = 0

    def bind(self, endpoint: TokenEndpoint) -> None:
        """Called by the client: how to reach the token endpoint."""
        self._endpoint = endpoint

    def _valid(self) -> bool:
        if self._access_token is None:
            return False
        return self._refresh_at is None or time.time() < self._refresh_at

    async def authorization(self) -> str:
        if not self._valid():
            async with self._lock:
                if not self._valid():  # nobody refreshed while this caller waited
                    await self._refresh()
        token = self._access_token
        if token is None:  # _refresh() sets it or raises; cleared since by another failure
            raise OAuthRefreshError(self._failure or "no access token", status=401)
        return f"Bearer {token.get_secret_value()}"

    async def unauthorized(self, rejected: str) -> bool:
        """HubSpot answered 401 to ``rejected``: refresh (once for all callers); True to retry."""
        async with self._lock:
            current = self._access_token
            if current is not None and rejected != f"Bearer {current.get_secret_value()}":
                return True  # another caller already refreshed: retry with the new token
            await self._refresh()
        return True

    async def _refresh(self) -> None:
        if self._failure is not None:
            raise OAuthRefreshError(
                self._failure, status=self._failure_status, category=self._failure_category
            )
        if self._endpoint is None:
            raise RuntimeError("OAuth provider is not attached to a HubSpot client")
        status, body = await self._endpoint(
            {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self._client_secret.get_secret_value(),
                "refresh_token": self._refresh_token.get_secret_value(),
            }
        )
        if status != 200:
            try:
                error = msgspec.json.decode(body, type=dict[str, object])
            except msgspec.DecodeError:
                error = {}
            # /oauth/v1/token names the problem in ``status``; the dated endpoints answer
            # HubSpot's standard error body (``status: "error"`` and a ``category``).
            kind = str(error.get("status") or "")
            if kind in ("", "error"):
                kind = str(error.get("category") or f"HTTP {status}")
            message = f"{kind}: {error.get('message', '')}"
            if not 400 <= status < 500 or status in (408, 429):
                # Transient (a 5xx, a 429, a timeout, a redirect that is not followed): the
                # refresh token may be fine; the next call tries again.
                raise OAuthRefreshError(
                    f"HubSpot's token endpoint is unavailable (HTTP {status}), try again: "
                    + message,
                    status=status,
                    category=kind,
                )
            self._failure = f"HubSpot refused the OAuth refresh token: {message}"
            self._failure_status, self._failure_category = status, kind
            self._access_token = None
            raise OAuthRefreshError(self._failure, status=status, category=kind)
        try:
            tokens = _tokens_decoder.decode(body)
        except msgspec.DecodeError as exc:  # a proxy's page, a truncated answer: try again
            raise OAuthRefreshError(
                f"HubSpot's token endpoint answered 200 without its token JSON ({exc}), try again",
                status=status,
            ) from None
        self._access_token = Secret(tokens.access_token)
        margin = min(self.refresh_margin, tokens.expires_in / 10)
        self._refresh_at = time.time() + tokens.expires_in - margin
        if tokens.refresh_token:
            self._refresh_token = Secret(tokens.refresh_token)
        self.refreshes += 1
        if self.on_refresh is not None:
            result = self.on_refresh(tokens)
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        return f"OAuth(client_id={self.client_id!r}, tokens=Secret('**********'))"
