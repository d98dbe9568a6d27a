""":class:`Sandbox`: the emulator's listeners, started in-process on loopback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import socket
import ssl
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .._auth import OAuth
from .._client import HubSpot
from .._pacing import RateLimit
from .._secret import Secret
from ..models.smtp_tokens import SmtpTokenWithPassword
from ..smtp import SmtpCredentials, SmtpPool, TlsMode
from ._faults import Faults
from ._limits import HUBSPOT_PROFESSIONAL, RestLimits, SmtpLimits, SmtpRateLimit
from ._rest import build_app
from ._smtp import SmtpHandler, smtp_factory
from ._state import DEFAULT_EMAIL_IDS, SandboxEvent, SandboxState, StoredMessage
from ._store import Store
from ._tls import DEFAULT_HOSTS, SandboxCA
from ._views import SendView, Stats, send_view
from ._web import LOG_KEY, RequestRecord

__all__ = ["Sandbox"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted sockets only when the protocol
    # says TCP, and without it a pipelining client waits on Nagle + delayed ACK (~40 ms) for
    # the second of two replies written back to back.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        # "Address already in use" alone does not say which of the four ports clashed.
        where = _url("tcp", host, port).removeprefix("tcp://")
        raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class Sandbox:
    """A local, stateful emulator of HubSpot's transactional-email REST API and SMTP server.

    It serves plain HTTP and HTTPS, and SMTP with STARTTLS and with implicit TLS (one
    throwaway CA for all, see :attr:`ca_file` and :meth:`ssl_context`), on loopback, on
    ephemeral ports unless told otherwise. REST and SMTP share one state: a token created
    over REST logs in over SMTP at once; a reset password or a deleted token fails at once.

    Example:
        >>> async with Sandbox() as sb, sb.client() as hs:
        ...     token = await hs.smtp_tokens.create(campaign_name="tests")

    Args:
        host: the address to bind (loopback by default; ``"::1"`` for IPv6).
        http_port: the plain-HTTP port (0 = ephemeral).
        https_port: the HTTPS port (0 = ephemeral).
        access_token: the bearer token to accept (random if not given).
        email_ids: the published transactional single-send emails that exist from the start
            (others give ``MISSING_CONTENT`` until created and published over REST).
        pending_seconds: how long a single-send stays ``PENDING``.
        processing_seconds: how long it then stays ``PROCESSING``.
        smtp_port: the STARTTLS SMTP port (0 = ephemeral; HubSpot's is 587).
        smtps_port: the implicit-TLS SMTP port (0 = ephemeral; HubSpot's is 465).
        smtp_pipelining: advertise PIPELINING (RFC 2920) in the EHLO reply.
        rate_limit: the REST budget, enforced with HubSpot's headers and 429s (default:
            HubSpot's Professional tier, 190 per 10 s and 1 000 000 a day); ``None`` for none.
        oauth_access_ttl: lifetime in seconds of the OAuth access tokens it grants.
        smtp_max_size: the SMTP SIZE limit it advertises and enforces (552 above it).
        smtp_utf8: advertise SMTPUTF8.
        tls_hosts: the names on its certificate (default the loopback names; another name
            makes clients see a certificate for the wrong host).
        smtp_rate_limit: connections and messages per second its SMTP server lets through
            before it answers 421 (default: no limit).
        data_dir: keep the state (tokens, messages, events, single-sends) in SQLite in this
            folder, across restarts (default: in memory only).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        https_port: int = 0,
        access_token: str | None = None,
        email_ids: Iterable[int] = DEFAULT_EMAIL_IDS,
        pending_seconds: float = 0.05,
        processing_seconds: float = 0.1,
        smtp_port: int = 0,
        smtps_port: int = 0,
        smtp_pipelining: bool = False,
        rate_limit: RateLimit | None = HUBSPOT_PROFESSIONAL,
        oauth_access_ttl: float = 1800.0,
        smtp_max_size: int = 33_554_432,
        smtp_utf8: bool = True,
        tls_hosts: tuple[str, ...] | None = None,
        smtp_rate_limit: SmtpRateLimit | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        self.host = host
        self._ports = (http_port, https_port, smtp_port, smtps_port)
        store = None if data_dir is None else Store(data_dir)
        if access_token is None and store is not None:  # the same token after a restart
            kept = store.meta("access_token")
            access_token = kept.decode() if kept else None
        self._access_token = Secret(access_token or f"pat-sandbox-{secrets.token_hex(16)}")
        if store is not None:
            store.set_meta("access_token", self._access_token.get_secret_value().encode())
        self.state = SandboxState(
            email_ids=email_ids,
            pending_seconds=pending_seconds,
            processing_seconds=processing_seconds,
            store=store,
        )
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.state.oauth_access_ttl = oauth_access_ttl
        self.faults = Faults()
        self.limits = RestLimits(rate_limit) if rate_limit is not None else None
        self.smtp_limits = None if smtp_rate_limit is None else SmtpLimits(smtp_rate_limit)
        self._app = build_app(
            self.state, self.faults, self._access_token, limits=self.limits, control=self
        )
        self.smtp_handler = SmtpHandler(
            self.state, self.faults, pipelining=smtp_pipelining, limits=self.smtp_limits
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._smtp_options: dict[str, Any] = {"max_size": smtp_max_size, "utf8": smtp_utf8}
        self._tls_hosts = tls_hosts
        self._runner: web.AppRunner | None = None
        self._smtp_servers: list[asyncio.AbstractServer] = []
        self._ca: SandboxCA | None = None
        self.http_port = 0
        self.https_port = 0
        self.smtp_port = 0
        self.smtps_port = 0

    @property
    def access_token(self) -> str:
        """The bearer token the sandbox accepts (a test credential, shown in clear)."""
        return self._access_token.get_secret_value()

    @property
    def base_url(self) -> str:
        """The plain-HTTP API root."""
        return _url("http", self.host, self.http_port)

    @property
    def https_url(self) -> str:
        """The HTTPS API root (trust :attr:`ca_file` or :meth:`ssl_context`)."""
        return _url("https", self.host, self.https_port)

    @property
    def ca(self) -> SandboxCA:
        if self._ca is None:
            raise RuntimeError("the sandbox is not running")
        return self._ca

    @property
    def ca_file(self) -> str:
        """Path of the PEM file of the sandbox's CA (exists while it runs)."""
        return str(self.ca.ca_file)

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the sandbox's CA."""
        return self.ca.client_context()

    def outbox(
        self,
        *,
        recipient: str | None = None,
        message_id: str | None = None,
        subject: str | None = None,
    ) -> list[StoredMessage]:
        """Messages accepted over SMTP, oldest first, optionally filtered; each has
        ``.message`` (a parsed ``EmailMessage``), ``.rcpt_to``, ``.data`` (raw bytes)."""
        return self.state.outbox(recipient=recipient, message_id=message_id, subject=subject)

    def single_sends(self, *, to: str | None = None) -> list[SendView]:
        """Single-sends received, oldest first (optionally to one address), each with its
        properties, its current status and its status timeline."""
        needle = None if to is None else to.lower()
        return [
            send_view(self.state, r)
            for r in self.state.sends.values()
            if needle is None or r.request.message.to.lower() == needle
        ]

    def events(
        self,
        *,
        campaign_id: str | None = None,
        recipient: str | None = None,
        type: str | None = None,
    ) -> list[SandboxEvent]:
        """Email events whose time has come, oldest first, optionally filtered."""
        return [
            e
            for e in self.state.visible_events()
            if (campaign_id is None or e.email_campaign_id == campaign_id)
            and (recipient is None or e.recipient.lower() == recipient.lower())
            and (type is None or e.type == type)
        ]

    def reset(self) -> None:
        """Start afresh, in one call (between tests): forget every token, message, event and
        single-send, disarm every fault and refill the rate limits. The access token, the CA,
        OAuth apps and the ports stay. Safe to call from another thread than the sandbox's."""
        loop = self._loop
        if loop is not None and loop.is_running() and not _in_loop(loop):
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def run() -> None:
                try:
                    self._reset()
                except BaseException as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(run)
            done.result(timeout=30.0)  # the reset's own error, or TimeoutError
            return
        self._reset()

    def _reset(self) -> None:
        self.state.reset()
        self.faults.clear()
        self.smtp_handler.mail_commands = 0
        self._app[LOG_KEY].clear()
        if self.limits is not None:
            self.limits.reset()
        if self.smtp_limits is not None:
            self.smtp_limits.reset()

    def stats(self) -> Stats:
        """The sandbox's counters (as ``GET /_sandbox/v1/stats`` reports them)."""
        state, limits, smtp = self.state, self.limits, self.smtp_limits
        return Stats(
            messages=len(state.messages),
            events=len(state.events),
            single_sends=len(state.sends),
            tokens=len(state.tokens),
            smtp_sessions_open=state.smtp_sessions_open,
            smtp_sessions_peak=state.smtp_sessions_peak,
            smtp_sessions_total=state.smtp_sessions_total,
            smtp_refused_connections=0 if smtp is None else smtp.refused_connections,
            smtp_refused_messages=0 if smtp is None else smtp.refused_messages,
            rest_allowed=0 if limits is None else limits.allowed,
            rest_rate_limited=0 if limits is None else limits.served_429,
            generation=state.generation,
        )

    @property
    def inspection_url(self) -> str:
        """The inspection API's root (``/_sandbox/v1``), over plain HTTP."""
        return self.base_url + "/_sandbox/v1"

    @property
    def requests(self) -> deque[RequestRecord]:
        """The requests answered so far, oldest first (the last 10 000)."""
        return self._app[LOG_KEY]

    def smtp_pool(
        self,
        credentials: SmtpCredentials | SmtpTokenWithPassword | None,
        *,
        tls: TlsMode = "starttls",
        **kwargs: Any,
    ) -> SmtpPool:
        """An :class:`SmtpPool` for this sandbox's STARTTLS (or ``implicit``) port, trusting
        its CA; ``kwargs`` go to :class:`SmtpPool`."""
        if isinstance(credentials, SmtpTokenWithPassword):
            credentials = SmtpCredentials.from_token(credentials)
        kwargs.setdefault("ssl_context", self.ssl_context())
        port = self.smtps_port if tls == "implicit" else self.smtp_port
        return SmtpPool(self.host, port, credentials=credentials, tls=tls, **kwargs)

    def client(self, *, https: bool = False, auth: OAuth | None = None, **kwargs: Any) -> HubSpot:
        """A :class:`HubSpot` client pointed at this sandbox (HTTPS with verification if
        ``https``), with the sandbox's access token or ``auth``; ``kwargs`` go to
        :class:`HubSpot`. Without a rate limit in the sandbox, the client does not pace."""
        if https:
            kwargs.setdefault("ssl", self.ssl_context())
        if self.limits is None:
            kwargs.setdefault("rate_limit", None)
        return HubSpot(
            auth or self._access_token,
            base_url=self.https_url if https else self.base_url,
            **kwargs,
        )

    def oauth(self, *, scopes: Iterable[str] = ("transactional-email",), **kwargs: Any) -> OAuth:
        """Register an OAuth app installation granted ``scopes`` and return a provider for it
        (``kwargs`` go to :class:`OAuth`); pass it to :meth:`client` as ``auth``. Without
        ``transactional-email`` the transactional paths answer HubSpot's 403
        ``MISSING_SCOPES``."""
        client_id, secret, refresh = self.state.register_oauth_app(scopes)
        return OAuth(client_id=client_id, client_secret=secret, refresh_token=refresh, **kwargs)

    async def start(self) -> None:
        """Bind and start the listeners."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._loop = asyncio.get_running_loop()
        self._ca = SandboxCA(self._tls_hosts or DEFAULT_HOSTS, data_dir=self.data_dir)
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            http_sock, https_sock, smtp_sock, smtps_sock = (
                _bind(self.host, port) for port in self._ports
            )
            self.http_port = http_sock.getsockname()[1]
            self.https_port = https_sock.getsockname()[1]
            self.smtp_port = smtp_sock.getsockname()[1]
            self.smtps_port = smtps_sock.getsockname()[1]
            server_ctx = self._ca.server_context()
            await web.SockSite(runner, http_sock).start()
            await web.SockSite(runner, https_sock, ssl_context=server_ctx).start()
            await self._start_smtp(smtp_sock, smtps_sock)
        except BaseException:
            await self.aclose()
            raise

    async def _start_smtp(self, smtp_sock: socket.socket, smtps_sock: socket.socket) -> None:
        server_ctx = self.ca.server_context()
        loop = asyncio.get_running_loop()
        handler, options = self.smtp_handler, self._smtp_options
        starttls = smtp_factory(handler, starttls_context=server_ctx, implicit=False, **options)
        implicit = smtp_factory(handler, starttls_context=None, implicit=True, **options)
        self._smtp_servers = [
            await loop.create_server(starttls, sock=smtp_sock),
            await loop.create_server(implicit, sock=smtps_sock, ssl=server_ctx),
        ]

    async def _stop_smtp(self) -> None:
        servers, self._smtp_servers = self._smtp_servers, []
        for server in servers:
            server.close()
        for protocol in list(self.smtp_handler.sessions):  # end live sessions (any Python)
            protocol.drop()
        for server in servers:
            await server.wait_closed()

    async def restart_smtp(self, downtime: float = 0.0) -> None:
        """Stop the SMTP listeners, dropping every session, and start them again on the same
        ports after ``downtime`` seconds (the server restarting under a relay)."""
        await self._stop_smtp()
        await asyncio.sleep(downtime)
        await self._start_smtp(_bind(self.host, self.smtp_port), _bind(self.host, self.smtps_port))

    async def aclose(self) -> None:
        """Stop the listeners and remove the CA file. Idempotent."""
        await self._stop_smtp()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._ca is not None:
            self._ca.cleanup()
        if self.state.store is not None:
            self.state.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "running" if self._runner else "stopped"
        return (
            f"<Sandbox {state} http={self.base_url} https={self.https_url} "
            f"smtp={self.host}:{self.smtp_port} smtps={self.host}:{self.smtps_port}>"
        )
