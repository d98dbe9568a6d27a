"""HubSpot's paths for each API version this client speaks.

HubSpot publishes the same operations under the classic versioned paths (``/marketing/v3/...``)
and under date-versioned ones (``/marketing/transactional/2026-03/...``). One client option picks
the set; the default is the v3 paths of the published spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["API_VERSIONS", "ApiPaths", "ApiVersion"]

ApiVersion = Literal["v3", "2026-03", "2026-09"]

# HubSpot has not published a date-versioned send-status path; every version polls v3's.
_SEND_STATUSES = "/marketing/v3/email/send-statuses"


@dataclass(frozen=True, slots=True)
class ApiPaths:
    """The paths of one API version."""

    version: str
    smtp_tokens: str
    single_send: str  # transactional single-send (v3 shape)
    marketing_single_send: str  # the v4 marketing single-send
    send_statuses: str = _SEND_STATUSES
    email_statistics: str = "/marketing/v3/emails/statistics"
    marketing_emails: str = "/marketing/v3/emails"
    # The legacy tracking APIs have one version only.
    email_events: str = "/email/public/v1/events"
    email_campaigns: str = "/email/public/v1/campaigns"


API_VERSIONS: dict[str, ApiPaths] = {
    "v3": ApiPaths(
        "v3",
        smtp_tokens="/marketing/v3/transactional/smtp-tokens",
        single_send="/marketing/v3/transactional/single-email/send",
        marketing_single_send="/marketing/v4/email/single-send",
    ),
    "2026-03": ApiPaths(
        "2026-03",
        smtp_tokens="/marketing/transactional/2026-03/smtp-tokens",
        single_send="/marketing/transactional/2026-03/single-email/send",
        marketing_single_send="/marketing/email-campaigns/2026-03/single-send",
        email_statistics="/marketing/emails/2026-03/statistics",
        marketing_emails="/marketing/emails/2026-03",
    ),
    # 2026-09 dates only the marketing single-send; the rest stays at 2026-03.
    "2026-09": ApiPaths(
        "2026-09",
        smtp_tokens="/marketing/transactional/2026-03/smtp-tokens",
        single_send="/marketing/transactional/2026-03/single-email/send",
        marketing_single_send="/marketing/email-campaigns/2026-09/single-send",
        email_statistics="/marketing/emails/2026-03/statistics",
        marketing_emails="/marketing/emails/2026-09",
    ),
}
