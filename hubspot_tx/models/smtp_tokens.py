"""SMTP API tokens: the credentials for smtp.hubapi.com."""

from __future__ import annotations

from datetime import datetime

import msgspec

from .._secret import Secret
from ._base import Model, ResponseDecoder

__all__ = [
    "NextPage",
    "Paging",
    "SmtpToken",
    "SmtpTokenCreateRequest",
    "SmtpTokenPage",
    "SmtpTokenWithPassword",
]

TOKEN_LIFETIME_MONTHS = 12


def _add_months(moment: datetime, months: int) -> datetime:
    years, month0 = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, month0 + 1
    day = moment.day
    while True:  # 29 Feb + 12 months -> 28 Feb
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


class SmtpToken(Model, frozen=True):
    """An SMTP API token (``SmtpApiTokenView``). Its ``id`` is the SMTP user name.

    Attributes:
        id: the token id, also the SMTP user name.
        campaign_name: the campaign the token's sends are tracked under.
        email_campaign_id: the campaign's id (a string; legacy numeric ids are converted).
        create_contact: whether sending creates a contact for unknown recipients.
        created_at: creation time (aware, UTC).
        created_by: the creating user's email address.
    """

    id: str
    campaign_name: str = ""
    email_campaign_id: str | None = None
    create_contact: bool = False
    created_at: datetime | None = None
    created_by: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        """When HubSpot deletes the token: 12 months after creation (API-created tokens)."""
        if self.created_at is None:
            return None
        return _add_months(self.created_at, TOKEN_LIFETIME_MONTHS)


class SmtpTokenWithPassword(SmtpToken, frozen=True, kw_only=True):
    """A token with its password, returned only by create and password reset.

    ``password`` is a :class:`~hubspot_tx.Secret`: masked everywhere, revealed only by
    ``password.get_secret_value()``. Plain ``msgspec.json.encode`` refuses to encode it;
    :func:`hubspot_tx.models.encode` writes it masked.
    """

    password: Secret


class NextPage(Model, frozen=True):
    """``paging.next``: the cursor of the following page."""

    after: str
    link: str | None = None


class Paging(Model, frozen=True):
    """``paging`` of a collection response."""

    next: NextPage | None = None


class SmtpTokenPage(Model, frozen=True):
    """One page of ``GET /smtp-tokens``."""

    results: list[SmtpToken] = msgspec.field(default_factory=list)
    paging: Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor for the next page, or ``None`` on the last page."""
        if self.paging is None or self.paging.next is None:
            return None
        return self.paging.next.after


class SmtpTokenCreateRequest(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """Body of ``POST /smtp-tokens``."""

    campaign_name: str
    create_contact: bool


smtp_token_decoder = ResponseDecoder(SmtpToken)
smtp_token_with_password_decoder = ResponseDecoder(SmtpTokenWithPassword)
smtp_token_page_decoder = ResponseDecoder(SmtpTokenPage)
