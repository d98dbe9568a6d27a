"""One module per HubSpot API area; each class is reached through a :class:`~hubspot_tx.HubSpot`."""

from .send_status import SendStatuses
from .single_send import SingleSend
from .smtp_tokens import SmtpTokens
from .tracking import Campaigns, Events, Statistics

__all__ = ["Campaigns", "Events", "SendStatuses", "SingleSend", "SmtpTokens", "Statistics"]
