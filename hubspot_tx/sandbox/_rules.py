"""The sandbox's documented recipient rules: which address gets which outcome.

| address                                   | single-send ``sendResult``         |
|-------------------------------------------|------------------------------------|
| not ``local@domain``                      | ``INVALID_TO_ADDRESS``             |
| domain ``blocked.example`` (or subdomain) | ``BLOCKED_DOMAIN``                 |
| local part starting ``bounced``           | ``PREVIOUSLY_BOUNCED``             |
| local part starting ``spam``              | ``PREVIOUS_SPAM``                  |
| local part starting ``unsubscribed``      | ``PREVIOUSLY_UNSUBSCRIBED_MESSAGE``|
| anything else                             | ``SENT``                           |

A ``from`` override that is not ``local@domain`` gives ``INVALID_FROM_ADDRESS``.

Messages relayed over SMTP are accepted for every recipient (unless a fault says otherwise) and
become events per recipient: ``PROCESSED``, then ``BOUNCE`` for a local part starting
``bounce``, ``DROPPED`` for ``blocked.example``, else ``DELIVERED``.
"""

from __future__ import annotations

from ..models.single_send import SendResult

__all__ = ["is_address", "single_send_result", "smtp_delivery_event"]


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
    if domain == "blocked.example" or domain.endswith(".blocked.example"):
        return SendResult.BLOCKED_DOMAIN
    if local.startswith("bounced"):
        return SendResult.PREVIOUSLY_BOUNCED
    if local.startswith("spam"):
        return SendResult.PREVIOUS_SPAM
    if local.startswith("unsubscribed"):
        return SendResult.PREVIOUSLY_UNSUBSCRIBED_MESSAGE
    return SendResult.SENT


def smtp_delivery_event(recipient: str) -> str:
    """The event type that follows ``PROCESSED`` for a message relayed to ``recipient``."""
    local, _, domain = recipient.lower().rpartition("@")
    if domain == "blocked.example" or domain.endswith(".blocked.example"):
        return "DROPPED"
    if local.startswith("bounce"):
        return "BOUNCE"
    return "DELIVERED"
