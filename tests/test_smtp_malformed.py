"""Mail as people have it, through the pool to the sandbox: legacy charsets in addresses,
broken line endings, long lines. Each message gets one outcome; a refused one sends nothing."""

from __future__ import annotations

import email
import email.policy

import pytest

from hubspot_tx import FailureCategory, InvalidMessageError, InvalidReason, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_SMTP_RETRY, make_message
from .smtp_recorder import recorder_pool, recording_server

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


# -- line endings ------------------------------------------------------------------------------
DOUBLE_CR = (
    b"From: sender@example.com\r\r\nTo: ada@example.org\r\r\nSubject: converted twice\r\r\n"
    b"Message-ID: <crcrlf@hubspot-tx.test>\r\r\n\r\r\nCc: boss@example.org\r\r\n"
    b"Bcc: spy@example.org\r\r\nThe end.\r\r\n"
)


async def test_cr_cr_lf_is_one_line_break_and_the_body_stays_the_body() -> None:
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(DOUBLE_CR)
    assert outcome.ok, outcome
    (got,) = rec.received
    assert got.rcpt_to == ["ada@example.org"]  # not the body's Cc: / Bcc: lines
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == "converted twice"
    assert parsed["To"] == "ada@example.org"
    assert parsed["Cc"] is None
    body = got.data.split(b"\r\n\r\n", 1)[1]
    assert body == b"Cc: boss@example.org\r\nBcc: spy@example.org\r\nThe end.\r\n"
    assert b"\r\r" not in got.data


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\r\n"])
async def test_a_long_line_behind_any_line_ending_is_refused_before_sending(eol: bytes) -> None:
    message = eol.join(
        [b"From: sender@example.com", b"To: ada@example.org", b"", b"short", b"x" * 1200, b""]
    )
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.reason is InvalidReason.LINE_TOO_LONG
    assert rec.mail_commands == 0


async def test_size_is_declared_after_crlf_normalisation() -> None:
    lines = [b"From: sender@example.com", b"To: ada@example.org", b"", *[b"line"] * 200, b""]
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        assert (await pool.send(b"\n".join(lines))).ok
        assert (await pool.send(b"\r".join(lines))).ok
    for got in rec.received:
        assert f"SIZE={len(got.data)}" in got.mail_options, (got.mail_options, len(got.data))


async def test_an_mbox_from_line_is_not_sent() -> None:
    message = b"From sender@example.com Mon Jan  1 00:00:00 2024\n" + make_message(1)
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        assert (await pool.send(message)).ok
    assert rec.received[0].data == make_message(1)


async def test_an_obsolete_from_field_with_a_space_is_not_taken_for_an_mbox_line() -> None:
    message = b"From : ada@example.com\r\nTo: bob@example.org\r\n\r\nx\r\n"
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        assert (await pool.send(message)).ok
    assert rec.received[0].mail_from == "ada@example.com"
    assert rec.received[0].data == message


# -- where the header block ends ----------------------------------------------------------------
# A line that is neither a header field nor a folded line ends the header block, for the
# receiver's parser (the standard library's reads it so): what follows is body, however many
# "Cc:" lines it holds. (A legacy .eml that lost its blank line, or a header "continued" by
# an editor's wrapped line.)
NO_BLANK_LINE = (
    b"From: sender@example.com\r\nTo: ada@example.org\r\nSubject: wrapped\r\n"
    b"hello there, see below\r\nCc: boss@example.org\r\nBcc: spy@example.org\r\n\r\nmore\r\n"
)


@pytest.mark.parametrize(
    "message",
    [NO_BLANK_LINE, NO_BLANK_LINE.replace(b"\r\n\r\nmore\r\n", b"\r\n")],
    ids=["blank-line-later", "no-blank-line"],
)
async def test_body_lines_after_a_non_header_line_are_not_recipients(message: bytes) -> None:
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.ok, outcome
    (got,) = rec.received
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    header_recipients = [
        a.addr_spec for f in ("To", "Cc") if parsed[f] is not None for a in parsed[f].addresses
    ]
    assert got.rcpt_to == header_recipients == ["ada@example.org"]
    # The body is the body, nothing of it removed; the header's end is an empty line.
    assert got.data == message.replace(b"\r\nhello", b"\r\n\r\nhello")


# Lines Python's parser reads on past (a ":" with no name, a misplaced mbox "From " line),
# where the header block ended for the relay: what follows must not reach any receiver as a
# header (a Bcc shown to everyone), so the relay ends the header with an empty line.
@pytest.mark.parametrize(
    "line",
    [b":", b": x", b"From nobody Mon Jan  1 00:00:00 2024"],
    ids=["colon", "colon-x", "from"],
)
async def test_no_parser_reads_a_bcc_header_after_where_the_header_ended(line: bytes) -> None:
    message = (
        b"From: sender@example.com\r\nTo: ada@example.org\r\n"
        + line
        + b"\r\nBcc: spy@example.org\r\nCc: boss@example.org\r\n\r\nbody\r\n"
    )
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.ok, outcome
    (got,) = rec.received
    for policy in (email.policy.default, email.policy.compat32):
        parsed = email.message_from_bytes(got.data, policy=policy)
        assert parsed.get_all("Bcc") is None
        assert parsed.get_all("Cc") is None
    assert got.rcpt_to == ["ada@example.org"]


async def test_a_message_beginning_with_a_blank_line_has_no_header_and_sends_nothing() -> None:
    message = b"\r\nFrom: sender@example.com\r\nTo: ada@example.org\r\n\r\nbody\r\n"
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        outcome = await pool.send(message)
    assert outcome.category is FailureCategory.INVALID_MESSAGE
    assert rec.mail_commands == 0


# -- Resent-Bcc ---------------------------------------------------------------------------------
# RFC 5322 3.6.6: Resent-Bcc hides its addresses as Bcc does; smtplib.send_message removes it
# too. A forwarded message that carries one must not show it to the To/Cc recipients.
RESENT = (
    b"Resent-From: desk@example.com\r\nResent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Resent-Bcc: hidden@example.net,\r\n  other-hidden@example.net\r\n"
    b"From: sender@example.com\r\nTo: ada@example.org\r\nSubject: fwd\r\n\r\nbody\r\n"
)


@pytest.mark.parametrize("kind", ["bytes", "email-message"])
async def test_a_resent_bcc_field_is_never_sent(kind: str) -> None:
    message = (
        RESENT if kind == "bytes" else email.message_from_bytes(RESENT, policy=email.policy.default)
    )
    async with (
        recording_server() as (port, rec),
        recorder_pool(port) as pool,
    ):
        assert (await pool.send(message)).ok
    (got,) = rec.received
    assert b"hidden@" not in got.data
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Resent-Bcc"] is None
    assert parsed["Resent-From"] == "desk@example.com"
    assert got.rcpt_to == ["ada@example.org"]
