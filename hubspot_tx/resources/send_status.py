"""``GET /marketing/v3/email/send-statuses/{statusId}``: follow a send to its end."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from .._exceptions import SendStatusTimeout
from .._http import HTTPClient, Replay
from .._paths import API_VERSIONS, DEFAULT_API_VERSION, ApiPaths
from ..models.single_send import SendStatus, send_status_decoder

__all__ = ["SendStatuses"]


class SendStatuses:
    """Read a send's status, or wait until it is final."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._path = paths.send_statuses

    async def get(self, status_id: str | SendStatus) -> SendStatus:
        """Read the current status of a send (by id, or from the status ``send`` returned)."""
        sid = status_id.status_id if isinstance(status_id, SendStatus) else status_id
        if not sid:
            raise ValueError("status_id must not be empty")
        resp = await self._http.request(
            "GET", f"{self._path}/{quote(sid, safe='')}", replay=Replay.SAFE
        )
        return send_status_decoder.decode(resp.content)

    async def wait(
        self,
        status_id: str | SendStatus,
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.25,
        max_poll_interval: float = 5.0,
    ) -> SendStatus:
        """Poll until the send is ``COMPLETE`` or ``CANCELED`` and return that status.

        Polls start every ``poll_interval`` seconds and back off by 1.5x up to
        ``max_poll_interval``. Raises :class:`SendStatusTimeout` (carrying the last status
        seen) after ``timeout`` seconds.
        """
        if isinstance(status_id, SendStatus) and status_id.is_terminal:
            return status_id
        last: SendStatus | None = None
        interval = poll_interval
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                while True:
                    last = await self.get(status_id)
                    if last.is_terminal:
                        return last
                    await asyncio.sleep(interval)
                    interval = min(interval * 1.5, max_poll_interval)
        except TimeoutError:
            if not deadline.expired():
                raise  # an APITimeoutError of one poll, not our deadline
            sid = status_id.status_id if isinstance(status_id, SendStatus) else status_id
            state = last.status.value if last else "unknown"
            raise SendStatusTimeout(
                f"send {sid} still {state} after {timeout:g} s", last=last
            ) from None
