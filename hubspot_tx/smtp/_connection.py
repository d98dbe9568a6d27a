"""One SMTP session: open (greeting, EHLO, TLS, AUTH), run transactions, close.

A transaction reports exactly how far it got. What matters for "never sent twice" is whether
the final ``.`` was handed to the transport: until then a lost connection means the server
certainly did not accept the message; after it, the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import _env
from .._exceptions import (
    InsecureAuthError,
    SmtpAuthError,
    SmtpConnectError,
    SmtpError,
    SmtpTLSError,
)
from ._wire import HIGH_WATER, Reply, Wire, WireClosed
from .credentials import SmtpCredentials
from .envelope import Prepared
from .outcome import InvalidReason

__all__ = [
    "HIGH_WATER",
    "QUEUED",
    "Connection",
    "ConnectionLost",
    "Job",
    "Settings",
    "Transaction",
    "Unsendable",
    "ehlo_name",
]

TlsMode = Literal["starttls", "implicit", "none"]

DATA_BLOCK_TIMEOUT = 180.0  # RFC 5321 4.5.3.2.5: the most a data block may take to leave
FINAL_REPLY_TIMEOUT = 600.0  # RFC 5321 4.5.3.2.6: the wait for the reply to the final "."


@dataclass(frozen=True, slots=True)
class Settings:
    """What every connection of a pool is opened with."""

    host: str
    port: int
    tls: TlsMode
    ssl_context: ssl.SSLContext | None  # None with tls="none"
    connect_timeout: float
    command_timeout: float
    final_reply_timeout: float
    local_hostname: str | None  # None: found once per pool (see ``ehlo_name``)
    allow_plaintext_auth: bool
    tls_advice: str = ""
    """What to do when the server's certificate does not verify (added to SmtpTLSError)."""


class Unsendable(Exception):
    """The server cannot take this message as it is (no SMTPUTF8, over its SIZE): nothing was
    sent, and retrying cannot help."""

    def __init__(self, reason: str, why: InvalidReason) -> None:
        self.why = why
        super().__init__(reason)


class ConnectionLost(Exception):
    """The session broke during a transaction. ``after_dot``: the final "." had been written."""

    def __init__(self, reason: str, *, after_dot: bool) -> None:
        self.after_dot = after_dot
        super().__init__(reason)


@dataclass(slots=True)
class Transaction:
    """How one MAIL..end-of-data transaction ended.

    ``stage`` is where it stopped: ``mail``, ``rcpt`` (no recipient accepted), ``data`` (DATA
    refused) or ``end`` (the reply to the final "."). ``code`` / ``message`` are that reply.
    """

    stage: Literal["mail", "rcpt", "data", "end"]
    code: int
    message: str
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    pending: asyncio.Future[list[Reply]] | None = None
    """With PIPELINING: the reply to the final "." still to come (see :meth:`Connection.finish`);
    the session is free for the next message meanwhile."""


# How far a queued job got (see ``Connection.submit``).
QUEUED, COMMANDS, DATA, ENDED = 0, 1, 2, 3


class Job:
    """One transaction queued on a PIPELINING session (internal; see
    :meth:`Connection.submit`)."""

    __slots__ = (
        "accepted",
        "commands",
        "conn",
        "data_reply",
        "final_timeout",
        "future",
        "on_final",
        "prepared",
        "rcpt_to",
        "refused",
        "replies",
        "state",
        "timeout",
    )

    future: asyncio.Future[Transaction]

    def __init__(
        self,
        conn: Connection,
        prepared: Prepared,
        rcpt_to: list[str],
        commands: list[bytes],
        timeout: float,
        final_timeout: float,
    ) -> None:
        self.conn = conn
        self.prepared = prepared
        self.rcpt_to = rcpt_to
        self.commands = commands
        self.timeout = timeout
        self.final_timeout = final_timeout
        self.state = QUEUED
        self.accepted: list[str] = []
        self.refused: list[tuple[str, int, str]] = []
        self.replies: list[Reply] = []  # without PIPELINING, as they come
        self.data_reply = 0  # the reply to DATA of a job refused before the data
        # Called from the read with the reply to the final "."; True: it took the transaction
        # (``future`` stays pending, for the job that follows it: see ``SmtpPool``'s chains).
        self.on_final: Callable[[Job, Transaction], bool] | None = None

    @property
    def dot_written(self) -> bool:
        """Its data and final "." were written: if the session breaks now, it may have gone."""
        return self.state >= DATA

    def on_commands(self, replies: list[Reply]) -> None:
        self.conn._on_commands(self, replies)

    def on_end(self, replies: list[Reply]) -> None:
        self.conn._on_end(self, replies)


def _is_tls_failure(exc: BaseException, *, certificate: bool = False) -> bool:
    """A TLS failure somewhere in the chain (with ``certificate``: one of the certificate)."""
    kinds = (
        (ssl.SSLCertVerificationError, ssl.CertificateError)
        if certificate
        else (ssl.SSLError, ssl.CertificateError)
    )
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds) and not isinstance(
            seen,
            ssl.SSLWantReadError | ssl.SSLWantWriteError,  # "more bytes, please"
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Connection:
    """An open, authenticated SMTP session of a pool."""

    __slots__ = (
        "_extensions",
        "_opening",
        "_queue",
        "_size_limit",
        "_sizes",
        "_stalled",
        "_wire",
        "dot_written",
        "generation",
        "last_used",
        "lease",
        "messages",
        "on_drained",
        "on_free",
        "on_lost",
        "pipelining",
        "reusable",
    )

    def __init__(self, wire: Wire, extensions: dict[str, str], generation: int) -> None:
        self._extensions = extensions
        self.pipelining = "pipelining" in extensions
        self._sizes = "size" in extensions  # MAIL FROM takes SIZE=
        limit = extensions.get("size", "")
        self._size_limit = int(limit) if limit.isdigit() else 0  # 0: none
        self._wire = wire
        wire.on_closed = self._closed
        # PIPELINING (``submit``): the job whose commands await their 354, the jobs behind it.
        self._opening: Job | None = None
        self._queue: deque[Job] = deque()
        self._stalled = False  # a refused job's RSET comes first (``resume``)
        # Set by the pool: called when a 354 finds no job queued (returns whether the pool
        # took the session back), when nothing more runs on it, and when it breaks.
        self.on_free: Callable[[Connection], bool] | None = None
        self.on_drained: Callable[[Connection], None] | None = None
        self.on_lost: Callable[[Connection], None] | None = None
        self.lease: Any = None  # the pool's slot, held while jobs run on the session
        self.generation = generation
        self.messages = 0
        self.last_used = time.monotonic()
        self.reusable = True
        self.dot_written = False

    @classmethod
    async def open(
        cls, settings: Settings, credentials: SmtpCredentials | None, generation: int
    ) -> Connection:
        """Connect, secure (STARTTLS or implicit TLS) and log in.

        Raises:
            SmtpConnectError: no session (retry later).
            SmtpTLSError, SmtpAuthError, InsecureAuthError: fatal; retrying will not help.
        """
        where = f"{settings.host}:{settings.port}"
        loop = asyncio.get_running_loop()
        wire: Wire | None = None
        try:
            async with asyncio.timeout(settings.connect_timeout):
                _, wire = await loop.create_connection(Wire, settings.host, settings.port)
                extensions = await _greet(wire, settings, credentials, where)
        except BaseException as exc:
            if wire is not None:
                wire.abort()
            if isinstance(exc, SmtpError | InsecureAuthError | asyncio.CancelledError):
                raise
            if not isinstance(exc, OSError | TimeoutError | WireClosed | ValueError):
                raise
            if _is_tls_failure(exc):
                if _is_tls_failure(exc, certificate=True):
                    advice = f"; {settings.tls_advice}" if settings.tls_advice else ""
                else:  # e.g. WRONG_VERSION_NUMBER: implicit TLS at a STARTTLS port
                    advice = (
                        f"; does {where} speak {settings.tls} TLS? check the port "
                        f"(${_env.SMTP_PORT} / --port) and the TLS mode (tls= / --tls)"
                    )
                raise SmtpTLSError(f"TLS with {where} failed: {_reason(exc)}{advice}") from None
            if isinstance(exc, TimeoutError):
                raise SmtpConnectError(
                    f"cannot open an SMTP session with {where}: no answer in "
                    f"{settings.connect_timeout:g} s"
                ) from None
            raise SmtpConnectError(
                f"cannot open an SMTP session with {where}: {_reason(exc)}"
            ) from None
        return cls(wire, extensions, generation)

    @property
    def extensions(self) -> dict[str, str]:
        return self._extensions

    def check(self, size: int, utf8: bool, eight_bit: bool = False) -> None:
        """Raise :class:`Unsendable` if this server cannot take such a message."""
        extensions = self._extensions
        if utf8 and "smtputf8" not in extensions:
            raise Unsendable(
                "non-ASCII address or header, and the server offers no SMTPUTF8",
                InvalidReason.NEEDS_SMTPUTF8,
            )
        if eight_bit and "8bitmime" not in extensions:
            raise Unsendable(
                "8-bit bytes in the message, and the server offers no 8BITMIME "
                "(encode the body as quoted-printable or base64)",
                InvalidReason.NEEDS_8BITMIME,
            )
        limit = extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < size:
            raise Unsendable(
                f"{size} bytes is over the server's SIZE limit of {limit}", InvalidReason.TOO_BIG
            )

    def _commands(self, prepared: Prepared, rcpt_to: list[str]) -> list[bytes]:
        """MAIL, RCPT for each of ``rcpt_to``, DATA; raises :class:`Unsendable` first if the
        server cannot take the message."""
        env = prepared.env
        size, utf8, eight_bit = len(env.data), prepared.utf8, prepared.eight_bit
        limit = self._size_limit
        if utf8 or eight_bit or (limit and size > limit):
            self.check(size, utf8, eight_bit)  # raises unless the server takes it
            params = b" SIZE=%d" % size if self._sizes else b""
            if eight_bit:
                params += b" BODY=8BITMIME"
            if utf8:
                params += b" SMTPUTF8"
            mail = b"MAIL FROM:<%s>%s\r\n" % (env.mail_from.encode(), params)
        elif self._sizes:  # plain ASCII within the limit
            mail = b"MAIL FROM:<%s> SIZE=%d\r\n" % (env.mail_from.encode(), size)
        else:  # plain ASCII to a server without SIZE: nothing to check, no parameters
            mail = b"MAIL FROM:<%s>\r\n" % env.mail_from.encode()
        if len(rcpt_to) == 1:
            return [mail, b"RCPT TO:<%s>\r\n" % rcpt_to[0].encode(), b"DATA\r\n"]
        return [mail, *[b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpt_to], b"DATA\r\n"]

    # -- PIPELINING: a queue of transactions driven from the reads --------------------------
    def submit(
        self,
        prepared: Prepared,
        rcpt_to: list[str],
        timeout: float,
        final_timeout: float,
        future: asyncio.Future[Transaction] | None = None,
    ) -> Job:
        """Queue one transaction on this PIPELINING session; await ``job.future`` for how it
        ended (a :class:`Transaction`; ``WireClosed``, ``TimeoutError`` or ``OSError`` if the
        session broke: ``job.dot_written`` tells whether its final "." had been written).

        The commands of the first job go out now (behind data held for this loop turn, if
        any: one send); a later job's leave from the read that brings the 354 of the job
        ahead, in the same write as that job's data. Its task is not woken until the reply to
        its final "." (or its refusal before the data: then :meth:`reset` it and
        :meth:`resume`). Raises :class:`Unsendable` (nothing queued) if the server cannot take
        the message. ``future``: a pending one to settle instead of a new one (that of the job
        ahead, which did not settle it: see ``Job.on_final``)."""
        commands = self._commands(prepared, rcpt_to)
        job = Job(self, prepared, rcpt_to, commands, timeout, final_timeout)
        job.future = self._wire.loop.create_future() if future is None else future
        self.messages += 1
        if self._opening is None and not self._stalled:
            self._start(job)
        else:
            self._queue.append(job)
        return job

    @property
    def queued(self) -> int:
        """Jobs whose commands wait for the 354 of the job ahead."""
        return len(self._queue)

    def _start(self, job: Job) -> None:
        wire = self._wire
        lockstep = not self.pipelining
        try:
            wire.write(job.commands[0] if lockstep else b"".join(job.commands))
        except WireClosed as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        job.state = COMMANDS
        if lockstep:
            self._opening = job
            wire.expect_then(1, job.timeout, job.future, self._step)
            return
        self._opening = job
        wire.expect_then(len(job.commands), job.timeout, job.future, job.on_commands)

    def _step(self, replies: list[Reply]) -> None:
        """Without PIPELINING: a command at a time, each written from the read that brings
        the reply to the one before (as :meth:`transact` does, with no task woken), for the
        job at its commands (``_opening``)."""
        job = self._opening
        if job is None or job.future.done():  # its task gave up (``abandon``): retired
            self._opening = None
            return
        got = job.replies
        got += replies
        code, count, commands = replies[-1][0], len(got), job.commands
        if (
            (count == 1 and code != 250)  # MAIL refused
            or code == 421  # the server is closing: ask nothing more
            or count == len(commands)  # DATA answered
        ):
            self._on_commands(job, got)
            return
        if count == len(commands) - 1:  # every RCPT answered: DATA if one was accepted
            for c, _ in got[1:]:
                if c == 250 or c == 251:
                    break
            else:
                self._on_commands(job, got)
                return
        try:
            self._wire.write(commands[count])
        except WireClosed as exc:
            self._opening = None
            job.future.set_exception(exc)
            return
        self._wire.expect_then(1, job.timeout, job.future, self._step)

    @property
    def busy(self) -> bool:
        """A queued job runs on this session, or a reply is owed on it."""
        return self._opening is not None or bool(self._queue) or self._stalled or self._wire.owed

    def now(self) -> float:
        return self._wire.loop.time()

    def _on_commands(self, job: Job, replies: list[Reply]) -> None:
        self._opening = None
        if job.future.done():  # its task gave up (``abandon``): the session is retired
            return
        wire = self._wire
        rcpt_to = job.rcpt_to
        if (  # the common case, one recipient and every reply positive: nothing to fold
            len(replies) == 3
            and len(rcpt_to) == 1
            and replies[0][0] == 250
            and replies[1][0] in (250, 251)
            and replies[2][0] == 354
        ):
            job.accepted.append(rcpt_to[0])
        else:
            tx = self._fold(rcpt_to, replies)
            if tx is not None:  # refused before the data: its task resets the session
                job.data_reply = replies[-1][0] if len(replies) == len(job.commands) else 0
                self._stalled = True  # the queue waits for the RSET (see ``resume``)
                job.future.set_result(tx)
                return
            accepted, refused = job.accepted, job.refused
            for rcpt, (c, m) in zip(rcpt_to, replies[1:-1], strict=False):
                if c in (250, 251):
                    accepted.append(rcpt)
                else:
                    refused.append((rcpt, c, m))
        try:
            if self.pipelining:
                wire.hold((job.prepared.stuffed, b".\r\n"))
            else:  # nothing may follow before the final reply: no wait for company
                wire.writelines((job.prepared.stuffed, b".\r\n"))
                self._opening = job  # the next job starts after the final reply
        except WireClosed as exc:
            job.future.set_exception(exc)
            return
        job.state = DATA
        self.last_used = wire.now  # called from a read
        wire.expect_then(1, job.final_timeout, job.future, job.on_end)
        if not self.pipelining:
            return
        if self._queue:  # the next commands leave with this data, now: one send
            self._start(self._queue.popleft())
            wire.flush()
        else:
            # Nothing queued: the data waits for this loop turn, so that commands written
            # meanwhile (a message handed this session by ``on_free``) leave with it.
            if self.on_free is not None:
                self.on_free(self)
            wire.flush_soon()

    def _on_end(self, job: Job, replies: list[Reply]) -> None:
        ((code, text),) = replies
        job.state = ENDED
        tx = self._ended(Transaction("end", code, text, job.accepted, job.refused))
        if not job.future.done() and (  # else its task gave up: the reply is dropped
            job.on_final is None or not job.on_final(job, tx)
        ):
            self._wire.settle(job.future, tx)
        if not self.pipelining and self._opening is job:  # the next job may start now
            self._opening = None
            if self._queue and not self._stalled:
                if self.reusable and not self.closed:
                    self._start(self._queue.popleft())
                else:
                    self._drop_queue(WireClosed("the session was closed"))
            elif self.on_free is not None:
                self.on_free(self)
        if self.on_drained is not None and not self.busy:
            self.on_drained(self)

    def resume(self) -> None:
        """Go on with the queue after a refused job's :meth:`reset` (or fail it, if the
        session cannot carry it)."""
        self._stalled = False
        if not self._queue:
            freed = self.on_free is not None and self.on_free(self)
            if not freed and not self.busy and self.on_drained is not None:
                self.on_drained(self)
            return
        if self.reusable and not self.closed:
            self._start(self._queue.popleft())
        else:
            self._drop_queue(WireClosed("the session was closed"))
            if not self.busy and self.on_drained is not None:
                self.on_drained(self)

    def abandon(self, job: Job) -> None:
        """The job's task gave up (cancelled). Queued: it is dropped. Its commands written and
        no 354 yet: the session is out of step and is retired (after the reply owed to the
        job ahead); the jobs queued behind go elsewhere. Its data written: its reply is still
        read (and dropped)."""
        if job.state == QUEUED:
            with contextlib.suppress(ValueError):
                self._queue.remove(job)
                self.messages -= 1  # never started on this session
        elif job.state == COMMANDS:
            self._drop_queue(WireClosed("the session was dropped"))
            self.retire()

    def _drop_queue(self, exc: BaseException) -> None:
        queue, self._queue = self._queue, deque()
        for job in queue:
            if not job.future.done():
                job.future.set_exception(exc)
                job.future.exception()  # retrieved: its task may be gone

    def _closed(self, exc: BaseException) -> None:
        """Called by the wire when the session breaks: queued jobs fail (never written)."""
        self.reusable = False
        self._drop_queue(WireClosed(str(exc)))
        if self.on_lost is not None:
            self.on_lost(self)

    async def transact(
        self,
        prepared: Prepared,
        rcpt_to: list[str],
        timeout: float,
        *,
        final_timeout: float | None = None,
        before_data: Callable[[], Awaitable[None]] | None = None,
    ) -> Transaction:
        """Run one transaction. Raises :class:`ConnectionLost` if the session breaks.

        With PIPELINING, MAIL, every RCPT and DATA go out in one write, and their replies are
        read in order. The reply to the final "." is not waited for here: the transaction comes
        back ``pending``, and the next message's commands may follow its data at once (RFC 2920
        lets message content lead a group), so that a busy session costs one round trip per
        message, not ``3 + recipients``.

        A large message is written under the transport's flow control: the data phase fails
        (before its final ".", so the message may be retried) if for ``timeout`` seconds (at
        most RFC 5321's 3 minutes) not one byte of it left; the wait for the final reply
        (``final_timeout``, default ``timeout``) starts once the data has left.

        ``before_data`` is awaited after the server's 354 and before any byte of the message
        is written. If it raises, the session is dropped (a transaction without its final "."
        is discarded by the server) and the exception propagates.
        """
        commands = self._commands(prepared, rcpt_to)
        stuffed = prepared.stuffed
        wire = self._wire
        self.dot_written = False
        self.messages += 1
        try:
            if self.pipelining:
                wire.write(b"".join(commands))
                replies = await wire.expect(len(commands), timeout)
            else:
                replies = []
                for command in commands:
                    wire.write(command)
                    # ``expect``'s future itself: no coroutine per reply (4 per message here)
                    replies.append(reply := (await wire.expect(1, timeout))[0])
                    if (len(replies) == 1 and reply[0] != 250) or reply[0] == 421:
                        break  # MAIL refused, or the server is closing: ask nothing more
                    if len(replies) == len(commands) - 1 and not any(
                        c in (250, 251) for c, _ in replies[1:]
                    ):
                        break  # no recipient accepted: no DATA
            tx = self._fold(rcpt_to, replies)
            if tx is not None:
                await self._reset(replies[-1][0], timeout, data_open=replies[-1][0] == 354)
                return tx
        except (WireClosed, TimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=False) from None
        if before_data is not None:
            try:
                await before_data()
            except BaseException:
                self.abort()
                raise
        try:
            if len(stuffed) < HIGH_WATER:
                # Body and final "." in one write (one syscall). It raises, writing nothing, if
                # the connection is already gone: the message certainly did not go out then.
                # With PIPELINING it lingers (to share a segment with the next commands).
                wire.writelines((stuffed, b".\r\n"), linger=self.pipelining)
            else:  # a large message: its "." only once the rest has left
                try:
                    await wire.upload(stuffed, min(timeout, DATA_BLOCK_TIMEOUT))
                except asyncio.CancelledError:
                    self.abort()  # dropped with no "." written: certainly not delivered
                    raise
                wire.write(b".\r\n")
            self.dot_written = True
            pending = wire.expect(1, final_timeout or timeout)
            if not self.pipelining:
                ((code, text),) = await pending
        except (WireClosed, TimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=self.dot_written) from None
        accepted = [r for r, (c, _) in zip(rcpt_to, replies[1:-1], strict=False) if c in (250, 251)]
        refused = [
            (r, c, m)
            for r, (c, m) in zip(rcpt_to, replies[1:-1], strict=False)
            if c not in (250, 251)
        ]
        self.last_used = time.monotonic()
        if self.pipelining:
            return Transaction("end", 0, "", accepted, refused, pending)
        return self._ended(Transaction("end", code, text, accepted, refused))

    def _ended(self, tx: Transaction) -> Transaction:
        if tx.code == 421:
            self.reusable = False
        return tx

    async def finish(self, tx: Transaction) -> Transaction:
        """Wait for a ``pending`` transaction's reply to its final ".". Raises
        :class:`ConnectionLost` (``after_dot``) if it does not come; the session is dropped
        then, whoever uses it now (their own message had not reached its end of data)."""
        if tx.pending is None:  # already answered
            return tx
        try:
            ((tx.code, tx.message),) = await tx.pending
        except (WireClosed, TimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=True) from None
        tx.pending = None
        return self._ended(tx)

    @staticmethod
    def _fold(rcpt_to: list[str], replies: list[tuple[int, str]]) -> Transaction | None:
        """The transaction if it ended before the data (``None`` when DATA got its 354)."""
        mail = replies[0]
        if mail[0] != 250:
            return Transaction("mail", mail[0], mail[1])
        rcpt_replies = replies[1 : 1 + len(rcpt_to)]
        tx = Transaction("rcpt", 0, "")
        for rcpt, (code, text) in zip(rcpt_to, rcpt_replies, strict=False):
            if code in (250, 251):
                tx.accepted.append(rcpt)
            else:
                tx.refused.append((rcpt, code, text))
        if not tx.accepted:
            last = tx.refused[-1] if tx.refused else (None, 421, "no reply")
            tx.code, tx.message = last[1], last[2]
            return tx
        data = replies[-1] if len(replies) == len(rcpt_to) + 2 else (421, "no DATA reply")
        if data[0] != 354:
            tx.stage, tx.code, tx.message = "data", data[0], data[1]
            return tx
        return None

    async def reset(self, job: Job, tx: Transaction) -> None:
        """RSET after ``job`` was refused before its data (``tx``), then go on with the queue
        (:meth:`resume`). Raises :class:`ConnectionLost` if the session breaks meanwhile; if
        cancelled, the session is dropped (out of step)."""
        try:
            await self._reset(tx.code, job.timeout, data_open=job.data_reply == 354)
        except (WireClosed, TimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=False) from None
        except BaseException:
            self.abort()
            raise
        self.resume()

    async def _reset(self, code: int, timeout: float, *, data_open: bool = False) -> None:
        """RSET after a refused step, so the session can carry the next message."""
        if code == 421:
            self.reusable = False
            return
        wire = self._wire
        if data_open:  # a 354 with no recipient accepted: end the (empty) data first
            wire.write(b".\r\n")
            await wire.reply(timeout)
        wire.write(b"RSET\r\n")
        reply = await wire.reply(timeout)
        if reply[0] != 250:
            self.reusable = False

    async def noop(self, timeout: float) -> bool:
        """True if the session still answers."""
        try:
            self._wire.write(b"NOOP\r\n")
            code, _ = await self._wire.reply(timeout)
        except (WireClosed, TimeoutError, OSError):
            self.abort()
            return False
        return code == 250

    @property
    def holding(self) -> bool:
        """Bytes written to the session wait for this loop turn's send (see ``Wire.hold``)."""
        return self._wire.holding

    @property
    def closed(self) -> bool:
        """The session cannot carry anything more (lost, dropped, or being dropped)."""
        return self._wire.closed

    def abort(self) -> None:
        """Drop the session at once (it may be out of sync): no QUIT, no TLS close handshake."""
        self.reusable = False
        self._wire.abort()

    def retire(self, then: Callable[[], None] | None = None) -> None:
        """Drop the session once the replies others still await on it have come (the reply
        to a previous message's final "."): for a user who gives up mid-transaction. ``then``
        is called once it is dropped (the pool frees its slot then, not before)."""
        self.reusable = False

        def dropped() -> None:
            self.abort()
            if then is not None:
                then()

        self._wire.retire(dropped)

    async def close(self, timeout: float) -> None:
        """QUIT politely, then close."""
        self.reusable = False
        try:
            if not self._wire.closed:
                self._wire.write(b"QUIT\r\n")
                await self._wire.reply(timeout)
        except asyncio.CancelledError:
            self.retire()  # a reply owed to a message ahead of the QUIT may still come
            raise
        except (WireClosed, TimeoutError, OSError):
            pass
        self._wire.close()


async def _greet(
    wire: Wire, settings: Settings, credentials: SmtpCredentials | None, where: str
) -> dict[str, str]:
    """Greeting, EHLO, TLS (STARTTLS or implicit) and AUTH on a new connection: the server's
    extensions (lowercase names) for the session that follows. Raises SmtpError (or
    InsecureAuthError) for an answer that ends it, ``ssl.SSLError`` / ``WireClosed`` /
    ``TimeoutError`` for a failed connection."""
    timeout = settings.command_timeout
    if settings.tls == "implicit":
        await wire.start_tls(_context(settings), settings.host)
    code, text = await wire.reply(timeout)
    if code != 220:
        raise SmtpConnectError(f"{where} greeted {code} {text}", code=code)
    name = (settings.local_hostname or "[127.0.0.1]").encode("idna")
    extensions = await _ehlo(wire, name, timeout, where, fallback=settings.tls == "none")
    if settings.tls == "starttls":
        if "starttls" not in extensions:  # never fall back to plaintext
            raise SmtpTLSError(f"{where} does not offer STARTTLS (tls='starttls')")
        await _command(wire, b"STARTTLS\r\n", 220, timeout, where)
        if wire.unasked:
            raise SmtpTLSError(
                f"TLS with {where} refused: it sent more in the clear after its reply to "
                "STARTTLS (a man in the middle, or a broken server); nothing was sent"
            )
        await wire.start_tls(_context(settings), settings.host)
        extensions = await _ehlo(wire, name, timeout, where, fallback=False)
    if credentials is not None:
        if not wire.encrypted and not settings.allow_plaintext_auth:
            raise InsecureAuthError(
                f"refusing to send the SMTP password to {where} over an "
                "unencrypted connection (allow_plaintext_auth=True to allow)"
            )
        await _login(wire, credentials, extensions.get("auth", ""), timeout, where)
    return extensions


def _context(settings: Settings) -> ssl.SSLContext:
    if settings.ssl_context is None:  # Settings are built with one whenever TLS is asked
        raise ValueError("TLS asked without an SSL context")
    return settings.ssl_context


async def _command(wire: Wire, line: bytes, want: int, timeout: float, where: str) -> str:
    """Write ``line``; the reply's text if its code is ``want``, else SmtpConnectError."""
    wire.write(line)
    code, text = await wire.reply(timeout)
    if code != want:
        verb = line.split(b" ", 1)[0].strip().decode("ascii", "replace")
        raise SmtpConnectError(f"{where} answered {verb} with {code} {text}", code=code)
    return text


async def _ehlo(
    wire: Wire, name: bytes, timeout: float, where: str, *, fallback: bool
) -> dict[str, str]:
    """EHLO: the extensions offered (name -> parameters). With ``fallback`` (no TLS, no
    extension needed), HELO if the server refuses EHLO: none then."""
    wire.write(b"EHLO %s\r\n" % name)
    code, text = await wire.reply(timeout)
    if code == 250:
        return _extensions(text)
    if fallback and code >= 500:
        await _command(wire, b"HELO %s\r\n" % name, 250, timeout, where)
        return {}
    raise SmtpConnectError(f"{where} answered EHLO with {code} {text}", code=code)


def _extensions(text: str) -> dict[str, str]:
    """The EHLO reply's lines after the first, as {lowercase name: parameters}."""
    found: dict[str, str] = {}
    for line in text.split("\n")[1:]:
        name, _, params = line.strip().partition(" ")
        if name.upper().startswith("AUTH="):  # an old spelling: "AUTH=LOGIN PLAIN"
            name, params = "AUTH", f"{name[5:]} {params}".strip()
        if name:
            key = name.lower()
            found[key] = f"{found[key]} {params}".strip() if key in found else params.strip()
    return found


async def _login(
    wire: Wire, credentials: SmtpCredentials, offered: str, timeout: float, where: str
) -> None:
    """AUTH with the first of PLAIN, LOGIN, CRAM-MD5 the server offers. Raises SmtpAuthError
    if it refuses the credentials for good, SmtpConnectError if it cannot check them now."""
    user = credentials.username
    username = user.encode()
    password = credentials.password.get_secret_value().encode()
    plain = base64.b64encode(b"\0" + username + b"\0" + password)
    methods = offered.upper().split()
    if "PLAIN" in methods:
        wire.write(b"AUTH PLAIN %s\r\n" % plain)
        code, text = await wire.reply(timeout)
    elif "LOGIN" in methods or "CRAM-MD5" in methods:
        login = "LOGIN" in methods
        wire.write(b"AUTH LOGIN\r\n" if login else b"AUTH CRAM-MD5\r\n")
        code, text = await wire.reply(timeout)
        if code == 334 and login:
            wire.write(base64.b64encode(username) + b"\r\n")
            code, text = await wire.reply(timeout)
            if code == 334:
                wire.write(base64.b64encode(password) + b"\r\n")
                code, text = await wire.reply(timeout)
        elif code == 334:
            try:
                challenge = base64.b64decode(text.strip(), validate=True)
            except ValueError:  # binascii.Error
                wire.write(b"*\r\n")
                raise SmtpAuthError(
                    f"{where} sent a CRAM-MD5 challenge that is not base64: {text[:80]!r}"
                ) from None
            digest = hmac.new(password, challenge, "md5").hexdigest().encode()
            wire.write(base64.b64encode(username + b" " + digest) + b"\r\n")
            code, text = await wire.reply(timeout)
    else:
        raise SmtpConnectError(
            f"{where} offers no AUTH method this client has (PLAIN, LOGIN, CRAM-MD5); "
            f"it offers: {offered or 'none'}"
        )
    if code == 235:
        return
    if code == 334:  # it asks for more than these methods send: end the exchange
        wire.write(b"*\r\n")
    # A server may quote what it refuses: never the password, in any of the forms it went in.
    for secret in (password, plain, base64.b64encode(password)):
        if secret:
            text = text.replace(secret.decode("utf-8", "replace"), "**********")
    if 400 <= code < 500:  # e.g. 454 4.7.0: the server cannot check them now
        raise SmtpConnectError(
            f"{where} could not check the credentials of {user} now: {code} {text}", code=code
        )
    raise SmtpAuthError(f"{where} refused the credentials of {user}: {code} {text}", code=code)


_ehlo_name: str | None = None


def _fqdn() -> str:
    """This host's name for EHLO (RFC 5321 4.1.4): its FQDN, else its address literal."""
    name = socket.getfqdn()
    if "." in name and not name.startswith("localhost"):
        return name
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except OSError:
        return "[127.0.0.1]"


async def ehlo_name(timeout: float) -> str:
    """:func:`_fqdn`, found once per process in a thread (name lookups block), bounded."""
    global _ehlo_name
    if _ehlo_name is None:
        try:
            async with asyncio.timeout(timeout):
                _ehlo_name = await asyncio.to_thread(_fqdn)
        except TimeoutError:
            return "[127.0.0.1]"  # not kept: the lookup may answer next time
    return _ehlo_name


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
