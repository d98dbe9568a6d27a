"""The SMTP connection pool: :class:`SmtpPool` sends one message or a stream of them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from .. import _env
from .._exceptions import InvalidMessageError, PoolClosedError, SmtpConnectError, SmtpError
from ._connection import (
    FINAL_REPLY_TIMEOUT,
    HIGH_WATER,
    QUEUED,
    Connection,
    ConnectionLost,
    Job,
    Settings,
    TlsMode,
    Transaction,
    Unsendable,
    ehlo_name,
)
from ._wire import WireClosed
from .credentials import SmtpCredentials
from .envelope import MessageInput, Prepared, prepare_for_wire
from .outcome import (
    FailureCategory,
    InvalidReason,
    Outcome,
    OutcomeStatus,
    RecipientRefusal,
    RelaySummary,
)
from .relay import Relay

__all__ = ["HOSTS", "SmtpPool", "SmtpRetry"]

logger = logging.getLogger("hubspot_tx.smtp")

HOSTS = {"na": "smtp.hubapi.com", "eu": "smtp-eu1.hubapi.com"}
"""HubSpot's SMTP hosts by region (``region="eu"`` for EU-hosted accounts)."""
DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "implicit": 465, "none": 25}


@dataclass(frozen=True, slots=True)
class SmtpRetry:
    """How a message is retried when the server certainly did not accept it.

    Attributes:
        max_attempts: transactions (or connection attempts) per message, the first included.
        initial_backoff: the first wait, doubled per retry, jittered.
        max_backoff: the cap of one wait.
    """

    max_attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def backoff(self, retry: int) -> float:
        base = min(self.initial_backoff * (2.0**retry), self.max_backoff)
        return base * (0.5 + random.random() / 2)


class SmtpPool:
    """A pool of authenticated SMTP sessions to HubSpot (or any SMTP server).

    Sessions open lazily up to ``max_connections``, are reused, checked with NOOP after
    ``health_check_after`` idle seconds, closed after ``idle_timeout`` idle seconds, and replaced
    after a 421, a lost connection or ``max_messages_per_connection`` messages.

    Example:
        >>> async with SmtpPool(credentials=SmtpCredentials.from_token(token)) as pool:
        ...     outcome = await pool.send(message)
        ...     async for outcome in pool.send_many(messages, concurrency=10):
        ...         ...

    Every argument left out is read from the same variables as the CLI's (``hubspot-tx
    --help``), so the line ``hubspot-tx sandbox`` prints points ``SmtpPool()`` at the sandbox.

    Args:
        host: the server; default ``$HUBSPOT_SMTP_HOST``, else HubSpot's for ``region``.
        port: default ``$HUBSPOT_SMTP_PORT``, else 587 for ``starttls``, 465 for ``implicit``,
            25 for ``none`` (HubSpot also offers STARTTLS on 25). An argument always wins over
            the environment: with ``host`` or ``region`` given, ``$HUBSPOT_SMTP_HOST`` and
            ``$HUBSPOT_SMTP_PORT`` (which name another server) are not read.
        credentials: the SMTP token id and password. When neither it nor ``host`` is given:
            ``$HUBSPOT_SMTP_USER`` and ``$HUBSPOT_SMTP_PASSWORD`` if set (a login from the
            environment never goes to a host named in code); else no AUTH.
        tls: ``"starttls"`` (required, never downgraded), ``"implicit"``, or ``"none"``.
        region: ``"na"`` (smtp.hubapi.com) or ``"eu"`` (smtp-eu1.hubapi.com); default
            ``$HUBSPOT_SMTP_HOST`` when set, else ``"na"``.
        ssl_context: trust for TLS; default the system's store plus ``$HUBSPOT_CA_FILE`` when
            set, verified.
        command_timeout: the wait for each reply before the data; while a large message is
            uploaded, the longest the server may go without taking a byte of it (at most
            RFC 5321's 3 minutes): a slow upload takes as long as it needs, a dead one fails
            (before its final ".", so it is retried).
        final_reply_timeout: the wait for the reply to the final ".", from when the data has
            left (RFC 5321's 10 minutes by default). A message whose reply does not come in
            time ends ``delivery_unknown``.
        allow_plaintext_auth: allow AUTH over an unencrypted session (never by default).
        local_hostname: the name to greet with (EHLO); default this host's FQDN, else its
            address literal (``[192.0.2.1]``), as RFC 5321 4.1.4 asks.
        on_outcome: called with every outcome, including those of cancelled ``send`` calls.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        credentials: SmtpCredentials | None = None,
        tls: TlsMode = "starttls",
        region: Literal["na", "eu"] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
        max_messages_per_connection: int = 1000,
        idle_timeout: float = 60.0,
        health_check_after: float = 5.0,
        connect_timeout: float = 15.0,
        command_timeout: float = 30.0,
        final_reply_timeout: float = FINAL_REPLY_TIMEOUT,
        retry: SmtpRetry | None = None,
        allow_plaintext_auth: bool = False,
        local_hostname: str | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        if tls not in DEFAULT_PORTS:
            raise ValueError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
        if region is not None and region not in HOSTS:
            raise ValueError(f"region must be one of {sorted(HOSTS)}, not {region!r}")
        if max_connections < 1 or max_messages_per_connection < 1:
            raise ValueError("max_connections and max_messages_per_connection must be >= 1")
        ca_file = None if ssl_context else _env.get(_env.CA_FILE)
        # The variables name one server (host and port): a host or region given in code names
        # another, so neither variable applies to it.
        from_env = host is None and region is None
        env_host = _env.get(_env.SMTP_HOST) if from_env else None
        env_port = _env.smtp_port() if from_env else None
        self.settings = Settings(
            host=host or env_host or HOSTS[region or "na"],
            port=port or env_port or DEFAULT_PORTS[tls],
            tls=tls,
            # No trust store for a plaintext pool: loading the system's takes tens of ms.
            ssl_context=ssl_context or (_env.ssl_context() if tls != "none" else None),
            tls_advice=_env.tls_advice(ca_file, custom_context=ssl_context is not None),
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            final_reply_timeout=final_reply_timeout,
            local_hostname=local_hostname,
            allow_plaintext_auth=allow_plaintext_auth,
        )
        if credentials is None and host is None:
            # The login from the environment goes only to the server from the environment (or
            # HubSpot's), never to a host named in code.
            credentials = _env.smtp_credentials()
        self._credentials = credentials
        self._generation = 0
        self.max_connections = max_connections
        self.max_messages_per_connection = max_messages_per_connection
        self.idle_timeout = idle_timeout
        self.health_check_after = health_check_after
        self.retry = retry or SmtpRetry()
        self.on_outcome = on_outcome
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[Connection] = deque()
        self._busy: set[Connection] = set()
        self._lanes: list[Connection] = []  # busy PIPELINING sessions that queue messages
        self._closers: set[asyncio.Task[None]] = set()  # lanes closing in the background
        self._slot_waiters = 0  # attempts that cannot use a lane, waiting for a slot
        self._changed = asyncio.Event()  # pulsed when a lane opens or a slot is freed
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False  # no new messages
        self._aborted = False  # no more attempts
        self._relays: weakref.WeakSet[Relay] = weakref.WeakSet()
        self._chained: list[tuple[_Chain, Job, Transaction]] = []  # see ``_chain_later``

    # -- configuration ------------------------------------------------------------------------
    @property
    def credentials(self) -> SmtpCredentials | None:
        return self._credentials

    def set_credentials(self, credentials: SmtpCredentials) -> None:
        """Use new credentials (e.g. after a password reset) for every new session.

        Sessions opened with the old ones finish the message they carry, then close (idle ones
        close when next picked up, or with the pool).
        """
        self._credentials = credentials
        self._generation += 1

    @property
    def open_connections(self) -> int:
        """Sessions open now (idle and busy)."""
        return len(self._idle) + len(self._busy)

    # -- sessions -----------------------------------------------------------------------------
    async def _checkout(self, slot: _Slot) -> Connection:
        """A ready session; the caller holds ``slot``.

        Sessions are closed while their slot is held, so that the server never sees more than
        ``max_connections`` sessions, even while one is being replaced. The idle list is in
        order of use: when the most recent session is stale, the older ones are too, and they
        are dropped together, not probed (or QUIT) one after another at a timeout each.
        """
        loop = asyncio.get_running_loop()
        timeout = self.settings.command_timeout
        idle = self._idle
        while idle:
            # First the session handed back earliest whose data still waits for its send:
            # these commands then leave with that data, in one send. Else the most recently
            # used, the likeliest to be alive.
            conn = next((c for c in idle if c.holding), None) or idle[-1]
            idle.remove(conn)
            idle_for = loop.time() - conn.last_used
            if not conn.reusable or conn.closed:  # e.g. a 421 or a lost reply while idle
                conn.retire()
                continue
            if conn.generation != self._generation or idle_for > self.idle_timeout:
                older, self._idle = [conn, *self._idle], deque()  # older credentials or idler
                await asyncio.gather(*(c.close(timeout) for c in older))
                break
            if idle_for > self.health_check_after:
                try:
                    alive = await conn.noop(timeout)
                except BaseException:  # cancelled mid-NOOP: the session is out of sync
                    self._retire(conn, slot)
                    raise
                if not alive:
                    conn.abort()
                    older, self._idle = list(self._idle), deque()  # idle longer still
                    for stale in older:
                        stale.retire()  # after any reply still owed on it
                    break
            self._busy.add(conn)
            return conn
        if self.settings.local_hostname is None:
            name = await ehlo_name(self.settings.connect_timeout)
            self.settings = dataclasses.replace(self.settings, local_hostname=name)
        conn = await Connection.open(self.settings, self._credentials, self._generation)
        self._busy.add(conn)
        return conn

    async def _checkin(self, conn: Connection) -> None:
        """Return a session to the idle list, or close it (under the caller's slot)."""
        self._busy.discard(conn)
        if (
            conn.reusable
            and not self._closing
            and conn.generation == self._generation
            and conn.messages < self.max_messages_per_connection
        ):
            conn.last_used = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            await conn.close(self.settings.command_timeout)  # closes even if cancelled

    def _discard(self, conn: Connection) -> None:
        self._busy.discard(conn)
        conn.abort()

    def _retire(self, conn: Connection, slot: _Slot) -> None:
        """Give up a session mid-transaction without cutting off the reply it still owes to
        the message ahead (with PIPELINING, the reply to that message's final "."). Its slot
        is freed once it is gone: the server never sees more than ``max_connections``."""
        self._busy.discard(conn)
        slot.handed_off = True
        conn.retire(slot.release)

    # -- sending ------------------------------------------------------------------------------
    async def send(
        self,
        message: MessageInput,
        *,
        key: str | None = None,
        before_data: Callable[[], Awaitable[None]] | None = None,
        before_mail: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Send one message and return its outcome (never raising for a refused message).

        ``before_data``, if given, is awaited in every transaction after the server's 354 and
        before any byte of the message is written (e.g. to record, before the message may reach
        the server, that it may have). If it raises, the session is dropped, nothing of the
        message was written in that transaction, and the exception propagates (no outcome).
        ``before_mail``, if given, is awaited in every transaction once its session is ready,
        before MAIL (e.g. to pace messages as they start, never inside DATA); if it raises,
        nothing of the transaction was sent, the session is kept, and the exception propagates.

        Raises:
            SmtpAuthError, SmtpTLSError, InsecureAuthError: fatal, nothing was sent.
            PoolClosedError: the pool is closed or closing.
        """
        return await self._send(
            message, key=key, index=None, before_data=before_data, before_mail=before_mail
        )

    async def _send(
        self,
        message: MessageInput,
        *,
        key: str | None,
        index: int | None,
        relayed: Relay | None = None,
        before_data: Callable[[], Awaitable[None]] | None = None,
        before_mail: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """``relayed``: the relay this message comes from, which the read that brings its final
        reply may hand the next message (see :class:`_Chain`)."""
        # A relay's messages were taken before the pool began closing: they may still go
        # out while it drains; new callers may not.
        if self._closing and relayed is None:
            raise PoolClosedError("the SMTP pool is closed")
        self._in_flight += 1
        self._drained.clear()
        try:
            first = self._prepare(message, key, index)
            if isinstance(first, Outcome):
                return first
            if relayed is None:
                return await self._deliver(first, index, None, before_data, before_mail)
            return await self._relay(first, index, message, relayed)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

    async def _relay(
        self, prepared: Prepared, index: int | None, message: MessageInput, relay: Relay
    ) -> Outcome:
        """Send a relay's message, and those its chain goes on with: the outcome of the last
        (each one before it was handed to the relay's reader)."""
        chain = _Chain(self, relay, index, message)
        try:
            outcome = await self._deliver(prepared, index, chain)
            while chain.carry is not None:
                # The chain took a message that no lane takes (a large one): this task sends
                # it, after handing on the outcome of the one before.
                await relay.put(outcome)
                prepared, chain.index, chain.message = chain.carry
                chain.carry = None
                outcome = await self._deliver(prepared, chain.index, chain)
            return outcome
        except SmtpError as exc:
            if not exc.fatal or chain.index == index or chain.index is None:
                raise
            # The relay's error stops it; the message this task is at gets its result (the
            # one it began with was handed on long ago).
            return relay.fail(chain.index, chain.message, exc)
        except BaseException:
            if chain.carry is not None:  # taken, never started
                prepared, at, _ = chain.carry
                env = prepared.env
                self._report(
                    _Result(env.key, prepared.message_id, at, list(env.rcpt_to)).interrupted()
                )
            raise

    def _prepare(
        self, message: MessageInput, key: str | None, index: int | None
    ) -> Prepared | Outcome:
        """The message made ready for the wire, or its (reported) outcome if it cannot be."""
        try:
            return prepare_for_wire(message, key=key)
        except Exception as exc:  # whatever cannot be parsed or flattened cannot be sent
            message_id = None
            if isinstance(exc, InvalidMessageError):
                text, why = str(exc), exc.reason
                key, message_id = exc.key if key is None else key, exc.message_id
            else:
                text = f"{type(exc).__name__}: {exc}"
                why = InvalidReason.NOT_A_MESSAGE if isinstance(exc, TypeError) else None
            return self._report(
                Outcome(
                    key=key,
                    status=OutcomeStatus.FAILED,
                    category=FailureCategory.INVALID_MESSAGE,
                    reply=text,
                    index=index,
                    message_id=message_id,
                    reason=why or InvalidReason.UNREADABLE,
                )
            )

    async def _deliver(
        self,
        prepared: Prepared,
        index: int | None,
        chain: _Chain | None,
        before_data: Callable[[], Awaitable[None]] | None = None,
        before_mail: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Send a prepared message, with its retries: its outcome (reported). With ``chain``,
        that of the last message of the chain (each message before it was handed on)."""
        env = prepared.env
        result = _Result(env.key, prepared.message_id, index, list(env.rcpt_to))
        if chain is not None:
            chain.prepared, chain.result = prepared, result
        try:
            while True:
                result.attempts += 1
                outcome = await self._attempt(prepared, result, before_data, before_mail, chain)
                if chain is not None:  # the chain may have moved on to a later message
                    prepared, result = chain.prepared, chain.result
                if outcome is None and self._aborted:
                    result.last = (None, "not sent: the pool was closed before a retry")
                    outcome = result.failed(FailureCategory.CANCELLED)
                if outcome is None and result.attempts >= self.retry.max_attempts:
                    outcome = result.exhausted()
                if outcome is not None:
                    return self._report(outcome)
                await asyncio.sleep(self.retry.backoff(result.attempts - 1))
        except SmtpError as exc:
            if chain is not None:
                result = chain.result
            if not (exc.fatal and result.accepted):
                raise
            # Some recipients have it already: their outcome must say so (a resume or retry
            # must never send it to them again). The error stops the next message instead.
            return self._report(result.stopped(exc))
        except asyncio.CancelledError:
            if chain is not None:
                result = chain.result
            # One exact outcome even now: the one decided before the cancellation reached us,
            # else what the transaction got to.
            self._report(result.final or result.interrupted())
            raise

    async def _attempt(
        self,
        prepared: Prepared,
        result: _Result,
        before_data: Callable[[], Awaitable[None]] | None = None,
        before_mail: Callable[[], Awaitable[None]] | None = None,
        chain: _Chain | None = None,
    ) -> Outcome | None:
        """One transaction: the final outcome, or ``None`` when it may be retried. With
        ``chain``, those of the message the chain is at when it returns."""
        small = before_data is None and before_mail is None and len(prepared.stuffed) < HIGH_WATER
        while small:
            if (lane := self._lane()) is not None:
                return await self._on_lane(lane, prepared, result, chain)
            if not self._slots.locked() or self._aborted:
                break  # a slot is free: taken at once
            # Every slot is taken and no lane takes more now (its session is still opening or
            # spent, or a message that needs a slot of its own holds lanes back): wait until a
            # lane opens or a slot is freed, then look again. Not in the semaphore's queue:
            # there, a message would wait for a lane to run dry, which a busy relay never
            # lets happen.
            await self._changed.wait()
        if self._slots.locked() and not small:
            # Counted: while a message that needs a session of its own (large, or with a
            # hook) waits for a slot, no message queues on a lane (``_lane``): lanes run dry
            # and give their slots back, and it is not starved by a busy relay.
            self._slot_waiters += 1
            try:
                await self._slots.acquire()
            finally:
                self._slot_waiters -= 1
        else:
            await self._slots.acquire()
        slot = _Slot(self._slots, self._changed)
        conn: Connection | None = None
        handed = False  # the slot and session went to ``_on_lane``, which gives them back
        try:
            if self._aborted:
                result.attempts -= 1  # not attempted: the pool closed while it waited
                return None
            conn = await self._checkout(slot)
            if before_mail is not None:
                await before_mail()  # the session is ready and idle: nothing of it is sent yet
            if small:
                # A small message: the session becomes a lane (it keeps the slot while jobs
                # run on it), driven from the reads.
                session, conn, handed = conn, None, True
                self._open_lane(session, slot)
                return await self._on_lane(session, prepared, result, chain)
            tx = await conn.transact(
                prepared,
                result.pending,
                self.settings.command_timeout,
                final_timeout=self.settings.final_reply_timeout,
                before_data=before_data,
            )
        except SmtpConnectError as exc:
            if exc.fatal:
                raise
            result.last = (exc.code, str(exc))
            result.retry_category = FailureCategory.CONNECTION
            return None
        except Unsendable as exc:
            result.last = (None, str(exc))
            result.reason = exc.why
            result.final = result.failed(FailureCategory.INVALID_MESSAGE)
            return result.final
        except ConnectionLost as exc:  # raised by transact(): conn is set
            if conn is not None:
                self._discard(conn)
                conn = None
            return self._lost(exc, result)
        except asyncio.CancelledError:
            if conn is not None:  # mid-transaction: the session is out of sync
                result.dot_written = conn.dot_written
                self._retire(conn, slot)
                conn = None
            raise
        else:
            if tx.pending is None:
                result.final = result.apply(tx)
                result.retry_category = FailureCategory.TEMPORARY_EXHAUSTED
                return result.final
            session = conn  # the reply to the final "." is read with the session given back
            # From here on the message may have gone out, whatever happens (a cancellation
            # while the session is checked in, or while its reply is awaited).
            result.dot_written = True
        finally:
            if not handed:
                try:
                    if conn is not None:
                        await self._checkin(conn)
                finally:
                    if not slot.handed_off:
                        slot.release()
        # PIPELINING: the next message's commands may already follow this one's data on the
        # session; this message's own reply arrives in the same round trip as theirs.
        try:
            tx = await session.finish(tx)
        except ConnectionLost as exc:
            if session in self._idle:  # dropped while idle: never hand it out again
                self._idle.remove(session)
            return self._lost(exc, result)
        result.dot_written = False  # answered: a retry after a 4xx starts from "not sent"
        result.final = result.apply(tx)
        result.retry_category = FailureCategory.TEMPORARY_EXHAUSTED
        return result.final

    # -- lanes: PIPELINING sessions that queue messages (see ``Connection.submit``) ----------
    def _lane(self) -> Connection | None:
        """A lane to queue a message on now, or ``None`` to take a slot instead. A lane with
        nothing queued first; else, while a slot is free, ``None`` (another session, idle or
        new, takes it); else the least busy lane."""
        if not self._lanes or self._aborted or self._slot_waiters:
            return None
        least: Connection | None = None
        fewest = 0
        for conn in self._lanes:
            queued = conn.queued
            if not queued and conn.pipelining and self._may_carry(conn):
                return conn
            if (least is None or queued < fewest) and self._may_carry(conn):
                least, fewest = conn, queued
        return None if least is None or not self._slots.locked() else least

    def _may_carry(self, conn: Connection) -> bool:
        """Whether a session may take one more message (monotonic: once not, never again)."""
        return (
            conn.reusable
            and not self._closing
            and conn.generation == self._generation
            and conn.messages < self.max_messages_per_connection
            and not conn.closed
        )

    def _open_lane(self, conn: Connection, slot: _Slot) -> None:
        """Make a checked-out PIPELINING session a lane: it holds ``slot`` until it is handed
        back (a 354 finds nothing queued), closed or lost."""
        slot.handed_off = True
        conn.lease = slot
        conn.on_free = self._lane_free
        conn.on_drained = self._lane_drained
        conn.on_lost = self._lane_lost
        self._lanes.append(conn)
        self._changed.set()  # wakes the messages waiting for a lane
        self._changed.clear()

    def _end_lane(self, conn: Connection) -> _Slot | None:
        if conn in self._lanes:
            self._lanes.remove(conn)
        self._busy.discard(conn)
        lease, conn.lease = conn.lease, None
        return lease  # type: ignore[no-any-return]

    def _lane_free(self, conn: Connection) -> bool:
        """From a read: nothing is queued on ``conn``. Back to the idle list (its final reply
        still on its way) if it can carry more. Kept (True) while a chain that ended on it is
        about to go on (``_go_on`` checks it again then)."""
        if conn.lease is None or not self._may_carry(conn):
            return False
        for chain, _, _ in self._chained:
            if chain.conn is conn:
                return True
        lease = self._end_lane(conn)
        conn.last_used = conn.now()
        self._idle.append(conn)
        if lease is not None:
            lease.release()
        return True

    def _lane_drained(self, conn: Connection) -> None:
        """Nothing runs on a lane the pool did not take back: back to the idle list, or closed
        (in the background, still under its slot)."""
        if conn.lease is None or self._lane_free(conn):
            return
        lease = self._end_lane(conn)
        task = asyncio.get_running_loop().create_task(self._close_lane(conn, lease))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_lane(self, conn: Connection, lease: _Slot | None) -> None:
        try:
            await conn.close(self.settings.command_timeout)
        finally:
            if lease is not None:
                lease.release()

    def _lane_lost(self, conn: Connection) -> None:
        """The session broke: it carries nothing more; its jobs fail through their futures."""
        lease = self._end_lane(conn)
        if conn in self._idle:  # dropped while idle: never hand it out again
            self._idle.remove(conn)
        if lease is not None:
            lease.release()

    async def _on_lane(
        self, conn: Connection, prepared: Prepared, result: _Result, chain: _Chain | None
    ) -> Outcome | None:
        """One transaction queued on a lane: its task wakes once, for the final reply. With
        ``chain``, the reads may go on with later messages meanwhile: the outcome is that of
        the message the chain is at when its task wakes."""
        job = self._submit(conn, prepared, result, None)
        if isinstance(job, Outcome):
            return job
        if chain is not None:
            chain.follow(conn, job, prepared, result)
        try:
            try:
                tx = await job.future
            finally:
                if chain is not None:  # woken for a later message of the chain
                    conn, job, result = chain.conn, chain.job, chain.result
            if tx.stage != "end":  # refused before the data: RSET, then the queue goes on
                await conn.reset(job, tx)
        except ConnectionLost as exc:
            return self._lost(exc, result)
        except (WireClosed, TimeoutError, OSError) as exc:
            if job.state != QUEUED:  # else only its queue was dropped: the session goes on
                conn.abort()
            lost = ConnectionLost(str(exc) or type(exc).__name__, after_dot=job.dot_written)
            return self._lost(lost, result)
        except BaseException:  # cancelled: what it got to decides the outcome
            if chain is not None and chain.answered is not None and not result.final:
                # Answered, and cancelled before its chain went on: settled by that reply.
                result.final = result.apply(chain.answered)
            result.dot_written = job.dot_written
            conn.abandon(job)
            raise
        if tx.stage == "end":
            result.dot_written = False  # answered: a retry after a 4xx starts from "not sent"
        result.final = result.apply(tx)
        result.retry_category = FailureCategory.TEMPORARY_EXHAUSTED
        return result.final

    def _submit(
        self,
        conn: Connection,
        prepared: Prepared,
        result: _Result,
        future: asyncio.Future[Transaction] | None,
    ) -> Job | Outcome:
        """Queue a transaction on a lane; the outcome (``result.final``) if the server cannot
        take the message."""
        try:
            return conn.submit(
                prepared,
                result.pending,
                self.settings.command_timeout,
                self.settings.final_reply_timeout,
                future,
            )
        except Unsendable as exc:  # nothing written: the session is as it was
            if not conn.busy:
                self._lane_drained(conn)
            result.last = (None, str(exc))
            result.reason = exc.why
            result.final = result.failed(FailureCategory.INVALID_MESSAGE)
            return result.final

    def _chain_later(self, chain: _Chain, job: Job, tx: Transaction) -> None:
        """Run ``chain.go_on(job, tx)`` once this loop turn's writes have left (the sessions
        that hold data flush at the next turn: then this, at the one after), with those of
        every chain answered meanwhile: the next message is prepared while the server reads
        what was sent, not before it is sent."""
        if not chain.conn.pipelining:
            self._go_on_now(chain, job, tx)
            return
        chained = self._chained
        chained.append((chain, job, tx))
        if len(chained) == 1:
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._go_on)

    def _go_on(self) -> None:
        chained, self._chained = self._chained, []
        for chain, job, tx in chained:
            self._go_on_now(chain, job, tx)

    def _go_on_now(self, chain: _Chain, job: Job, tx: Transaction) -> None:
        conn, future = chain.conn, job.future
        if not future.done():  # else its task gave up
            try:
                went_on = chain.go_on(job, tx)
            except Exception as exc:  # a bug: its task raises it, no chain is stranded
                future.set_exception(exc)
                went_on = True
            if not went_on:
                future.set_result(tx)
        if conn.lease is not None and not conn.busy:  # kept for it (``_lane_free``)
            self._lane_drained(conn)

    @staticmethod
    def _lost(exc: ConnectionLost, result: _Result) -> Outcome | None:
        if exc.after_dot:
            result.last = (None, f"connection lost after the final '.': {exc}")
            result.final = result.unknown()
            return result.final
        result.last = (None, f"connection lost before the end of data: {exc}")
        result.retry_category = FailureCategory.TEMPORARY_EXHAUSTED
        return None

    def _report(self, outcome: Outcome) -> Outcome:
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:  # a broken hook must not lose the outcome
                logger.exception("on_outcome hook failed")
        return outcome

    def send_many(
        self,
        messages: Iterable[MessageInput] | AsyncIterable[MessageInput],
        *,
        concurrency: int | None = None,
        progress: Callable[[RelaySummary], None] | None = None,
    ) -> Relay:
        """Relay a stream of messages; iterate the result for one outcome per message.

        The input is read lazily (never materialised) and memory stays bounded whatever its
        length. A fatal error (credentials refused, TLS failure) stops the relay taking input;
        after the outcomes of every message it took, the error is raised with ``consumed``.

        Example:
            >>> relay = pool.send_many(messages, concurrency=10)
            >>> async for outcome in relay:
            ...     record(outcome)
            >>> print(relay.summary)
        """
        if self._closing:
            raise PoolClosedError("the SMTP pool is closed")
        # Three times the sessions by default: with PIPELINING a session carries a message whose
        # final reply is on its way and one waiting for its 354, and a third message waits for
        # it, ready, so that its commands leave with the data of the one ahead (one send, one
        # round trip per message; with two, the data often left alone).
        relay = Relay(self, messages, concurrency or 3 * self.max_connections, progress)
        self._relays.add(relay)
        return relay

    # -- lifecycle ----------------------------------------------------------------------------
    async def aclose(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Close the pool. Idempotent.

        ``drain=True`` takes no new messages, lets the transactions in progress finish (with
        their retries, up to ``timeout`` seconds), and stops running relays (messages they took
        but had not started end ``cancelled``). ``drain=False`` drops every session at once:
        messages in flight end ``delivery_unknown`` if their final "." was written, else
        ``cancelled``, never retried. Outcomes nobody reads go to ``on_outcome``.
        """
        self._closing = True
        closed = PoolClosedError("the pool closed before this message was sent")
        for relay in list(self._relays):
            relay.stop_working(closed)
        if drain and self._in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
        self._aborted = True
        self._changed.set()  # the messages waiting for a lane go on (to end, not sent)
        self._changed.clear()
        for conn in list(self._busy):
            self._discard(conn)
        idle, self._idle = list(self._idle), deque()
        # An idle session may still owe the reply to a message's final ".": drained or not,
        # that message is still in flight, and a QUIT would wait behind its reply (up to
        # ``final_reply_timeout``). Such sessions are dropped; the others QUIT politely.
        for conn in idle:
            if conn.busy:
                conn.abort()
        if not drain:
            for task in self._closers:
                task.cancel()  # a spent lane's QUIT: dropped instead
        timeout_ = self.settings.command_timeout
        await asyncio.gather(
            *(conn.close(timeout_) for conn in idle if not conn.closed), return_exceptions=True
        )
        await asyncio.gather(*self._closers, return_exceptions=True)
        for relay in list(self._relays):
            await relay.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(drain=exc is None)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<SmtpPool {s.host}:{s.port} tls={s.tls} user="
            f"{self._credentials.username if self._credentials else None!r} "
            f"open={self.open_connections}/{self.max_connections}>"
        )


class _Slot:
    """One of the pool's ``max_connections`` slots, held by an attempt (internal). A session
    retired mid-transaction keeps it until it is dropped (``handed_off``)."""

    __slots__ = ("_freed", "_semaphore", "handed_off", "held")

    def __init__(self, semaphore: asyncio.Semaphore, freed: asyncio.Event) -> None:
        self._semaphore = semaphore
        self._freed = freed
        self.held = True
        self.handed_off = False

    def release(self) -> None:
        if self.held:
            self.held = False
            self._semaphore.release()
            self._freed.set()  # wakes the messages waiting for a lane or a slot
            self._freed.clear()


class _Chain:
    """A relay task's messages, one after another, each queued on a lane from the read that
    brings the final reply of the one before (internal).

    In the common case (the reply is positive, for every recipient still pending), that read
    records it; two loop turns later (once the writes of that turn have left) the chain hands
    the message's outcome to the relay's reader, takes the relay's next message and queues it
    on a lane, with the same future: the task is woken only when something needs it (a
    refusal, a retry, a lost session, no lane, a large message, the end of the input). Its
    fields are the message it is at, read by the task when it wakes (or is cancelled).
    """

    __slots__ = (
        "answered",
        "carry",
        "conn",
        "index",
        "job",
        "message",
        "pool",
        "prepared",
        "relay",
        "result",
    )

    def __init__(
        self, pool: SmtpPool, relay: Relay, index: int | None, message: MessageInput
    ) -> None:
        self.pool = pool
        self.relay = relay
        self.index = index  # the relay's item the chain is at
        self.message = message
        # Taken by the chain but queued on no lane: for the task to send.
        self.carry: tuple[Prepared, int, MessageInput] | None = None
        # The final reply that settled ``job``'s message, while the chain is about to go on.
        self.answered: Transaction | None = None
        self.conn: Connection
        self.job: Job
        self.prepared: Prepared
        self.result: _Result

    def follow(self, conn: Connection, job: Job, prepared: Prepared, result: _Result) -> None:
        self.conn, self.job, self.prepared, self.result = conn, job, prepared, result
        self.answered = None
        job.on_final = self.advance

    def advance(self, job: Job, tx: Transaction) -> bool:
        """From the read that brings ``job``'s final reply ``tx``: True if it settles the
        message as sent (every recipient still pending accepted it), and then the chain goes
        on (:meth:`go_on`) once this loop turn's writes have left; else False (its task is
        woken with ``tx``, as without a chain)."""
        code = tx.code
        if (
            job is not self.job
            or code < 200
            or code >= 300
            or tx.refused
            or tx.accepted != self.result.pending
        ):
            return False
        self.answered = tx
        self.pool._chain_later(self, job, tx)
        return True

    def go_on(self, job: Job, tx: Transaction) -> bool:
        """If a lane takes the relay's next message: hand on the outcome of ``job``'s message
        (answered ``tx``), queue the next one with the same future, and return True. Else
        False: the task wakes with ``tx`` (and sends ``carry``, a message it took that no lane
        takes, next)."""
        pool, relay = self.pool, self.relay
        conn = self.conn
        if (
            conn.lease is not None
            # Without PIPELINING its queue moves a message per final reply: staying keeps
            # the lanes as even as they were (no scan of them all per message).
            and (not conn.queued or not conn.pipelining)
            and pool._may_carry(conn)
            and not (pool._slot_waiters or pool._aborted)
        ):
            lane: Connection | None = conn  # the lane it ended on, with nothing queued
        else:
            lane = pool._lane()
        if lane is None:
            return False
        while True:  # the next message that a lane takes (with room for both outcomes)
            if not relay.has_room(2):
                return False
            taken = relay.take_now()
            if taken is None:
                return False
            index, message = taken
            prepared = pool._prepare(message, None, index)
            if isinstance(prepared, Outcome):  # reported already
                relay.emit(prepared)
                continue
            if len(prepared.stuffed) >= HIGH_WATER:  # needs a session of its own
                self.carry = (prepared, index, message)
                return False
            env = prepared.env
            after = _Result(env.key, prepared.message_id, index, list(env.rcpt_to))
            after.attempts = 1
            queued = pool._submit(lane, prepared, after, job.future)
            if isinstance(queued, Outcome):  # the server cannot take it
                relay.emit(pool._report(queued))
                if lane.lease is None:  # nothing ran on it: handed back (or closed) meanwhile
                    lane = pool._lane()
                    if lane is None:
                        return False
                continue
            break
        result = self.result
        self.follow(lane, queued, prepared, after)
        self.index, self.message = index, message
        outcome = result.final = result.apply(tx)
        if outcome is not None:  # always: every pending recipient accepted it
            relay.emit(pool._report(outcome))
        return True


class _Result:
    """The state of one message across its attempts (internal)."""

    __slots__ = (
        "accepted",
        "attempts",
        "dot_written",
        "final",
        "in_doubt",
        "index",
        "key",
        "last",
        "message_id",
        "pending",
        "reason",
        "refused",
        "retry_category",
        "unsent",
    )

    def __init__(
        self, key: str | None, message_id: str | None, index: int | None, pending: list[str]
    ) -> None:
        self.key = key
        self.message_id = message_id
        self.index = index
        self.pending = pending
        self.accepted: list[str] = []
        self.refused: list[RecipientRefusal] = []  # for good (5xx)
        self.unsent: list[RecipientRefusal] = []  # certainly not delivered, not for good
        self.in_doubt: list[str] = []  # cut after the final "."
        self.attempts = 0
        self.last: tuple[int | None, str] = (None, "")
        self.final: Outcome | None = None  # decided, maybe not yet reported
        self.dot_written = False  # the interrupted transaction had written its final "."
        self.retry_category = FailureCategory.TEMPORARY_EXHAUSTED  # if retries run out
        self.reason: InvalidReason | None = None  # why invalid_message

    def _outcome(self, status: OutcomeStatus, category: FailureCategory | None) -> Outcome:
        return Outcome(
            key=self.key,
            status=status,
            category=category,
            code=self.last[0],
            reply=self.last[1],
            accepted=tuple(self.accepted),
            refused=tuple(self.refused),
            unsent=tuple(self.unsent),
            in_doubt=tuple(self.in_doubt),
            attempts=self.attempts,
            index=self.index,
            message_id=self.message_id,
            reason=self.reason if category is FailureCategory.INVALID_MESSAGE else None,
        )

    def apply(self, tx: Transaction) -> Outcome | None:
        """Fold a finished transaction in; the outcome if final, ``None`` to retry."""
        self.last = (tx.code, tx.message)
        if (
            tx.stage == "end"
            and 200 <= tx.code < 300
            and not tx.refused
            and tx.accepted == self.pending
        ):  # the common case: every pending recipient accepted it
            self.accepted.extend(tx.accepted)
            self.pending = []
            return self._settle(FailureCategory.RECIPIENTS_REFUSED)
        tried = set(tx.accepted) | {r for r, _, _ in tx.refused}
        untried = [r for r in self.pending if r not in tried]  # after a 421 to RCPT
        # A 5xx refusal of a recipient is final; 4xx ones and untried ones go again.
        self.refused.extend(RecipientRefusal(r, c, m) for r, c, m in tx.refused if c >= 500)
        later = [r for r, c, _ in tx.refused if c < 500] + untried
        if tx.stage == "end" and 200 <= tx.code < 300:
            self.accepted.extend(tx.accepted)
            self.pending = later
        elif tx.stage == "rcpt" or 400 <= tx.code < 500:
            # Nothing was accepted by this transaction: all who may still get it go again.
            self.pending = [*tx.accepted, *later]
        else:
            # 5xx to MAIL, DATA or the final ".": refused for good for this transaction.
            self.refused.extend(
                RecipientRefusal(r, tx.code, tx.message) for r in [*tx.accepted, *later]
            )
            self.pending = []
            return self._settle(FailureCategory.REJECTED)
        return None if self.pending else self._settle(FailureCategory.RECIPIENTS_REFUSED)

    def _settle(self, category: FailureCategory) -> Outcome:
        """Sent if any recipient accepted the message, else failed for ``category``."""
        if self.accepted:
            return self._outcome(OutcomeStatus.SENT, None)
        return self._outcome(OutcomeStatus.FAILED, category)

    def exhausted(self) -> Outcome:
        """Retries ran out: who is still pending did not get it (``unsent``, last reply)."""
        return self.failed(self.retry_category)

    def failed(self, category: FailureCategory) -> Outcome:
        """Stopped: who is still pending did not get it. ``sent`` if some recipient did."""
        code, text = self.last
        self.unsent.extend(RecipientRefusal(r, code or 0, text) for r in self.pending)
        self.pending = []
        return self._settle(category)

    def stopped(self, exc: SmtpError) -> Outcome:
        """A fatal error (credentials, TLS) stopped the retry of a partial delivery: the
        recipients who have it stay ``accepted``; the others are ``unsent``."""
        self.last = (exc.code, str(exc))
        return self.failed(FailureCategory.AUTH)

    def unknown(self) -> Outcome:
        """Cut after the final '.': the pending recipients may or may not have it."""
        self.in_doubt.extend(self.pending)
        self.pending = []
        return self._settle(FailureCategory.DELIVERY_UNKNOWN)

    def interrupted(self) -> Outcome:
        """The caller was cancelled: what the interrupted transaction got to."""
        if self.dot_written:
            self.last = (None, "cancelled after the final '.' was written: delivery unknown")
            return self.unknown()
        self.last = (None, "cancelled before the final '.' was written: not sent")
        return self.failed(FailureCategory.CANCELLED)
