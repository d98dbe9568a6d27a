"""HubSpot's paths for each API version this client speaks.

HubSpot publishes the same operations under the classic versioned paths (``/marketing/v3/...``)
and under date-versioned ones (``/marketing/transactional/2026-03/...``). One client option picks
the set. Each dated set uses, per API, the newest path HubSpot publishes at or before that date
(HubSpot-public-api-spec-collection): 2026-09 dates only the transactional single-send, the
email statistics and OAuth, so its SMTP tokens and marketing single-send stay at 2026-03. The
default is the newest dated set: HubSpot stops serving the v1-v4 paths in September 2027.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["API_VERSIONS", "DEFAULT_API_VERSION", "OAUTH_VERSIONS", "ApiPaths", "ApiVersion"]

ApiVersion = Literal["v3", "2026-03", "2026-09"]

DEFAULT_API_VERSION: ApiVersion = "2026-09"

# HubSpot's OAuth API besides v1's token endpoint: ``/oauth/{version}/token``, ``.../introspect``
# and ``.../revoke`` (HubSpot-public-api-spec-collection, Auth/Oauth).
OAUTH_VERSIONS = ("v3", "2026-03", "2026-09")

# HubSpot has not published a date-versioned send-status path; every version polls v3's.
_SEND_STATUSES = "/marketing/v3/email/send-statuses"


@dataclass(frozen=True, slots=True)
class ApiPaths:
    """The paths of one API version.

    ``dated``: the request bodies follow the dated schemas (``contactProperties``,
    ``customProperties`` and ``message.cc/bcc/replyTo`` are required there).
    """

    version: str
    dated: bool
    smtp_tokens: str
    single_send: str  # the transactional single-send
    marketing_single_send: str  # the marketing single-send (v4 and its dated twin)
    email_statistics: str
    oauth_token: str
    send_statuses: str = _SEND_STATUSES
    marketing_emails: str = "/marketing/v3/emails"
    # The legacy tracking APIs have one version only.
    email_events: str = "/email/public/v1/events"
    email_campaigns: str = "/email/public/v1/campaigns"


API_VERSIONS: dict[str, ApiPaths] = {
    "v3": ApiPaths(
        "v3",
        dated=False,
        smtp_tokens="/marketing/v3/transactional/smtp-tokens",
        single_send="/marketing/v3/transactional/single-email/send",
        marketing_single_send="/marketing/v4/email/single-send",
        email_statistics="/marketing/v3/emails/statistics",
        # /oauth/v1/token stops on 2027-02-16; v3 is its successor (2026-03's form and body).
        oauth_token="/oauth/v3/token",
    ),
    "2026-03": ApiPaths(
        "2026-03",
        dated=True,
        smtp_tokens="/marketing/transactional/2026-03/smtp-tokens",
        single_send="/marketing/transactional/2026-03/single-email/send",
        marketing_single_send="/marketing/email-campaigns/2026-03/single-send",
        email_statistics="/marketing/emails/2026-03/statistics",
        oauth_token="/oauth/2026-03/token",
        marketing_emails="/marketing/emails/2026-03",
    ),
    "2026-09": ApiPaths(
        "2026-09",
        dated=True,
        smtp_tokens="/marketing/transactional/2026-03/smtp-tokens",
        single_send="/marketing/transactional/2026-09/single-email/send",
        marketing_single_send="/marketing/email-campaigns/2026-09/single-send",
        email_statistics="/marketing/emails/2026-09/statistics",
        # HubSpot's 2026-09 OAuth spec takes 2026-03's form but documents no success body:
        # the client reads 2026-03's (AccessTokenResponse), the sandbox answers it.
        oauth_token="/oauth/2026-09/token",
        marketing_emails="/marketing/emails/2026-09",
    ),
}
