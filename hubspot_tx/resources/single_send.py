"""``POST /marketing/v3/transactional/single-email/send``: send a HubSpot-built email."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .._http import HTTPClient, Replay
from ..models.single_send import (
    SendStatus,
    SingleSendMessage,
    SingleSendRequest,
    send_status_decoder,
)

__all__ = ["SingleSend"]

PATH_V3 = "/marketing/v3/transactional/single-email/send"


def _addresses(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class SingleSend:
    """Send a transactional email built in HubSpot (a "single-send API" email)."""

    def __init__(self, http: HTTPClient) -> None:
        self._http = http

    async def send(
        self,
        *,
        email_id: int,
        to: str,
        from_: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        send_id: str | None = None,
        contact_properties: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> SendStatus:
        """Send email ``email_id`` to ``to`` and return its (usually ``PENDING``) status.

        HubSpot sends at most one email per ``send_id`` and account. When none is given one is
        generated, so the retries this call makes (on 429, 5xx, timeouts, dropped connections)
        can never send twice. If a retry finds the first attempt already went through, HubSpot
        answers with ``send_result`` ``IDEMPOTENT_IGNORE``: the email was sent once.
        Pass your own ``send_id`` (e.g. an order id) to extend that guarantee across processes.

        Poll the returned status with ``hs.send_status.wait(status.status_id)``.
        """
        if not to:
            raise ValueError("to must not be empty")
        if isinstance(email_id, bool) or not isinstance(email_id, int) or email_id <= 0:
            raise ValueError(f"email_id must be a positive int, got {email_id!r}")
        request = SingleSendRequest(
            email_id=email_id,
            message=SingleSendMessage(
                to=to,
                from_=from_,
                send_id=send_id or uuid.uuid4().hex,
                cc=_addresses(cc),
                bcc=_addresses(bcc),
                reply_to=_addresses(reply_to),
            ),
            contact_properties=dict(contact_properties) if contact_properties else None,
            custom_properties=dict(custom_properties) if custom_properties else None,
        )
        resp = await self._http.request(
            "POST", PATH_V3, json=msgspec.json.encode(request), replay=Replay.SAFE
        )
        return send_status_decoder.decode(resp.content)
