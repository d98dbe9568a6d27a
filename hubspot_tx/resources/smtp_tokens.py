"""``/marketing/v3/transactional/smtp-tokens``: the SMTP API token lifecycle."""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from .._http import HTTPClient, Replay
from .._pagination import AsyncPager
from .._paths import API_VERSIONS, DEFAULT_API_VERSION, ApiPaths
from ..models.smtp_tokens import (
    SmtpToken,
    SmtpTokenCreateRequest,
    SmtpTokenPage,
    SmtpTokenWithPassword,
    smtp_token_decoder,
    smtp_token_page_decoder,
    smtp_token_with_password_decoder,
)

__all__ = ["MAX_PAGE_SIZE", "SmtpTokens"]

MAX_PAGE_SIZE = 100


class SmtpTokens:
    """Create, list, read, delete SMTP API tokens and reset their passwords."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._path = paths.smtp_tokens

    def _token_path(self, token_id: str) -> str:
        if not token_id:
            raise ValueError("token_id must not be empty")
        return f"{self._path}/{quote(token_id, safe='')}"

    def list(
        self,
        *,
        campaign_name: str | None = None,
        email_campaign_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> AsyncPager[SmtpToken, SmtpTokenPage]:
        """List tokens, optionally filtered by campaign.

        ``async for token in hs.smtp_tokens.list()`` walks every token across pages;
        ``page = await hs.smtp_tokens.list(limit=50, after=cursor)`` reads one page, whose
        ``page.after`` is the next cursor.

        Args:
            campaign_name: only tokens of this campaign name.
            email_campaign_id: only tokens of this campaign id.
            limit: page size, 1 to 100 (HubSpot's default is 10).
            after: start after this cursor (from a previous page).
        """
        if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        params: dict[str, str] = {}
        if campaign_name is not None:
            params["campaignName"] = campaign_name
        if email_campaign_id is not None:
            params["emailCampaignId"] = str(email_campaign_id)
        if limit is not None:
            params["limit"] = str(limit)

        async def fetch(cursor: str | None) -> SmtpTokenPage:
            query = params if cursor is None else {**params, "after": cursor}
            resp = await self._http.request("GET", self._path, params=query, replay=Replay.SAFE)
            return smtp_token_page_decoder.decode(resp.content)

        return AsyncPager(fetch, after)

    async def get(self, token_id: str) -> SmtpToken:
        """Read one token (never its password). Raises :class:`NotFoundError` if absent."""
        resp = await self._http.request("GET", self._token_path(token_id), replay=Replay.SAFE)
        return smtp_token_decoder.decode(resp.content)

    async def create(
        self, *, campaign_name: str, create_contact: bool = False
    ) -> SmtpTokenWithPassword:
        """Create a token. The password is in the result and can never be read again.

        Not retried once the request may have reached HubSpot (a retry could create a second
        token); retried on 429 and when the connection could not be opened.
        """
        if not campaign_name:
            raise ValueError("campaign_name must not be empty")
        body = msgspec.json.encode(
            SmtpTokenCreateRequest(campaign_name=campaign_name, create_contact=create_contact)
        )
        resp = await self._http.request("POST", self._path, json=body, replay=Replay.UNSAFE)
        return smtp_token_with_password_decoder.decode(resp.content)

    async def delete(self, token_id: str) -> None:
        """Delete a token; SMTP logins with it fail from then on.

        A retry that finds the token already gone counts as done (its first attempt
        succeeded); a first attempt that finds nothing raises :class:`NotFoundError`.
        """
        await self._http.request(
            "DELETE", self._token_path(token_id), replay=Replay.SAFE, ok_on_retry=frozenset({404})
        )

    async def reset_password(self, token_id: str) -> SmtpTokenWithPassword:
        """Give a token a new password (returned once); the old one stops working at once.

        Retried like :meth:`create`: never once the request may have reached HubSpot.
        """
        resp = await self._http.request(
            "POST", f"{self._token_path(token_id)}/password-reset", replay=Replay.UNSAFE
        )
        return smtp_token_with_password_decoder.decode(resp.content)
