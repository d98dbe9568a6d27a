"""The sandbox's state, shared by its REST app, its SMTP server and its inspection API: in memory,
and written through to SQLite when the sandbox has a data directory (see ``_store.py``)."""

from __future__ import annotations

import asyncio
import base64
import bisect
import email
import email.policy
import hashlib
import hmac
import itertools
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from ..models.marketing_emails import EmailCreateRequest
from ..models.single_send import EventId, SendResult, SendState, SendStatus, SingleSendRequest
from ..models.smtp_tokens import SmtpToken
from ._emails import EmailBook, EmailRecord, missing_properties
from ._index import MessageIndex, read_headers
from ._rules import event_plan, single_send_result

if TYPE_CHECKING:
    from ._store import Store

__all__ = [
    "CursorError",
    "SandboxEvent",
    "SandboxState",
    "SendRecord",
    "StoredMessage",
    "TokenRecord",
]

DEFAULT_EMAIL_IDS = (12345678, 1001)
#: The domain of the Message-IDs the sandbox assigns to messages that came without one.
ASSIGNED_ID_DOMAIN = "assigned.sandbox.hubspot-tx.invalid"


def assigned_message_id(seq: int) -> str:
    """The Message-ID the sandbox gives message ``seq`` if it came without one."""
    return f"<{seq}.{secrets.token_hex(6)}@{ASSIGNED_ID_DOMAIN}>"


PORTAL_ID = 62515  # the sandbox's account (HubSpot's ``portalId`` / ``hubId``)

# Results of a send that never got as far as processing: no email events.
_NOT_PROCESSED = frozenset({SendResult.MISSING_CONTENT, SendResult.MISSING_TEMPLATE_PROPERTIES})


class CursorError(ValueError):
    """An ``after`` cursor that was not issued by this sandbox, or was altered."""


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.blake2b(password.encode(), key=salt, digest_size=32).digest()


@dataclass(slots=True)
class TokenRecord:
    """A token as the sandbox stores it: the password only as a keyed hash."""

    seq: int
    id: str
    campaign_name: str
    email_campaign_id: str
    create_contact: bool
    created_at: datetime
    created_by: str
    salt: bytes
    password_hash: bytes

    def view(self) -> SmtpToken:
        return SmtpToken(
            id=self.id,
            campaign_name=self.campaign_name,
            email_campaign_id=self.email_campaign_id,
            create_contact=self.create_contact,
            created_at=self.created_at,
            created_by=self.created_by,
        )


@dataclass(slots=True)
class SendRecord:
    """One accepted single-send request and the outcome it is heading for."""

    status_id: str
    request: SingleSendRequest
    requested_at: float
    result: SendResult
    duplicate: bool = False
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(slots=True, frozen=True)
class StoredMessage:
    """A message accepted over SMTP, exactly as received (append-only; never merged).

    ``arrival`` is 1 for the first message with its Message-ID, 2 for a duplicate, ...
    """

    seq: int
    received_at: float
    session_id: int
    token_id: str | None
    email_campaign_id: str | None
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    message_id: str | None
    """Its ``Message-ID`` header, or one the sandbox assigned (see ``message_id_assigned``)."""
    arrival: int
    subject: str | None = None
    """The ``Subject`` header, decoded (read once, at arrival)."""
    from_header: str | None = None
    """The ``From`` header, decoded."""
    to: tuple[str, ...] = ()
    """The addresses of the ``To`` and ``Cc`` headers."""
    message_id_assigned: bool = False
    """The message came without a Message-ID: ``message_id`` is the sandbox's (as a relay
    adds one), so that it gets its events like any other. ``data`` is left as received."""

    @property
    def message(self) -> EmailMessage:
        """The message parsed (``message["Subject"]``, ``message.get_body()`` ...)."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        if not isinstance(parsed, EmailMessage):  # policy.default always makes one
            raise TypeError("not an EmailMessage")
        return parsed


@dataclass(slots=True, frozen=True)
class SandboxEvent:
    """An email event for a campaign (``PROCESSED``, ``DELIVERED``, ``BOUNCE``, ...)."""

    seq: int
    id: str
    type: str
    recipient: str
    email_campaign_id: str | None
    created: float
    smtp_id: str | None = None
    send_id: str | None = None
    subject: str | None = None
    sent_by: tuple[str, float] | None = None  # the SENT event's (id, created)
    drop_reason: str | None = None


def _event_order(e: SandboxEvent) -> tuple[float, int]:
    return (e.created, e.seq)


def _created(e: SandboxEvent) -> float:
    return e.created


class SandboxState:
    """Tokens, single-sends and their statuses.

    Time comes from ``clock`` (seconds since the epoch) so tests may drive it. A send is
    ``PENDING`` for ``pending_seconds``, then ``PROCESSING`` for ``processing_seconds``, then
    ``COMPLETE`` with the result the recipient rules give.
    """

    def __init__(
        self,
        *,
        email_ids: Iterable[int] = DEFAULT_EMAIL_IDS,
        pending_seconds: float = 0.05,
        processing_seconds: float = 0.1,
        created_by: str = "sandbox@hubspot-tx.invalid",
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.emails = EmailBook(email_ids, clock())
        self.pending_seconds = pending_seconds
        self.processing_seconds = processing_seconds
        self.created_by = created_by
        self.clock = clock
        self.tokens: dict[str, TokenRecord] = {}
        self.sends: dict[str, SendRecord] = {}
        self._send_ids: dict[str, str] = {}
        self._seq = itertools.count(1)
        self._campaign_ids = itertools.count(14862038)
        self._cursor_key = secrets.token_bytes(32)
        self.messages: list[StoredMessage] = []
        self._message_seq = itertools.count(1)  # never reused, across resets and deletions
        self.arrivals: dict[str, int] = {}
        self.tempfails: dict[str, int] = {}  # ``+tempfail`` recipient -> 451s answered
        self.generation = 0  # bumped by every change an observer (the inbox) may show
        self._changed: asyncio.Event | None = None
        self.events: list[SandboxEvent] = []
        self.index = MessageIndex()
        self.events_by_message: dict[str, list[SandboxEvent]] = {}  # by ``smtp_id``
        self._timeline: list[SandboxEvent] = []  # by (created, seq): visible = a prefix
        # campaign -> event type -> creation times, sorted: visible counts by bisection
        self._event_times: dict[str, dict[str, list[float]]] = {}
        self.event_step = 0.05  # seconds between one message's successive events
        self.smtp_sessions_open = 0
        self.smtp_sessions_peak = 0
        self.smtp_sessions_total = 0
        self._session_ids = itertools.count(1)
        # OAuth: apps, refresh tokens, issued access tokens (token -> expiry on ``clock``)
        self.oauth_apps: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}
        self.oauth_scopes: dict[str, frozenset[str]] = {}  # client id / access token -> scopes
        self.oauth_clients: dict[str, str] = {}  # access token -> the client id it was granted to
        self.oauth_access_ttl = 1800.0
        self.oauth_refreshes = 0
        self.store = store
        if store is not None:
            store.load(self)
            self.reindex()

    def reindex(self) -> None:
        """Rebuild the message and event indexes from :attr:`messages` and :attr:`events`."""
        self.index.rebuild(self.messages)
        self.events_by_message.clear()
        self._event_times.clear()
        self._timeline.clear()
        for e in self.events:
            self._index_event(e)

    def _index_event(self, e: SandboxEvent) -> None:
        # Events come nearly in time order (a message's plan starts now): inserted near the end.
        bisect.insort(self._timeline, e, key=_event_order)
        if e.smtp_id is not None:
            self.events_by_message.setdefault(e.smtp_id, []).append(e)
        if e.email_campaign_id is not None:
            per_type = self._event_times.setdefault(e.email_campaign_id, {})
            bisect.insort(per_type.setdefault(e.type, []), e.created)  # at the end, mostly

    def campaign_event_counts(self) -> dict[str, dict[str, int]]:
        """Visible events by campaign and type (a bisection each, not a pass over events)."""
        now = self.clock()
        counts: dict[str, dict[str, int]] = {}
        for campaign, per_type in self._event_times.items():
            seen = {kind: n for kind, times in per_type.items() if (n := bisect.bisect(times, now))}
            if seen:
                counts[campaign] = seen
        return counts

    # -- change notification and reset ----------------------------------------------------------
    def changed(self) -> None:
        """Count a change and wake whoever waits for one (long polls of the inspection API)."""
        self.generation += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_changed(self, since: int, timeout: float) -> int:
        """Wait until :attr:`generation` passes ``since`` or ``timeout`` seconds pass."""
        if self.generation == since:
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            try:
                async with asyncio.timeout(timeout):
                    await event.wait()
            except TimeoutError:
                pass
        return self.generation

    def reset(self) -> None:
        """Forget every token, message, event and single-send (and their counters), in memory
        and on disk. Message ids keep counting up, so an id never names two messages."""
        self.tokens.clear()
        self.sends.clear()
        self._send_ids.clear()
        self.messages.clear()
        self.arrivals.clear()
        self.tempfails.clear()
        self.events.clear()
        self.emails.reset()
        self.index.clear()
        self.events_by_message.clear()
        self._event_times.clear()
        self._timeline.clear()
        self.smtp_sessions_peak = self.smtp_sessions_open
        self.smtp_sessions_total = self.smtp_sessions_open
        if self.store is not None:
            self.store.reset()
        self.changed()

    def message(self, seq: int) -> StoredMessage | None:
        """The stored message with id ``seq``, if it was not deleted."""
        return self.index.get(seq)

    def delete_messages(self, seqs: Iterable[int] | None = None) -> int:
        """Delete these messages (every message if ``None``); return how many went."""
        if seqs is None:
            gone = len(self.messages)
            self.messages.clear()
            self.index.clear()
        else:
            doomed = sorted({s for s in seqs if self.index.get(s) is not None})
            for seq in doomed:
                del self.messages[bisect.bisect_left(self.messages, seq, key=lambda m: m.seq)]
                self.index.discard(seq)
            gone = len(doomed)
            seqs = doomed
        if self.store is not None:
            self.store.delete_messages(None if seqs is None else list(seqs))
        self.changed()
        return gone

    def message_status(self, message_id: str | None) -> str:
        """The type of the latest visible event for this Message-ID, or ``ACCEPTED``."""
        now = self.clock()
        latest: SandboxEvent | None = None
        for e in self.events_by_message.get(message_id or "", ()):
            if e.created <= now and (latest is None or e.created >= latest.created):
                latest = e
        return "ACCEPTED" if latest is None else latest.type

    def message_events(self, message_id: str | None) -> list[SandboxEvent]:
        """The visible events for this Message-ID, oldest first."""
        now = self.clock()
        found = [e for e in self.events_by_message.get(message_id or "", ()) if e.created <= now]
        return sorted(found, key=lambda e: (e.created, e.seq))

    # -- OAuth --------------------------------------------------------------------------------
    def register_oauth_app(
        self, scopes: Iterable[str] = ("transactional-email",)
    ) -> tuple[str, str, str]:
        """A new app installation granted ``scopes``: (client id, client secret, refresh
        token)."""
        client_id = str(uuid.uuid4())
        secret = secrets.token_urlsafe(24)
        refresh = f"na1-{secrets.token_hex(16)}"
        self.oauth_apps[client_id] = secret
        self.refresh_tokens[refresh] = client_id
        self.oauth_scopes[client_id] = frozenset(scopes)
        return client_id, secret, refresh

    def _oauth_client_error(self, client_id: str, client_secret: str) -> str | None:
        """HubSpot's error status for these app credentials, ``None`` when they are right."""
        expected = self.oauth_apps.get(client_id)
        if expected is None:
            return "BAD_CLIENT_ID"
        if not hmac.compare_digest(expected.encode(), client_secret.encode()):
            return "BAD_CLIENT_SECRET"
        return None

    def refresh_oauth(
        self, client_id: str, client_secret: str, refresh_token: str
    ) -> tuple[str, float] | str:
        """Grant an access token: ``(token, ttl seconds)``, or HubSpot's error status."""
        error = self._oauth_client_error(client_id, client_secret)
        if error is not None:
            return error
        if self.refresh_tokens.get(refresh_token) != client_id:
            return "BAD_REFRESH_TOKEN"
        token = f"oauth-{secrets.token_hex(20)}"
        self.access_tokens[token] = self.clock() + self.oauth_access_ttl
        self.oauth_scopes[token] = self.oauth_scopes.get(client_id, frozenset())
        self.oauth_clients[token] = client_id
        self.oauth_refreshes += 1
        return token, self.oauth_access_ttl

    def introspect_oauth(
        self, client_id: str, client_secret: str, token: str
    ) -> dict[str, object] | str:
        """What HubSpot's ``token/introspect`` says of ``token`` (an access or refresh token
        of this app), or HubSpot's error status for the app credentials."""
        error = self._oauth_client_error(client_id, client_secret)
        if error is not None:
            return error
        common = {"active": True, "client_id": client_id, "app_id": 0, "hub_id": PORTAL_ID,
                  "user_id": 0}  # fmt: skip
        if self.refresh_tokens.get(token) == client_id:
            scopes = sorted(self.oauth_scopes.get(client_id, ()))
            return {**common, "token": token, "token_use": "refresh_token",
                    "token_type": "refresh", "scopes": scopes}  # fmt: skip
        if self.oauth_clients.get(token) == client_id and self.access_token_state(token) == "valid":
            return {**common, "token": token, "token_use": "access_token",
                    "token_type": "bearer", "scopes": sorted(self.oauth_scopes.get(token, ())),
                    "expires_in": int(self.access_tokens[token] - self.clock()),
                    "is_private_distribution": False}  # fmt: skip
        return {"active": False}

    def revoke_oauth(self, client_id: str, client_secret: str, token: str) -> str | None:
        """HubSpot's ``token/revoke``: end this app's refresh or access token (an unknown one
        is not an error, as in RFC 7009); HubSpot's error status for bad app credentials."""
        error = self._oauth_client_error(client_id, client_secret)
        if error is not None:
            return error
        if self.refresh_tokens.get(token) == client_id:
            del self.refresh_tokens[token]
        elif self.oauth_clients.get(token) == client_id:
            self.access_tokens.pop(token, None)
            del self.oauth_clients[token]
        return None

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke an installation's refresh token (later refreshes fail)."""
        self.refresh_tokens.pop(refresh_token, None)

    def access_token_state(self, token: str) -> str:
        """``"valid"``, ``"expired"`` or ``"unknown"`` for an OAuth access token."""
        expires = self.access_tokens.get(token)
        if expires is None:
            return "unknown"
        return "valid" if self.clock() < expires else "expired"

    # -- SMTP ---------------------------------------------------------------------------------
    def session_opened(self) -> int:
        """Count an SMTP session; return its id."""
        self.smtp_sessions_open += 1
        self.smtp_sessions_total += 1
        self.smtp_sessions_peak = max(self.smtp_sessions_peak, self.smtp_sessions_open)
        return next(self._session_ids)

    def session_closed(self) -> None:
        self.smtp_sessions_open -= 1

    def store_message(
        self,
        *,
        session_id: int,
        token_id: str | None,
        mail_from: str,
        rcpt_to: tuple[str, ...],
        data: bytes,
        message_id: str | None,
    ) -> StoredMessage:
        """Append an accepted message, and its events for the token's campaign. A message
        without a Message-ID gets one from the sandbox (its bytes stay as received)."""
        token = self.tokens.get(token_id) if token_id else None
        campaign = token.email_campaign_id if token else None
        now = self.clock()
        stored = self._append_message(
            session_id=session_id,
            token_id=token_id,
            campaign=campaign,
            mail_from=mail_from,
            rcpt_to=rcpt_to,
            data=data,
            message_id=message_id,
            now=now,
        )
        first_event = len(self.events)
        for rcpt in rcpt_to:
            self._add_events(rcpt, campaign, now, event_plan(rcpt), smtp_id=stored.message_id)
        if self.store is not None:
            self.store.add_message(stored, self.events[first_event:])
        self.changed()
        return stored

    def _append_message(
        self,
        *,
        token_id: str | None,
        campaign: str | None,
        mail_from: str,
        rcpt_to: tuple[str, ...],
        data: bytes,
        message_id: str | None,
        now: float,
        session_id: int = 0,
    ) -> StoredMessage:
        seq = next(self._message_seq)
        assigned = not message_id
        if not message_id:
            message_id = assigned_message_id(seq)
        arrival = self.arrivals.get(message_id, 0) + 1
        self.arrivals[message_id] = arrival
        headers = read_headers(data)
        stored = StoredMessage(
            seq=seq,
            received_at=now,
            session_id=session_id,
            token_id=token_id,
            email_campaign_id=campaign,
            mail_from=mail_from,
            rcpt_to=rcpt_to,
            data=data,
            message_id=message_id,
            arrival=arrival,
            subject=headers.subject,
            from_header=headers.from_,
            to=headers.to,
            message_id_assigned=assigned,
        )
        self.messages.append(stored)
        self.index.add(stored)
        return stored

    def _add_events(
        self,
        recipient: str,
        campaign: str | None,
        start: float,
        plan: tuple[str, ...],
        *,
        smtp_id: str | None = None,
        send_id: str | None = None,
        drop_reason: str | None = None,
    ) -> None:
        sent_by: tuple[str, float] | None = None
        for step, kind in enumerate(plan):
            created = start + step * self.event_step
            event = SandboxEvent(
                seq=len(self.events) + 1,
                id=str(uuid.uuid4()),
                type=kind,
                recipient=recipient,
                email_campaign_id=campaign,
                created=created,
                smtp_id=smtp_id,
                send_id=send_id,
                sent_by=sent_by if kind != "SENT" else None,
                drop_reason=drop_reason if kind == "DROPPED" else None,
            )
            self.events.append(event)
            self._index_event(event)
            if kind == "SENT":
                sent_by = (event.id, created)

    def visible_events(self) -> list[SandboxEvent]:
        """Events whose time has come, oldest first (a prefix of the kept order: no sort)."""
        return self._timeline[: self.visible_count()]

    def visible_count(self) -> int:
        """How many events have come due."""
        return bisect.bisect_right(self._timeline, self.clock(), key=_created)

    def iter_visible(self, count: int) -> Iterator[SandboxEvent]:
        """The first ``count`` events in time order, without copying them (an event comes in
        after those already due, so a long walk is not disturbed by new ones)."""
        return itertools.islice(self._timeline, count)

    def outbox(
        self,
        *,
        recipient: str | None = None,
        message_id: str | None = None,
        subject: str | None = None,
    ) -> list[StoredMessage]:
        """Stored messages, optionally for one recipient, one Message-ID or one subject."""
        found = self.messages
        if recipient is not None:
            needle = recipient.lower()
            found = [m for m in found if needle in (r.lower() for r in m.rcpt_to)]
        if message_id is not None:
            found = [m for m in found if m.message_id == message_id]
        if subject is not None:
            found = [m for m in found if m.subject == subject]
        return list(found)

    # -- tokens -------------------------------------------------------------------------------
    def create_token(self, campaign_name: str, create_contact: bool) -> tuple[TokenRecord, str]:
        """Create a token; return it and its password (which is not kept in clear)."""
        password = secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        record = TokenRecord(
            seq=next(self._seq),
            # HubSpot's token ids are SMTP user names: ``<hex>@<portalId>.smtp.hubspot.net``.
            id=f"{secrets.token_hex(8)}@{PORTAL_ID}.smtp.hubspot.net",
            campaign_name=campaign_name,
            email_campaign_id=str(next(self._campaign_ids)),
            create_contact=create_contact,
            created_at=datetime.fromtimestamp(self.clock(), UTC),
            created_by=self.created_by,
            salt=salt,
            password_hash=_hash_password(password, salt),
        )
        self.tokens[record.id] = record
        self._token_changed(record)
        return record, password

    def _token_changed(self, record: TokenRecord) -> None:
        if self.store is not None:
            self.store.save_token(record)
        self.changed()

    def reset_password(self, token_id: str) -> tuple[TokenRecord, str] | None:
        """Give the token a new password; the old one fails from now on."""
        record = self.tokens.get(token_id)
        if record is None:
            return None
        password = secrets.token_urlsafe(24)
        record.salt = secrets.token_bytes(16)
        record.password_hash = _hash_password(password, record.salt)
        self._token_changed(record)
        return record, password

    def check_login(self, token_id: str, password: str) -> TokenRecord | None:
        """The token if ``password`` is its current password (constant-time compare)."""
        record = self.tokens.get(token_id)
        if record is None:
            return None
        if not hmac.compare_digest(_hash_password(password, record.salt), record.password_hash):
            return None
        return record

    def delete_token(self, token_id: str) -> bool:
        if self.tokens.pop(token_id, None) is None:
            return False
        if self.store is not None:
            self.store.delete_token(token_id)
        self.changed()
        return True

    def list_tokens(
        self, *, campaign_name: str | None, email_campaign_id: str | None, after_seq: int
    ) -> Iterator[TokenRecord]:
        """Tokens in creation order after ``after_seq`` (keyset paging: deletions between
        pages neither repeat nor skip a token)."""
        for record in self.tokens.values():
            if record.seq <= after_seq:
                continue
            if campaign_name is not None and record.campaign_name != campaign_name:
                continue
            if email_campaign_id is not None and record.email_campaign_id != email_campaign_id:
                continue
            yield record

    # -- cursors ------------------------------------------------------------------------------
    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._cursor_key, payload, hashlib.sha256).digest()[:12]

    def make_cursor(self, seq: int, scope: str) -> str:
        """An opaque cursor: the last seq seen, bound to the listing's filters, signed."""
        payload = f"{seq}:{scope}".encode()
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode().rstrip("=")

    def read_cursor(self, cursor: str, scope: str) -> int:
        """The seq inside ``cursor``; :class:`CursorError` if forged, altered or re-scoped."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raise CursorError("malformed cursor") from None
        payload, mac = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(mac, self._mac(payload)):
            raise CursorError("cursor was altered or not issued by this server")
        seq, _, cursor_scope = payload.decode().partition(":")
        if cursor_scope != scope:
            raise CursorError("cursor belongs to a listing with other filters")
        return int(seq)

    # -- marketing emails ---------------------------------------------------------------------
    def create_email(self, request: EmailCreateRequest) -> EmailRecord:
        """Store a new marketing email, with its own email campaign id."""
        record = self.emails.create(request, self.clock())
        self._email_changed(record)
        return record

    def publish_email(self, record: EmailRecord) -> None:
        """Publish ``record``: single-sends of it go out from now on."""
        self.emails.publish(record, self.clock())
        self._email_changed(record)

    def _email_changed(self, record: EmailRecord) -> None:
        if self.store is not None:
            self.store.save_email(record)
        self.changed()

    # -- single-send --------------------------------------------------------------------------
    def single_send(self, request: SingleSendRequest) -> SendRecord:
        """Accept a send. A ``sendId`` seen before sends nothing and ends ``IDEMPOTENT_IGNORE``;
        an unknown or unpublished email ends ``MISSING_CONTENT``; a placeholder the request's
        properties leave unfilled ends ``MISSING_TEMPLATE_PROPERTIES``. A send that goes out
        lands in the outbox rendered, and its events are keyed by the email's campaign id."""
        status_id = str(uuid.uuid4())
        message = request.message
        send_id = message.send_id
        custom = request.custom_properties or {}
        contact = request.contact_properties or {}
        duplicate = send_id is not None and send_id in self._send_ids
        email_record = self.emails.get(request.email_id)
        if duplicate:
            result = SendResult.IDEMPOTENT_IGNORE
        elif email_record is None or not email_record.published:
            result = SendResult.MISSING_CONTENT
        elif missing_properties(email_record.templates(), custom, contact):
            result = SendResult.MISSING_TEMPLATE_PROPERTIES
        else:
            result = single_send_result(message.to, message.from_)
        rendered = None
        if email_record is not None and result.is_sent:  # rendered before the clock is read
            rendered = email_record.render(
                to=message.to,
                from_=message.from_,
                cc=message.cc or (),
                bcc=message.bcc or (),
                reply_to=message.reply_to or (),
                custom=custom,
                contact=contact,
                when=self.clock(),
            )
        record = SendRecord(status_id, request, self.clock(), result, duplicate)
        self.sends[status_id] = record
        if send_id is not None and not duplicate:
            self._send_ids[send_id] = status_id
        first_event = len(self.events)
        stored: StoredMessage | None = None
        if email_record is not None and not duplicate and result not in _NOT_PROCESSED:
            completed = record.requested_at + self.pending_seconds + self.processing_seconds
            campaign = email_record.campaign_ids[0]
            smtp_id = None
            if rendered is not None:
                stored = self._append_message(
                    token_id=None,
                    campaign=campaign,
                    mail_from=rendered.mail_from,
                    rcpt_to=rendered.rcpt_to,
                    data=rendered.data,
                    message_id=rendered.message_id,
                    now=record.requested_at,
                )
                smtp_id = rendered.message_id
            plan = event_plan(message.to) if result.is_sent else ("PROCESSED", "DROPPED")
            reason = None if result.is_sent else result.value
            self._add_events(
                message.to,
                campaign,
                completed,
                plan,
                smtp_id=smtp_id,
                send_id=send_id,
                drop_reason=reason,
            )
        if self.store is not None:
            if stored is not None:
                self.store.add_message(stored, ())
            self.store.add_send(record, self.events[first_event:])
        self.changed()
        return record

    @property
    def sent_emails(self) -> list[SendRecord]:
        """Single-sends that really went out (duplicates and refusals excluded)."""
        return [r for r in self.sends.values() if not r.duplicate]

    def send_status(self, record: SendRecord) -> SendStatus:
        """The status of ``record`` now, moving PENDING -> PROCESSING -> COMPLETE with time."""
        requested = record.requested_at
        started = requested + self.pending_seconds
        completed = started + self.processing_seconds
        now = self.clock()

        def at(t: float) -> datetime:
            return datetime.fromtimestamp(t, UTC)

        if record.duplicate or now >= completed:
            done = requested if record.duplicate else completed
            return SendStatus(
                status_id=record.status_id,
                status=SendState.COMPLETE,
                send_result=record.result,
                requested_at=at(requested),
                started_at=at(min(started, done)),
                completed_at=at(done),
                event_id=EventId(id=record.event_id, created=at(done))
                if record.result.is_sent
                else None,
                message=None
                if record.result.is_sent
                else f"not sent: {record.result.value} (sandbox rule)",
            )
        if now >= started:
            return SendStatus(
                status_id=record.status_id,
                status=SendState.PROCESSING,
                requested_at=at(requested),
                started_at=at(started),
            )
        return SendStatus(
            status_id=record.status_id, status=SendState.PENDING, requested_at=at(requested)
        )
