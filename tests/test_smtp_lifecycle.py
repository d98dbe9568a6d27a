"""Pool and relay lifecycle under cancellation and closing: exactly one outcome per message
taken, never more sessions than allowed, nothing sent after an abort.

(Regressions found by an independent review; each was reproduced against the sandbox first.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from email.message import Message

import pytest

from hubspot_tx import (
    FailureCategory,
    Outcome,
    PoolClosedError,
    SmtpAuthError,
    SmtpRetry,
    SmtpTokenWithPassword,
)
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope

from .conftest import FAST_SMTP_RETRY, make_message


def indexes(outcomes: list[Outcome]) -> list[int]:
    return sorted(o.index for o in outcomes if o.index is not None)


async def test_a_421_to_rcpt_keeps_the_untried_recipients(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_reply("rcpt", 421, recipient="a@example.org")
    env = Envelope(
        mail_from="s@example.com",
        rcpt_to=("a@example.org", "b@example.org", "c@example.org"),
        data=make_message(1),
    )
    async with sandbox.smtp_pool(token, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(env)
    assert outcome.ok
    assert sorted(outcome.accepted) == ["a@example.org", "b@example.org", "c@example.org"]
    assert [m.rcpt_to for m in sandbox.state.messages] == [env.rcpt_to]


async def test_cancelled_while_a_session_is_retired_still_leaves_one_outcome(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_reply("rcpt", 451, "try later")
    sandbox.faults.smtp_slow("quit", 1.0)
    seen: list[Outcome] = []
    slow_retry = SmtpRetry(max_attempts=3, initial_backoff=2.0, max_backoff=2.0)
    async with sandbox.smtp_pool(
        token, retry=slow_retry, max_messages_per_connection=1, on_outcome=seen.append
    ) as pool:
        task = asyncio.create_task(pool.send(make_message(1)))
        # The 451 came; the spent session is being QUIT (in the background, under its slot)
        # and the message waits for its retry.
        await asyncio.sleep(0.4)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [o.category for o in seen] == [FailureCategory.CANCELLED]


async def test_a_failed_health_check_closes_the_session(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_reply("noop", 502, "NOOP not available")
    async with sandbox.smtp_pool(token, max_connections=1, health_check_after=0.0) as pool:
        assert (await pool.send(make_message(1))).ok
        await asyncio.sleep(0.05)
        assert (await pool.send(make_message(2))).ok
        assert pool.open_connections == 1
        await asyncio.sleep(0.2)
        # The failed session was closed, not leaked: one open, two in all.
        assert sandbox.state.smtp_sessions_open == 1
    assert sandbox.state.smtp_sessions_total == 2


async def test_a_health_check_cancelled_midway_closes_the_session(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    sandbox.faults.smtp_slow("noop", 2.0)
    async with sandbox.smtp_pool(token, max_connections=1, health_check_after=0.0) as pool:
        assert (await pool.send(make_message(1))).ok
        await asyncio.sleep(0.05)
        task = asyncio.create_task(pool.send(make_message(2)))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert (await pool.send(make_message(3))).ok
        assert pool.open_connections == 1
        await asyncio.sleep(0.2)
        assert sandbox.state.smtp_sessions_open == 1
    assert sandbox.state.smtp_sessions_total == 2


async def test_leaving_a_relay_early_gives_every_taken_message_an_outcome(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    seen: list[Outcome] = []
    sandbox.faults.smtp_slow("end", 0.05, times=None)
    async with sandbox.smtp_pool(token, max_connections=2, on_outcome=seen.append) as pool:
        relay = pool.send_many((make_message(i) for i in range(1000)), concurrency=2)
        async with relay:
            async for _ in relay:
                break
        consumed = relay.consumed
    assert consumed >= 2
    assert indexes(seen) == list(range(consumed))
    stored = {m.message_id for m in sandbox.state.messages}
    for outcome in seen:
        if outcome.category is FailureCategory.CANCELLED:
            assert outcome.message_id not in stored  # "not sent" is true


async def _async_messages(count: int) -> AsyncIterator[bytes]:
    for i in range(count):
        yield make_message(i)


@pytest.mark.parametrize("source", ["iterable", "async iterable"])
async def test_closing_the_pool_under_a_running_relay(
    sandbox: Sandbox, token: SmtpTokenWithPassword, source: str
) -> None:
    seen: list[Outcome] = []
    yielded: list[Outcome] = []
    sandbox.faults.smtp_slow("end", 0.2, times=None)
    pool = sandbox.smtp_pool(token, max_connections=2, on_outcome=seen.append)
    messages = (make_message(i) for i in range(50)) if source == "iterable" else _async_messages(50)
    relay = pool.send_many(messages, concurrency=2)

    async def consume() -> None:
        async for outcome in relay:
            yielded.append(outcome)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await pool.aclose()  # drains what is in flight, cancels what was only taken
    (ended,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(ended, PoolClosedError)
    assert indexes(seen) == list(range(relay.consumed))
    sent = [o for o in seen if o.ok]
    assert len(sent) == 2  # the two in flight finished
    cancelled = {o.category for o in seen if not o.ok}
    if source == "iterable":  # the workers take an item only when they start it
        assert relay.consumed == 2
        assert not cancelled
    else:  # the reader had taken more, which were never started
        assert cancelled == {FailureCategory.CANCELLED}
    assert len(sandbox.state.messages) == 2


async def test_no_retry_after_an_abort(sandbox: Sandbox, token: SmtpTokenWithPassword) -> None:
    sandbox.faults.smtp_reply("rcpt", 451, "later")
    pool = sandbox.smtp_pool(
        token, retry=SmtpRetry(max_attempts=3, initial_backoff=0.6, max_backoff=1.0)
    )
    task = asyncio.create_task(pool.send(make_message(1)))
    await asyncio.sleep(0.2)  # the first attempt got its 451; the retry waits
    await pool.aclose(drain=False)
    outcome = await task
    assert outcome.category is FailureCategory.CANCELLED
    assert outcome.attempts == 1
    assert sandbox.state.messages == []
    assert sandbox.state.smtp_sessions_total == 1


async def test_a_message_that_cannot_be_flattened_is_invalid_not_a_crash(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    broken = Message()
    broken["From"] = "s@example.com"
    broken["To"] = "r@example.org"
    broken.set_payload("caf\u00e9")  # a compat32 message with a non-ASCII str body

    def stream() -> Iterator[object]:
        for i in range(10):
            yield broken if i == 3 else make_message(i)

    async with sandbox.smtp_pool(token, max_connections=2) as pool:
        single = await pool.send(broken)
        outcomes = [o async for o in pool.send_many(stream())]  # type: ignore[arg-type]
    assert single.category is FailureCategory.INVALID_MESSAGE
    assert "UnicodeEncodeError" in single.reply
    assert indexes(outcomes) == list(range(10))
    assert [o.index for o in outcomes if not o.ok] == [3]


async def test_a_fatal_error_pulls_no_message_it_will_not_take(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.client() as hs:
        await hs.smtp_tokens.reset_password(token.id)
    pulled = 0

    def stream() -> Iterator[bytes]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield make_message(i)

    source = stream()
    async with sandbox.smtp_pool(token, max_connections=2) as pool:
        relay = pool.send_many(source, concurrency=2)
        outcomes: list[Outcome] = []

        async def drive() -> None:
            async for outcome in relay:
                outcomes.append(outcome)

        with pytest.raises(SmtpAuthError) as info:
            await drive()
    assert info.value.consumed == relay.consumed
    assert pulled == relay.consumed == len(outcomes)
    expected = make_message(pulled)
    assert next(source) == expected  # the caller can resume exactly where it stopped
