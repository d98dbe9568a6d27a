"""The inbox's index: headers read once at arrival, listings and searches that look at about a
page of messages, and the same answers as a plain scan of every message (the semantics before
the index: a case-insensitive substring of subject, sender, recipients and Message-ID)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_tx.sandbox import Sandbox, _inspect
from hubspot_tx.sandbox._index import _PARSE_ERRORS, clean_text, read_headers
from hubspot_tx.sandbox._state import ASSIGNED_ID_DOMAIN, StoredMessage
from hubspot_tx.smtp import Envelope

ADDRESSES = ["ada@example.org", "Grace@Example.org", "bounce-1@example.net", "zoë@exämple.de"]
WORDS = ["order", "Receipt", "ÉTÉ", "straße", "İstanbul", "42", "a", "ab", "x-y", "café"]


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(rate_limit=None) as sandbox:
        yield sandbox


def _mail(subject: str | None, to: str, message_id: str | None) -> bytes:
    m = EmailMessage()
    m["From"] = "Shop <shop@example.com>"
    m["To"] = to
    if subject is not None:
        m["Subject"] = subject  # non-ASCII becomes encoded words
    if message_id is not None:
        m["Message-ID"] = message_id
    m.set_content("body\n")
    return m.as_bytes(policy=email.policy.SMTP)


def _seed(sb: Sandbox, data: bytes, rcpt: tuple[str, ...], mail_from: str) -> StoredMessage:
    """Straight into the store, as the SMTP handler does after DATA."""
    return sb.state.store_message(
        session_id=1,
        token_id=None,
        mail_from=mail_from,
        rcpt_to=rcpt,
        data=data,
        message_id=email.message_from_bytes(data)["Message-ID"],
    )


def _reference(messages: list[StoredMessage], query: dict[str, str]) -> list[int]:
    """The listing as the sandbox computed it before the index: every message parsed again."""
    found = []
    for m in messages:
        parsed = m.message
        subject = None if parsed["Subject"] is None else str(parsed["Subject"])
        if "recipient" in query and query["recipient"].lower() not in (
            r.lower() for r in m.rcpt_to
        ):
            continue
        if "messageId" in query and m.message_id != query["messageId"]:
            continue
        if "subject" in query and subject != query["subject"]:
            continue
        if "q" in query:
            hay = " ".join((subject or "", m.mail_from, *m.rcpt_to, m.message_id or ""))
            if query["q"].lower() not in hay.lower():
                continue
        found.append(m.seq)
    return found


async def _all_pages(
    http: aiohttp.ClientSession, sb: Sandbox, query: dict[str, str], limit: int, order: str
) -> tuple[list[int], list[dict[str, Any]]]:
    ids: list[int] = []
    pages: list[dict[str, Any]] = []
    params = {**query, "limit": str(limit), "order": order}
    for _ in range(200):  # bounded: at most 200 pages
        async with http.get(sb.inspection_url + "/messages", params=params) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        pages.append(page)
        ids += [m["id"] for m in page["results"]]
        cursor = page["nextAfter"] if order == "asc" else page["nextBefore"]
        if cursor is None:
            return ids, pages
        params["after" if order == "asc" else "before"] = str(cursor)
    raise AssertionError("too many pages")


message_specs = st.lists(
    st.tuples(
        st.one_of(st.none(), st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)),
        st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3, unique=True),
        st.one_of(st.none(), st.integers(0, 5).map(lambda i: f"<m{i}@shop.example.com>")),
    ),
    max_size=25,
)
searches = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["EXAMPLE", "ample.o", "@", "m1@", "shop", "TÉ", "zz", "e", "ord", "İ"]),
    st.text(alphabet="abeorxy@. ", min_size=1, max_size=5),
)
others = {
    "recipient": st.sampled_from([a.upper() for a in ADDRESSES]),
    "messageId": st.integers(0, 5).map(lambda i: f"<m{i}@shop.example.com>"),
}
queries = st.one_of(
    st.fixed_dictionaries({"q": searches}, optional=others),  # a search, most of the time
    st.fixed_dictionaries({}, optional={"q": searches, **others}),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=message_specs,
    query=queries,
    deleted=st.lists(st.integers(0, 24), max_size=20),
    limit=st.integers(1, 7),
    order=st.sampled_from(["asc", "desc"]),
)
async def test_listing_and_search_match_a_scan_of_every_message(
    sb: Sandbox,
    specs: list[tuple[str | None, list[str], str | None]],
    query: dict[str, str],
    deleted: list[int],
    limit: int,
    order: str,
) -> None:
    sb.reset()
    for subject, rcpts, mid in specs:
        _seed(sb, _mail(subject, ", ".join(rcpts), mid), tuple(rcpts), "s@example.com")
    seqs = [m.seq for m in sb.state.messages]
    sb.state.delete_messages({seqs[i] for i in deleted if i < len(seqs)})  # stale postings
    expected = _reference(sb.state.messages, query)
    if order == "desc":
        expected.reverse()
    async with aiohttp.ClientSession() as http:
        ids, pages = await _all_pages(http, sb, query, limit, order)
    assert ids == expected
    assert all(p["totalExact"] and p["total"] == len(expected) for p in pages[:1])


async def test_past_the_budget_the_total_is_an_estimate_and_paging_still_complete(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inspect, "COUNT_BUDGET", 20)
    for i in range(300):
        subject = f"order {i}" if i % 3 else f"refund {i}"
        _seed(sb, _mail(subject, "ada@example.org", f"<{i}@x>"), ("ada@example.org",), "s@x")
    async with aiohttp.ClientSession() as http:
        ids, pages = await _all_pages(http, sb, {"q": "refund"}, 10, "desc")
        assert len(ids) == 100
        assert not pages[0]["totalExact"]
        assert 50 <= pages[0]["total"] <= 200  # about the 100 there are
        assert pages[-1]["totalExact"]  # the last page saw the rest
        # Without a filter the total is the count of messages, exact, at any size.
        async with http.get(sb.inspection_url + "/messages", params={"limit": "5"}) as r:
            page = await r.json()
        assert (page["total"], page["totalExact"]) == (300, True)


# -- headers read once at arrival, from messy bytes ----------------------------------------------
header_values = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=40),
    st.sampled_from(
        [
            "=?utf-8?q?caf=C3=A9?= au lait",
            "=?iso-8859-1?b?6XTp?=",
            "=?unknown-8bit?q?x?=",
            "a\r\n b folded",
            "Ada <ada@example.org>, grace@example.org",
            "undisclosed-recipients:;",
            '"Last, First" <lf@example.org>',
        ]
    ),
)
# Near the fast path's edges: plain ASCII with the characters that push a value off it.
plain = st.text(st.sampled_from(list('Aa z.,"()<>@;:\\_-=?1')), max_size=30)
mailbox = st.builds(
    "{} <{}@{}>".format,
    st.from_regex(r"[A-Za-z0-9_ .-]{0,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.+-]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9.-]{1,10}", fullmatch=True),
)
bare = st.from_regex(r"[A-Za-z0-9_.+-]{1,8}@[a-z0-9.-]{1,10}", fullmatch=True)
address_lists = st.lists(st.one_of(mailbox, bare), min_size=1, max_size=3).map(", ".join)
header_values = st.one_of(header_values, plain, mailbox, bare, address_lists)
line_ends = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"])


@settings(max_examples=150, deadline=None)
@given(
    subject=header_values,
    sender=header_values,
    to=header_values,
    cc=st.one_of(st.none(), header_values),
    eol=line_ends,
    latin1=st.booleans(),
    body=st.binary(max_size=200),
)
def test_headers_read_at_arrival_equal_a_full_parse(
    subject: str, sender: str, to: str, cc: str | None, eol: bytes, latin1: bool, body: bytes
) -> None:
    enc = "latin-1" if latin1 else "utf-8"
    lines = [("Subject", subject), ("From", sender), ("To", to)]
    if cc is not None:
        lines.append(("Cc", cc))
    head = b"".join(
        k.encode() + b": " + v.encode(enc, "replace").replace(b"\r\n", eol) + eol for k, v in lines
    )
    data = head + eol + body
    full = email.message_from_bytes(data, policy=email.policy.default)
    read = read_headers(data)  # never raises, whatever the bytes
    try:
        # 8-bit bytes: UTF-8 read as such, others as U+FFFD (the parser's lone surrogates
        # cannot go out as JSON)
        expected_to = [
            clean_text(str(a.addr_spec))
            for name in ("To", "Cc")
            for h in full.get_all(name) or ()
            for a in getattr(h, "addresses", ())
        ]
        expected_subject = None if full["Subject"] is None else clean_text(str(full["Subject"]))
        expected_from = None if full["From"] is None else clean_text(str(full["From"]))
    except _PARSE_ERRORS:  # the stdlib's own parser fails on `To: <` and friends: no oracle here
        return
    assert read.subject == expected_subject
    assert read.from_ == expected_from
    assert list(read.to) == expected_to


@pytest.mark.parametrize(
    "head",
    [b'To: <\r\nFrom: "\r\n', b'To: ", ada@example.org\r\nSubject: <\r\n', b"Cc: <\r\n"],
)
def test_headers_the_stdlib_cannot_parse_are_read_raw(head: bytes) -> None:
    # Python 3.11-3.13's header parser raises IndexError on these; a message must still be listed.
    read = read_headers(b"Message-ID: <x@y>\r\n" + head + b"\r\nbody\r\n")
    assert isinstance(read.to, tuple)


async def test_a_message_with_an_unparseable_header_is_stored_and_listed(sb: Sandbox) -> None:
    async with sb.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="hostile")
    data = b"From: s@example.com\r\nTo: <, ada@example.org\r\nSubject: <\r\n\r\nHi\r\n"
    async with sb.smtp_pool(token) as pool:
        outcome = await pool.send(
            Envelope(mail_from="s@example.com", rcpt_to=("ada@example.org",), data=data)
        )
    assert outcome.ok
    (stored,) = sb.outbox()
    url = sb.inspection_url + "/messages"
    async with aiohttp.ClientSession() as http, http.get(url, params={"q": "ada@"}) as r:
        listed = await r.json()
    assert [m["id"] for m in listed["results"]] == [stored.seq]


# -- a message without a Message-ID --------------------------------------------------------------
async def test_a_message_without_message_id_gets_one_and_its_events(sb: Sandbox) -> None:
    async with sb.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="no-id")
    data = b"From: s@example.com\r\nTo: ada@example.org\r\nSubject: no id\r\n\r\nHi\r\n"
    async with sb.smtp_pool(token) as pool:
        outcome = await pool.send(
            Envelope(mail_from="s@example.com", rcpt_to=("ada@example.org",), data=data)
        )
    assert outcome.ok
    (stored,) = sb.outbox()
    assert stored.message_id_assigned
    assert stored.message_id is not None
    assert stored.message_id.endswith(f"@{ASSIGNED_ID_DOMAIN}>")
    assert stored.data.endswith(data)  # the bytes as received
    now = sb.state.clock()
    sb.state.clock = lambda: now + 60  # every event has come due
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sb.inspection_url}/messages/{stored.seq}") as r:
            detail = await r.json()
        async with http.get(
            sb.inspection_url + "/messages", params={"messageId": stored.message_id}
        ) as r:
            listed = await r.json()
    assert detail["messageIdAssigned"] is True
    assert detail["status"] == "DELIVERED"
    assert [e["type"] for e in detail["events"]] == ["PROCESSED", "SENT", "DELIVERED"]
    assert all(e["smtpId"] == stored.message_id for e in detail["events"])
    assert [m["id"] for m in listed["results"]] == [stored.seq]
    assert [e.type for e in sb.events(recipient="ada@example.org")] == [
        "PROCESSED",
        "SENT",
        "DELIVERED",
    ]


async def test_counts_by_token_and_campaign_follow_deletions(sb: Sandbox) -> None:
    async with sb.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="counted")
    async with sb.smtp_pool(token) as pool:
        for i in range(3):
            data = f"Subject: {i}\r\nMessage-ID: <{i}@c>\r\n\r\nx\r\n".encode()
            await pool.send(Envelope(mail_from="s@x.org", rcpt_to=("a@x.org",), data=data))
    sb.state.delete_messages([sb.outbox()[0].seq])
    async with aiohttp.ClientSession() as http:
        async with http.get(sb.inspection_url + "/tokens") as r:
            (listed,) = (await r.json())["results"]
        async with http.get(sb.inspection_url + "/campaigns") as r:
            campaigns = (await r.json())["results"]
    assert listed["messages"] == 2
    assert [c["messages"] for c in campaigns if c["campaignId"] == token.email_campaign_id] == [2]


async def test_an_attachment_is_served_as_a_download_never_rendered(sb: Sandbox) -> None:
    m = EmailMessage()
    m["Subject"] = "with files"
    m["Message-ID"] = "<files@x>"
    m.set_content("see attached\n")
    m.add_attachment(b"%PDF-1.4 r\x00\xff", maintype="application", subtype="pdf",
                     filename="reçu 1.pdf")  # fmt: skip
    m.add_attachment("<script>alert(1)</script>", subtype="html", filename="evil.html")
    stored = _seed(sb, m.as_bytes(), ("a@x.org",), "s@x.org")
    base = f"{sb.inspection_url}/messages/{stored.seq}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            listed = (await r.json())["attachments"]
        assert [(a["filename"], a["size"]) for a in listed] == [
            ("reçu 1.pdf", 12),
            ("evil.html", len("<script>alert(1)</script>\n")),
        ]
        async with http.get(sb.base_url + listed[0]["url"]) as r:
            assert r.status == 200
            assert r.content_type == "application/pdf"
            assert (
                r.headers["Content-Disposition"] == "attachment; filename*=UTF-8''re%C3%A7u%201.pdf"
            )
            assert await r.read() == b"%PDF-1.4 r\x00\xff"
        async with http.get(sb.base_url + listed[1]["url"]) as r:
            assert r.headers["Content-Disposition"].startswith("attachment;")
            assert r.headers["Content-Security-Policy"].startswith("sandbox;")
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        for bad in ("2", "-1", "x"):
            async with http.get(f"{base}/attachments/{bad}") as r:
                assert r.status == 404


async def test_events_listing_looks_at_about_a_page(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_inspect, "COUNT_BUDGET", 20)
    # Arrivals on an injected clock, each message's events over before the next one arrives:
    # the events' order (and so the estimate) must not depend on how fast this machine seeds.
    start = sb.state.clock()
    for i in range(200):
        rcpt = ("bounce@x.org",) if i % 4 == 0 else ("ada@x.org",)
        sb.state.clock = lambda i=i: start + i * 10 * sb.state.event_step  # type: ignore[misc]
        _seed(sb, _mail(f"s{i}", rcpt[0], f"<{i}@e>"), rcpt, "s@x")
    now = start + 200 * 10 * sb.state.event_step
    sb.state.clock = lambda: now + 60
    url = sb.inspection_url + "/events"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"limit": "10"}) as r:
            everything = await r.json()
        async with http.get(url, params={"type": "BOUNCE", "limit": "10"}) as r:
            bounces = await r.json()
        async with http.get(url, params={"messageId": "<8@e>"}) as r:
            one = await r.json()
    assert (everything["total"], everything["totalExact"]) == (600, True)
    assert len(everything["results"]) == 10
    assert [e["type"] for e in bounces["results"]] == ["BOUNCE"] * 10
    assert not bounces["totalExact"]
    assert 25 <= bounces["total"] <= 100  # about the 50 there are
    assert [e["type"] for e in one["results"]] == ["PROCESSED", "SENT", "BOUNCE"]
    assert (one["total"], one["totalExact"]) == (3, True)
