"""One module per HubSpot API area; each class is reached through a :class:`~hubspot_tx.HubSpot`."""

from .marketing_emails import MarketingEmails
from .send_status import SendStatuses
from .single_send import SingleSend
from .smtp_tokens import SmtpTokens
from .tracking import Campaigns, Events, Statistics

__all__ = [
    "Campaigns",
    "Events",
    "MarketingEmails",
    "SendStatuses",
    "SingleSend",
    "SmtpTokens",
    "Statistics",
]
