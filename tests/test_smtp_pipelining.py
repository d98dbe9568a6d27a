"""The pipelined path (RFC 2920) against the sandbox with PIPELINING advertised, and the same
cases in lock-step without it: each message gets exactly one correct outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from hubspot_tx import FailureCategory, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope

from .conftest import FAST_SMTP_RETRY, make_message

RCPTS = ("a@example.org", "b@example.org", "c@example.org")


@pytest.fixture(params=[True, False], ids=["pipelining", "lock-step"])
async def sb(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    async with Sandbox(smtp_pipelining=request.param) as sandbox:
        yield sandbox


@pytest.fixture
async def tok(sb: Sandbox) -> SmtpTokenWithPassword:
    async with sb.client() as hs:
        return await hs.smtp_tokens.create(campaign_name="pipelining")


def env(i: int = 1) -> Envelope:
    return Envelope(mail_from="s@example.com", rcpt_to=RCPTS, data=make_message(i))


async def test_the_pool_pipelines_when_advertised(sb: Sandbox, tok: SmtpTokenWithPassword) -> None:
    async with sb.smtp_pool(tok, max_connections=1) as pool:
        assert (await pool.send(env())).ok
        (conn,) = pool._idle
        assert conn.pipelining is sb.smtp_handler.pipelining


async def test_a_refusal_in_the_middle_of_a_group(sb: Sandbox, tok: SmtpTokenWithPassword) -> None:
    sb.faults.smtp_reply("rcpt", 550, "no such user", recipient="b@example.org")
    async with sb.smtp_pool(tok, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(env())
        assert (await pool.send(env(2))).ok  # the session stays in sync for the next one
    assert outcome.ok
    assert outcome.attempts == 1
    assert outcome.accepted == ("a@example.org", "c@example.org")
    assert [(r.recipient, r.code) for r in outcome.refused] == [("b@example.org", 550)]
    assert next(m.rcpt_to for m in sb.state.messages) == ("a@example.org", "c@example.org")


async def test_a_temporary_refusal_of_mail_in_a_group(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_reply("mail", 451, "busy")  # pipelined RCPTs and DATA then get 503s
    async with sb.smtp_pool(tok, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(env())
    assert outcome.ok
    assert outcome.attempts == 2
    assert Counter(m.message_id for m in sb.state.messages) == {"<m1@hubspot-tx.test>": 1}


async def test_a_drop_in_the_middle_of_a_group(sb: Sandbox, tok: SmtpTokenWithPassword) -> None:
    sb.faults.smtp_drop("rcpt", recipient="b@example.org")
    async with sb.smtp_pool(tok, retry=FAST_SMTP_RETRY) as pool:
        outcomes = [o async for o in pool.send_many([env(i) for i in range(20)], concurrency=4)]
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(20))
    assert all(o.ok for o in outcomes)
    assert sum(o.attempts for o in outcomes) == 21  # the one cut short went again
    stored = Counter(m.message_id for m in sb.state.messages)
    assert len(stored) == 20
    assert set(stored.values()) == {1}


async def test_no_recipient_accepted_in_a_group(sb: Sandbox, tok: SmtpTokenWithPassword) -> None:
    sb.faults.smtp_reply("rcpt", 550, "no", times=None)
    async with sb.smtp_pool(tok, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(env())
        sb.faults.clear()
        assert (await pool.send(env(2))).ok  # DATA was refused or ended: the session is usable
    assert outcome.category is FailureCategory.RECIPIENTS_REFUSED
    assert [r.code for r in outcome.refused] == [550, 550, 550]
    assert sb.state.smtp_sessions_total == 1
