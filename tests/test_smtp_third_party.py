"""The relay against an SMTP server the test builds itself (aiosmtpd + its own trustme CA),
outside the sandbox code: with and without PIPELINING, with STARTTLS, and plaintext AUTH."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from hubspot_tx import InsecureAuthError, SmtpAuthError, SmtpCredentials, SmtpPool, SmtpTLSError

from .conftest import FAST_SMTP_RETRY, make_message

USER, PASSWORD = "relay-user", "relay-password-0123"


@dataclass
class Inbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    ehlo: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if server.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        self.ehlo = responses
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    port: int
    inbox: Inbox
    client_context: ssl.SSLContext | None
    pipelining: bool


async def start(
    *, pipelining: bool, tls: bool, exclude: tuple[str, ...] = ()
) -> tuple[Server, asyncio.AbstractServer]:
    inbox = Inbox()
    server_ctx = client_ctx = None
    if tls:
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)

    def factory() -> SMTP:
        smtp = SMTP(
            inbox,
            hostname="third-party.test",
            tls_context=server_ctx,
            require_starttls=tls,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=tls,
            auth_exclude_mechanism=exclude,
        )
        smtp.pipelining = pipelining  # type: ignore[attr-defined]
        return smtp

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(factory, sock=sock)
    return Server(sock.getsockname()[1], inbox, client_ctx, pipelining), server


@pytest.fixture(params=[False, True], ids=["no-pipelining", "pipelining"])
async def third_party(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    srv, server = await start(pipelining=request.param, tls=True)
    yield srv
    server.close()
    await server.wait_closed()


async def test_relay_through_a_foreign_server(third_party: Server) -> None:
    creds = SmtpCredentials(USER, PASSWORD)
    async with SmtpPool(
        "127.0.0.1",
        third_party.port,
        credentials=creds,
        ssl_context=third_party.client_context,
        max_connections=4,
        retry=FAST_SMTP_RETRY,
    ) as pool:
        outcomes = [o async for o in pool.send_many(make_message(i) for i in range(200))]
    assert len(outcomes) == 200
    assert all(o.ok for o in outcomes)
    got = sorted(
        m[2].split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
        for m in third_party.inbox.messages
    )
    assert got == sorted(f"<m{i}@hubspot-tx.test>" for i in range(200))
    assert ("250-PIPELINING" in third_party.inbox.ehlo) is third_party.pipelining


async def test_wrong_password_is_a_typed_fatal_error(third_party: Server) -> None:
    async with SmtpPool(
        "127.0.0.1",
        third_party.port,
        credentials=SmtpCredentials(USER, "wrong"),
        ssl_context=third_party.client_context,
    ) as pool:
        with pytest.raises(SmtpAuthError) as info:
            await pool.send(make_message(1))
    assert info.value.code == 535
    assert third_party.inbox.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_plaintext_auth_only_with_the_explicit_opt_in() -> None:
    srv, server = await start(pipelining=False, tls=False)
    try:
        creds = SmtpCredentials(USER, PASSWORD)
        async with SmtpPool("127.0.0.1", srv.port, credentials=creds, tls="none") as pool:
            with pytest.raises(InsecureAuthError):
                await pool.send(make_message(1))
        async with SmtpPool(
            "127.0.0.1", srv.port, credentials=creds, tls="none", allow_plaintext_auth=True
        ) as pool:
            assert (await pool.send(make_message(2))).ok
        # STARTTLS is required by default: a server without it is refused, never downgraded.
        async with SmtpPool("127.0.0.1", srv.port, credentials=creds) as pool:
            with pytest.raises(SmtpTLSError, match="STARTTLS"):
                await pool.send(make_message(3))
    finally:
        server.close()
        await server.wait_closed()
    assert len(srv.inbox.messages) == 1
