"""Marketing emails (``/marketing/v3/emails`` and its dated twins): the emails single-send sends.

Shapes follow HubSpot's Marketing Emails specs (``PublicEmail``, ``EmailCreateRequest``,
``CollectionResponseWithTotalPublicEmail``; v3, 2026-03 and 2026-09 agree on every field used
here). Every response field is optional (``isAb`` has a default) and unknown fields are
ignored; unknown enum values decode and are kept. The legacy campaign listing
(``/email/public/v1/campaigns``) is here too, since its ids are what an email's
``allEmailCampaignIds`` name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from .._exceptions import ResponseDecodeError
from ._base import Model, OpenEnum, ResponseDecoder
from .smtp_tokens import Paging
from .tracking import StatisticsData

__all__ = [
    "EmailContent",
    "EmailCreateRequest",
    "EmailFrom",
    "EmailState",
    "EmailSubscription",
    "EmailType",
    "LegacyCampaign",
    "LegacyCampaignPage",
    "MarketingEmail",
    "MarketingEmailPage",
]

T = TypeVar("T")


class EmailType(OpenEnum):
    """A marketing email's ``type`` (also the list filter). New types decode and are kept."""

    AB_EMAIL = "AB_EMAIL"
    AUTOMATED_AB_EMAIL = "AUTOMATED_AB_EMAIL"
    AUTOMATED_EMAIL = "AUTOMATED_EMAIL"
    BATCH_EMAIL = "BATCH_EMAIL"
    BLOG_EMAIL = "BLOG_EMAIL"
    BLOG_EMAIL_CHILD = "BLOG_EMAIL_CHILD"
    FEEDBACK_CES_EMAIL = "FEEDBACK_CES_EMAIL"
    FEEDBACK_CUSTOM_EMAIL = "FEEDBACK_CUSTOM_EMAIL"
    FEEDBACK_CUSTOM_SURVEY_EMAIL = "FEEDBACK_CUSTOM_SURVEY_EMAIL"
    FEEDBACK_NPS_EMAIL = "FEEDBACK_NPS_EMAIL"
    FOLLOWUP_EMAIL = "FOLLOWUP_EMAIL"
    LEADFLOW_EMAIL = "LEADFLOW_EMAIL"
    LOCALTIME_EMAIL = "LOCALTIME_EMAIL"
    MANAGE_PREFERENCES_EMAIL = "MANAGE_PREFERENCES_EMAIL"
    MARKETING_SINGLE_SEND_API = "MARKETING_SINGLE_SEND_API"
    MEMBERSHIP_EMAIL_VERIFICATION_EMAIL = "MEMBERSHIP_EMAIL_VERIFICATION_EMAIL"
    MEMBERSHIP_FOLLOW_UP_EMAIL = "MEMBERSHIP_FOLLOW_UP_EMAIL"
    MEMBERSHIP_OTP_LOGIN_EMAIL = "MEMBERSHIP_OTP_LOGIN_EMAIL"
    MEMBERSHIP_PASSWORD_RESET_EMAIL = "MEMBERSHIP_PASSWORD_RESET_EMAIL"
    MEMBERSHIP_PASSWORD_SAVED_EMAIL = "MEMBERSHIP_PASSWORD_SAVED_EMAIL"
    MEMBERSHIP_PASSWORDLESS_AUTH_EMAIL = "MEMBERSHIP_PASSWORDLESS_AUTH_EMAIL"
    MEMBERSHIP_REGISTRATION_EMAIL = "MEMBERSHIP_REGISTRATION_EMAIL"
    MEMBERSHIP_REGISTRATION_FOLLOW_UP_EMAIL = "MEMBERSHIP_REGISTRATION_FOLLOW_UP_EMAIL"
    MEMBERSHIP_VERIFICATION_EMAIL = "MEMBERSHIP_VERIFICATION_EMAIL"
    OPTIN_EMAIL = "OPTIN_EMAIL"
    OPTIN_FOLLOWUP_EMAIL = "OPTIN_FOLLOWUP_EMAIL"
    RESUBSCRIBE_EMAIL = "RESUBSCRIBE_EMAIL"
    RSS_EMAIL = "RSS_EMAIL"
    RSS_EMAIL_CHILD = "RSS_EMAIL_CHILD"
    SINGLE_SEND_API = "SINGLE_SEND_API"
    SMTP_TOKEN = "SMTP_TOKEN"
    TICKET_EMAIL = "TICKET_EMAIL"


class EmailState(OpenEnum):
    """A marketing email's ``state``. New states decode and are kept."""

    AGENT_GENERATED = "AGENT_GENERATED"
    AUTOMATED = "AUTOMATED"
    AUTOMATED_AB = "AUTOMATED_AB"
    AUTOMATED_AB_VARIANT = "AUTOMATED_AB_VARIANT"
    AUTOMATED_DRAFT = "AUTOMATED_DRAFT"
    AUTOMATED_DRAFT_AB = "AUTOMATED_DRAFT_AB"
    AUTOMATED_DRAFT_ABVARIANT = "AUTOMATED_DRAFT_ABVARIANT"
    AUTOMATED_FOR_FORM = "AUTOMATED_FOR_FORM"
    AUTOMATED_FOR_FORM_BUFFER = "AUTOMATED_FOR_FORM_BUFFER"
    AUTOMATED_FOR_FORM_DRAFT = "AUTOMATED_FOR_FORM_DRAFT"
    AUTOMATED_FOR_FORM_LEGACY = "AUTOMATED_FOR_FORM_LEGACY"
    AUTOMATED_LOSER_ABVARIANT = "AUTOMATED_LOSER_ABVARIANT"
    AUTOMATED_SENDING = "AUTOMATED_SENDING"
    BLOG_EMAIL_DRAFT = "BLOG_EMAIL_DRAFT"
    BLOG_EMAIL_PUBLISHED = "BLOG_EMAIL_PUBLISHED"
    DRAFT = "DRAFT"
    DRAFT_AB = "DRAFT_AB"
    DRAFT_AB_VARIANT = "DRAFT_AB_VARIANT"
    ERROR = "ERROR"
    LOSER_AB_VARIANT = "LOSER_AB_VARIANT"
    PAGE_STUB = "PAGE_STUB"
    PRE_PROCESSING = "PRE_PROCESSING"
    PROCESSING = "PROCESSING"
    PUBLISHED = "PUBLISHED"
    PUBLISHED_AB = "PUBLISHED_AB"
    PUBLISHED_AB_VARIANT = "PUBLISHED_AB_VARIANT"
    PUBLISHED_OR_SCHEDULED = "PUBLISHED_OR_SCHEDULED"
    RSS_TO_EMAIL_DRAFT = "RSS_TO_EMAIL_DRAFT"
    RSS_TO_EMAIL_PUBLISHED = "RSS_TO_EMAIL_PUBLISHED"
    SCHEDULED = "SCHEDULED"
    SCHEDULED_AB = "SCHEDULED_AB"
    SCHEDULED_OR_PUBLISHED = "SCHEDULED_OR_PUBLISHED"


class EmailFrom(Model, frozen=True):
    """``from`` (``PublicEmailFromDetails``)."""

    from_name: str | None = None
    reply_to: str | None = None
    custom_reply_to: str | None = None


class EmailSubscription(Model, frozen=True):
    """``subscriptionDetails``: the subscription type decides whether the email is
    transactional."""

    subscription_id: str | None = None
    subscription_name: str | None = None
    office_location_id: str | None = None
    preferences_group_id: str | None = None


class EmailContent(Model, frozen=True):
    """``content`` (``PublicEmailContent``). The body lives in ``widgets`` (drag-and-drop and
    design-manager modules, each a free-form object) and ``plainTextVersion``."""

    plain_text_version: str | None = None
    template_path: str | None = None
    widgets: dict[str, Any] = msgspec.field(default_factory=dict)
    flex_areas: dict[str, Any] = msgspec.field(default_factory=dict)
    widget_containers: dict[str, Any] = msgspec.field(default_factory=dict)
    smart_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    style_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    theme_settings_values: dict[str, Any] = msgspec.field(default_factory=dict)


class MarketingEmail(Model, frozen=True):
    """A marketing email (``PublicEmail``).

    HubSpot's schema requires ``isAb`` only: every other field, ``id`` included, may be absent.

    Attributes:
        id: the email id: the ``emailId`` of a single-send (a string here, an int there).
        type: e.g. ``AUTOMATED_EMAIL``, ``SINGLE_SEND_API``, ``MARKETING_SINGLE_SEND_API``.
        state: e.g. ``DRAFT``, ``AUTOMATED_DRAFT``, ``AUTOMATED``, ``PUBLISHED``.
        is_transactional: sent under a transactional subscription type.
        primary_email_campaign_id: the campaign its email events and campaign data are keyed
            by (not the email id).
        all_email_campaign_ids: every campaign it sent under (A/B variants, re-publishes).
        campaign: the marketing campaign (a GUID) it belongs to, an unrelated id space.
    """

    id: str = ""  # empty when HubSpot leaves it out (its schema does not require it)
    name: str | None = None
    subject: str | None = None
    type: EmailType | None = None
    state: EmailState | None = None
    subcategory: str | None = None
    is_transactional: bool | None = None
    is_published: bool | None = None
    is_ab: bool = False
    archived: bool | None = None
    primary_email_campaign_id: str | None = None
    all_email_campaign_ids: list[str] = msgspec.field(default_factory=list)
    email_campaign_group_id: str | None = None
    campaign: str | None = None
    campaign_name: str | None = None
    from_: EmailFrom | None = msgspec.field(default=None, name="from")
    content: EmailContent | None = None
    subscription_details: EmailSubscription | None = None
    language: str | None = None
    active_domain: str | None = None
    business_unit_id: str | None = None
    folder_id_v2: int | None = None
    created_at: datetime | None = None
    created_by_id: str | None = None
    updated_at: datetime | None = None
    updated_by_id: str | None = None
    publish_date: datetime | None = None
    published_at: datetime | None = None
    published_by_id: str | None = None
    unpublished_at: datetime | None = None
    send_on_publish: bool | None = None
    workflow_names: list[str] = msgspec.field(default_factory=list)
    stats: StatisticsData | None = None  # with ``include_stats=True``

    @property
    def campaign_ids(self) -> list[str]:
        """The email campaign ids its events are keyed by: the primary one first, then the
        rest of ``all_email_campaign_ids``, without repeats."""
        ids = [self.primary_email_campaign_id, *self.all_email_campaign_ids]
        return [c for c in dict.fromkeys(ids) if c]


class MarketingEmailPage(Model, frozen=True):
    """One page of ``GET /marketing/v3/emails`` (``CollectionResponseWithTotalPublicEmail``)."""

    results: list[MarketingEmail] = msgspec.field(default_factory=list)
    total: int = 0
    paging: Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next page, or ``None`` on the last page."""
        return self.paging.next.after if self.paging and self.paging.next else None


class EmailCreateRequest(
    msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True
):
    """Body of ``POST /marketing/v3/emails`` (``EmailCreateRequest``; v3 requires ``name``)."""

    name: str
    subject: str | None = None
    subcategory: str | None = None
    state: str | None = None
    from_: EmailFrom | None = msgspec.field(default=None, name="from")
    content: EmailContent | None = None
    subscription_details: EmailSubscription | None = None
    campaign: str | None = None
    language: str | None = None
    active_domain: str | None = None
    send_on_publish: bool | None = None
    archived: bool | None = None


class LegacyCampaign(Model, frozen=True):
    """One entry of ``GET /email/public/v1/campaigns`` or ``/by-id``: an email campaign id
    with the app that sends under it (``Batch``, ``Workflow``, ...)."""

    id: str
    app_id: str | None = None
    app_name: str | None = None
    last_updated_time: int | None = None  # epoch ms (recent-campaigns listing)


class LegacyCampaignPage(Model, frozen=True):
    """One page of the legacy campaign listing (offset paging)."""

    campaigns: list[LegacyCampaign] = msgspec.field(default_factory=list)
    has_more: bool = False
    offset: str | None = None

    @property
    def results(self) -> list[LegacyCampaign]:
        return self.campaigns

    @property
    def after(self) -> str | None:
        """The offset of the next page, or ``None`` on the last page."""
        return self.offset if self.has_more and self.offset else None


# Campaign ids are strings in the specs; tolerate the numbers older payloads carry.
_CAMPAIGN_ID_KEYS = frozenset({"primaryEmailCampaignId", "emailCampaignGroupId", "id"})


def _stringify_ids(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_stringify_ids(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _CAMPAIGN_ID_KEYS and type(value) is int:
            value = str(value)
        elif key == "allEmailCampaignIds" and isinstance(value, list):
            value = [str(v) if type(v) is int else v for v in value]
        out[key] = _stringify_ids(value)
    return out


class _EmailDecoder(ResponseDecoder[T], Generic[T]):
    """The shared tolerant decoder, after turning numeric campaign ids into strings."""

    __slots__ = ()

    def decode(self, data: bytes) -> T:
        try:
            return super().decode(data)
        except ResponseDecodeError:
            try:
                fixed = msgspec.json.encode(_stringify_ids(msgspec.json.decode(data)))
            except msgspec.DecodeError:
                raise ResponseDecodeError("response is not valid JSON") from None
            return super().decode(fixed)


email_decoder = _EmailDecoder(MarketingEmail)
email_page_decoder = _EmailDecoder(MarketingEmailPage)
legacy_campaign_page_decoder = ResponseDecoder(LegacyCampaignPage)
