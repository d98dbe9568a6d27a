"""Single-send: a HubSpot-built email to one recipient (transactional v3, marketing v4, bulk)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._exceptions import AuthenticationError, HubSpotError, PermissionDeniedError, RateLimitError
from .._http import HTTPClient, Replay
from .._paths import API_VERSIONS, DEFAULT_API_VERSION, ApiPaths
from .._pipeline import Pipeline
from ..models.single_send import (
    SendStatus,
    SingleSendMessage,
    SingleSendRequest,
    encode_request,
    send_status_decoder,
)

__all__ = ["BulkSend", "BulkSendSummary", "SendOutcome", "SingleSend"]


def _addresses(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _with_send_id(request: SingleSendRequest) -> SingleSendRequest:
    """The request with a ``sendId`` (generated if absent), so that retries cannot resend."""
    if request.message.send_id:
        return request
    message = msgspec.structs.replace(request.message, send_id=uuid.uuid4().hex)
    return msgspec.structs.replace(request, message=message)


def _is_fatal(exc: Exception) -> bool:
    """Errors that every following request would meet too: stop the bulk send."""
    if isinstance(exc, RateLimitError):
        return exc.is_daily
    return isinstance(exc, AuthenticationError | PermissionDeniedError)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The one result of one request of a bulk send.

    Attributes:
        index: the request's position in the input.
        send_id: the ``sendId`` it was sent with (yours, or generated).
        status: the status HubSpot answered, when it did.
        error: the typed error otherwise (``None`` when ``status`` is set).
    """

    index: int
    send_id: str | None
    status: SendStatus | None = None
    error: HubSpotError | None = None

    @property
    def ok(self) -> bool:
        """True when HubSpot accepted the request (see ``status.send_result`` for the rest)."""
        return self.status is not None


@dataclass(slots=True)
class BulkSendSummary:
    """Counts of a bulk send so far."""

    consumed: int = 0
    accepted: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> int:
        return self.accepted + sum(self.failed.values())

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class BulkSend(Pipeline[SingleSendRequest, SendOutcome]):
    """The running bulk send returned by :meth:`SingleSend.send_many`; iterate it."""

    def __init__(
        self,
        single_send: SingleSend,
        requests: Iterable[SingleSendRequest] | AsyncIterable[SingleSendRequest],
        *,
        concurrency: int,
        marketing: bool,
        progress: Callable[[BulkSendSummary], None] | None,
        on_outcome: Callable[[SendOutcome], None] | None,
    ) -> None:
        self.summary = BulkSendSummary()
        self._progress = progress
        self._on_outcome = on_outcome
        path = (
            single_send._paths.marketing_single_send
            if marketing
            else single_send._paths.single_send
        )

        async def work(index: int, request: SingleSendRequest) -> SendOutcome:
            if not isinstance(request, SingleSendRequest):
                error = HubSpotError(f"not a SingleSendRequest: {type(request).__name__}")
                return self._report(SendOutcome(index, None, error=error))
            request = _with_send_id(request)
            try:
                status = await single_send._post(path, request)
            except HubSpotError as exc:
                if _is_fatal(exc):
                    raise
                return self._report(SendOutcome(index, request.message.send_id, error=exc))
            return self._report(SendOutcome(index, request.message.send_id, status=status))

        def abandoned(
            index: int, request: SingleSendRequest, exc: Exception, attempted: bool
        ) -> SendOutcome:
            send_id = request.message.send_id if isinstance(request, SingleSendRequest) else None
            error = exc if isinstance(exc, HubSpotError) else HubSpotError(str(exc))
            return self._report(SendOutcome(index, send_id, error=error))

        super().__init__(
            requests,
            work,
            concurrency=concurrency,
            fatal=_is_fatal,
            abandoned=abandoned,
            closed=lambda: HubSpotError("the bulk send was closed before this request was sent"),
            on_result=self._count,
        )

    def _report(self, outcome: SendOutcome) -> SendOutcome:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    def _count(self, outcome: SendOutcome) -> None:
        self.summary.consumed = self.consumed
        if outcome.ok:
            self.summary.accepted += 1
        else:
            name = type(outcome.error).__name__
            self.summary.failed[name] = self.summary.failed.get(name, 0) + 1
        if self._progress is not None:
            self._progress(self.summary)

    def _done(self) -> None:
        self.summary.consumed = self.consumed
        self.summary.finished = time.monotonic()


class SingleSend:
    """Send emails built in HubSpot: one (``send``, ``send_v4``) or many (``send_many``)."""

    def __init__(
        self, http: HTTPClient, paths: ApiPaths = API_VERSIONS[DEFAULT_API_VERSION]
    ) -> None:
        self._http = http
        self._paths = paths

    async def _post(self, path: str, request: SingleSendRequest) -> SendStatus:
        body = encode_request(request, dated=self._paths.dated)
        resp = await self._http.request("POST", path, json=body, replay=Replay.SAFE)
        return send_status_decoder.decode(resp.content)

    @staticmethod
    def build(
        *,
        email_id: int,
        to: str,
        from_: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        send_id: str | None = None,
        contact_properties: Mapping[str, str] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> SingleSendRequest:
        """A validated request (for :meth:`send_many`); ``send_id`` is generated if absent.

        ``contact_properties`` values must be strings (HubSpot's schema); ``custom_properties``
        values may be any JSON value.
        """
        if not to:
            raise ValueError("to must not be empty")
        for name, value in (
            ("to", to),
            ("from_", from_),
            ("cc", cc),
            ("bcc", bcc),
            ("reply_to", reply_to),
        ):
            for address in _addresses(value) or ():
                if any(ord(c) < 32 or c == "\x7f" for c in address):
                    raise ValueError(f"{name} contains a control character: {address!r}")
        if isinstance(email_id, bool) or not isinstance(email_id, int) or email_id <= 0:
            raise ValueError(f"email_id must be a positive int, got {email_id!r}")
        for key, prop in (contact_properties or {}).items():
            if not isinstance(prop, str):  # HubSpot's schema: string values only
                raise TypeError(
                    f"contact_properties[{key!r}] must be a str (HubSpot's schema), "
                    f"got {type(prop).__name__}"
                )
        return SingleSendRequest(
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
        contact_properties: Mapping[str, str] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> SendStatus:
        """Send transactional email ``email_id`` to ``to``; return its (usually ``PENDING``)
        status.

        HubSpot sends at most one email per ``send_id`` and account. When none is given one is
        generated, so the retries this call makes (on 429, 5xx, timeouts, dropped connections)
        can never send twice. If a retry finds the first attempt already went through, HubSpot
        answers with ``send_result`` ``IDEMPOTENT_IGNORE``: the email was sent once.
        Pass your own ``send_id`` (e.g. an order id) to extend that guarantee across processes.

        Poll the returned status with ``hs.send_status.wait(status)``.
        """
        request = self.build(
            email_id=email_id,
            to=to,
            from_=from_,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            send_id=send_id,
            contact_properties=contact_properties,
            custom_properties=custom_properties,
        )
        return await self._post(self._paths.single_send, request)

    async def send_v4(
        self,
        *,
        email_id: int,
        to: str,
        from_: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        send_id: str | None = None,
        contact_properties: Mapping[str, str] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> SendStatus:
        """Send through the **marketing** single-send API (``/marketing/v4/email/single-send``,
        or ``/marketing/email-campaigns/{2026-03,2026-09}/single-send`` under the dated versions).

        Unlike :meth:`send`, this is a marketing API: it needs Marketing Hub Enterprise (scope
        ``marketing-email`` or ``transactional-email``) and its recipients become marketing
        contacts. Same arguments, same ``send_id`` guarantee, same status to poll.
        """
        request = self.build(
            email_id=email_id,
            to=to,
            from_=from_,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            send_id=send_id,
            contact_properties=contact_properties,
            custom_properties=custom_properties,
        )
        return await self._post(self._paths.marketing_single_send, request)

    def send_many(
        self,
        requests: Iterable[SingleSendRequest] | AsyncIterable[SingleSendRequest],
        *,
        concurrency: int = 10,
        marketing: bool = False,
        progress: Callable[[BulkSendSummary], None] | None = None,
        on_outcome: Callable[[SendOutcome], None] | None = None,
    ) -> BulkSend:
        """Send many single-sends; iterate the result for one :class:`SendOutcome` each.

        Requests (built with :meth:`build`, or :class:`SingleSendRequest`) are read lazily,
        paced by the client's rate limiter, retried safely through their ``sendId``; memory
        stays bounded. An error every later request would meet too (401, 403, the daily
        limit) stops reading; every request taken still gets its outcome, then the error is
        raised. ``marketing=True`` uses the v4 marketing single-send. ``on_outcome`` receives
        every outcome as it is decided, including those of requests taken but not finished
        when the bulk send is closed early (a ledger hook).

        Example:
            >>> requests = (hs.single_send.build(email_id=1, to=a) for a in addresses)
            >>> async for outcome in hs.single_send.send_many(requests, concurrency=20):
            ...     record(outcome.send_id, outcome.ok)
        """
        return BulkSend(
            self,
            requests,
            concurrency=concurrency,
            marketing=marketing,
            progress=progress,
            on_outcome=on_outcome,
        )
