"""Opening a session without aiosmtplib: greeting, EHLO (HELO), STARTTLS or implicit TLS on our
own ``ssl.MemoryBIO`` layer, AUTH (PLAIN, LOGIN, CRAM-MD5), and what each refusal raises.

A scripted server plays each answer; a proxy that forwards one byte per segment splits every
TLS record (handshake included) across reads, in both directions, in front of the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from hubspot_tx import (
    InsecureAuthError,
    SmtpAuthError,
    SmtpConnectError,
    SmtpCredentials,
    SmtpPool,
    SmtpTLSError,
    SmtpTokenWithPassword,
)
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp._connection import Connection

from .conftest import make_message
from .lane_server import FAST, PATIENCE

USER, PASSWORD = "token-id@example", "s3cret-pass"


@dataclass
class Greeter:
    """Answers the opening of a session as told, then takes messages (one-line replies).

    ``greeting``: the first reply. ``ehlo``: the EHLO reply (``None``: 502, HELO then). ``tls``:
    "none", "starttls" (offered, and its reply ``starttls``) or "implicit". ``auth``: the
    mechanisms offered (EHLO ``AUTH`` line, empty: none); ``auth_reply`` the final answer to
    a good AUTH (a bad password always gets 535)."""

    greeting: bytes = b"220 greeter.test ESMTP"
    ehlo: list[bytes] | None = field(default_factory=lambda: [b"greeter.test", b"8BITMIME"])
    tls: str = "none"
    starttls: bytes = b"220 go ahead"
    auth: str = "PLAIN LOGIN"
    auth_reply: bytes = b"235 2.7.0 ok"
    after_tls: Callable[[asyncio.StreamWriter], None] | None = None  # once TLS is up
    hang_up: bool = False  # end the session (TLS close_notify, FIN) after a message
    offer_starttls: bool = True
    seen: list[bytes] = field(default_factory=list)  # the verbs (and AUTH lines) received
    stored: int = 0
    port: int = 0
    client_context: ssl.SSLContext | None = None

    async def session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
    ) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError, OSError):
            await self._serve(reader, writer, ctx)
        writer.close()

    def _ok(self, data: bytes) -> bool:
        return data == b"\0" + USER.encode() + b"\0" + PASSWORD.encode()

    async def _line(self, reader: asyncio.StreamReader) -> bytes:
        return (await asyncio.wait_for(reader.readline(), PATIENCE)).rstrip(b"\r\n")

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: ssl.SSLContext
    ) -> None:
        secure = self.tls == "implicit"
        if secure and self.after_tls is not None:
            self.after_tls(writer)
        writer.write(self.greeting + b"\r\n")
        while line := await self._line(reader):
            verb = line.split(b" ", 1)[0].upper()
            self.seen.append(line if verb == b"AUTH" else verb)
            if verb == b"EHLO":
                if self.ehlo is None:
                    writer.write(b"502 5.5.2 say HELO\r\n")
                    continue
                ext = list(self.ehlo)
                if self.tls == "starttls" and self.offer_starttls and not secure:
                    ext.append(b"STARTTLS")
                if self.auth:
                    ext.append(b"AUTH " + self.auth.encode())
                body = b"".join(b"250-" + x + b"\r\n" for x in ext[:-1])
                writer.write(body + b"250 " + ext[-1] + b"\r\n")
            elif verb == b"HELO":
                writer.write(b"250 greeter.test\r\n")
            elif verb == b"STARTTLS":
                writer.write(self.starttls + b"\r\n")
                await writer.drain()
                if self.starttls.startswith(b"220"):
                    await writer.start_tls(ctx)
                    secure = True
                    if self.after_tls is not None:
                        self.after_tls(writer)
            elif verb == b"AUTH":
                await self._auth(line, reader, writer)
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 OK\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                while await self._line(reader) != b".":
                    pass
                self.stored += 1
                writer.write(b"250 queued\r\n")
                if self.hang_up:
                    await writer.drain()
                    return  # closed by ``session``: close_notify first, over TLS
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 no\r\n")
            await writer.drain()

    async def _auth(
        self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        parts = line.split()
        method = parts[1].upper().decode()
        good = False
        if method == "PLAIN":
            if len(parts) > 2:
                good = self._ok(base64.b64decode(parts[2]))
            else:  # the credentials on the next line
                writer.write(b"334 \r\n")
                good = self._ok(base64.b64decode(await self._line(reader)))
        elif method == "LOGIN":
            writer.write(b"334 VXNlcm5hbWU6\r\n")
            user = base64.b64decode(await self._line(reader))
            writer.write(b"334 UGFzc3dvcmQ6\r\n")
            password = base64.b64decode(await self._line(reader))
            good = (user, password) == (USER.encode(), PASSWORD.encode())
        elif method == "CRAM-MD5":
            challenge = b"<1896.697170952@greeter.test>"
            writer.write(b"334 " + base64.b64encode(challenge) + b"\r\n")
            user, _, digest = base64.b64decode(await self._line(reader)).partition(b" ")
            want = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest().encode()
            good = user == USER.encode() and hmac.compare_digest(digest, want)
        writer.write((self.auth_reply if good else b"535 5.7.8 bad credentials") + b"\r\n")


@asynccontextmanager
async def greeter(**kwargs: Any) -> AsyncIterator[Greeter]:
    server = Greeter(**kwargs)
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    server.client_context = ssl.create_default_context()
    ca.configure_trust(server.client_context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.session(reader, writer, server_ctx)

    srv = await asyncio.start_server(
        serve, "127.0.0.1", 0, ssl=server_ctx if server.tls == "implicit" else None
    )
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srv.wait_closed(), 5)


def pool_of(server: Greeter, password: str = PASSWORD, **kwargs: Any) -> SmtpPool:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("local_hostname", "client.test")
    kwargs.setdefault("credentials", SmtpCredentials(USER, password))
    return SmtpPool(
        "127.0.0.1",
        server.port,
        tls=server.tls,  # type: ignore[arg-type]
        ssl_context=server.client_context if server.tls != "none" else None,
        max_connections=1,
        command_timeout=5.0,
        connect_timeout=10.0,
        **{"allow_plaintext_auth": server.tls == "none", **kwargs},
    )


async def send_one(server: Greeter, **kwargs: Any) -> Any:
    async with pool_of(server, **kwargs) as pool:
        return await asyncio.wait_for(pool.send(make_message(1)), PATIENCE)


async def open_session(server: Greeter, **kwargs: Any) -> None:
    """Open one session as the pool would (what it raises is what the pool sees), and QUIT."""
    pool = pool_of(server, **kwargs)
    conn = await asyncio.wait_for(Connection.open(pool.settings, pool._credentials, 0), PATIENCE)
    await conn.close(5.0)


# -- AUTH ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("offered", ["PLAIN LOGIN CRAM-MD5", "LOGIN", "CRAM-MD5", "login plain"])
async def test_each_auth_method_logs_in(tls: str, offered: str) -> None:
    """PLAIN when offered (one line: the password never waits on a challenge), else LOGIN,
    else CRAM-MD5; lowercase mechanism names too."""
    async with greeter(tls=tls, auth=offered) as server:
        outcome = await send_one(server)
    assert outcome.ok, outcome
    assert server.stored == 1
    (auth,) = [x for x in server.seen if x.startswith(b"AUTH")]
    want = "PLAIN" if "PLAIN" in offered.upper() else offered.split()[0]
    assert auth.split()[1].decode() == want


@pytest.mark.parametrize("offered", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_a_wrong_password_is_an_auth_error_that_shows_no_secret(offered: str) -> None:
    async with greeter(tls="starttls", auth=offered) as server:
        with pytest.raises(SmtpAuthError) as caught:
            await open_session(server, password="wrong-" + PASSWORD)
    text = f"{caught.value!r} {caught.value}"
    assert "535" in text
    assert USER in text
    assert PASSWORD not in text
    assert "wrong-" not in text
    assert base64.b64encode(PASSWORD.encode()).decode() not in text
    assert server.stored == 0


async def test_a_server_without_a_method_we_have_says_what_it_offers() -> None:
    async with greeter(tls="starttls", auth="GSSAPI XOAUTH2") as server:
        with pytest.raises(SmtpConnectError, match=r"offers no AUTH method.*GSSAPI XOAUTH2"):
            await open_session(server)


async def test_454_to_auth_is_temporary_not_an_auth_error() -> None:
    async with greeter(tls="starttls", auth_reply=b"454 4.7.0 try later") as server:
        with pytest.raises(SmtpConnectError, match="could not check the credentials") as caught:
            await open_session(server)
    assert not isinstance(caught.value, SmtpAuthError)
    assert caught.value.code == 454


async def test_no_password_crosses_a_plaintext_session_unless_allowed() -> None:
    async with greeter(tls="none") as server:
        with pytest.raises(InsecureAuthError):
            await open_session(server, allow_plaintext_auth=False)
    assert not [x for x in server.seen if x.startswith(b"AUTH")]


# -- greeting, EHLO, STARTTLS -------------------------------------------------------------------
async def test_a_421_greeting_is_a_connect_error_with_its_text() -> None:
    async with greeter(greeting=b"421 4.3.2 busy, come back later") as server:
        with pytest.raises(SmtpConnectError, match=r"greeted 421 4\.3\.2 busy") as caught:
            await open_session(server)
    assert caught.value.code == 421


async def test_ehlo_refused_falls_back_to_helo_only_without_tls() -> None:
    async with greeter(ehlo=None) as server:
        outcome = await send_one(server, credentials=None)
    assert outcome.ok, outcome
    assert server.seen[:2] == [b"EHLO", b"HELO"]
    async with greeter(ehlo=None, tls="starttls") as server:
        with pytest.raises(SmtpConnectError, match="EHLO with 502"):
            await open_session(server)
    assert b"STARTTLS" not in server.seen
    assert b"MAIL" not in server.seen


async def test_starttls_not_offered_is_refused_never_downgraded() -> None:
    async with greeter(tls="starttls", offer_starttls=False) as server:
        with pytest.raises(SmtpTLSError, match="does not offer STARTTLS"):
            await open_session(server)
    assert b"AUTH" not in b" ".join(server.seen)
    assert b"MAIL" not in server.seen


async def test_starttls_answered_454_is_a_connect_error_and_nothing_goes_in_clear() -> None:
    async with greeter(tls="starttls", starttls=b"454 4.7.0 TLS not available now") as server:
        with pytest.raises(SmtpConnectError, match="STARTTLS with 454") as caught:
            await open_session(server)
    assert not isinstance(caught.value, SmtpTLSError)
    assert server.seen == [b"EHLO", b"STARTTLS"]


# -- the TLS layer -------------------------------------------------------------------------------
async def test_garbage_after_the_handshake_fails_the_session_with_a_tls_error() -> None:
    """Bytes that are no TLS record, right after the server's handshake: the client cannot
    read the reply to its EHLO; the error says TLS and nothing is sent."""

    def garbage(writer: asyncio.StreamWriter) -> None:
        fd = writer.transport.get_extra_info("socket").fileno()
        os.write(fd, b"\x17\x03\x03\x00\x10" + b"\xaa" * 16)  # under TLS: a bad record

    async with greeter(tls="starttls", after_tls=garbage) as server:
        with pytest.raises(SmtpConnectError, match="TLS"):
            await open_session(server)
    assert server.stored == 0


async def test_the_servers_close_notify_ends_the_idle_session() -> None:
    """The server ends TLS (close_notify, then FIN) after each message: the idle session is
    over once that arrives, and the next message goes on a new session, sent once."""
    async with greeter(tls="starttls", hang_up=True) as server, pool_of(server) as pool:
        first = await asyncio.wait_for(pool.send(make_message(1)), PATIENCE)
        for _ in range(500):  # the session is dropped once its close_notify is read
            if not pool._idle:
                break
            await asyncio.sleep(0.01)
        assert not pool._idle
        second = await asyncio.wait_for(pool.send(make_message(2)), PATIENCE)
    assert first.ok, first
    assert second.ok, second
    assert second.attempts == 1
    assert server.stored == 2
    assert server.seen.count(b"STARTTLS") == 2


class _Trickle:
    """A TCP proxy that forwards one byte per segment, both ways (every TLS record, handshake
    included, split across reads)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> _Trickle:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for sock in (writer, up_writer):
            sock.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self.tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        writer.close()
        up_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                for i in range(len(data)):
                    writer.write(data[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_records_split_byte_by_byte_against_the_sandbox(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tls: str
) -> None:
    """The sandbox's real STARTTLS (or implicit TLS) and AUTH behind a proxy that forwards a
    byte at a time: the handshake and every record arrive in pieces; the messages go once."""
    port = sandbox.smtp_port if tls == "starttls" else sandbox.smtps_port
    async with (
        _Trickle((sandbox.host, port)) as proxy,
        SmtpPool(
            sandbox.host,
            proxy.port,
            tls=tls,  # type: ignore[arg-type]
            credentials=SmtpCredentials.from_token(token),
            ssl_context=sandbox.ssl_context(),
            max_connections=2,
            retry=FAST,
        ) as pool,
    ):
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(pool.send(make_message(i)) for i in range(4))), PATIENCE * 4
        )
    assert all(o.ok for o in outcomes), outcomes
    assert sorted(str(m.message_id) for m in sandbox.outbox()) == sorted(
        f"<m{i}@hubspot-tx.test>" for i in range(4)
    )
