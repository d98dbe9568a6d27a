"""One SMTP session (aiosmtplib underneath): open, authenticate, run transactions, close.

A transaction reports exactly how far it got. What matters for "never sent twice" is whether
the final ``.`` was handed to the transport: until then a lost connection means the server
certainly did not accept the message; after it, the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib
from aiosmtplib.errors import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from .._exceptions import InsecureAuthError, SmtpAuthError, SmtpConnectError, SmtpTLSError
from .credentials import SmtpCredentials

__all__ = ["Connection", "ConnectionLost", "Settings", "Transaction", "Unsendable"]

TlsMode = Literal["starttls", "implicit", "none"]


@dataclass(frozen=True, slots=True)
class Settings:
    """What every connection of a pool is opened with."""

    host: str
    port: int
    tls: TlsMode
    ssl_context: ssl.SSLContext
    connect_timeout: float
    command_timeout: float
    local_hostname: str
    allow_plaintext_auth: bool


class Unsendable(Exception):
    """The server cannot take this message as it is (no SMTPUTF8, over its SIZE): nothing was
    sent, and retrying cannot help."""


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


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Connection:
    """An open, authenticated SMTP session of a pool."""

    __slots__ = ("_smtp", "dot_written", "generation", "last_used", "messages", "reusable")

    def __init__(self, smtp: aiosmtplib.SMTP, generation: int) -> None:
        self._smtp = smtp
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
        except (InsecureAuthError, asyncio.CancelledError):
            smtp.close()
            raise
        except SMTPAuthenticationError as exc:
            smtp.close()
            user = credentials.username if credentials else ""
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
                raise SmtpTLSError(f"TLS with {where} failed: {_reason(exc)}") from None
            if type(exc) is SMTPException and "STARTTLS" in str(exc).upper():
                # aiosmtplib's "STARTTLS extension not supported": never fall back to plaintext
                raise SmtpTLSError(f"{where}: {_reason(exc)}") from None
            raise SmtpConnectError(
                f"cannot open an SMTP session with {where}: {_reason(exc)}"
            ) from None
        return cls(smtp, generation)

    @property
    def extensions(self) -> dict[str, str]:
        return self._smtp.esmtp_extensions

    def check(self, size: int, utf8: bool) -> None:
        """Raise :class:`Unsendable` if this server cannot take such a message."""
        extensions = self._smtp.esmtp_extensions
        if utf8 and "smtputf8" not in extensions:
            raise Unsendable("non-ASCII address or header, and the server offers no SMTPUTF8")
        limit = extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < size:
            raise Unsendable(f"{size} bytes is over the server's SIZE limit of {limit}")

    async def transact(
        self,
        mail_from: str,
        rcpt_to: list[str],
        stuffed: bytes,
        size: int,
        timeout: float,
        *,
        utf8: bool = False,
    ) -> Transaction:
        """Run one transaction. Raises :class:`ConnectionLost` if the session breaks."""
        self.check(size, utf8)
        smtp = self._smtp
        self.dot_written = False
        self.messages += 1
        try:
            options: list[bytes] = []
            if "size" in smtp.esmtp_extensions:
                options.append(b"SIZE=%d" % size)
            if utf8:
                options.append(b"SMTPUTF8")
            reply = await smtp.execute_command(
                b"MAIL", b"FROM:<%s>" % mail_from.encode(), *options, timeout=timeout
            )
            if reply.code != 250:
                await self._reset(reply.code)
                return Transaction("mail", reply.code, reply.message)
            tx = Transaction("end", 0, "")
            for rcpt in rcpt_to:
                reply = await smtp.execute_command(
                    b"RCPT", b"TO:<%s>" % rcpt.encode(), timeout=timeout
                )
                if reply.code in (250, 251):
                    tx.accepted.append(rcpt)
                else:
                    tx.refused.append((rcpt, reply.code, reply.message))
                    if reply.code == 421:
                        break
            if not tx.accepted:
                await self._reset(tx.refused[-1][1])
                tx.stage, tx.code, tx.message = "rcpt", tx.refused[-1][1], tx.refused[-1][2]
                return tx
            reply = await smtp.execute_command(b"DATA", timeout=timeout)
            if reply.code != 354:
                await self._reset(reply.code)
                tx.stage, tx.code, tx.message = "data", reply.code, reply.message
                return tx
            protocol = smtp.protocol
            if protocol is None:
                raise SMTPServerDisconnected("Connection lost")
            protocol.write(stuffed)
            protocol.write(b".\r\n")  # raises, without writing, if the transport is closing
            self.dot_written = True
            reply = await protocol.read_response(timeout=timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            self.abort()
            raise ConnectionLost(_reason(exc), after_dot=self.dot_written) from None
        except SMTPResponseException as exc:  # a malformed reply: the session is out of sync
            self.abort()
            raise ConnectionLost(f"bad reply: {exc}", after_dot=self.dot_written) from None
        tx.code, tx.message = reply.code, reply.message
        if reply.code == 421:
            self.reusable = False
        self.last_used = time.monotonic()
        return tx

    async def _reset(self, code: int) -> None:
        """RSET after a refused step, so the session can carry the next message."""
        if code == 421:
            self.reusable = False
            return
        reply = await self._smtp.execute_command(b"RSET")
        if reply.code != 250:
            self.reusable = False

    async def noop(self, timeout: float) -> bool:
        """True if the session still answers."""
        try:
            reply = await self._smtp.execute_command(b"NOOP", timeout=timeout)
        except (SMTPException, OSError):
            self.abort()
            return False
        return reply.code == 250

    def abort(self) -> None:
        """Drop the session at once (it may be out of sync): no QUIT, no TLS close handshake."""
        self.reusable = False
        transport = self._smtp.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        self._smtp.close()

    async def close(self, timeout: float) -> None:
        """QUIT politely, then close."""
        self.reusable = False
        try:
            if self._smtp.is_connected:
                await self._smtp.execute_command(b"QUIT", timeout=timeout)
        except (SMTPException, OSError):
            pass
        finally:
            self._smtp.close()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
