"""SMTP credentials: the token id as user name, the token password as a :class:`Secret`."""

from __future__ import annotations

from typing import Self

from .._secret import Secret
from ..models.smtp_tokens import SmtpTokenWithPassword

__all__ = ["SmtpCredentials"]


class SmtpCredentials:
    """The login for smtp.hubapi.com: ``username`` is the token id, ``password`` its password.

    Example:
        >>> token = await hs.smtp_tokens.create(campaign_name="Receipts")
        >>> creds = SmtpCredentials.from_token(token)
    """

    __slots__ = ("password", "username")

    def __init__(self, username: str, password: str | Secret) -> None:
        if not username:
            raise ValueError("username (the SMTP token id) must not be empty")
        self.username = username
        self.password = Secret(password)
        if not self.password:
            raise ValueError("password must not be empty")

    @classmethod
    def from_token(cls, token: SmtpTokenWithPassword) -> Self:
        """Credentials from what ``smtp_tokens.create()`` or ``.reset_password()`` returned."""
        return cls(token.id, token.password)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SmtpCredentials):
            return NotImplemented
        return self.username == other.username and self.password == other.password

    def __hash__(self) -> int:
        return hash((self.username, self.password))

    def __repr__(self) -> str:
        return f"SmtpCredentials(username={self.username!r}, password=Secret('**********'))"
