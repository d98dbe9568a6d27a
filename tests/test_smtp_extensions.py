"""What the relay asks of the server and how it reads its answers: 8BITMIME, SMTPUTF8, the
EHLO name, a temporary AUTH failure, and the session limit while a session is retired."""

from __future__ import annotations

import asyncio
import dataclasses
import email.policy
import socket
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from hubspot_tx import FailureCategory, InvalidReason, SmtpCredentials

from .conftest import make_message
from .smtp_recorder import recorder_pool, recording_server

EIGHT_BIT = (
    b"From: sender@example.com\r\nTo: ada@example.org\r\nSubject: caf\xc3\xa9\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9e.\r\n"
)
EIGHT_BIT_BODY_ONLY = EIGHT_BIT.replace(b"caf\xc3\xa9", b"cafe")


async def test_8bit_data_is_declared_body_8bitmime() -> None:
    async with recording_server() as (port, rec), recorder_pool(port) as pool:
        assert (await pool.send(EIGHT_BIT_BODY_ONLY)).ok
        assert (await pool.send(make_message(1))).ok
    eight, seven = rec.received
    assert "BODY=8BITMIME" in eight.mail_options
    assert eight.data == EIGHT_BIT_BODY_ONLY
    assert not any(o.startswith("BODY=") for o in seven.mail_options)


async def test_8bit_data_to_a_server_without_8bitmime_is_an_invalid_message() -> None:
    hidden = frozenset({"8BITMIME", "SMTPUTF8"})
    async with recording_server(hide=hidden) as (port, rec), recorder_pool(port) as pool:
        outcome = await pool.send(EIGHT_BIT_BODY_ONLY)
        assert (await pool.send(make_message(2))).ok  # the session is still good
    assert outcome.category is FailureCategory.INVALID_MESSAGE
    assert outcome.reason is InvalidReason.NEEDS_8BITMIME
    assert "8BITMIME" in outcome.reply
    assert len(rec.received) == 1  # only the 7-bit message
    assert rec.mail_commands == 1


async def test_an_smtputf8_email_message_keeps_its_utf8_addresses() -> None:
    message = EmailMessage(policy=email.policy.SMTPUTF8)
    message["From"] = "Zoë <zoë@exämple.org>"
    message["To"] = "José <josé@example.org>"
    message["Subject"] = "Grüße"
    message.set_content("Hallo.")
    async with recording_server() as (port, rec), recorder_pool(port) as pool:
        outcome = await pool.send(message)
    assert outcome.ok, outcome
    (got,) = rec.received
    assert got.rcpt_to == ["josé@example.org"]
    assert "SMTPUTF8" in got.mail_options
    assert b"=?utf-8?" not in got.data  # no RFC 2047 word inside an address
    assert "To: José <josé@example.org>\r\n".encode() in got.data
    parsed = email.message_from_string(got.data.decode(), policy=email.policy.SMTPUTF8)
    assert parsed["To"].addresses[0].addr_spec == "josé@example.org"


async def test_ehlo_names_a_fully_qualified_domain_or_an_address_literal() -> None:
    async with recording_server() as (port, rec), recorder_pool(port) as pool:
        assert (await pool.send(make_message(1))).ok
    (name,) = set(rec.ehlo)
    fqdn = socket.getfqdn()
    if "." in fqdn and not fqdn.startswith("localhost"):
        assert name == fqdn
    else:  # a bare host name is no valid EHLO argument: an address literal instead
        assert (name[0], name[-1]) == ("[", "]"), name
        socket.inet_aton(name[1:-1])


def temporarily_failing_auth() -> tuple[Any, list[str]]:
    """An authenticator that answers 454 to whatever the first session tries, then accepts."""
    seen: list[str] = []
    first: list[Any] = []

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        seen.append(mechanism)
        first[:] = first or [session]
        if session is first[0]:
            return AuthResult(
                success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
            )
        ok = isinstance(data, LoginPassword) and data.login == b"user"
        return AuthResult(success=ok, handled=False)

    return authenticate, seen


async def test_454_to_auth_is_temporary_and_retried() -> None:
    authenticate, seen = temporarily_failing_auth()
    async with (
        recording_server(authenticator=authenticate) as (port, rec),
        recorder_pool(
            port, credentials=SmtpCredentials("user", "pw"), allow_plaintext_auth=True
        ) as pool,
    ):
        outcome = await pool.send(make_message(1))
    assert outcome.ok, outcome
    assert outcome.attempts == 2
    assert len(seen) == 2  # one AUTH per session: 454 in the first, accepted in the second
    assert len(rec.received) == 1


async def test_a_retired_session_keeps_its_slot_until_it_is_gone() -> None:
    """max_connections=1: a caller cancelled while its commands wait behind the previous
    message's delayed final reply retires the session; the next message must not open a
    second session before the first is dropped."""
    hold = asyncio.Event()
    async with (
        recording_server(hold=hold) as (port, rec),
        recorder_pool(port, max_connections=1) as pool,
    ):
        first = asyncio.create_task(pool.send(make_message(1)))
        await asyncio.wait_for(rec.in_data.wait(), 10)
        second = asyncio.create_task(pool.send(make_message(2)))
        for _ in range(500):  # until the second message's commands are on the session
            await asyncio.sleep(0.01)
            if pool._busy:
                break
        assert pool._busy, "the second message never took the session"
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        third = asyncio.create_task(pool.send(make_message(3)))
        for _ in range(500):  # until the third waits for a slot, or opened a session
            await asyncio.sleep(0.01)
            if rec.sessions > 1 or pool._slots._waiters:
                break
        assert rec.most_sessions == 1
        hold.set()
        outcomes = await asyncio.wait_for(asyncio.gather(first, third), 30)
    assert [o.ok for o in outcomes] == [True, True]
    # Two sessions in all, one after the other (the server may see the second's connect
    # before the first's reset: the client-side order is what the check above saw).
    assert len(rec.ehlo) == 2


async def test_stale_idle_sessions_are_not_probed_one_after_another() -> None:
    """Four idle sessions on a server that stopped answering: one NOOP times out, and the
    idler three are dropped with it instead of costing a timeout each."""
    hold = asyncio.Event()
    async with (
        recording_server(hold=hold, pipelining=False) as (port, rec),
        recorder_pool(port, max_connections=4, health_check_after=0.0) as pool,
    ):
        sends = [asyncio.create_task(pool.send(make_message(i))) for i in range(4)]
        for _ in range(500):  # until each message holds a session of its own
            await asyncio.sleep(0.01)
            if rec.sessions == 4 and len(rec.data_started) == 4:
                break
        hold.set()
        assert all(o.ok for o in await asyncio.gather(*sends))
        assert pool.open_connections == 4
        rec.silent_noop = True
        await asyncio.sleep(0.02)  # idle for more than health_check_after (0)
        pool.settings = dataclasses.replace(pool.settings, command_timeout=0.3)
        # Bounded far above 0.3 s, far below the 10 s of the sessions' earlier replies: the
        # NOOP's shorter timeout must not wait for the timer those had set.
        async with asyncio.timeout(5):
            outcome = await pool.send(make_message(5))
    assert outcome.ok
    assert rec.noops == 1  # the other three were dropped unprobed
    assert rec.most_sessions <= 5
