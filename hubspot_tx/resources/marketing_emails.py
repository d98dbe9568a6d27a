"""``/marketing/v3/emails`` (and its dated twins): the emails single-send sends, and the campaign
ids their events are keyed by."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec

from .._http import HTTPClient, Replay
from .._pagination import AsyncPager
from .._paths import API_VERSIONS, ApiPaths
from ..models.marketing_emails import (
    EmailContent,
    EmailCreateRequest,
    EmailFrom,
    EmailSubscription,
    EmailType,
    MarketingEmail,
    MarketingEmailPage,
    email_decoder,
    email_page_decoder,
)

__all__ = ["SINGLE_SEND_TYPES", "MarketingEmails"]

SINGLE_SEND_TYPES = (
    EmailType.SINGLE_SEND_API,
    EmailType.MARKETING_SINGLE_SEND_API,
    EmailType.AUTOMATED_EMAIL,
)
"""The email types a single-send can send: transactional single-send API emails, marketing
single-send API emails, and automated emails."""


def _iso(moment: datetime) -> str:
    """ISO 8601 with an offset; a naive datetime is taken as UTC (HubSpot needs the offset)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _flag(value: bool) -> str:
    return "true" if value else "false"


class MarketingEmails:
    """Marketing emails: list, get, create (a transactional single-send email), publish, and
    :meth:`campaign_ids`, the ids that email events and campaign data are keyed by."""

    def __init__(self, http: HTTPClient, paths: ApiPaths = API_VERSIONS["v3"]) -> None:
        self._http = http
        self._path = paths.marketing_emails

    def _email_path(self, email_id: int | str) -> str:
        ident = str(email_id)
        if isinstance(email_id, bool) or not ident or not ident.isdigit():
            raise ValueError(f"email_id must be a positive integer id, got {email_id!r}")
        return f"{self._path}/{quote(ident, safe='')}"

    def list(
        self,
        *,
        type: EmailType | str | None = None,
        is_published: bool | None = None,
        archived: bool | None = None,
        campaign: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        published_after: datetime | None = None,
        published_before: datetime | None = None,
        sort: Iterable[str] = (),
        include_stats: bool | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> AsyncPager[MarketingEmail, MarketingEmailPage]:
        """Emails matching the filters: ``async for`` walks every page; ``await`` reads one
        (its ``after`` continues).

        Args:
            type: one email type, e.g. ``EmailType.SINGLE_SEND_API`` (see
                :data:`SINGLE_SEND_TYPES`); HubSpot filters by one type per call.
            is_published: only published (``True``) or unpublished (``False``) emails.
            archived: list archived emails instead.
            campaign: only emails of this marketing campaign (its GUID).
            sort: property names, ``-name`` for descending (e.g. ``["-updatedAt"]``).
            include_stats: include each email's statistics.
            limit: page size (HubSpot publishes no maximum).
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        params: list[tuple[str, str]] = []
        if type is not None:
            params.append(("type", str(type)))
        for name, flag in (
            ("isPublished", is_published),
            ("archived", archived),
            ("includeStats", include_stats),
        ):
            if flag is not None:
                params.append((name, _flag(flag)))
        if campaign is not None:
            params.append(("campaign", campaign))
        for name, moment in (
            ("createdAfter", created_after),
            ("createdBefore", created_before),
            ("updatedAfter", updated_after),
            ("updatedBefore", updated_before),
            ("publishedAfter", published_after),
            ("publishedBefore", published_before),
        ):
            if moment is not None:
                params.append((name, _iso(moment)))
        params += [("sort", s) for s in sort]
        if limit is not None:
            params.append(("limit", str(limit)))

        async def fetch(cursor: str | None) -> MarketingEmailPage:
            query = params if cursor is None else [*params, ("after", cursor)]
            resp = await self._http.request("GET", self._path, params=query, replay=Replay.SAFE)
            return email_page_decoder.decode(resp.content)

        return AsyncPager(fetch, after)

    async def get(
        self,
        email_id: int | str,
        *,
        archived: bool | None = None,
        include_stats: bool | None = None,
    ) -> MarketingEmail:
        """One email by id (a single-send's ``emailId``), with its ``stats`` if
        ``include_stats``. :class:`NotFoundError` if absent."""
        params = {}
        if archived is not None:
            params["archived"] = _flag(archived)
        if include_stats is not None:
            params["includeStats"] = _flag(include_stats)
        resp = await self._http.request(
            "GET", self._email_path(email_id), params=params, replay=Replay.SAFE
        )
        return email_decoder.decode(resp.content)

    async def create(self, request: EmailCreateRequest) -> MarketingEmail:
        """Create an email from a full :class:`EmailCreateRequest`.

        Not retried once the request may have reached HubSpot (a retry could create a
        second email).
        """
        body = msgspec.json.encode(request)
        resp = await self._http.request("POST", self._path, json=body, replay=Replay.UNSAFE)
        return email_decoder.decode(resp.content)

    async def create_transactional(
        self,
        *,
        name: str,
        subject: str,
        html: str | None = None,
        plain_text: str | None = None,
        from_name: str | None = None,
        reply_to: str | None = None,
        subscription_id: str | None = None,
        subcategory: str = "single_send_api",
        extra: Mapping[str, Any] | None = None,
    ) -> MarketingEmail:
        """Create a draft email for the transactional single-send API (``subcategory``
        ``single_send_api``; ``marketing_single_send_api`` for the v4 marketing single-send).

        ``subject``, ``html`` and ``plain_text`` may hold ``{{ custom.NAME }}`` and
        ``{{ contact.NAME }}`` placeholders, filled from a send's ``customProperties`` /
        ``contactProperties``. ``subscription_id`` names the transactional subscription type
        (HubSpot marks the email ``isTransactional`` from it). Publish the email
        (:meth:`publish`) before sending it: an unpublished email's sends end
        ``MISSING_CONTENT``.

        Args:
            extra: more ``EmailCreateRequest`` fields, by their Python names (e.g.
                ``{"language": "en"}``).
        """
        if not name:
            raise ValueError("name must not be empty")
        widgets = (
            {"primary_rich_text_module": {"body": {"html": html}, "type": "module"}}
            if html is not None
            else {}
        )
        request = EmailCreateRequest(
            name=name,
            subject=subject,
            subcategory=subcategory,
            from_=EmailFrom(from_name=from_name, reply_to=reply_to)
            if from_name is not None or reply_to is not None
            else None,
            content=EmailContent(plain_text_version=plain_text, widgets=widgets)
            if html is not None or plain_text is not None
            else None,
            subscription_details=EmailSubscription(subscription_id=subscription_id)
            if subscription_id is not None
            else None,
            **dict(extra or {}),
        )
        return await self.create(request)

    async def publish(self, email_id: int | str) -> None:
        """Publish an email (``POST .../{emailId}/publish``; 204). An automated or
        single-send email becomes sendable; a regular (batch) email is sent or scheduled, so
        this is never retried once it may have reached HubSpot."""
        await self._http.request(
            "POST", f"{self._email_path(email_id)}/publish", replay=Replay.UNSAFE
        )

    async def campaign_ids(self, email_id: int | str) -> builtins.list[str]:
        """The email campaign ids that ``email_id``'s events and campaign data are keyed by:
        its ``primaryEmailCampaignId`` first, then the rest of ``allEmailCampaignIds``.

        HubSpot keys single-send events by these, never by the email id::

            campaign = (await hs.marketing_emails.campaign_ids(email_id))[0]
            events = [e async for e in hs.events.list(campaign_id=campaign)]

        Empty when HubSpot names no campaign for the email.
        """
        return (await self.get(email_id)).campaign_ids
