"""The session's own opening and TLS layer against hostile servers on 127.0.0.1 (written by an
independent review of the change that made them ours; each bug it found is a test here).

Each server here is scripted byte by byte: plain TCP (``asyncio.start_server``) and, for TLS,
an ``ssl.SSLObject`` of its own over memory BIOs, so record boundaries, coalescing, KeyUpdate
and renegotiation are under the test's control. Every test runs on asyncio and on uvloop
(``LOOP``), each in a loop of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import gc
import ssl
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme
import uvloop

from hubspot_tx import (
    SmtpAuthError,
    SmtpConnectError,
    SmtpCredentials,
    SmtpPool,
    SmtpRetry,
    SmtpTLSError,
)
from hubspot_tx.smtp._connection import Connection

from .conftest import make_message

USER, PASSWORD = "token-id@example", "s3cret-pass"
FAST = SmtpRetry(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
LOOP = pytest.mark.parametrize("loop", list(LOOPS))

CA = trustme.CA()
CERT = CA.issue_cert("127.0.0.1")


def server_context(**kw: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    CERT.configure_cert(ctx)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    CA.configure_trust(ctx)
    return ctx


def run(loop: str, body: Callable[[], Awaitable[Any]], limit: float = 30.0) -> Any:
    """Run ``body`` in a fresh loop of the kind named; ResourceWarnings become failures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            result = runner.run(asyncio.wait_for(body(), limit))
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks
    return result


# -- raw access to OpenSSL for the server side (KeyUpdate, renegotiation) ------------------------
# Python has no API for either: the SSL* is read out of CPython's PySSLSocket (PyObject_HEAD,
# then PyObject *Socket, then SSL *ssl; so in 3.11 to 3.13, 64-bit). Elsewhere: skipped.
try:
    _libssl: Any = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    _libssl.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _libssl.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    _RAW_SSL = (
        sys.implementation.name == "cpython"
        and (3, 11) <= sys.version_info[:2] <= (3, 13)
        and ctypes.sizeof(ctypes.c_void_p) == 8
        and ssl.OPENSSL_VERSION_INFO[0] == 3
    )
except (OSError, AttributeError):
    _RAW_SSL = False
RAW_SSL = pytest.mark.skipif(not _RAW_SSL, reason="needs CPython 3.11-3.13 and OpenSSL 3 on 64-bit")


def _ssl_ptr(obj: ssl.SSLObject) -> int:
    # PySSLSocket: PyObject_HEAD (16 bytes), PyObject *Socket, SSL *ssl
    ptr = ctypes.c_void_p.from_address(id(obj._sslobj) + 24).value  # type: ignore[attr-defined]
    return int(ptr or 0)


class Peer:
    """The server's end of one connection, plaintext or TLS (its own SSLObject)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer
        self.tls: ssl.SSLObject | None = None
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.plain = bytearray()
        self.seen: list[bytes] = []

    async def handshake(self, ctx: ssl.SSLContext) -> None:
        self.tls = tls = ctx.wrap_bio(self.inb, self.outb, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
            except ssl.SSLError:  # its alert goes out, as a real server's would
                self.flush()
                raise
            data = await self.r.read(65536)
            if not data:
                raise EOFError
            self.inb.write(data)
        self.flush()

    def flush(self) -> None:
        if self.outb.pending:
            self.w.write(self.outb.read())

    def seal(self, data: bytes) -> bytes:
        """``data`` as TLS records (not sent)."""
        assert self.tls is not None
        self.tls.write(data)
        return self.outb.read()

    def send(self, data: bytes) -> None:
        self.w.write(self.seal(data) if self.tls is not None else data)

    async def _more(self) -> None:
        if self.tls is not None and self.inb.pending and self._decrypt():
            return  # records left over from the handshake's read
        data = await self.r.read(65536)
        if not data:
            raise EOFError
        if self.tls is None:
            self.plain += data
            return
        self.inb.write(data)
        self._decrypt()

    def _decrypt(self) -> bool:
        assert self.tls is not None
        before = len(self.plain)
        with contextlib.suppress(ssl.SSLWantReadError):
            while True:
                chunk = self.tls.read(65536)
                if not chunk:
                    raise EOFError
                self.plain += chunk
        self.flush()
        return len(self.plain) > before

    async def line(self) -> bytes:
        while b"\n" not in self.plain:
            await self._more()
        end = self.plain.index(b"\n")
        line = bytes(self.plain[:end]).rstrip(b"\r")
        del self.plain[: end + 1]
        self.seen.append(line)
        return line

    async def data(self) -> bytes:
        """The message after a 354, up to its final "."."""
        while b"\r\n.\r\n" not in self.plain:
            await self._more()
        end = self.plain.index(b"\r\n.\r\n")
        body = bytes(self.plain[: end + 2])
        del self.plain[: end + 5]
        return body


async def ehlo_reply(peer: Peer, ext: list[bytes]) -> None:
    lines = [b"peer.test", *ext]
    body = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1])
    peer.send(body + b"250 " + lines[-1] + b"\r\n")


async def serve_rest(peer: Peer, stored: list[bytes]) -> None:
    """AUTH PLAIN, then messages, then QUIT."""
    while True:
        line = await peer.line()
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"AUTH":
            peer.send(b"235 ok\r\n")
        elif verb == b"DATA":
            peer.send(b"354 go\r\n")
            stored.append(await peer.data())
            peer.send(b"250 queued\r\n")
        elif verb == b"QUIT":
            peer.send(b"221 bye\r\n")
            return
        else:
            peer.send(b"250 ok\r\n")


async def starttls_open(peer: Peer, ctx: ssl.SSLContext | None = None) -> None:
    """Greeting, EHLO, STARTTLS, handshake: up to the EHLO over TLS (not answered)."""
    peer.send(b"220 peer.test ESMTP\r\n")
    assert (await peer.line()).startswith(b"EHLO")
    await ehlo_reply(peer, [b"STARTTLS"])
    assert await peer.line() == b"STARTTLS"
    peer.send(b"220 go ahead\r\n")
    await peer.handshake(ctx or server_context())


class Server:
    def __init__(self, script: Callable[[Peer], Awaitable[None]]) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Server:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            peer = Peer(r, w)
            self.peers.append(peer)
            self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await self.script(peer)
            except (EOFError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                w.close()

        self.srv = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.srv.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0.05)


def pool_for(port: int, tls: str = "starttls", **kw: Any) -> SmtpPool:
    kw.setdefault("retry", FAST)
    kw.setdefault("local_hostname", "client.test")
    kw.setdefault("credentials", SmtpCredentials(USER, PASSWORD))
    kw.setdefault("ssl_context", client_context() if tls != "none" else None)
    kw.setdefault("command_timeout", 3.0)
    kw.setdefault("connect_timeout", 5.0)
    return SmtpPool("127.0.0.1", port, tls=tls, max_connections=1, **kw)  # type: ignore[arg-type]


async def open_conn(port: int, tls: str = "starttls", **kw: Any) -> Connection:
    pool = pool_for(port, tls, **kw)
    return await Connection.open(pool.settings, pool._credentials, 0)


def big_message(i: int, size: int) -> bytes:
    """make_message with a body of ``size`` bytes in 78-byte lines."""
    line = b"y" * 76 + b"\r\n"
    return make_message(i) + line * (size // len(line) + 1)


def no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert base64.b64encode(PASSWORD.encode()).decode() not in text
    blob = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
    assert blob not in text


# == STARTTLS ===================================================================================
@LOOP
def test_plaintext_sent_with_the_starttls_220_is_not_read_as_the_encrypted_ehlo(loop: str) -> None:
    """STARTTLS response injection (CVE-2011-0411 family): a man in the middle appends a
    plaintext EHLO reply to the 220. The client must not take it as the answer to its EHLO
    over TLS: it refuses the session (SmtpTLSError, fatal) before the handshake; no AUTH."""

    async def script(peer: Peer) -> None:
        peer.send(b"220 peer.test ESMTP\r\n")
        await peer.line()
        await ehlo_reply(peer, [b"STARTTLS"])
        await peer.line()
        peer.send(b"220 go ahead\r\n250-evil.test\r\n250 AUTH PLAIN\r\n")  # one segment
        await peer.handshake(server_context())
        await ehlo_reply(peer, [b"AUTH LOGIN"])
        await asyncio.sleep(5)

    async def body() -> list[bytes]:
        async with Server(script) as srv:
            with pytest.raises(SmtpTLSError, match="in the clear after its reply to STARTTLS"):
                await open_conn(srv.port)
            await asyncio.sleep(0.1)
            return srv.peers[0].seen

    seen = run(loop, body)
    assert seen[-1] == b"STARTTLS", seen
    assert not [x for x in seen if x.startswith(b"AUTH")], seen


@LOOP
def test_a_server_that_hangs_in_the_handshake_is_bounded_by_connect_timeout(loop: str) -> None:
    async def script(peer: Peer) -> None:
        peer.send(b"220 peer.test ESMTP\r\n")
        await peer.line()
        await ehlo_reply(peer, [b"STARTTLS"])
        await peer.line()
        peer.send(b"220 go ahead\r\n")
        await asyncio.sleep(60)  # the ClientHello is never answered

    async def body() -> float:
        async with Server(script) as srv:
            start = time.monotonic()
            with pytest.raises(SmtpConnectError, match="no answer in 1 s") as caught:
                await open_conn(srv.port, connect_timeout=1.0, command_timeout=10.0)
            assert not isinstance(caught.value, SmtpTLSError)
            return time.monotonic() - start

    assert run(loop, body) < 2.0


@LOOP
def test_a_handshake_fed_one_byte_at_a_time_still_times_out(loop: str) -> None:
    """A server dribbling its handshake forever (one byte per 50 ms): connect_timeout holds."""

    async def script(peer: Peer) -> None:
        peer.send(b"220 peer.test ESMTP\r\n")
        await peer.line()
        await ehlo_reply(peer, [b"STARTTLS"])
        await peer.line()
        peer.send(b"220 go ahead\r\n")
        await peer.r.read(65536)
        for _ in range(1000):
            peer.w.write(b"\x16")
            await asyncio.sleep(0.05)

    async def body() -> float:
        async with Server(script) as srv:
            start = time.monotonic()
            with pytest.raises(SmtpConnectError):
                await open_conn(srv.port, connect_timeout=1.0)
            return time.monotonic() - start

    assert run(loop, body) < 2.0


@LOOP
@pytest.mark.parametrize("when", ["clienthello", "server-flight-half"])
def test_a_peer_that_closes_mid_handshake_is_a_prompt_connect_error(loop: str, when: str) -> None:
    async def script(peer: Peer) -> None:
        peer.send(b"220 peer.test ESMTP\r\n")
        await peer.line()
        await ehlo_reply(peer, [b"STARTTLS"])
        await peer.line()
        peer.send(b"220 go ahead\r\n")
        hello = await peer.r.read(65536)
        if when == "server-flight-half":
            tls = server_context().wrap_bio(peer.inb, peer.outb, server_side=True)
            peer.inb.write(hello)
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()
            flight = peer.outb.read()
            peer.w.write(flight[: len(flight) // 2])
            await peer.w.drain()
        peer.w.close()

    async def body() -> float:
        async with Server(script) as srv:
            start = time.monotonic()
            with pytest.raises(SmtpConnectError) as caught:
                await open_conn(srv.port, connect_timeout=5.0)
            no_secret(str(caught.value))
            # A dropped connection is "retry later", as a reset was before (asyncio's TLS
            # transport: ConnectionResetError), not a fatal TLS error: the WireClosed raised
            # inside ``except ssl.SSLWantReadError`` in Wire.start_tls carries that
            # SSLWantReadError as __context__, and _is_tls_failure follows __context__.
            assert not isinstance(caught.value, SmtpTLSError), caught.value
            return time.monotonic() - start

    assert run(loop, body) < 1.0


@LOOP
def test_a_tls_version_the_server_refuses_is_a_tls_error(loop: str) -> None:
    async def script(peer: Peer) -> None:
        await starttls_open(peer, server_context(minimum_version=ssl.TLSVersion.TLSv1_3))

    async def body() -> None:
        async with Server(script) as srv:
            ctx = client_context()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises(SmtpTLSError, match="speak starttls TLS"):
                await open_conn(srv.port, ssl_context=ctx)

    run(loop, body)


@LOOP
@pytest.mark.parametrize("problem", ["hostname", "untrusted"])
def test_a_certificate_that_does_not_verify_is_a_tls_error_with_advice(
    loop: str, problem: str
) -> None:
    def ctx() -> ssl.SSLContext:
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if problem == "hostname":
            CA.issue_cert("other.test").configure_cert(c)
        else:
            trustme.CA().issue_cert("127.0.0.1").configure_cert(c)
        return c

    async def script(peer: Peer) -> None:
        await starttls_open(peer, ctx())

    async def body() -> str:
        async with Server(script) as srv:
            with pytest.raises(SmtpTLSError) as caught:
                await open_conn(srv.port, ssl_context=None)  # the default context: advice
            return str(caught.value)

    text = run(loop, body)
    assert "certificate" in text.lower(), text
    assert "HUBSPOT" in text.upper() or "ca" in text.lower(), text


@LOOP
def test_a_session_whose_handshake_timed_out_is_retried_not_fatal(loop: str) -> None:
    """The first session's handshake hangs (a busy server), the second is fine: the message
    goes on the retry. Today the timeout becomes SmtpTLSError (fatal) and is never retried."""

    async def script(peer: Peer) -> None:
        first = len(srv.peers) == 1
        peer.send(b"220 peer.test ESMTP\r\n")
        await peer.line()
        await ehlo_reply(peer, [b"STARTTLS"])
        await peer.line()
        peer.send(b"220 go ahead\r\n")
        if first:
            await asyncio.sleep(60)
        await peer.handshake(server_context())
        await peer.line()
        await ehlo_reply(peer, [b"AUTH PLAIN"])
        await serve_rest(peer, stored)

    stored: list[bytes] = []
    srv = Server(script)

    async def body() -> Any:
        async with srv, pool_for(srv.port, connect_timeout=1.0) as pool:
            return await pool.send(make_message(1))

    outcome = run(loop, body)
    assert outcome.ok, outcome
    assert len(stored) == 1


# == after the handshake ========================================================================
async def tls_session(
    peer: Peer, ctx: ssl.SSLContext | None = None, ext: bytes = b"AUTH PLAIN"
) -> None:
    await starttls_open(peer, ctx)
    assert (await peer.line()).startswith(b"EHLO")
    await ehlo_reply(peer, [ext])


def pool_run(
    loop: str, script: Callable[[Peer], Awaitable[None]], messages: list[Any], **kw: Any
) -> tuple[list[Any], Server]:
    srv = Server(script)

    async def body() -> list[Any]:
        async with srv, pool_for(srv.port, **kw) as pool:
            return [await pool.send(m) for m in messages]

    return run(loop, body, kw.pop("limit", 60.0)), srv


@RAW_SSL
@LOOP
@pytest.mark.parametrize("when", ["before-auth-reply", "during-data"])
def test_a_tls13_key_update_with_update_requested(loop: str, when: str) -> None:
    stored: list[bytes] = []

    async def script(peer: Peer) -> None:
        await tls_session(peer)
        assert peer.tls is not None
        await peer.line()  # AUTH
        if when == "before-auth-reply":
            _libssl.SSL_key_update(_ssl_ptr(peer.tls), 1)
        peer.send(b"235 ok\r\n")
        while True:
            line = await peer.line()
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"DATA":
                peer.send(b"354 go\r\n")
                if when == "during-data" and not stored:
                    while len(peer.plain) < 100_000:
                        await peer._more()
                    _libssl.SSL_key_update(_ssl_ptr(peer.tls), 1)
                    peer.tls.do_handshake()  # sends the KeyUpdate now
                    peer.flush()
                stored.append(await peer.data())
                peer.send(b"250 queued\r\n")
            elif verb == b"QUIT":
                peer.send(b"221 bye\r\n")
                return
            else:
                peer.send(b"250 ok\r\n")

    big = big_message(1, 300_000)
    outcomes, srv = pool_run(loop, script, [big, make_message(2)])
    assert not srv.errors, srv.errors
    assert all(o.ok for o in outcomes), outcomes
    assert len(stored) == 2


@RAW_SSL
@LOOP
def test_a_tls12_renegotiation_requested_by_the_server(loop: str) -> None:
    """The server sends a HelloRequest right behind its 235 (TLS 1.2): the client's next
    write, made while the renegotiation is under way, gets SSLWantReadError from
    SSLObject.write: it waits (``Wire._unsent``) until reading lets the renegotiation end."""
    stored: list[bytes] = []

    async def script(peer: Peer) -> None:
        await tls_session(peer, server_context(maximum_version=ssl.TLSVersion.TLSv1_2))
        assert peer.tls is not None
        await peer.line()  # AUTH
        _libssl.SSL_renegotiate(_ssl_ptr(peer.tls))
        with contextlib.suppress(ssl.SSLWantReadError):
            peer.tls.do_handshake()  # emits the HelloRequest
        peer.send(b"235 ok\r\n")
        await serve_rest(peer, stored)

    outcomes, srv = pool_run(loop, script, [make_message(1)], retry=SmtpRetry(max_attempts=1))
    assert not srv.errors, srv.errors
    assert outcomes[0].ok, outcomes
    assert len(stored) == 1


@LOOP
def test_close_notify_mid_reply_fails_at_once(loop: str) -> None:
    async def script(peer: Peer) -> None:
        await starttls_open(peer)
        await peer.line()
        assert peer.tls is not None
        peer.send(b"250-peer.test\r\n")
        with contextlib.suppress(ssl.SSLError):
            peer.tls.unwrap()
        peer.flush()
        await asyncio.sleep(30)  # no FIN

    async def body() -> float:
        async with Server(script) as srv:
            start = time.monotonic()
            with pytest.raises(SmtpConnectError, match=r"closed the (TLS session|connection)"):
                await open_conn(srv.port, command_timeout=5.0)
            return time.monotonic() - start

    assert run(loop, body) < 1.0


@LOOP
@pytest.mark.parametrize("size", [24_000_000])
def test_close_notify_mid_data_is_retried_and_sent_once(loop: str, size: int) -> None:
    """The server ends TLS after 50 kB of a message larger than the socket buffers: the "."
    cannot have been written, so the message is retried on a new session and stored once."""
    stored: list[bytes] = []

    async def script(peer: Peer) -> None:
        first = len(srv_box[0].peers) == 1
        await tls_session(peer)
        while True:
            line = await peer.line()
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"AUTH":
                peer.send(b"235 ok\r\n")
            elif verb == b"DATA":
                peer.send(b"354 go\r\n")
                if first:
                    while len(peer.plain) < 50_000:
                        await peer._more()
                    assert peer.tls is not None
                    with contextlib.suppress(ssl.SSLError):
                        peer.tls.unwrap()
                    peer.flush()
                    await asyncio.sleep(10)
                    return
                stored.append(await peer.data())
                peer.send(b"250 queued\r\n")
            elif verb == b"QUIT":
                peer.send(b"221 bye\r\n")
                return
            else:
                peer.send(b"250 ok\r\n")

    msg = big_message(1, size)
    srv_box: list[Server] = []
    srv = Server(script)
    srv_box.append(srv)

    async def body() -> Any:
        async with srv, pool_for(srv.port) as pool:
            return await pool.send(msg)

    outcome = run(loop, body)
    assert outcome.ok, outcome
    assert len(stored) == 1


@LOOP
@pytest.mark.parametrize("size", [70_000, 5_000_000])
def test_a_large_message_to_a_slow_reader_over_tls(loop: str, size: int) -> None:
    stored: list[bytes] = []

    async def script(peer: Peer) -> None:
        await tls_session(peer)
        while True:
            line = await peer.line()
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"AUTH":
                peer.send(b"235 ok\r\n")
            elif verb == b"DATA":
                peer.send(b"354 go\r\n")
                while b"\r\n.\r\n" not in peer.plain:
                    await asyncio.sleep(0.002)
                    await peer._more()
                stored.append(await peer.data())
                peer.send(b"250 queued\r\n")
            elif verb == b"QUIT":
                peer.send(b"221 bye\r\n")
                return
            else:
                peer.send(b"250 ok\r\n")

    msg = big_message(1, size)
    outcomes, _srv = pool_run(loop, script, [msg])
    assert outcomes[0].ok, outcomes
    assert len(stored) == 1
    assert len(stored[0]) > size


@LOOP
def test_a_server_that_stops_reading_the_data_fails_in_bounded_time(loop: str) -> None:
    started: list[float] = []

    async def script(peer: Peer) -> None:
        await tls_session(peer)
        while True:
            line = await peer.line()
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"AUTH":
                peer.send(b"235 ok\r\n")
            elif verb == b"DATA":
                peer.send(b"354 go\r\n")
                started.append(time.monotonic())
                await asyncio.sleep(30)  # reads nothing more
                return
            else:
                peer.send(b"250 ok\r\n")

    msg = big_message(1, 24_000_000)

    async def body() -> tuple[Any, float]:
        async with (
            Server(script) as srv,
            pool_for(srv.port, command_timeout=1.0, retry=SmtpRetry(max_attempts=1)) as pool,
        ):
            outcome = await pool.send(msg)
            return outcome, time.monotonic() - started[0]

    outcome, took = run(loop, body)
    assert not outcome.ok, outcome
    assert took < 5.0, took


# == AUTH =======================================================================================
def auth_script(ext: bytes, answers: list[bytes]) -> Callable[[Peer], Awaitable[None]]:
    async def script(peer: Peer) -> None:
        await tls_session(peer, ext=ext)
        for answer in answers:
            await peer.line()
            peer.send(answer + b"\r\n")
        await asyncio.sleep(5)

    return script


@LOOP
@pytest.mark.parametrize("challenge", [b"334 abc", b"334 ="])
def test_a_malformed_cram_md5_challenge_is_an_auth_error_that_names_it(
    loop: str, challenge: bytes
) -> None:
    """Non-base64 (bad padding) challenge: today binascii.Error ("Incorrect padding") is caught
    as ValueError and reported as SmtpConnectError("cannot open ...: Incorrect padding"), which
    the pool retries as if the server were down; nothing says AUTH or CRAM-MD5."""

    async def body() -> BaseException:
        async with Server(auth_script(b"AUTH CRAM-MD5", [challenge])) as srv:
            with pytest.raises(SmtpAuthError) as caught:
                await open_conn(srv.port)
            return caught.value

    exc = run(loop, body)
    no_secret(f"{exc} {exc!r}")
    assert "CRAM-MD5" in str(exc) or "challenge" in str(exc), exc
    assert isinstance(exc, SmtpAuthError), exc


@LOOP
def test_a_server_that_echoes_the_credentials_in_its_refusal_leaks_no_secret(loop: str) -> None:
    """A 535 whose text quotes the AUTH line (some servers echo the argument they reject):
    the SmtpAuthError must not carry the password nor its base64."""
    blob = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())

    async def body() -> BaseException:
        async with Server(auth_script(b"AUTH PLAIN", [b"535 5.7.8 bad AUTH PLAIN " + blob])) as srv:
            with pytest.raises(SmtpAuthError) as caught:
                await open_conn(srv.port)
            return caught.value

    exc = run(loop, body)
    no_secret(f"{exc} {exc!r}")


@LOOP
@pytest.mark.parametrize(
    ("ext", "answers", "kind"),
    [
        (b"AUTH PLAIN", [b"334 "], SmtpAuthError),  # asks for more after the initial response
        (b"AUTH LOGIN", [b"334 VXNlcm5hbWU6", b"334 VXNlcm5hbWU6", b"334 x"], SmtpAuthError),
        (b"AUTH=LOGIN", [b"235 ok at once"], None),
        (b"AUTH", [], SmtpConnectError),
    ],
)
def test_odd_auth_dialogues(loop: str, ext: bytes, answers: list[bytes], kind: Any) -> None:
    async def body() -> BaseException | None:
        async with Server(auth_script(ext, answers)) as srv:
            try:
                conn = await open_conn(srv.port)
            except Exception as exc:
                return exc
            conn.abort()
            return None

    exc = run(loop, body)
    if kind is None:
        assert exc is None, exc
    else:
        assert isinstance(exc, kind), exc
        no_secret(f"{exc} {exc!r}")


# == closing a broken session ===================================================================
@LOOP
@pytest.mark.parametrize("breakage", ["bad-record", "close-notify", "half-record"])
def test_closing_a_session_whose_tls_broke(loop: str, breakage: str) -> None:
    async def script(peer: Peer) -> None:
        await tls_session(peer)
        await peer.line()
        peer.send(b"235 ok\r\n")
        await asyncio.sleep(0.2)
        assert peer.tls is not None
        if breakage == "bad-record":
            peer.w.write(b"\x17\x03\x03\x00\x10" + b"\xaa" * 16)
        elif breakage == "close-notify":
            with contextlib.suppress(ssl.SSLError):
                peer.tls.unwrap()
            peer.flush()
        else:
            peer.w.write(peer.seal(b"250 never ends\r\n")[:7])
        await asyncio.sleep(5)

    async def body() -> None:
        async with Server(script) as srv:
            conn = await open_conn(srv.port)
            await asyncio.sleep(0.5)
            await conn.close(1.0)  # must neither raise nor hang beyond its timeout
            assert conn.closed

    run(loop, body)


# == coalesced records ==========================================================================
@LOOP
@pytest.mark.parametrize("cut", [0, 1, 3, 5, 6])
def test_implicit_tls12_greeting_glued_to_the_servers_finished(loop: str, cut: int) -> None:
    """TLS 1.2: the server's last flight (CCS, Finished) and the 220 record in one segment,
    or cut ``cut`` bytes into the 220 record."""
    stored: list[bytes] = []

    async def script(peer: Peer) -> None:
        tls = server_context(maximum_version=ssl.TLSVersion.TLSv1_2).wrap_bio(
            peer.inb, peer.outb, server_side=True
        )
        peer.tls = tls
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                peer.flush()
                peer.inb.write(await peer.r.read(65536))
        flight = peer.outb.read()
        greeting = peer.seal(b"220 peer.test ESMTP\r\n")
        glued = flight + greeting
        at = len(flight) + cut if cut else len(glued)
        peer.w.write(glued[:at])
        await asyncio.sleep(0.05)
        peer.w.write(glued[at:])
        await peer.line()
        await ehlo_reply(peer, [b"AUTH PLAIN"])
        await serve_rest(peer, stored)

    outcomes, srv = pool_run(loop, script, [make_message(1)], tls="implicit")
    assert not srv.errors, srv.errors
    assert outcomes[0].ok, outcomes
    assert len(stored) == 1
