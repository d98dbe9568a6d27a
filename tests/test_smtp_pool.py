"""The SMTP pool against the sandbox's SMTP server: real sockets, real TLS, both ports."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import pytest

from hubspot_tx import (
    FailureCategory,
    InsecureAuthError,
    OutcomeStatus,
    PoolClosedError,
    RelaySummary,
    SmtpAuthError,
    SmtpCredentials,
    SmtpPool,
    SmtpTLSError,
    SmtpTokenWithPassword,
)
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message

PORTS = ["starttls", "implicit"]


@pytest.mark.parametrize("tls", PORTS)
async def test_ten_thousand_messages_one_outcome_each(
    sandbox: Sandbox, token: SmtpTokenWithPassword, tls: str
) -> None:
    total, connections = 10_000, 8
    progress: list[int] = []
    async with sandbox.smtp_pool(token, tls=tls, max_connections=connections) as pool:  # type: ignore[arg-type]
        relay = pool.send_many(
            (make_message(i) for i in range(total)),
            concurrency=connections,
            progress=lambda s: progress.append(s.done) if s.done % 1000 == 0 else None,
        )
        outcomes = [o async for o in relay]
    assert len(outcomes) == total
    assert all(o.status is OutcomeStatus.SENT for o in outcomes)
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(total))
    sent_ids = Counter(o.message_id for o in outcomes)
    stored_ids = Counter(m.message_id for m in sandbox.state.messages)
    assert sent_ids == stored_ids == Counter(f"<m{i}@hubspot-tx.test>" for i in range(total))
    assert all(m.arrival == 1 for m in sandbox.state.messages)
    assert sandbox.state.smtp_sessions_peak == connections
    assert {m.token_id for m in sandbox.state.messages} == {token.id}
    summary = relay.summary
    assert (summary.consumed, summary.sent, summary.failed, summary.retried) == (
        total,
        total,
        {},
        0,
    )
    assert progress == list(range(1000, total + 1, 1000))


async def test_single_send_from_a_web_handler_shape(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    msg = EmailMessage()
    msg["From"] = "shop@example.com"
    msg["To"] = "ada@example.org"
    msg["Cc"] = "carol@example.org"
    msg["Bcc"] = "audit@example.org, archive@example.org"
    msg["Subject"] = "Receipt"
    msg["Message-ID"] = "<receipt-1@example.com>"
    msg.set_content("Thanks!\n.\nA line with a single dot above.\n")
    async with sandbox.smtp_pool(token) as pool:
        outcome = await pool.send(msg)
    assert outcome.ok
    assert outcome.key == "<receipt-1@example.com>"
    assert set(outcome.accepted) == {
        "ada@example.org",
        "carol@example.org",
        "audit@example.org",
        "archive@example.org",
    }
    (stored,) = sandbox.state.messages
    assert set(stored.rcpt_to) == set(outcome.accepted)  # Bcc recipients received it
    head = stored.data.partition(b"\r\n\r\n")[0].lower()
    assert b"bcc:" not in head
    assert b"audit@" not in head
    assert b"Thanks!\r\n.\r\nA line with a single dot above." in stored.data
    assert stored.email_campaign_id == token.email_campaign_id


async def test_no_stored_message_contains_a_bcc_header(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    messages = [make_message(i, Bcc=f"hidden{i}@example.org") for i in range(20)]
    async with sandbox.smtp_pool(token, max_connections=4) as pool:
        outcomes = [o async for o in pool.send_many(messages)]
    assert all(o.ok for o in outcomes)
    for stored in sandbox.state.messages:
        assert b"bcc" not in stored.data.partition(b"\r\n\r\n")[0].lower()
        assert any(r.startswith("hidden") for r in stored.rcpt_to)


async def test_password_reset_old_fails_new_works_also_on_a_running_pool(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.client() as hs:
        pool = sandbox.smtp_pool(token, max_connections=2)
        async with pool:
            assert (await pool.send(make_message(1))).ok
            reset = await hs.smtp_tokens.reset_password(token.id)
            # The open session was authenticated before the reset: it may finish its message.
            assert (await pool.send(make_message(2))).ok
            pool.set_credentials(SmtpCredentials.from_token(reset))
            assert (await pool.send(make_message(3))).ok
        async with sandbox.smtp_pool(token) as stale:
            with pytest.raises(SmtpAuthError) as info:
                await stale.send(make_message(4))
        assert info.value.code == 535
        assert info.value.fatal
        async with sandbox.smtp_pool(reset) as fresh:
            assert (await fresh.send(make_message(5))).ok
        await hs.smtp_tokens.delete(token.id)
        async with sandbox.smtp_pool(reset) as deleted:
            with pytest.raises(SmtpAuthError):
                await deleted.send(make_message(6))
    assert [m.message_id for m in sandbox.state.messages] == [
        f"<m{i}@hubspot-tx.test>" for i in (1, 2, 3, 5)
    ]


async def test_tls_is_verified_by_default(sandbox: Sandbox, token: SmtpTokenWithPassword) -> None:
    for tls in PORTS:
        # The system trust store does not know the sandbox's throwaway CA.
        pool = sandbox.smtp_pool(token, tls=tls, ssl_context=ssl.create_default_context())  # type: ignore[arg-type]
        async with pool:
            with pytest.raises(SmtpTLSError, match="TLS"):
                await pool.send(make_message(1))
    assert sandbox.state.messages == []


async def test_auth_is_refused_before_starttls_by_the_sandbox(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname=sandbox.host, port=sandbox.smtp_port, start_tls=False)
    await smtp.connect()
    try:
        assert "auth" not in smtp.esmtp_extensions  # not even advertised
        reply = await smtp.execute_command(b"AUTH", b"PLAIN", b"AGZvbwBiYXI=")
        assert reply.code == 530
        assert "STARTTLS" in reply.message
        reply = await smtp.execute_command(b"MAIL", b"FROM:<a@x.org>")
        assert reply.code == 530
    finally:
        smtp.close()


async def test_plaintext_auth_needs_the_opt_in(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with SmtpPool(
        sandbox.host, sandbox.smtp_port, credentials=SmtpCredentials.from_token(token), tls="none"
    ) as pool:
        with pytest.raises(InsecureAuthError, match="unencrypted"):
            await pool.send(make_message(1))


async def test_invalid_message_gets_an_outcome_without_network(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.smtp_pool(token) as pool:
        outcome = await pool.send(b"Subject: nobody\r\n\r\nno addresses")
        assert outcome.category is FailureCategory.INVALID_MESSAGE
        assert pool.open_connections == 0
    assert sandbox.state.smtp_sessions_total == 0


async def test_bad_messages_in_a_stream_each_get_one_outcome(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    def stream() -> Iterator[bytes]:
        for i in range(30):
            yield b"not a message" if i % 10 == 3 else make_message(i)

    async with sandbox.smtp_pool(token, max_connections=3) as pool:
        relay = pool.send_many(stream())
        outcomes = [o async for o in relay]
    assert len(outcomes) == 30
    bad = sorted(o.index for o in outcomes if not o.ok if o.index is not None)
    assert bad == [3, 13, 23]
    assert relay.summary.failed == {"invalid_message": 3}
    assert len(sandbox.state.messages) == 27


async def test_async_iterable_input(sandbox: Sandbox, token: SmtpTokenWithPassword) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for i in range(25):
            await asyncio.sleep(0)
            yield make_message(i)

    async with sandbox.smtp_pool(token, max_connections=2) as pool:
        outcomes = [o async for o in pool.send_many(stream(), concurrency=5)]
    assert len(outcomes) == 25
    assert all(o.ok for o in outcomes)
    assert sandbox.state.smtp_sessions_peak <= 2


async def test_connections_are_reused_and_replaced_after_the_message_limit(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.smtp_pool(token, max_connections=1, max_messages_per_connection=10) as pool:
        for i in range(25):
            assert (await pool.send(make_message(i))).ok
    assert sandbox.state.smtp_sessions_total == 3
    assert len({m.session_id for m in sandbox.state.messages}) == 3


async def test_idle_session_is_health_checked_and_replaced_when_dead(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.smtp_pool(token, max_connections=1, health_check_after=0.0) as pool:
        assert (await pool.send(make_message(1))).ok
        # The server forgets the session (restart, idle timeout...): the NOOP finds out.
        for conn in list(pool._idle):
            conn._wire.transport.close()
        await asyncio.sleep(0.05)
        assert (await pool.send(make_message(2))).ok
    assert sandbox.state.smtp_sessions_total == 2
    assert len(sandbox.state.messages) == 2


async def test_closed_pool_refuses_new_messages(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    pool = sandbox.smtp_pool(token)
    await pool.aclose()
    with pytest.raises(PoolClosedError):
        await pool.send(make_message(1))
    with pytest.raises(PoolClosedError):
        pool.send_many([make_message(1)])


async def test_drain_finishes_in_flight_messages(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_slow("end", 0.3, times=None)
    pool = sandbox.smtp_pool(token, max_connections=3)
    sends = [asyncio.create_task(pool.send(make_message(i))) for i in range(3)]
    await asyncio.sleep(0.15)
    await pool.aclose(drain=True)
    outcomes = await asyncio.gather(*sends)
    assert all(o.ok for o in outcomes)
    assert pool.open_connections == 0
    await asyncio.sleep(0.05)
    assert sandbox.state.smtp_sessions_open == 0


async def test_region_and_port_choices() -> None:
    eu = SmtpPool(region="eu")
    assert (eu.settings.host, eu.settings.port) == ("smtp-eu1.hubapi.com", 587)
    implicit = SmtpPool(tls="implicit")
    assert (implicit.settings.host, implicit.settings.port) == ("smtp.hubapi.com", 465)
    assert SmtpPool(port=25).settings.port == 25
    with pytest.raises(ValueError, match="region"):
        SmtpPool(region="mars")  # type: ignore[arg-type]
    for pool in (eu, implicit):
        await pool.aclose()


def test_summary_counts() -> None:
    summary = RelaySummary()
    assert summary.done == 0
    assert summary.elapsed >= 0


async def test_leaving_a_relay_early_then_closing_the_pool_stops_everything(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    taken = 0

    def endless() -> Iterator[bytes]:
        nonlocal taken
        while True:
            taken += 1
            yield make_message(taken)

    pool = sandbox.smtp_pool(token, max_connections=2)
    relay = pool.send_many(endless(), concurrency=2)
    async for outcome in relay:
        assert outcome.ok
        if relay.summary.done == 5:
            break
    await asyncio.wait_for(pool.aclose(), timeout=10)
    at_close = taken
    await asyncio.sleep(0.1)
    assert taken == at_close  # nothing reads the input any more
    assert taken <= 5 + 3 * 2 + 1
    assert len(sandbox.state.messages) <= taken


async def test_a_non_message_in_the_input_gets_an_outcome(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.smtp_pool(token) as pool:
        outcomes = [o async for o in pool.send_many([make_message(1), "oops", make_message(2)])]  # type: ignore[list-item]
    assert [o.ok for o in sorted(outcomes, key=lambda o: o.index or 0)] == [True, False, True]
    bad = next(o for o in outcomes if not o.ok)
    assert bad.category is FailureCategory.INVALID_MESSAGE
    assert "str" in bad.reply
