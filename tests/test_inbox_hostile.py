"""Review of the inbox (issue 19): hostile and international bytes, odd MIME and Message-IDs
the SDK reads one way must be stored, listed and opened the same way by the sandbox."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hubspot_tx.sandbox import Sandbox, _inspect
from hubspot_tx.sandbox._state import StoredMessage
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


def _store(sb: Sandbox, data: bytes) -> int:
    """Straight into the store, as the SMTP handler does after DATA."""
    m = sb.state.store_message(
        session_id=1,
        token_id=None,
        mail_from="s@example.com",
        rcpt_to=("ada@example.org",),
        data=data,
        message_id=None,
    )
    return m.seq


def _mixed(*parts: bytes) -> bytes:
    head = b"From: s@example.com\r\nTo: ada@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
    return head + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + body + b"--B--\r\n"


TEXT = b"Content-Type: text/plain\r\n\r\nsee attached"


async def test_attached_messages_and_a_forwards_attachments_download_as_themselves(
    sb: Sandbox,
) -> None:
    inner = b"Subject: inner\r\nFrom: a@example.org\r\n\r\ninner body\r\n"
    forward = (
        b"Content-Type: multipart/mixed; boundary=C\r\n\r\n--C\r\n"
        + TEXT
        + b"\r\n--C\r\nContent-Type: application/pdf\r\n"
        + b'Content-Disposition: attachment; filename="deep.pdf"\r\n\r\ndeep\r\n--C--'
    )
    eml = b'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"'
    seq = _store(sb, _mixed(TEXT, forward, eml + b"\r\n\r\n" + inner))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sb.inspection_url}/messages/{seq}") as r:
            listed = (await r.json())["attachments"]
        assert [a["filename"] for a in listed] == ["deep.pdf", "fwd.eml"]
        got = []
        for a in listed:
            async with http.get(sb.base_url + a["url"]) as r:
                got.append(await r.read())
    assert got[0] == b"deep"
    # the attached message itself, not the part's MIME headers around it
    assert got[1].replace(b"\r\n", b"\n") == inner.replace(b"\r\n", b"\n")
    assert [a["size"] for a in listed] == [len(g) for g in got]


@pytest.mark.parametrize(
    "part",
    [
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*\r\n\r\nx",
        b"Content-Type: application/pdf; name*0*=utf-\x008''%C3%A9\r\n\r\nx",
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment;"
        b" filename*=utf-8''%E9%FF.pdf\r\n\r\nx",
    ],
)
async def test_a_message_with_hostile_mime_opens(sb: Sandbox, part: bytes) -> None:
    seq = _store(sb, _mixed(TEXT, part).replace(b"To: ada", b"To: \xff\xfe <ada"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sb.inspection_url}/messages/{seq}") as r:
            assert r.status == 200, await r.text()
            detail = await r.json()
        for a in detail["attachments"]:
            async with http.get(sb.base_url + a["url"]) as r:
                assert r.status == 200
    assert ("Subject", "x") in [tuple(h) for h in detail["headers"]]


async def _reply(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(10):
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line


@pytest.mark.parametrize("data_dir", [False, True], ids=["memory", "data"])
async def test_an_envelope_address_not_utf8_is_refused_not_stored(
    tmp_path: Path, data_dir: bool
) -> None:
    async with Sandbox(rate_limit=None, data_dir=tmp_path if data_dir else None) as box:
        token, password = box.state.create_token("raw", False)
        auth = base64.b64encode(f"\0{token.id}\0{password}".encode())
        replies = []
        for mail_from, rcpt in ((b"s\xff@example.com", b"a@x.org"), (b"s@x.org", b"a\xe9@x.org")):
            reader, writer = await asyncio.open_connection(
                box.host, box.smtps_port, ssl=box.ca.client_context()
            )
            try:
                await _reply(reader)
                for line in (b"EHLO x", b"AUTH PLAIN " + auth):
                    writer.write(line + b"\r\n")
                    await _reply(reader)
                for line in (
                    b"MAIL FROM:<" + mail_from + b"> SMTPUTF8",
                    b"RCPT TO:<" + rcpt + b">",
                ):
                    writer.write(line + b"\r\n")
                    replies.append((await _reply(reader))[:3])
            finally:
                writer.close()
        url = box.inspection_url + "/messages"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 200
            assert (await r.json())["total"] == 0
    assert replies == [b"501", b"503", b"250", b"501"]


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_short_search_gives_the_loop_back_and_survives_deletions(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    # Two letters have no trigram: the search looks at every message. At 10^5 messages that
    # held the event loop ~180 ms a call (a relay with such an inbox search open stalled).
    monkeypatch.setattr(_inspect, "CHUNK", 10)
    for i in range(100):
        subject = f"zq {i}" if i % 7 == 0 else f"order {i}"
        _store(sb, f"Subject: {subject}\r\nMessage-ID: <{i}@x>\r\n\r\nx\r\n".encode())
    index, looked = sb.state.index, [0]
    real_get = index.get

    def get(seq: int) -> StoredMessage | None:
        looked[0] += 1
        return real_get(seq)

    monkeypatch.setattr(index, "get", get)
    seen: list[int] = []

    async def meanwhile() -> None:
        for _ in range(10_000):  # bounded
            seen.append(looked[0])
            if 0 < looked[0] < 100 and len(sb.state.messages) == 100:
                sb.state.delete_messages([m.seq for m in sb.state.messages[40:60]])
            await asyncio.sleep(0)

    task = asyncio.create_task(meanwhile())
    try:
        params = {"q": "ZQ", "limit": "1000", "order": order}
        url = sb.inspection_url + "/messages"
        async with aiohttp.ClientSession() as http, http.get(url, params=params) as r:
            listed = [m["id"] for m in (await r.json())["results"]]
    finally:
        task.cancel()
    assert any(0 < n < 100 for n in seen)  # other tasks ran during the search
    expected = [m.seq for m in sb.state.messages if m.subject and "zq" in m.subject]
    assert len(sb.state.messages) == 80
    assert listed == (expected if order == "asc" else expected[::-1])
