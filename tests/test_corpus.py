"""Mail as people have it, relayed to a third-party server (aiosmtpd) that records envelopes
and bytes. Each message gets one outcome; a sent one arrives exactly once, to exactly its
header recipients, without a Bcc header, and is the input normalised as the standard library's
parser judges it (``mail_oracle``); a refused one sends nothing. Hand-made cases, then
generated ones (hypothesis), on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_tx import InvalidReason, Outcome

from .conftest import ASYNCIO_AND_UVLOOP
from .mail_oracle import check_relayed, longest_line, not_utf8_address, parse
from .smtp_recorder import Recorder, recorder_pool, recording_server

CRLF = b"\r\n"


def msg(*lines: bytes, eol: bytes = CRLF) -> bytes:
    return eol.join(lines) + eol


SIMPLE = (b"From: Ada <ada@example.com>", b"To: bob@example.org", b"Subject: hi")

CORPUS: dict[str, tuple[bytes, InvalidReason | None]] = {
    "lf": (msg(*SIMPLE, b"", b"line one", b"line two", eol=b"\n"), None),
    "bare-cr": (msg(*SIMPLE, b"", b"line one", b"line two", eol=b"\r"), None),
    "cr-cr-lf": (
        msg(*SIMPLE, b"", b"Cc: boss@example.org", b"Bcc: spy@example.org", eol=b"\r\r\n"),
        None,
    ),
    "mixed-endings": (
        b"From: ada@example.com\nTo: bob@example.org\r\nSubject: mixed\r\r\n\n"
        b"one\rtwo\r\nthree\nfour\r\r\n",
        None,
    ),
    "no-final-newline": (b"From: ada@example.com\r\nTo: bob@example.org\r\n\r\nend", None),
    "headers-only": (b"From: ada@example.com\r\nTo: bob@example.org\r\nSubject: x\r\n", None),
    "latin1-body": (
        msg(
            *SIMPLE,
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=iso-8859-1",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            b"Cr\xe8me br\xfbl\xe9e \xe0 la fran\xe7aise.",
        ),
        None,
    ),
    "latin1-subject": (
        msg(b"From: ada@example.com", b"To: bob@example.org", b"Subject: caf\xe9", b"", b"x"),
        None,
    ),
    "latin1-display-name": (
        msg(b"From: ada@example.com", b"To: Ren\xe9 <rene@example.org>", b"", b"x"),
        None,
    ),
    "latin1-address": (
        msg(b"From: ada@example.com", b"To: ren\xe9@example.org", b"", b"x"),
        InvalidReason.ADDRESS_NOT_UTF8,
    ),
    "utf8-address": (
        msg(
            "From: Zoë <zoë@exämple.org>".encode(),
            "To: José <josé@example.org>".encode(),
            "Subject: Grüße".encode(),
            b"Content-Type: text/plain; charset=utf-8",
            b"",
            "Grüße aus Köln.".encode(),
        ),
        None,
    ),
    "encoded-words": (
        msg(
            b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>",
            b"To: =?iso-8859-1?b?UmVu6Q==?= <rene@example.org>, =?utf-8?q?J=C3=B6rg?=",
            b"  <joerg@example.org>",
            b"Subject: =?utf-8?b?R3LDvMOfZQ==?= and =?iso-8859-1?q?caf=E9?=",
            b"",
            b"x",
        ),
        None,
    ),
    "semicolons-and-encoded-words": (
        msg(
            b"From: ada@example.com",
            b"To: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>; bob@example.org",
            b"Cc: carl@example.org;=?iso-8859-1?q?Ren=E9?= <rene@example.org>",
            b"",
            b"x",
        ),
        None,
    ),
    "trailing-comma-and-comment": (
        msg(
            b"From: ada@example.com",
            b"To: bob@example.org",
            b"Cc: carl@example.org (Carl, the boss), dee@example.org,",
            b"",
            b"x",
        ),
        None,
    ),
    "line-998": (msg(*SIMPLE, b"", b"y" * 998), None),
    "line-999": (msg(*SIMPLE, b"", b"y" * 999), InvalidReason.LINE_TOO_LONG),
    "long-line-behind-cr": (
        msg(*SIMPLE, b"", b"short\r" + b"z" * 1500),
        InvalidReason.LINE_TOO_LONG,
    ),
    "long-header": (
        msg(b"From: ada@example.com", b"To: bob@example.org", b"X-Long: " + b"h" * 1200),
        InvalidReason.LINE_TOO_LONG,
    ),
    "nested-multipart": (
        msg(
            *SIMPLE,
            b"MIME-Version: 1.0",
            b'Content-Type: multipart/mixed; boundary="outer"',
            b"",
            b"--outer",
            b'Content-Type: multipart/alternative; boundary="inner"',
            b"",
            b"--inner",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: quoted-printable",
            b"",
            b"Gr=C3=BC=C3=9Fe, a soft=",
            b"break and a dot:",
            b".",
            b"..two dots",
            b"--inner",
            b"Content-Type: text/html; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
            b"",
            b"PHA+R3LDvMOfZTwvcD4=",
            b"--inner--",
            b"--outer",
            b'Content-Type: application/octet-stream; name="a.bin"',
            b"Content-Transfer-Encoding: base64",
            b"Content-Disposition: attachment; filename=a.bin",
            b"",
            b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            b"--outer--",
            eol=b"\n",
        ),
        None,
    ),
    "mbox-from-line": (
        b"From ada@example.com Mon Jan  1 00:00:00 2024\n"
        + msg(*SIMPLE, b"", b">From the start, quoted by mbox", eol=b"\n"),
        None,
    ),
    "no-message-id": (msg(*SIMPLE, b"", b"x"), None),
    "leading-dots": (msg(*SIMPLE, b"", b".", b"..", b".hidden", b"end"), None),
    "folded-headers": (
        msg(
            b"From: ada@example.com",
            b"To: bob@example.org,",
            b"\tcarl@example.org",
            b"Subject: a subject",
            b"  folded twice",
            b"",
            b"x",
        ),
        None,
    ),
    "group-syntax": (
        msg(b"From: ada@example.com", b"To: friends: bob@example.org, carl@example.org;", b""),
        None,
    ),
    "source-route": (
        msg(
            b"From: Ada <@relay.example.net:ada@example.com>",
            b"To: <@a.example.net:bob@example.org>",
            b"Bcc: Spy <@relay.example.net:spy@example.org>",
        ),
        None,
    ),
    "sender-field": (
        msg(b"From: list@example.com", b"Sender: bounce@example.com", b"To: bob@example.org"),
        None,
    ),
    "bcc-plain": (msg(*SIMPLE, b"Bcc: spy@example.org", b"", b"x"), None),
    "bcc-upper-and-space": (msg(*SIMPLE, b"BCC : spy@example.org", b"", b"x"), None),
    "bcc-folded": (
        msg(*SIMPLE, b"Bcc: spy@example.org,", b"\tMole <mole@example.org>", b"", b"x"),
        None,
    ),
    "bcc-twice": (
        msg(*SIMPLE, b"Bcc: spy@example.org", b"bcc: mole@example.org", b"", b"x"),
        None,
    ),
    "bcc-empty": (msg(*SIMPLE, b"Bcc:", b"", b"x"), None),
    "bcc-undisclosed": (msg(*SIMPLE, b"Bcc: undisclosed-recipients:;", b"", b"x"), None),
    "bcc-only": (msg(b"From: ada@example.com", b"Bcc: spy@example.org", b"", b"x"), None),
    "bcc-duplicate-of-to": (msg(*SIMPLE, b"Bcc: bob@example.org", b"", b"x"), None),
    "bcc-lf": (msg(*SIMPLE, b"Bcc: spy@example.org", b"", b"x", eol=b"\n"), None),
    "bcc-cr-cr-lf": (msg(*SIMPLE, b"Bcc: spy@example.org", b"", b"x", eol=b"\r\r\n"), None),
    "bcc-in-body-only": (msg(*SIMPLE, b"", b"Bcc: not-a-header@example.org"), None),
    "no-recipients": (
        msg(b"From: ada@example.com", b"Subject: to nobody", b"", b"x"),
        InvalidReason.NO_RECIPIENTS,
    ),
    "no-sender": (msg(b"To: bob@example.org", b"", b"x"), InvalidReason.NO_SENDER),
    "nul-byte": (msg(*SIMPLE, b"", b"a\x00b"), InvalidReason.NUL_BYTE),
}


async def relay_and_check(
    messages: list[bytes], expected: list[InvalidReason | None]
) -> tuple[list[Outcome], Recorder]:
    """Relay ``messages`` in order over one session, and judge every outcome."""
    async with (
        recording_server() as (port, rec),
        recorder_pool(port, max_connections=1) as pool,
    ):
        outcomes = [o async for o in pool.send_many(messages, concurrency=1)]
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(len(messages)))
    by_index = sorted(outcomes, key=lambda o: o.index or 0)
    received = iter(rec.received)
    for message, want, outcome in zip(messages, expected, by_index, strict=True):
        if want is not None:
            assert outcome.reason is want, (message, outcome)
            continue
        assert outcome.ok, (message, outcome)
        got = next(received)  # in order: one session, one message at a time
        check_relayed(message, got.mail_from, got.rcpt_to, got.data)
        assert outcome.accepted == tuple(got.rcpt_to)
    assert next(received, None) is None  # nothing else arrived, nothing twice
    assert rec.mail_commands == sum(w is None for w in expected)  # refused: nothing sent
    return outcomes, rec


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_each_corpus_message_alone(name: str) -> None:
    message, want = CORPUS[name]
    await relay_and_check([message], [want])


async def test_the_whole_corpus_in_one_relay() -> None:
    names = sorted(CORPUS)
    await relay_and_check([CORPUS[n][0] for n in names], [CORPUS[n][1] for n in names])


# -- generated ---------------------------------------------------------------------------------
EOLS = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n"])
LOCAL = st.sampled_from(["ada", "bob", "carl", "dee", "josé", "zoë"])
DOMAIN = st.sampled_from(["example.org", "example.com", "exämple.org"])
ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}".encode(), LOCAL, DOMAIN)
NAME = st.sampled_from([b"", b"Ada ", b"=?utf-8?q?Zo=C3=AB?= ", b"Ren\xe9 ", b'"Doe, J." '])
MAILBOX = st.builds(lambda name, addr: name + b"<" + addr + b">" if name else addr, NAME, ADDRESS)
MAILBOXES = st.lists(MAILBOX, min_size=1, max_size=3).map(b", ".join)
BCC_NAME = st.sampled_from([b"Bcc", b"BCC", b"bcc", b"Bcc "])
TEXT = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00") or b"x")
BODY_LINE = st.one_of(
    TEXT,
    st.sampled_from([b".", b"..", b".dot", b"From here", b"Bcc: body@example.org", b""]),
    st.integers(900, 1100).map(lambda n: b"w" * n),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A message as people have them: any line ending, 8-bit or encoded headers, Bcc in
    several spellings and foldings, leading dots, an mbox line, long lines."""
    eol = draw(EOLS)
    fields = [b"From: " + draw(MAILBOX), b"To: " + draw(MAILBOXES)]
    if draw(st.booleans()):
        fields.append(b"Cc: " + draw(MAILBOXES))
    if draw(st.booleans()):
        bcc = draw(MAILBOXES)
        if draw(st.booleans()) and b", " in bcc:
            bcc = bcc.replace(b", ", b"," + eol + b"\t", 1)  # folded
        fields.insert(draw(st.integers(0, len(fields))), draw(BCC_NAME) + b": " + bcc)
    if draw(st.booleans()):
        fields.append(b"Message-ID: <" + draw(st.sampled_from([b"a", b"b"])) + b"@x.test>")
    fields.append(b"Subject: " + draw(TEXT))
    body = draw(st.lists(BODY_LINE, max_size=6))
    data = eol.join([*fields, b"", *body]) + eol
    if draw(st.booleans()):
        data = b"From sender@example.com Mon Jan  1 00:00:00 2024" + eol + data
    return data


def expectation(message: bytes) -> InvalidReason | None:
    """What the oracle expects, from the stdlib's reading (not the SDK's)."""
    if not_utf8_address(parse(message)):
        return InvalidReason.ADDRESS_NOT_UTF8
    if longest_line(message) > 998:
        return InvalidReason.LINE_TOO_LONG
    return None


@pytest.mark.parametrize("loop", sorted(ASYNCIO_AND_UVLOOP))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(messages(), min_size=1, max_size=6))
def test_generated_messages(loop: str, batch: list[bytes]) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] = ASYNCIO_AND_UVLOOP[loop]
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(relay_and_check(batch, [expectation(m) for m in batch]))
