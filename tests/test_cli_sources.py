"""The relay CLI's readers, against independent references: :mod:`mailbox` for mbox files, the
standard library's parser for the Message-ID it adds."""

from __future__ import annotations

import mailbox
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_tx.cli._sources import MessageIds, ensure_message_id, read_messages

_line = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=60).map(
    str.encode
)
_body = st.lists(
    st.one_of(_line, st.just(b"From the start of a body line"), st.just(b"")), max_size=8
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    head = [b"From: a@example.org", b"To: b@example.org", b"Subject: " + draw(_line)]
    return eol.join([*head, b"", *draw(_body)]) + eol


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=st.lists(_messages(), min_size=1, max_size=6))
def test_mbox_reading_matches_the_standard_library(messages: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    path.unlink(missing_ok=True)
    box = mailbox.mbox(str(path))
    for message in messages:
        box.add(message)
    box.close()
    reference = mailbox.mbox(str(path), factory=None, create=False)
    expected = [reference.get_bytes(key) for key in reference.iterkeys()]
    reference.close()
    got = [raw for _, raw in read_messages(str(path))]
    assert got == expected


def test_ids_are_content_hashes_with_occurrences() -> None:
    ids = MessageIds()
    a, b = ids(b"same"), ids(b"other")
    assert ids(b"same") == a[:-1] + "1"
    assert a.endswith(":0")
    assert b.endswith(":0")
    assert a != b
    assert MessageIds()(b"same") == a  # the same in every run


@pytest.mark.parametrize(
    "raw",
    [
        b"From: Ada <ada@shop.example>\r\nTo: b@x.org\r\n\r\nbody\r\n",
        b"From: Ada <ada@shop.example>\nTo: b@x.org\n\nbody\n",
        b"From: Ada <ada@shop.example>\rTo: b@x.org\r\rbody\r",
        b"From: Ada <ada@shop.example>\r\r\nTo: b@x.org\r\r\n\r\r\nbody\r\r\n",
        b"From: Ada\r\n <ada@shop.example>\r\nSubject: folded\r\n\tline\r\n\r\nbody",
        b"From: ada@shop.example\r\nTo: b@x.org\r\n",  # no body
        b"From: ada@shop.example\r\nTo: b@x.org",  # no body, no final line break
    ],
)
def test_a_message_id_is_added_at_the_end_of_the_header(raw: bytes) -> None:
    added_raw, added = ensure_message_id(raw, "sha256:" + "ab" * 16 + ":2")
    assert added == f"<{'ab' * 16}.2@shop.example>"
    before = message_from_bytes(raw.replace(b"\r\r\n", b"\r\n"), policy=policy.compat32)
    after = message_from_bytes(added_raw.replace(b"\r\r\n", b"\r\n"), policy=policy.compat32)
    assert after["Message-ID"] == added
    assert list(after.keys()) == [*before.keys(), "Message-ID"]  # added last, nothing else moved
    assert after.get_payload() == before.get_payload()


@pytest.mark.parametrize(
    "raw",
    [
        b"Message-ID: <x@y>\r\nFrom: a@b.c\r\n\r\nbody",
        b"From: a@b.c\nmessage-id : <x@y>\n\nbody",
        b"From: a@b.c\r\nMessage-ID: <x@y>\r\n\r\nbody",
        b"From: a@b.c\r\r\nMessage-ID: <x@y>\r\r\n\r\r\nbody",
        b"From: a@b.c\rMessage-ID: <x@y>\r\rbody",
        b"\r\nno header at all",
    ],
)
def test_a_message_with_an_id_or_no_header_is_left_alone(raw: bytes) -> None:
    assert ensure_message_id(raw, "sha256:" + "00" * 16 + ":0") == (raw, None)


def test_a_message_id_only_in_the_body_does_not_count() -> None:
    raw = b"From: a@b.c\r\n\r\nMessage-ID: <in-the-body@x>\r\n"
    out, added = ensure_message_id(raw, "sha256:" + "00" * 16 + ":0")
    assert added is not None
    assert out.startswith(b"From: a@b.c\r\nMessage-ID: " + added.encode() + b"\r\n\r\n")


@st.composite
def _headers_with_or_without_id(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r", b"\r\r\n"]))
    fields = [b"From: a@shop.example", b"To: b@example.org", b"Subject: " + draw(_line)]
    where = draw(st.sampled_from(["none", "header", "body"]))
    if where == "header":
        fields.insert(draw(st.integers(0, len(fields))), b"Message-ID: <x@y>")
    body = [*draw(_body), *([b"Message-ID: <in-body@y>"] if where == "body" else [])]
    return eol.join([*fields, b"", *body])


@settings(max_examples=200, deadline=None)
@given(raw=_headers_with_or_without_id())
def test_a_message_id_is_added_exactly_when_the_parser_sees_none(raw: bytes) -> None:
    reference = message_from_bytes(raw.replace(b"\r\r\n", b"\r\n"), policy=policy.compat32)
    out, added = ensure_message_id(raw, "sha256:" + "00" * 16 + ":0")
    assert (added is None) == (reference["Message-ID"] is not None)
    if added is not None:
        parsed = message_from_bytes(out.replace(b"\r\r\n", b"\r\n"), policy=policy.compat32)
        assert parsed["Message-ID"] == added
        assert parsed.get_payload() == reference.get_payload()


def test_an_eml_file_with_an_mbox_from_line_is_one_message(tmp_path: Path) -> None:
    # Some clients save a single message with its mbox "From " line: a .eml file is one
    # message (as in a folder of .eml files), not an mbox cut at its body's "From " lines.
    raw = (
        b"From sender@example.com Mon Jan  1 00:00:00 2024\nFrom: sender@example.com\n"
        b"To: ada@example.org\nSubject: hi\n\nHello,\n\nFrom the team, thanks.\nBye\n"
    )
    path = tmp_path / "Saved.EML"
    path.write_bytes(raw)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "saved.eml").write_bytes(raw)
    assert [m for _, m in read_messages(str(path))] == [raw]
    assert [m for _, m in read_messages(str(folder))] == [raw]


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@shop.example\r\nTo: b@example.org\r\nhello there\r\nmore\r\n\r\nbody\r\n",
        b"From: a@shop.example\nTo: b@example.org\nhello there\nMessage-ID: <body@y>\n\nbody\n",
    ],
    ids=["blank-line-later", "id-after-the-header-ended"],
)
def test_a_header_that_lost_its_blank_line_gets_the_id_in_the_header(raw: bytes) -> None:
    # The header ends at its first line that is not a field (as the receiver's parser reads
    # it): the id goes there, not into the body, and an id below that line does not count.
    reference = message_from_bytes(raw, policy=policy.compat32)
    assert reference["Message-ID"] is None
    out, added = ensure_message_id(raw, "sha256:" + "00" * 16 + ":0")
    assert added is not None
    parsed = message_from_bytes(out, policy=policy.compat32)
    assert parsed["Message-ID"] == added
    assert parsed.get_payload() == reference.get_payload()
