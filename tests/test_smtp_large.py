"""Large messages: the upload follows the transport's flow control; a slow reader gets the
time it needs (the final reply's timer starts once the data has left), a dead one fails fast
and before the final "." (so the message is retried, never left in doubt)."""

from __future__ import annotations

from typing import Literal

import pytest

from hubspot_tx import FailureCategory, SmtpPool, SmtpRetry

from .smtp_recorder import recorder_pool, slow_server


def large(megabytes: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    head = b"From: sender@example.com\r\nTo: ada@example.org\r\nSubject: large\r\n\r\n"
    return head + line * (megabytes * 1024 * 1024 // len(line))


async def test_a_slow_upload_is_not_cut_by_the_command_timeout() -> None:
    message = large(3)
    async with (
        slow_server(chunk_pause=0.02) as server,  # <= 1.6 MB/s
        recorder_pool(server.port, command_timeout=0.5) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.ok, outcome
    assert outcome.attempts == 1
    assert server.received == [message]


async def test_an_upload_the_server_stops_reading_fails_before_the_dot_and_is_retried() -> None:
    message = large(12)  # more than the kernel's buffers on both sides can hold
    async with (
        slow_server(chunk_pause=None) as server,
        recorder_pool(
            server.port, command_timeout=0.3, retry=SmtpRetry(max_attempts=2, initial_backoff=0.01)
        ) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.category is FailureCategory.TEMPORARY_EXHAUSTED, outcome
    assert "took no byte" in outcome.reply
    assert outcome.attempts == 2
    assert outcome.in_doubt == ()
    assert server.received == []


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_over_tls_a_stalled_upload_fails_before_the_dot_too(
    tls: Literal["implicit", "starttls"],
) -> None:
    # The TLS layer hands all it is given to the socket's transport at once and pauses its
    # own writer only once that transport is full *and* more comes: the data must go out in
    # parts, each after the last has left, or a dead peer looks like a slow final reply
    # (delivery_unknown, after final_reply_timeout).
    message = large(12)
    async with (
        slow_server(chunk_pause=None, tls=tls) as server,
        SmtpPool(
            "127.0.0.1",
            server.port,
            tls=tls,
            ssl_context=server.client_context,
            command_timeout=0.3,
            final_reply_timeout=60.0,
            retry=SmtpRetry(max_attempts=2, initial_backoff=0.01),
        ) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.category is FailureCategory.TEMPORARY_EXHAUSTED, outcome
    assert "took no byte" in outcome.reply
    assert outcome.attempts == 2
    assert outcome.in_doubt == ()
    assert server.received == []


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
async def test_over_tls_a_slow_upload_arrives_once(tls: Literal["implicit", "starttls"]) -> None:
    message = large(3)
    async with (
        slow_server(chunk_pause=0.02, tls=tls) as server,
        SmtpPool(
            "127.0.0.1",
            server.port,
            tls=tls,
            ssl_context=server.client_context,
            command_timeout=2.0,
        ) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.ok, outcome
    assert outcome.attempts == 1
    assert server.received == [message]
