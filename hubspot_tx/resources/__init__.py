"""One module per HubSpot API area; each class is reached through a :class:`~hubspot_tx.HubSpot`."""

from .send_status import SendStatuses
from .single_send import SingleSend
from .smtp_tokens import SmtpTokens

__all__ = ["SendStatuses", "SingleSend", "SmtpTokens"]
