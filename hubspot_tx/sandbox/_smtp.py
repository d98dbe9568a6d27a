"""The sandbox's SMTP half: smtp.hubapi.com's behaviour on aiosmtpd, over the shared state."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import warnings
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from ._faults import Faults, SmtpFault
from ._limits import SmtpLimits
from ._rules import rcpt_rule
from ._state import SandboxState

__all__ = ["HOSTNAME", "SandboxSMTP", "SmtpHandler", "smtp_factory"]

HOSTNAME = "smtp.sandbox.hubspot-tx.invalid"
# The field with its continuation lines: a long Message-ID is often folded onto the next line.
_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class _HideAuthExchange(logging.Filter):
    """aiosmtpd logs AUTH LOGIN's base64 replies at DEBUG; never let them reach a log. (Also
    mutes two warnings of aiosmtpd's own making: one about AUTH without STARTTLS, which the
    implicit-TLS port triggers, one about a deprecated attribute aiosmtpd itself sets.)"""

    _templates = frozenset(
        {
            "%r >> %r",
            "%r << challenge: %r",
            "auth_required == True but auth_require_tls == False",
            "Session.login_data is deprecated and will be removed in version 2.0",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self._templates


_log = logging.getLogger("hubspot_tx.sandbox")
_aiosmtpd_log = logging.getLogger("mail.log")
if not any(isinstance(f, _HideAuthExchange) for f in _aiosmtpd_log.filters):
    _aiosmtpd_log.addFilter(_HideAuthExchange())


def _message_id(data: bytes) -> str | None:
    end = _HEADER_END.search(data)
    match = _MESSAGE_ID.search(data, 0, end.start() if end else len(data))
    if match is None:
        return None
    # Unfolded and decoded as the SDK reads it (an SMTPUTF8 id stays itself), so that the
    # Message-ID a send reports is the one its events are keyed by.
    unfolded = b" ".join(part.strip() for part in match.group(1).split(b"\n"))
    return unfolded.decode("utf-8", "replace").strip()


def _not_utf8(address: str) -> bool:
    """An address whose bytes are not UTF-8 (aiosmtpd keeps them as lone surrogates): refused
    with a syntax error, as a real server would, instead of stored where JSON and SQLite choke."""
    try:
        address.encode()
    except UnicodeEncodeError:
        return True
    return False


class SmtpHandler:
    """aiosmtpd handler: faults, PIPELINING advertisement, storing accepted messages."""

    def __init__(
        self,
        state: SandboxState,
        faults: Faults,
        *,
        pipelining: bool,
        limits: SmtpLimits | None = None,
    ) -> None:
        self.state = state
        self.faults = faults
        self.pipelining = pipelining
        self.limits = limits
        self.sessions: set[SandboxSMTP] = set()  # live sessions, to end them on stop
        self.mail_commands = 0  # transactions begun (MAIL accepted or refused)

    async def apply(self, server: SandboxSMTP, stage: str, address: str | None) -> str | None:
        """Strike an armed fault: a reply to push instead, ``""`` if dropped, else ``None``."""
        fault: SmtpFault | None = self.faults.take_smtp(stage, address)
        if fault is None:
            return None
        if fault.action == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.action == "drop":
            server.drop()
            return ""
        if fault.code == 421:
            server.close_after_reply = True
        return f"{fault.code} {fault.text}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        server: SandboxSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.mail_commands += 1
        status = await self.apply(server, "mail", address)
        if status is not None:
            return status
        if _not_utf8(address):
            return "501 5.1.7 Bad sender address syntax (not UTF-8)"
        if self.limits is not None and not self.limits.take_message():
            server.close_after_reply = True
            return "421 4.7.0 Too many messages, slow down (sandbox rate limit)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SandboxSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        status = await self.apply(server, "rcpt", address)
        if status is not None:
            return status
        if _not_utf8(address):
            return "501 5.1.3 Bad recipient address syntax (not UTF-8)"
        tempfails = self.state.tempfails
        rule = rcpt_rule(address, tempfails.get(address.lower(), 0))
        if rule is not None:
            code, text = rule
            if code == 451:
                tempfails[address.lower()] = tempfails.get(address.lower(), 0) + 1
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SandboxSMTP, session: Session, envelope: Envelope) -> str:
        status = await self.apply(server, "end", None)
        if status is not None:
            return status
        data = envelope.original_content or b""
        stored = self.state.store_message(
            session_id=server.session_id,
            token_id=session.auth_data if isinstance(session.auth_data, str) else None,
            mail_from=envelope.mail_from or "",
            rcpt_to=tuple(envelope.rcpt_tos),
            data=data,
            message_id=_message_id(data),
        )
        status = await self.apply(server, "stored", None)
        if status is not None:
            return status
        return f"250 2.0.0 OK queued as {stored.seq}"


class SandboxSMTP(SMTP):
    """aiosmtpd's SMTP with the sandbox's hooks: greeting and DATA-command faults, sessions."""

    def __init__(self, handler: SmtpHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sandbox = handler
        self.session_id = 0
        self.close_after_reply = False
        self._refused = False
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:  # not the second call after STARTTLS
            fault = self.sandbox.faults.take_smtp("connect")
            limits = self.sandbox.limits
            if fault is None and limits is not None and not limits.take_connection():
                text = "4.7.0 Too many connections, slow down (sandbox rate limit)"
                fault = SmtpFault("connect", "reply", 421, text)
            if fault is not None and fault.action != "delay":
                self._refused = True
                if fault.action == "reply":
                    # Any TCP transport writes (uvloop's subclass no asyncio ABC).
                    reply = f"{fault.code} {fault.text}\r\n".encode()
                    cast(asyncio.WriteTransport, transport).write(reply)
                transport.close()
                return
            self._counted = True
            self.session_id = self.sandbox.state.session_opened()
            self.sandbox.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._end_session()
        self.sandbox.sessions.discard(self)
        super().connection_lost(error)

    def _end_session(self) -> None:
        # A session ends at QUIT or at the loss of its connection, whichever comes first: a TLS
        # connection may linger in its shutdown after QUIT, with no session on it any more.
        if self._counted:
            self._counted = False
            self.sandbox.state.session_closed()

    async def smtp_QUIT(self, arg: str) -> None:
        self._end_session()
        status = await self.sandbox.apply(self, "quit", None)
        if status == "":
            return  # dropped
        await super().smtp_QUIT(arg)

    async def smtp_NOOP(self, arg: str) -> None:
        status = await self.sandbox.apply(self, "noop", None)
        if status is None:
            await super().smtp_NOOP(arg)
        elif status:
            await self.push(status)

    async def handle_exception(self, error: Exception) -> str:
        # A client that gives up on STARTTLS (an untrusted CA, a reset, garbage) is the
        # client's business: one line, no traceback (aiosmtpd logs one at ERROR, then closes).
        if isinstance(error, TLSSetupException):
            peer = self.session.peer if self.session is not None else None
            cause = error.__cause__
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else "aborted"
            _log.info("%r STARTTLS handshake failed (%s)", peer, reason.rstrip(": "))
            return "421 4.7.0 TLS handshake failed"  # never sent: the connection is closed
        result: str = await super().handle_exception(error)
        return result

    def drop(self) -> None:
        """Cut the connection without a reply."""
        if self.transport is not None:  # uvloop's transports are no asyncio.Transport
            cast(asyncio.Transport, self.transport).abort()

    async def push(self, status: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # dropped by a fault: nothing more goes out
        await super().push(status)
        if self.close_after_reply and self.transport is not None:
            self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope is not None and self.envelope.rcpt_tos:
            status = await self.sandbox.apply(self, "data", None)
            if status is not None:
                if status:
                    await self.push(status)
                return
        await super().smtp_DATA(arg)


def _authenticator(state: SandboxState) -> Any:
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            login = auth_data.login.decode()
            password = auth_data.password.decode()
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        token = state.check_login(login, password)
        if token is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=token.id)

    return authenticate


def smtp_factory(
    handler: SmtpHandler,
    *,
    starttls_context: ssl.SSLContext | None,
    implicit: bool,
    max_size: int = 33_554_432,
    utf8: bool = True,
) -> Any:
    """A protocol factory for one listener: STARTTLS (AUTH refused before TLS) or implicit."""
    options: dict[str, Any] = {
        "hostname": HOSTNAME,
        "ident": "hubspot-tx sandbox ESMTP",
        "authenticator": _authenticator(handler.state),
        "auth_required": True,
        "decode_data": False,
        "enable_SMTPUTF8": utf8,
        "data_size_limit": max_size,
    }
    if implicit:
        # The transport is TLS from the first byte; aiosmtpd only knows about STARTTLS.
        options["auth_require_tls"] = False
    else:
        options.update(tls_context=starttls_context, require_starttls=True, auth_require_tls=True)

    def factory() -> SandboxSMTP:
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": on the implicit port TLS is the transport.
            warnings.simplefilter("ignore", UserWarning)
            return SandboxSMTP(handler, **options)

    return factory
