"""The pipelined path (RFC 2920) against the sandbox with PIPELINING advertised, and the same
cases in lock-step without it: each message gets exactly one correct outcome."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubspot_tx import FailureCategory, Outcome, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope, SmtpRetry

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


# -- one round trip per message: the next message's commands follow the previous one's data --
def _count_overlaps(sb: Sandbox) -> list[bool]:
    """Record, at each end of data, whether the client's next commands were already waiting
    (sent before the server's reply to the final "."): the overlap PIPELINING allows."""
    seen: list[bool] = []
    original = sb.smtp_handler.handle_DATA

    async def handle_DATA(server: Any, session: Any, envelope: Any) -> str:
        seen.append(bool(server._reader._buffer))  # aiosmtpd's StreamReader: bytes unread
        return await original(server, session, envelope)

    sb.smtp_handler.handle_DATA = handle_DATA  # type: ignore[method-assign]
    return seen


async def test_the_next_message_follows_the_data_only_with_pipelining(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    overlaps = _count_overlaps(sb)
    async with sb.smtp_pool(tok, max_connections=1) as pool:
        outcomes = [o async for o in pool.send_many(env(i) for i in range(20))]
    assert all(o.ok for o in outcomes)
    assert len(overlaps) == 20
    if sb.smtp_handler.pipelining:
        assert sum(overlaps) >= 10  # most messages: their successor was already on the wire
    else:
        assert not any(overlaps)  # never ahead of a reply when the server did not offer it


async def test_a_drop_after_data_with_the_next_message_behind_it(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_drop("stored", times=1)
    async with sb.smtp_pool(tok, max_connections=1, retry=FAST_SMTP_RETRY) as pool:
        outcomes = [o async for o in pool.send_many(env(i) for i in range(10))]
    assert len(outcomes) == 10
    unknown = [o for o in outcomes if o.category is FailureCategory.DELIVERY_UNKNOWN]
    assert len(unknown) == 1  # the one whose reply was lost; the one behind it was retried
    assert all(o.ok for o in outcomes if o not in unknown)
    stored = Counter(m.message_id for m in sb.state.messages)
    assert set(stored.values()) == {1}  # nothing twice
    assert len(stored) == 10  # the unknown one did arrive


async def test_a_refused_end_of_data_with_the_next_message_behind_it(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_reply("end", 554, "content rejected", times=1)
    async with sb.smtp_pool(tok, max_connections=1, retry=FAST_SMTP_RETRY) as pool:
        outcomes = [o async for o in pool.send_many(env(i) for i in range(10))]
    rejected = [o for o in outcomes if o.category is FailureCategory.REJECTED]
    assert [o.code for o in rejected] == [554]
    assert sum(o.ok for o in outcomes) == 9
    assert len(sb.state.messages) == 9
    assert sb.state.smtp_sessions_total == 1  # the session stayed in step


async def test_cancelled_while_its_reply_is_on_the_way(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_slow("stored", 0.5)
    reported: list[Outcome] = []
    async with sb.smtp_pool(tok, max_connections=1, on_outcome=reported.append) as pool:
        first = asyncio.create_task(pool.send(env(1)))
        while not sb.state.messages:  # noqa: ASYNC110 (the server holds the reply)
            await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = await pool.send(env(2))
    assert second.ok
    assert reported[0].category is FailureCategory.DELIVERY_UNKNOWN  # its "." was written
    assert [m.message_id for m in sb.state.messages] == [
        "<m1@hubspot-tx.test>",
        "<m2@hubspot-tx.test>",
    ]


# -- found by an independent review of the one-round-trip path; each failed before its fix --
def one(i: int) -> Envelope:
    return Envelope(mail_from="s@example.com", rcpt_to=("a@example.org",), data=make_message(i))


async def _cancelled(task: asyncio.Task[Outcome]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_while_its_spent_session_quits(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_slow("stored", 0.6)  # stored; the reply to its "." comes later
    reported: list[Outcome] = []
    async with sb.smtp_pool(
        tok, max_connections=1, max_messages_per_connection=1, on_outcome=reported.append
    ) as pool:
        task = asyncio.create_task(pool.send(one(1)))
        await asyncio.sleep(0.3)  # its session is being QUIT behind the pending reply
        await _cancelled(task)
    assert len(sb.state.messages) == 1
    assert reported[0].category is FailureCategory.DELIVERY_UNKNOWN  # never "not sent"


async def test_cancelling_the_next_message_spares_the_reply_owed_to_the_previous(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    reported: list[Outcome] = []
    async with sb.smtp_pool(tok, max_connections=1, on_outcome=reported.append) as pool:
        assert (await pool.send(one(0))).ok  # a warm session
        sb.faults.smtp_slow("stored", 0.6)
        first = asyncio.create_task(pool.send(one(1)))
        second = asyncio.create_task(pool.send(one(2)))
        await asyncio.sleep(0.3)
        await _cancelled(second)
        assert (await first).ok  # accepted by the server, and known to be
    by_id = {o.message_id: o for o in reported}
    assert by_id["<m2@hubspot-tx.test>"].category is FailureCategory.CANCELLED
    assert [m.message_id for m in sb.state.messages] == [
        "<m0@hubspot-tx.test>",
        "<m1@hubspot-tx.test>",
    ]


async def test_a_slow_reply_ahead_does_not_eat_the_next_messages_timeout(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    async with sb.smtp_pool(
        tok, max_connections=1, command_timeout=1.0, retry=FAST_SMTP_RETRY
    ) as pool:
        assert (await pool.send(one(0))).ok
        sb.faults.smtp_slow("stored", 0.7)  # within the timeout
        first = asyncio.create_task(pool.send(one(1)))
        await asyncio.sleep(0.1)
        sb.faults.smtp_slow("mail", 0.5)  # within the timeout too, counted from its turn
        second = await pool.send(one(2))
        assert (await first).ok
    assert second.ok
    assert second.attempts == 1
    assert sb.state.smtp_sessions_total == 1


async def test_cancelled_after_a_temporary_refusal_of_its_data_is_not_sent(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_reply("end", 451, "try later")
    reported: list[Outcome] = []
    slow_retry = SmtpRetry(max_attempts=3, initial_backoff=2.0, max_backoff=2.0)
    async with sb.smtp_pool(
        tok, max_connections=1, retry=slow_retry, on_outcome=reported.append
    ) as pool:
        task = asyncio.create_task(pool.send(one(1)))
        await asyncio.sleep(0.5)  # in the backoff after the 451
        await _cancelled(task)
    assert sb.state.messages == []
    assert reported[0].category is FailureCategory.CANCELLED  # certainly not sent


async def test_the_sandbox_answers_pipelined_commands_without_nagle(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    """Two replies written back to back must not wait for the client's delayed ACK: the
    sandbox's sessions have TCP_NODELAY (it made a pipelined relay 100x slower over TLS)."""
    async with sb.smtp_pool(tok, max_connections=1) as pool:
        assert (await pool.send(one(1))).ok
        (session,) = sb.smtp_handler.sessions
        transport = session.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# -- the read-driven path (issue 20): data written from the read that brings the 354, the
# session handed back there; the caller's task wakes once, for the final reply --
async def test_cancelled_before_its_354_sends_nothing_and_the_next_message_goes(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    reported: list[Outcome] = []
    async with sb.smtp_pool(tok, max_connections=1, on_outcome=reported.append) as pool:
        assert (await pool.send(one(0))).ok  # a warm session
        sb.faults.smtp_slow("data", 0.5)  # the 354 comes late
        task = asyncio.create_task(pool.send(one(1)))
        await asyncio.sleep(0.2)
        await _cancelled(task)
        after = await pool.send(one(2))  # on a new session: the old one was out of step
        await asyncio.sleep(0.5)  # the late 354 has come and found nobody to write for
    assert after.ok
    assert reported[1].category is FailureCategory.CANCELLED  # certainly not sent
    assert [m.message_id for m in sb.state.messages] == [
        "<m0@hubspot-tx.test>",
        "<m2@hubspot-tx.test>",
    ]


async def test_a_session_handed_back_before_its_reply_carries_the_next_message(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_slow("stored", 0.4)  # the first message's reply comes late
    async with sb.smtp_pool(tok, max_connections=1) as pool:
        first = asyncio.create_task(pool.send(one(1)))
        while not sb.state.messages:  # noqa: ASYNC110 (the server holds the reply)
            await asyncio.sleep(0.01)
        if sb.smtp_handler.pipelining:
            # Its data is written: the session is back in the pool, its slot free.
            assert len(pool._idle) == 1
            assert not pool._slots.locked()
        second = await pool.send(one(2))
        assert (await first).ok
    assert second.ok
    assert sb.state.smtp_sessions_total == 1


async def test_a_drop_before_the_354_with_the_session_held_retries_elsewhere(
    sb: Sandbox, tok: SmtpTokenWithPassword
) -> None:
    sb.faults.smtp_drop("data", times=1)
    async with sb.smtp_pool(tok, max_connections=1, retry=FAST_SMTP_RETRY) as pool:
        outcomes = [o async for o in pool.send_many(one(i) for i in range(5))]
        assert not pool._slots.locked()  # every slot given back once
    assert all(o.ok for o in outcomes)
    assert Counter(m.message_id for m in sb.state.messages) == Counter(
        f"<m{i}@hubspot-tx.test>" for i in range(5)
    )  # each once
