"""Pure helpers of the SMTP bridge: envelopes, Bcc removal, dot-stuffing (no sockets)."""

from __future__ import annotations

import email
import email.generator
import email.headerregistry
import email.policy
import io
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_tx import InvalidMessageError
from hubspot_tx.smtp import Envelope, prepare, strip_bcc
from hubspot_tx.smtp.envelope import _flatten, dot_stuff

RAW = (
    b"From: Shop <shop@example.com>\r\n"
    b"To: Ada <ada@example.org>, bob@example.org\r\n"
    b"Cc: carol@example.org\r\n"
    b"Bcc: dave@example.org,\r\n"
    b"  Erin <erin@example.org>\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <order-1@example.com>\r\n"
    b"\r\n"
    b".starts with a dot\r\n"
    b"Bcc: this line is body text, not a header\r\n"
)


def test_envelope_from_headers_includes_bcc_and_strips_it() -> None:
    env, message_id = prepare(RAW)
    assert env.mail_from == "shop@example.com"
    assert env.rcpt_to == (
        "ada@example.org",
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
        "erin@example.org",
    )
    assert message_id == env.key == "<order-1@example.com>"
    head, _, body = env.data.partition(b"\r\n\r\n")
    assert b"bcc" not in head.lower()
    assert b"erin" not in head.lower()  # the folded continuation went too
    assert b"Bcc: this line is body text" in body  # the body is untouched


def test_sender_header_wins_and_duplicates_collapse() -> None:
    raw = b"From: a@x.org\r\nSender: s@x.org\r\nTo: b@y.org\r\nCc: B@y.org, b@y.org\r\n\r\nx"
    env, _ = prepare(raw, key="mine")
    assert env.mail_from == "s@x.org"
    assert env.rcpt_to == ("b@y.org", "B@y.org")
    assert env.key == "mine"


def test_email_message_is_not_mutated() -> None:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["To"] = "b@y.org"
    msg["Bcc"] = "hidden@y.org"
    msg["Subject"] = "s"
    msg.set_content("hello\n.dot\n")
    env, message_id = prepare(msg)
    assert env.rcpt_to == ("b@y.org", "hidden@y.org")
    assert b"hidden" not in env.data
    assert b"\r\n" in env.data
    assert b"\n.dot" in env.data
    assert msg["Bcc"] == "hidden@y.org"
    assert message_id is None
    assert env.key is None


def test_explicit_envelope_is_kept_but_bcc_header_still_removed() -> None:
    env, message_id = prepare(
        Envelope(mail_from="bounce@x.org", rcpt_to=("only@y.org",), data=RAW, key="k1")
    )
    assert env.rcpt_to == ("only@y.org",)
    assert env.mail_from == "bounce@x.org"
    assert env.key == "k1"
    assert message_id == "<order-1@example.com>"
    assert b"dave@" not in env.data.partition(b"\r\n\r\n")[0]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"From: a@x.org\r\nSubject: none\r\n\r\nbody", "no To, Cc or Bcc"),
        (b"To: b@y.org\r\n\r\nbody", "no From"),
    ],
)
def test_invalid_messages(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        prepare(raw)


def test_envelope_without_recipients_is_invalid() -> None:
    with pytest.raises(InvalidMessageError):
        prepare(Envelope(mail_from="a@x.org", rcpt_to=(), data=b"x"))


def test_unsupported_type() -> None:
    with pytest.raises(TypeError, match="EmailMessage"):
        prepare("a string")  # type: ignore[arg-type]


def test_strip_bcc_leaves_other_messages_alone() -> None:
    raw = b"From: a@x.org\r\nTo: b@y.org\r\n\r\nBcc: in body\r\n"
    assert strip_bcc(raw) is raw


def test_dot_stuffing_and_line_endings() -> None:
    assert dot_stuff(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n"
    assert dot_stuff(b".x") == b"..x\r\n"
    assert dot_stuff(b"plain\r\n") == b"plain\r\n"


@pytest.mark.parametrize(
    "env",
    [
        Envelope(mail_from="a@x.org", rcpt_to="b@y.org", data=b"x"),  # type: ignore[arg-type]
        Envelope(mail_from=None, rcpt_to=("b@y.org",), data=b"x"),  # type: ignore[arg-type]
        Envelope(mail_from="a@x.org", rcpt_to=("",), data=b"x"),
        Envelope(mail_from="a@x.org", rcpt_to=("b@y.org",), data="text"),  # type: ignore[arg-type]
    ],
)
def test_malformed_envelopes_are_invalid(env: Envelope) -> None:
    with pytest.raises(InvalidMessageError, match="Envelope"):
        prepare(env)


@pytest.mark.parametrize(
    "value",
    [
        "a@x.org",
        "Shop <orders@shop.example.com>",
        " a@x.org ",
        "a@x.org, b@y.org",
        '"Doe, J" <j@x.org>',
        "Ada (work) <a@x.org>",
        "<a@x.org>",
        "undisclosed-recipients:;",
        "",
        "Name Only",
        "a@x.org;b@y.org",
        "a@x.org, b@y.org,",
        "a@x.org (Ada, at work), b@y.org",
        "=?utf-8?q?Caf=C3=A9?= <c@x.org>",
        "Zoë <z@x.org>",
    ],
)
def test_the_fast_address_path_agrees_with_email_utils(value: str) -> None:
    # email.utils' lenient reading: the strict one (Python 3.13, 3.12.6, 3.11.10) reads a
    # whole field with a stray "," or ";" as no address, and its recipients would be dropped.
    from email.utils import getaddresses

    from hubspot_tx.smtp.envelope import _addresses

    from .mail_oracle import LENIENT

    assert _addresses([value]) == [a for _, a in getaddresses([value], **LENIENT) if a]


def test_folded_and_repeated_headers_are_scanned() -> None:
    raw = b"From: a@x.org\r\nTo: b@y.org,\r\n\tc@y.org\r\nto: d@y.org\r\nX-To: no@y.org\r\n\r\nx"
    env, _ = prepare(raw)
    assert env.rcpt_to == ("b@y.org", "c@y.org", "d@y.org")


# -- the fast flattening of EmailMessage: byte for byte what the standard generator writes ---
def _reference_flatten(message: EmailMessage) -> bytes:
    buf = io.BytesIO()
    policy = email.policy.SMTP.clone(linesep="\r\n")
    email.generator.BytesGenerator(buf, policy=policy).flatten(message)
    return buf.getvalue()


_header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=120
)


@settings(max_examples=300, deadline=None)
@given(
    subject=_header_text,
    name=_header_text,
    extra=st.lists(st.text(alphabet="abcdefghij xyz-=;.", max_size=100), max_size=4),
    recipients=st.integers(min_value=1, max_value=8),
    html=st.booleans(),
    attachment=st.booleans(),
)
def test_fast_flatten_matches_the_standard_generator(
    subject: str, name: str, extra: list[str], recipients: int, html: bool, attachment: bool
) -> None:
    message = EmailMessage()
    try:
        message["From"] = email.headerregistry.Address(name, "sender", "example.com")
        message["Subject"] = subject
    except ValueError:
        return  # not a header value the email package accepts at all
    message["To"] = ", ".join(f"person{i}@example.org" for i in range(recipients))
    message["Message-ID"] = "<fixed@example.com>"
    message["Date"] = "Mon, 23 Nov 2026 03:00:00 +0000"
    for i, value in enumerate(extra):
        message[f"X-Extra-{i}"] = value
    message.set_content("body line\n" * 3)
    if html:
        message.add_alternative("<p><b>hi</b></p>", subtype="html")
    if attachment:
        message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf")
    try:
        expected = _reference_flatten(message)
    except Exception:  # the standard generator refuses it too
        return
    assert _flatten(message) == expected


def test_a_parsed_message_keeps_its_header_source() -> None:
    raw = b"From: a@example.com\r\nSubject:   spaced   out\r\nTo: b@example.org\r\n\r\nhi\r\n"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert _flatten(parsed) == _reference_flatten(parsed)
    assert b"Subject: spaced   out\r\n" in _flatten(parsed)  # its source, as it came


@pytest.mark.parametrize(
    "to",
    [
        b"=?utf-8?q?Doe,_John?= <j@x.org>",  # a raw comma in an encoded word, as some clients write
        b"=?iso-8859-1?q?M=FCller,_Hans?= <h@x.org>, =?utf-8?b?Wm/Dqw==?= <z@x.org>",
    ],
)
def test_recipients_behind_encoded_words_are_those_the_standard_parser_reads(to: bytes) -> None:
    raw = b"From: s@x.org\r\nTo: " + to + b"\r\n\r\nbody\r\n"
    reference = email.message_from_bytes(raw, policy=email.policy.default)
    expected = tuple(a.addr_spec for a in reference["To"].addresses)
    env, _ = prepare(raw)
    assert env.rcpt_to == expected
