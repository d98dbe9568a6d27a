"""The sandbox's documented recipient rules: which address gets which outcome.

| address                                   | single-send ``sendResult``         |
|-------------------------------------------|------------------------------------|
| not ``local@domain``                      | ``INVALID_TO_ADDRESS``             |
| domain ``blocked.example`` (or subdomain) | ``BLOCKED_DOMAIN``                 |
| local part starting ``bounced``           | ``PREVIOUSLY_BOUNCED``             |
| local part starting ``spam``              | ``PREVIOUS_SPAM``                  |
| local part starting ``unsubscribed``      | ``PREVIOUSLY_UNSUBSCRIBED_MESSAGE``|
| local part ``sendresult-<value>``         | ``<value>``, any of HubSpot's 51   |
|   (e.g. ``sendresult-portal_suspended``)  |   (case-insensitive)               |
| anything else                             | ``SENT``                           |

A ``from`` override that is not ``local@domain`` gives ``INVALID_FROM_ADDRESS``.

Every message accepted over SMTP, and every single-send that completes, becomes email events for
its campaign (an SMTP token's ``emailCampaignId``; for a single-send, the email's
``primaryEmailCampaignId``, never its ``emailId``), one
``event_step`` apart (0.05 s by default), visible once their time has come:

| recipient                               | events                                      |
|-----------------------------------------|---------------------------------------------|
| domain ``blocked.example``              | PROCESSED, DROPPED                          |
| local part starting ``bounce``          | PROCESSED, SENT, BOUNCE (``HARD_BOUNCE``)   |
| local part starting ``defer``           | PROCESSED, SENT, DEFERRED, DELIVERED        |
| local part starting ``open``            | PROCESSED, SENT, DELIVERED, OPEN            |
| local part starting ``click``           | PROCESSED, SENT, DELIVERED, OPEN, CLICK     |
| local part starting ``bot``             | the same, OPEN and CLICK ``filteredEvent``  |
| anything else                           | PROCESSED, SENT, DELIVERED                  |

A single-send refused by the rules above the table (``sendResult`` other than ``SENT``) gives
PROCESSED, DROPPED with ``dropReason`` = its ``sendResult``; a duplicate ``sendId``,
``MISSING_CONTENT`` and ``MISSING_TEMPLATE_PROPERTIES`` give none.

Over SMTP, a tag in the recipient's local part decides how ``RCPT TO`` is answered, so that a
test can aim an error at one address:

| recipient                         | ``RCPT TO`` reply                                     |
|-----------------------------------|-------------------------------------------------------|
| ``name+bounce@...``               | 550 5.1.1, every time                                 |
| ``name+tempfail@...``             | 451 4.2.0 the first two times, then accepted          |
| ``name+tempfail<N>@...``          | 451 4.2.0 the first N times, then accepted            |
"""

from __future__ import annotations

from ..models.single_send import SendResult

__all__ = ["event_plan", "is_address", "is_filtered", "rcpt_rule", "single_send_result"]

_TEMPFAIL = "+tempfail"
_SEND_RESULT = "sendresult-"


def is_address(value: str) -> bool:
    """A deliberately simple ``local@domain`` check (no spaces, one ``@``, a dot in domain)."""
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and not any(c.isspace() for c in value))


def single_send_result(to: str, from_: str | None) -> SendResult:
    """The ``sendResult`` a single-send to ``to`` ends with."""
    if not is_address(to):
        return SendResult.INVALID_TO_ADDRESS
    if from_ is not None and not is_address(from_):
        return SendResult.INVALID_FROM_ADDRESS
    local, _, domain = to.lower().rpartition("@")
    if local.startswith(_SEND_RESULT):
        wanted = local[len(_SEND_RESULT) :].upper()
        if wanted in SendResult.__members__:
            return SendResult(wanted)
    if domain == "blocked.example" or domain.endswith(".blocked.example"):
        return SendResult.BLOCKED_DOMAIN
    if local.startswith("bounced"):
        return SendResult.PREVIOUSLY_BOUNCED
    if local.startswith("spam"):
        return SendResult.PREVIOUS_SPAM
    if local.startswith("unsubscribed"):
        return SendResult.PREVIOUSLY_UNSUBSCRIBED_MESSAGE
    return SendResult.SENT


def event_plan(recipient: str) -> tuple[str, ...]:
    """The events a delivered message to ``recipient`` goes through, in order."""
    local, _, domain = recipient.lower().rpartition("@")
    if domain == "blocked.example" or domain.endswith(".blocked.example"):
        return ("PROCESSED", "DROPPED")
    if local.startswith("bounce"):
        return ("PROCESSED", "SENT", "BOUNCE")
    if local.startswith("defer"):
        return ("PROCESSED", "SENT", "DEFERRED", "DELIVERED")
    if local.startswith("open"):
        return ("PROCESSED", "SENT", "DELIVERED", "OPEN")
    if local.startswith(("click", "bot")):
        return ("PROCESSED", "SENT", "DELIVERED", "OPEN", "CLICK")
    return ("PROCESSED", "SENT", "DELIVERED")


def is_filtered(recipient: str) -> bool:
    """Whether this recipient's opens and clicks are automated (HubSpot's ``filteredEvent``)."""
    return recipient.lower().startswith("bot")


def rcpt_rule(recipient: str, tempfails_so_far: int) -> tuple[int, str] | None:
    """The reply the address rules give to ``RCPT TO:<recipient>`` (``None``: accept), given
    how many 451s this address has had."""
    local = recipient.lower().rpartition("@")[0]
    if "+bounce" in local:
        return 550, f"5.1.1 <{recipient}>: mailbox unavailable (sandbox rule +bounce)"
    tag = local.find(_TEMPFAIL)
    if tag >= 0:
        digits = local[tag + len(_TEMPFAIL) :]
        count = int(digits) if digits.isdigit() else 2
        if tempfails_so_far < count:
            return 451, f"4.2.0 <{recipient}>: try again later (sandbox rule +tempfail)"
    return None
