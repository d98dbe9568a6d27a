"""The fault matrix beyond the basic cells, and bad input: exact outcomes, nothing lost or sent
twice, nothing sent at all for what no server may receive."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_tx import (
    APIConnectionError,
    FailureCategory,
    HubSpot,
    Outcome,
    ResponseDecodeError,
    SmtpAuthError,
    SmtpRetry,
    SmtpTLSError,
    SmtpTokenWithPassword,
)
from hubspot_tx.models._base import ResponseDecoder
from hubspot_tx.models.single_send import SendStatus
from hubspot_tx.models.smtp_tokens import SmtpTokenPage
from hubspot_tx.models.tracking import CampaignData, EmailEventPage, EmailStatistics
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope

from .conftest import FAST_SMTP_RETRY, make_message


async def test_certificate_for_the_wrong_host() -> None:
    async with Sandbox(tls_hosts=("smtp.other.example",)) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="wrong-host")
        for tls in ("starttls", "implicit"):
            async with sb.smtp_pool(token, tls=tls) as pool:
                with pytest.raises(SmtpTLSError, match="TLS"):
                    await pool.send(make_message(1))
        async with sb.client(https=True, retry=None) as hs:
            with pytest.raises(APIConnectionError, match="TLS"):
                await hs.smtp_tokens.list()
        assert sb.state.messages == []


@pytest.mark.parametrize("code", [451, 452])
async def test_4xx_recipient_refusals_retry_those_recipients_only(
    sandbox: Sandbox, token: SmtpTokenWithPassword, code: int
) -> None:
    sandbox.faults.smtp_reply("rcpt", code, recipient="b@example.org")
    env = Envelope(
        mail_from="s@x.org", rcpt_to=("a@example.org", "b@example.org"), data=make_message(1)
    )
    async with sandbox.smtp_pool(token, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(env)
    assert outcome.ok
    assert outcome.attempts == 2
    assert [m.rcpt_to for m in sandbox.state.messages] == [("a@example.org",), ("b@example.org",)]


async def test_server_restart_during_a_relay(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    total, connections = 1500, 4
    sandbox.faults.smtp_slow("end", 0.001, times=None)
    outlasting = SmtpRetry(max_attempts=6, initial_backoff=0.05, max_backoff=0.2)  # > downtime
    async with sandbox.smtp_pool(token, max_connections=connections, retry=outlasting) as pool:
        relay = pool.send_many(make_message(i) for i in range(total))
        outcomes: list[Outcome] = []

        async def drive() -> None:
            async for outcome in relay:
                outcomes.append(outcome)

        task = asyncio.create_task(drive())
        while len(sandbox.state.messages) < 300:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await sandbox.restart_smtp(downtime=0.1)
        await task
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(total))
    stored = Counter(m.message_id for m in sandbox.state.messages)
    assert set(stored.values()) == {1}  # never twice
    by = Counter(o.category.value if o.category else "sent" for o in outcomes)
    assert by["sent"] + by["delivery_unknown"] == total
    assert by["delivery_unknown"] <= connections  # only what was cut after its final "."
    assert all(o.message_id in stored for o in outcomes if o.ok)
    assert sum(o.attempts > 1 for o in outcomes) >= 1  # the pool recovered by retrying


async def test_password_reset_during_a_relay_is_a_typed_stop(
    sandbox: Sandbox, token: SmtpTokenWithPassword
) -> None:
    outcomes: list[Outcome] = []
    async with sandbox.smtp_pool(token, max_connections=2, max_messages_per_connection=20) as pool:
        relay = pool.send_many(make_message(i) for i in range(10_000))

        async def drive() -> None:
            async for outcome in relay:
                outcomes.append(outcome)
                if len(outcomes) == 100:
                    async with sandbox.client() as hs:
                        await hs.smtp_tokens.reset_password(token.id)

        with pytest.raises(SmtpAuthError) as info:
            await drive()
    consumed = info.value.consumed
    assert consumed is not None
    assert consumed == len(outcomes) < 200
    stored = Counter(m.message_id for m in sandbox.state.messages)
    assert set(stored.values()) == {1}
    sent = [o for o in outcomes if o.ok]
    assert {o.message_id for o in sent} == set(stored)  # nothing silently dropped
    assert {o.category for o in outcomes if not o.ok} == {FailureCategory.AUTH}


def _bad_inputs() -> Iterator[tuple[str, object]]:
    ok = make_message(1)
    yield "not a message", b"just some bytes without headers"
    yield "missing From", b"To: a@example.org\r\n\r\nbody"
    yield "missing To", b"From: s@example.org\r\n\r\nbody"
    yield "NUL byte", ok.replace(b"Body", b"Bo\x00dy")
    yield "header line over 998 bytes", ok.replace(b"Subject: ", b"Subject: " + b"x" * 1200)
    yield "invalid address", Envelope(mail_from="s@x.org", rcpt_to=("not an address",), data=ok)
    yield (
        "CRLF in recipient",
        Envelope(
            mail_from="s@x.org", rcpt_to=("a@example.org>\r\nRCPT TO:<evil@example.org",), data=ok
        ),
    )
    yield (
        "CRLF in sender",
        Envelope(mail_from="s@x.org>\r\nRSET", rcpt_to=("a@example.org",), data=ok),
    )
    yield "8-bit header, no SMTPUTF8", ok.replace(b"Subject: ", "Subject: café ".encode())
    yield "30 MB over the server's SIZE", ok + b"y" * 900 + (b"\r\n" + b"z" * 998) * 30_000


async def test_bad_input_is_refused_before_any_byte() -> None:
    async with Sandbox(smtp_utf8=False, smtp_max_size=10 * 2**20) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="bad-input")
        cases = list(_bad_inputs())
        async with sb.smtp_pool(token) as pool:
            for name, message in cases:
                outcome = await pool.send(message)  # type: ignore[arg-type]
                assert outcome.category is FailureCategory.INVALID_MESSAGE, name
                assert outcome.reply, name
            # bare LF line endings are normalised, not refused
            assert (await pool.send(make_message(2).replace(b"\r\n", b"\n"))).ok
        assert sb.smtp_handler.mail_commands == 1  # only the good message began a transaction
        (stored,) = sb.state.messages
        assert b"\r\n" in stored.data
        assert b"\n\n" not in stored.data


async def test_header_injection_in_single_send_is_refused(sandbox: Sandbox) -> None:
    async with sandbox.client() as hs:
        with pytest.raises(ValueError, match="control character"):
            await hs.single_send.send(email_id=1001, to="a@example.org\r\nBcc: evil@example.org")
        with pytest.raises(ValueError, match="control character"):
            await hs.single_send.send(email_id=1001, to="a@example.org", cc=["b@x.org\nc@x.org"])
    assert not sandbox.requests


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=30,
)
SHAPE_KEYS = st.sampled_from(
    [
        "id",
        "results",
        "paging",
        "status",
        "statusId",
        "sendResult",
        "createdAt",
        "password",
        "events",
        "hasMore",
        "offset",
        "counters",
        "aggregate",
        "created",
        "type",
        "emailCampaignId",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    body=st.one_of(json_values, st.dictionaries(SHAPE_KEYS, json_values, max_size=8)).map(
        msgspec.json.encode
    )
    | st.binary(max_size=64)
)
def test_decoders_raise_only_typed_errors(body: bytes) -> None:
    for model in (
        SmtpTokenPage,
        SmtpTokenWithPassword,
        SendStatus,
        EmailEventPage,
        CampaignData,
        EmailStatistics,
    ):
        with contextlib.suppress(ResponseDecodeError):
            ResponseDecoder(model).decode(body)


def test_client_exports_are_usable() -> None:
    assert HubSpot("t").events is not None
