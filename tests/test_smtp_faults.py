"""Faults injected by the sandbox's SMTP server: exact outcomes, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from hubspot_tx import FailureCategory, Outcome, OutcomeStatus, SmtpAuthError, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope, SmtpPool

from .conftest import FAST_SMTP_RETRY, make_message

MSG = make_message(1)
MID = "<m1@hubspot-tx.test>"


def pool_for(sandbox: Sandbox, token: SmtpTokenWithPassword, **kwargs: object) -> SmtpPool:
    kwargs.setdefault("retry", FAST_SMTP_RETRY)
    return sandbox.smtp_pool(token, **kwargs)  # type: ignore[arg-type]


def stored_ids(sandbox: Sandbox) -> Counter[str | None]:
    return Counter(m.message_id for m in sandbox.state.messages)


@pytest.mark.parametrize("stage", ["connect", "mail", "rcpt", "data"])
async def test_drop_before_the_end_of_data_is_retried_and_stored_once(
    sandbox: Sandbox, token: SmtpTokenWithPassword, stage: str
) -> None:
    fault = sandbox.faults.smtp_drop(stage)  # type: ignore[arg-type]
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
    assert fault.hits == 1
    assert outcome.ok
    assert outcome.attempts == 2
    assert stored_ids(sandbox) == {MID: 1}


async def test_drop_after_storing_is_delivery_unknown_and_never_retried(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_drop("stored")
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.category is FailureCategory.DELIVERY_UNKNOWN
        assert outcome.attempts == 1
        assert "after the final '.'" in outcome.reply
        # The pool goes on with a fresh session.
        assert (await pool.send(make_message(2))).ok
    assert stored_ids(sandbox) == {MID: 1, "<m2@hubspot-tx.test>": 1}


async def test_drop_after_the_final_dot_before_storing_is_also_unknown(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_drop("end")
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
    assert outcome.category is FailureCategory.DELIVERY_UNKNOWN
    assert stored_ids(sandbox) == {}  # truly lost; the client cannot know, so it does not guess


async def test_partial_4xx_refusals_are_retried_for_those_recipients_only(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_reply("rcpt", 451, "try later", recipient="b@example.org")
    env = Envelope(
        mail_from="s@example.com",
        rcpt_to=("a@example.org", "b@example.org", "c@example.org"),
        data=MSG,
    )
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(env)
    assert outcome.ok
    assert outcome.attempts == 2
    assert sorted(outcome.accepted) == ["a@example.org", "b@example.org", "c@example.org"]
    assert outcome.refused == ()
    deliveries = [r for m in sandbox.state.messages for r in m.rcpt_to]
    assert sorted(deliveries) == ["a@example.org", "b@example.org", "c@example.org"]
    assert [m.rcpt_to for m in sandbox.state.messages] == [
        ("a@example.org", "c@example.org"),
        ("b@example.org",),
    ]


async def test_5xx_refusals_are_reported_and_the_rest_delivered(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_reply("rcpt", 550, "no such user", recipient="c@example.org")
    env = Envelope(
        mail_from="s@example.com", rcpt_to=("a@example.org", "c@example.org"), data=MSG, key="k"
    )
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(env)
    assert outcome.ok
    assert outcome.key == "k"
    assert outcome.accepted == ("a@example.org",)
    assert [(r.recipient, r.code) for r in outcome.refused] == [("c@example.org", 550)]
    assert outcome.attempts == 1
    assert [m.rcpt_to for m in sandbox.state.messages] == [("a@example.org",)]


async def test_every_recipient_refused(sandbox: Sandbox, token: SmtpTokenWithPassword) -> None:
    sandbox.faults.smtp_reply("rcpt", 550, "no such user", times=None)
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
        assert outcome.category is FailureCategory.RECIPIENTS_REFUSED
        assert outcome.refused[0].code == 550
        sandbox.faults.clear()
        assert (await pool.send(make_message(2))).ok  # the session was RSET and reused
    assert sandbox.state.smtp_sessions_total == 1


async def test_4xx_until_retries_run_out(sandbox: Sandbox, token: SmtpTokenWithPassword) -> None:
    sandbox.faults.smtp_reply("mail", 451, "busy", times=None)
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
    assert outcome.category is FailureCategory.TEMPORARY_EXHAUSTED
    assert outcome.attempts == FAST_SMTP_RETRY.max_attempts
    assert outcome.code == 451
    with pytest.raises(Exception, match="451 busy"):
        outcome.raise_for_status()
    assert stored_ids(sandbox) == {}


@pytest.mark.parametrize(("stage", "code"), [("connect", 421), ("mail", 421), ("end", 451)])
async def test_temporary_replies_are_retried_and_stored_once(
    sandbox: Sandbox, token: SmtpTokenWithPassword, stage: str, code: int
) -> None:
    sandbox.faults.smtp_reply(stage, code)  # type: ignore[arg-type]
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
    assert outcome.ok
    assert outcome.attempts == 2
    assert stored_ids(sandbox) == {MID: 1}
    # A 421 closes the session: a new one carries the message (a 421 greeting is no session).
    assert sandbox.state.smtp_sessions_total == {"connect": 1, "mail": 2, "end": 1}[stage]


@pytest.mark.parametrize(("stage", "code"), [("end", 554), ("mail", 552), ("data", 554)])
async def test_permanent_rejection_is_not_retried(
    sandbox: Sandbox, token: SmtpTokenWithPassword, stage: str, code: int
) -> None:
    sandbox.faults.smtp_reply(stage, code, "rejected")  # type: ignore[arg-type]
    async with pool_for(sandbox, token) as pool:
        outcome = await pool.send(MSG)
    assert outcome.category is FailureCategory.REJECTED
    assert (outcome.code, outcome.attempts) == (code, 1)
    assert stored_ids(sandbox) == {}


async def test_slow_reply_before_the_dot_is_retried(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_slow("mail", 1.0)
    async with pool_for(sandbox, token, command_timeout=0.2) as pool:
        outcome = await pool.send(MSG)
    assert outcome.ok
    assert outcome.attempts == 2
    assert stored_ids(sandbox) == {MID: 1}


async def test_slow_reply_after_the_dot_is_delivery_unknown(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_slow("stored", 1.0)
    async with pool_for(sandbox, token, command_timeout=0.2, final_reply_timeout=0.2) as pool:
        outcome = await pool.send(MSG)
    assert outcome.category is FailureCategory.DELIVERY_UNKNOWN
    await asyncio.sleep(1.0)
    assert stored_ids(sandbox) == {MID: 1}


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("mail", FailureCategory.CANCELLED),
        ("stored", FailureCategory.DELIVERY_UNKNOWN),
    ],
)
async def test_cancelled_caller_leaves_one_exact_outcome(
    sandbox: Sandbox, token: SmtpTokenWithPassword, stage: str, expected: FailureCategory
) -> None:
    seen: list[Outcome] = []
    sandbox.faults.smtp_slow(stage, 0.5)  # type: ignore[arg-type]
    async with pool_for(sandbox, token, on_outcome=seen.append, max_connections=1) as pool:
        task = asyncio.create_task(pool.send(MSG))
        await asyncio.sleep(0.2)  # the web request goes away mid-transaction
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [o.category for o in seen] == [expected]
        # Cut before its data: the session is out of step and discarded. After its final
        # ".": the session is in step; it reads the reply nobody awaits and goes on.
        assert pool.open_connections == (0 if stage == "mail" else 1)
        assert (await pool.send(make_message(2))).ok
    await asyncio.sleep(0.6)
    assert sandbox.state.smtp_sessions_total == (2 if stage == "mail" else 1)
    assert stored_ids(sandbox)[MID] == (1 if stage == "stored" else 0)


async def test_auth_failure_on_a_huge_generator_stops_after_a_few_batches(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.client() as hs:
        await hs.smtp_tokens.reset_password(token.id)  # `token` now holds a stale password
    taken = 0

    def million() -> Iterator[bytes]:
        nonlocal taken
        for i in range(1_000_000):
            taken += 1
            yield make_message(i)

    concurrency = 8
    outcomes: list[Outcome] = []
    async with pool_for(sandbox, token, max_connections=concurrency) as pool:
        relay = pool.send_many(million(), concurrency=concurrency)

        async def drive() -> None:
            async for outcome in relay:
                outcomes.append(outcome)

        with pytest.raises(SmtpAuthError) as info:
            await drive()
    consumed = info.value.consumed
    assert consumed is not None
    assert consumed == len(outcomes) == relay.summary.consumed
    assert consumed <= 3 * concurrency + 1
    assert taken <= consumed + 1
    assert {o.category for o in outcomes} <= {FailureCategory.AUTH}
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(consumed))
    assert "relay stopped after taking" in str(info.value)
    assert sandbox.state.messages == []
