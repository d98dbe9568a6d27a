"""Review of the inbox (issue 19): hostile and international bytes, odd MIME and Message-IDs
the SDK reads one way must be stored, listed and opened the same way by the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(rate_limit=None) as sandbox:
        yield sandbox


async def _send(sb: Sandbox, *messages: bytes) -> list[str | None]:
    async with sb.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="review")
    ids = []
    async with sb.smtp_pool(token) as pool:
        for data in messages:
            outcome = await pool.send(
                Envelope(mail_from="s@example.com", rcpt_to=("ada@example.org",), data=data)
            )
            assert outcome.ok, outcome
            ids.append(outcome.message_id)
    return ids


async def test_8bit_addresses_in_to_and_cc_are_listed_and_opened(sb: Sandbox) -> None:
    utf8 = "From: s@example.com\r\nTo: zoë@exämple.de\r\nSubject: x\r\n\r\nHi\r\n".encode()
    latin1 = b"From: s@example.com\r\nTo: a@b.org\r\nCc: caf\xe9@b.org\r\nSubject: y\r\n\r\nHi\r\n"
    await _send(sb, utf8, latin1)
    async with aiohttp.ClientSession() as http:
        async with http.get(sb.inspection_url + "/messages") as r:
            assert r.status == 200, await r.text()
            listed = (await r.json())["results"]
        for m in listed:
            async with http.get(f"{sb.inspection_url}/messages/{m['id']}") as r:
                assert r.status == 200, await r.text()
    assert [m["to"] for m in listed] == [["zoë@exämple.de"], ["a@b.org", "caf\ufffd@b.org"]]


@pytest.mark.parametrize(
    "field",
    [
        b"Message-ID:\r\n <folded-id@example.com>",  # a long id, folded by a mailer
        b"Message-ID: <folded-id@example.com>\r\n ",
        "Message-ID: <zoë@exämple.de>".encode(),  # SMTPUTF8
        b"Message-ID: <caf\xe9@example.com>",  # Latin-1
    ],
)
async def test_the_message_id_the_sdk_reports_is_the_one_events_are_keyed_by(
    sb: Sandbox, field: bytes
) -> None:
    head = b"From: s@example.com\r\nTo: ada@example.org\r\nSubject: x\r\n"
    data = head + field + b"\r\n\r\nHi\r\n"
    (reported,) = await _send(sb, data)
    (stored,) = sb.outbox()
    assert reported is not None
    assert (stored.message_id, stored.message_id_assigned) == (reported, False)
    assert {e.smtp_id for e in sb.state.events} == {reported}
