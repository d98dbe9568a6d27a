"""One SMTP session (aiosmtplib underneath): open, authenticate, run transactions, close.

A transaction reports exactly how far it got. What matters for "never sent twice" is whether
the final ``.`` was handed to the transport: until then a lost connection means the server
certainly did not accept the message; after it, the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import aiosmtplib
from aiosmtplib.errors import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
)

from .. import _env
from .._exceptions import InsecureAuthError, SmtpAuthError, SmtpConnectError, SmtpTLSError
from ._wire import HIGH_WATER, Reply, Wire, WireClosed
from .credentials import SmtpCredentials
from .envelope import Prepared
from .outcome import InvalidReason

__all__ = [
    "HIGH_WATER",
    "Connection",
    "ConnectionLost",
    "Sent",
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


@dataclass(slots=True)
class Sent:
    """How far a :meth:`Connection.send_pipelined` transaction got (read by its caller if it
    gives up meanwhile)."""

    dot_written: bool = False
    released: bool = False  # the session went back to the pool, before the final reply
    data_reply: int = 0  # the reply to DATA of a transaction refused before the data


def _is_tls_failure(exc: BaseException, *, certificate: bool = False) -> bool:
    """A TLS failure somewhere in the chain (with ``certificate``: one of the certificate)."""
    kinds = (
        (ssl.SSLCertVerificationError, ssl.CertificateError)
        if certificate
        else (ssl.SSLError, ssl.CertificateError)
    )
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Connection:
    """An open, authenticated SMTP session of a pool."""

    __slots__ = (
        "_extensions",
        "_smtp",
        "_wire",
        "dot_written",
        "generation",
        "last_used",
        "messages",
        "pipelining",
        "reusable",
    )

    def __init__(
        self, smtp: aiosmtplib.SMTP, transport: asyncio.Transport, generation: int
    ) -> None:
        self._smtp = smtp
        self._extensions = dict(smtp.esmtp_extensions)
        self.pipelining = "pipelining" in self._extensions
        # From here on the session is ours: aiosmtplib's protocol is detached.
        self._wire = Wire(transport)
        transport.set_protocol(self._wire)
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
        smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.tls == "implicit",
            start_tls=settings.tls == "starttls",
            tls_context=settings.ssl_context if settings.tls != "none" else None,
            timeout=settings.command_timeout,
            local_hostname=settings.local_hostname,
        )
        where = f"{settings.host}:{settings.port}"
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await smtp.connect()
                if credentials is not None:
                    encrypted = smtp.get_transport_info("sslcontext") is not None
                    if not encrypted and not settings.allow_plaintext_auth:
                        raise InsecureAuthError(
                            f"refusing to send the SMTP password to {where} over an "
                            "unencrypted connection (allow_plaintext_auth=True to allow)"
                        )
                    await smtp.login(credentials.username, credentials.password.get_secret_value())
                if smtp.is_ehlo_or_helo_needed:  # no TLS and no AUTH: greet before MAIL
                    try:
                        await smtp.ehlo()
                    except SMTPResponseException:
                        await smtp.helo()
        except (InsecureAuthError, asyncio.CancelledError):
            smtp.close()
            raise
        except SMTPAuthenticationError as exc:
            smtp.close()
            user = credentials.username if credentials else ""
            if 400 <= exc.code < 500:  # e.g. 454 4.7.0: the server cannot check them now
                raise SmtpConnectError(
                    f"{where} could not check the credentials of {user} now: "
                    f"{exc.code} {exc.message}",
                    code=exc.code,
                ) from None
            raise SmtpAuthError(
                f"{where} refused the credentials of {user}: {exc.code} {exc.message}",
                code=exc.code,
            ) from None
        except SMTPConnectResponseError as exc:  # e.g. 421 in the greeting
            smtp.close()
            raise SmtpConnectError(
                f"{where} greeted {exc.code} {exc.message}", code=exc.code
            ) from None
        except (SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            if _is_tls_failure(exc):
                if _is_tls_failure(exc, certificate=True):
                    advice = f"; {settings.tls_advice}" if settings.tls_advice else ""
                else:  # e.g. WRONG_VERSION_NUMBER: implicit TLS at a STARTTLS port
                    advice = (
                        f"; does {where} speak {settings.tls} TLS? check the port "
                        f"(${_env.SMTP_PORT} / --port) and the TLS mode (tls= / --tls)"
                    )
                raise SmtpTLSError(f"TLS with {where} failed: {_reason(exc)}{advice}") from None
            if type(exc) is SMTPException and "STARTTLS" in str(exc).upper():
                # aiosmtplib's "STARTTLS extension not supported": never fall back to plaintext
                raise SmtpTLSError(f"{where}: {_reason(exc)}") from None
            raise SmtpConnectError(
                f"cannot open an SMTP session with {where}: {_reason(exc)}"
            ) from None
        if smtp.transport is None or smtp.transport.is_closing():
            smtp.close()
            raise SmtpConnectError(f"{where} closed the session after the login")
        # A full transport (read and write) whatever its class: uvloop's transports implement
        # the interface without subclassing asyncio.Transport.
        return cls(smtp, cast(asyncio.Transport, smtp.transport), generation)

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
        if utf8 or eight_bit or "size" in self._extensions:
            self.check(size, utf8, eight_bit)
            params = b" SIZE=%d" % size if "size" in self._extensions else b""
            if eight_bit:
                params += b" BODY=8BITMIME"
            if utf8:
                params += b" SMTPUTF8"
        else:  # plain ASCII to a server without SIZE: nothing to check, no parameters
            params = b""
        commands = [b"MAIL FROM:<%s>%s\r\n" % (env.mail_from.encode(), params)]
        commands += [b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpt_to]
        commands.append(b"DATA\r\n")
        return commands

    async def send_pipelined(
        self,
        prepared: Prepared,
        rcpt_to: list[str],
        timeout: float,
        final_timeout: float,
        release: Callable[[Connection], bool],
        progress: Sent,
    ) -> Transaction:
        """One whole transaction on a PIPELINING session, driven from the reads: the data goes
        out from the read that brings the 354 (no task switch first), and ``release(self)`` is
        called right after (it returns whether it took the session back). The data is held
        until the next loop turn, after the task that release woke: the next message's
        commands leave with it, in one send. The caller's task wakes once, with the reply to
        the final "." (or the refusal before the data).

        ``progress`` records how far it got (the caller reads it if it gives up meanwhile). A
        refusal before the data has been RSET when this returns. Raises
        :class:`ConnectionLost` if the session breaks (``after_dot`` once the data is written).
        """
        commands = self._commands(prepared, rcpt_to)
        wire = self._wire
        self.dot_written = False
        self.messages += 1
        done: asyncio.Future[Transaction] = asyncio.get_running_loop().create_future()

        def on_end(replies: list[Reply]) -> None:
            ((code, text),) = replies
            wire.settle(done, self._ended(Transaction("end", code, text, accepted, refused)))

        def on_commands(replies: list[Reply]) -> None:
            tx = self._fold(rcpt_to, replies)
            if tx is not None:  # refused before the data: the task resets the session
                tx.pending = None
                progress.data_reply = replies[-1][0] if len(replies) == len(commands) else 0
                done.set_result(tx)
                return
            try:
                wire.hold((prepared.stuffed, b".\r\n"))
            except WireClosed as exc:
                done.set_exception(exc)
                return
            progress.dot_written = self.dot_written = True
            for rcpt, (c, m) in zip(rcpt_to, replies[1:-1], strict=False):
                if c in (250, 251):
                    accepted.append(rcpt)
                else:
                    refused.append((rcpt, c, m))
            self.last_used = time.monotonic()
            wire.expect_then(1, final_timeout, done, on_end)
            # Released before the flush is scheduled: the task it wakes (the next message)
            # writes its commands behind this data before the flush, in the same send.
            progress.released = release(self)
            wire.flush_soon()

        accepted: list[str] = []
        refused: list[tuple[str, int, str]] = []
        try:
            wire.write(b"".join(commands))
            wire.expect_then(len(commands), timeout, done, on_commands)
            tx = await done
            if tx.stage != "end":
                await self._reset(tx.code, timeout, data_open=progress.data_reply == 354)
            return tx
        except (WireClosed, TimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=progress.dot_written) from None

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
        self._smtp.close()

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
        self._wire.transport.close()
        self._smtp.close()


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
