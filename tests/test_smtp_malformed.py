"""Mail as people have it, through the pool to the sandbox: legacy charsets in addresses,
broken line endings, long lines. Each message gets one outcome; a refused one sends nothing."""

from __future__ import annotations

import pytest

from hubspot_tx import FailureCategory, InvalidMessageError, InvalidReason, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_SMTP_RETRY, make_message

# A Latin-1 "é" (0xE9, not UTF-8) in an address, as a legacy .eml has it.
LATIN1_TO = (
    b"From: sender@example.com\r\nTo: Ren\xe9 <ren\xe9@example.org>\r\n"
    b"Subject: legacy\r\nMessage-ID: <latin1@hubspot-tx.test>\r\n\r\nbody\r\n"
)


async def test_a_latin1_byte_in_an_address_is_an_invalid_message_not_an_exception(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    async with sandbox.smtp_pool(token) as pool:
        outcome = await pool.send(LATIN1_TO)
    assert outcome.category is FailureCategory.INVALID_MESSAGE
    assert outcome.reason is InvalidReason.ADDRESS_NOT_UTF8
    assert "UTF-8" in outcome.reply
    assert outcome.key == "<latin1@hubspot-tx.test>"
    assert sandbox.smtp_handler.mail_commands == 0  # nothing reached the server
    with pytest.raises(InvalidMessageError) as raised:
        outcome.raise_for_status()
    assert raised.value.reason is InvalidReason.ADDRESS_NOT_UTF8


async def test_a_latin1_address_in_a_stream_leaves_every_other_message_unaffected(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    messages = [LATIN1_TO if i == 4 else make_message(i) for i in range(9)]
    async with sandbox.smtp_pool(token, max_connections=2, retry=FAST_SMTP_RETRY) as pool:
        outcomes = [o async for o in pool.send_many(messages)]
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(9))
    bad = [o for o in outcomes if not o.ok]
    assert [(o.index, o.reason) for o in bad] == [(4, InvalidReason.ADDRESS_NOT_UTF8)]
    assert len(sandbox.state.messages) == 8


async def test_a_latin1_sender_is_refused_too(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    message = LATIN1_TO.replace(b"From: sender@", b"From: s\xe9nder@").replace(
        b"ren\xe9@", b"rene@"
    )
    async with sandbox.smtp_pool(token) as pool:
        outcome = await pool.send(message)
    assert outcome.reason is InvalidReason.ADDRESS_NOT_UTF8
    assert sandbox.smtp_handler.mail_commands == 0
