"""A message delivered to some recipients and then stopped: its outcome keeps who has it
(``accepted``) apart from who does not (``unsent``) and who may (``in_doubt``), and nothing is
ever sent to an accepted recipient twice."""

from __future__ import annotations

from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult

from hubspot_tx import (
    FailureCategory,
    Outcome,
    OutcomeStatus,
    Relay,
    SmtpAuthError,
    SmtpCredentials,
    SmtpTokenWithPassword,
)
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_SMTP_RETRY, make_message
from .smtp_recorder import recorder_pool, recording_server

TWO = (
    b"From: sender@example.com\r\nTo: a@example.org, b@example.org\r\n"
    b"Subject: two\r\nMessage-ID: <two@hubspot-tx.test>\r\n\r\nbody\r\n"
)


def first_session_only() -> Any:
    """Credentials good for the first session; revoked before the next (535)."""
    sessions: set[int] = set()

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        sessions.add(id(server))
        return AuthResult(success=len(sessions) == 1, handled=False)

    return authenticate


async def drain(relay: Relay, into: list[Outcome]) -> None:
    async for outcome in relay:
        into.append(outcome)


def pool_for(port: int, **kwargs: Any) -> Any:
    return recorder_pool(
        port,
        credentials=SmtpCredentials("user", "pw"),
        allow_plaintext_auth=True,
        max_messages_per_connection=1,  # the retry for b needs a new session (and AUTH)
        **kwargs,
    )


async def test_partial_delivery_then_auth_refused_keeps_the_accepted_recipient() -> None:
    async with (
        recording_server(
            authenticator=first_session_only(),
            rcpt_replies={"b@example.org": "451 4.3.0 try later"},
        ) as (port, rec),
        pool_for(port) as pool,
    ):
        outcome = await pool.send(TWO)
    assert outcome.status is OutcomeStatus.SENT
    assert outcome.accepted == ("a@example.org",)
    assert [(r.recipient, r.code) for r in outcome.unsent] == [("b@example.org", 535)]
    assert outcome.refused == ()  # 451 then 535 to AUTH: not refused for good
    assert outcome.in_doubt == ()
    assert [r.rcpt_to for r in rec.received] == [["a@example.org"]]


async def test_the_relay_stops_on_the_fatal_error_with_the_partial_outcome_kept() -> None:
    async with (
        recording_server(
            authenticator=first_session_only(),
            rcpt_replies={"b@example.org": "451 4.3.0 try later"},
        ) as (port, rec),
        pool_for(port, max_connections=1) as pool,
    ):
        relay = pool.send_many([TWO, *(make_message(i) for i in range(3))], concurrency=1)
        outcomes: list[Outcome] = []
        with pytest.raises(SmtpAuthError) as raised:
            await drain(relay, outcomes)
    assert raised.value.consumed == len(outcomes)
    first = next(o for o in outcomes if o.index == 0)
    assert first.accepted == ("a@example.org",)
    assert [r.recipient for r in first.unsent] == ["b@example.org"]
    others = [o for o in outcomes if o.index != 0]
    assert all(o.category is FailureCategory.AUTH and not o.accepted for o in others)
    assert sum(r.rcpt_to.count("a@example.org") for r in rec.received) == 1


async def test_retries_running_out_are_unsent_not_refused() -> None:
    async with (
        recording_server(rcpt_replies={"b@example.org": "451 4.3.0 try later"}) as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(TWO)
    assert outcome.ok
    assert outcome.accepted == ("a@example.org",)
    assert [(r.recipient, r.code) for r in outcome.unsent] == [("b@example.org", 451)]
    assert outcome.refused == ()
    assert [r.rcpt_to for r in rec.received] == [["a@example.org"]]  # a got it once


async def test_a_retry_cut_after_the_final_dot_leaves_its_recipient_in_doubt(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    """a accepted, b 451; the retry for b is cut after its final "." (the sandbox stored it):
    b is in doubt, not refused, and a stays accepted."""
    transactions = 0

    async def arm_a_drop_on_the_retry() -> None:
        nonlocal transactions
        transactions += 1
        if transactions == 2:
            sandbox.faults.smtp_drop("stored")

    sandbox.faults.smtp_reply("rcpt", 451, recipient="b@example.org")
    async with sandbox.smtp_pool(token, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(TWO, before_data=arm_a_drop_on_the_retry)
    assert outcome.ok
    assert outcome.accepted == ("a@example.org",)
    assert outcome.in_doubt == ("b@example.org",)
    assert outcome.refused == ()
    assert outcome.unsent == ()
    assert outcome.attempts == 2
    assert sorted(m.rcpt_to for m in sandbox.state.messages) == [
        ("a@example.org",),
        ("b@example.org",),
    ]
