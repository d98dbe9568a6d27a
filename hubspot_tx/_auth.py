"""Where the ``Authorization`` header comes from. OAuth providers plug in here later."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._secret import Secret

__all__ = ["AuthProvider", "StaticToken"]


@runtime_checkable
class AuthProvider(Protocol):
    """Supplies the ``Authorization`` header value for each request."""

    async def authorization(self) -> str:
        """Return the full header value, e.g. ``"Bearer pat-..."``."""
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

    def __repr__(self) -> str:
        return "StaticToken(Secret('**********'))"
