"""The relay's fast paths agree with the plain ones they shortcut (no sockets here)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_tx.smtp.envelope import MAX_LINE, _has_long_line, crlf

# Lines of text joined by any mix of line breaks, the messy ones included.
_BREAKS = st.sampled_from([b"\n", b"\r\n", b"\r", b"\r\r\n"])
_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _reference_crlf(data: bytes) -> bytes:
    return re.sub(rb"\r*\n|\r", b"\r\n", data)


@settings(max_examples=300)
@given(st.lists(st.tuples(_LINE, _BREAKS), max_size=30), _LINE)
def test_crlf_agrees_with_the_general_rule(parts: list[tuple[bytes, bytes]], tail: bytes) -> None:
    data = b"".join(line + brk for line, brk in parts) + tail
    assert crlf(data) == _reference_crlf(data)


@given(st.lists(_LINE, max_size=30), _LINE)
def test_lf_only_input_takes_the_one_pass_path_and_gets_crlf(
    lines: list[bytes], tail: bytes
) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail  # what EmailMessage.as_bytes() gives
    assert crlf(data) == b"".join(line + b"\r\n" for line in lines) + tail


@settings(max_examples=200)
@given(st.lists(st.integers(0, 1200), min_size=1, max_size=8))
def test_long_line_check_agrees_with_the_regex(lengths: list[int]) -> None:
    data = b"\r\n".join(b"x" * n for n in lengths)
    assert _has_long_line(data) == (max(lengths) > MAX_LINE)
    assert _has_long_line(data) == bool(re.search(rb"(?m)^[^\r\n]{999}", data))


def test_long_line_check_of_a_large_message() -> None:
    short = b"y" * 70 + b"\r\n"
    big = short * 8000
    assert not _has_long_line(big)
    assert _has_long_line(big + b"z" * (MAX_LINE + 1))
    assert not _has_long_line(big + b"z" * MAX_LINE)
    assert _has_long_line(big[: 72 * 70] + b"z" * (MAX_LINE + 1) + b"\r\n" + big)
    assert not _has_long_line(big[: 72 * 70] + b"z" * MAX_LINE + b"\r\n" + big)


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.integers(0, 2100), _BREAKS), max_size=8),
    st.integers(0, 1200),
    st.booleans(),
)
def test_the_window_check_never_misses_a_long_line(
    parts: list[tuple[int, bytes]], tail: int, empty_lines: bool
) -> None:
    # Lines around the limit, messy line breaks normalised first (as prepare_for_wire does),
    # runs of empty lines: the window jumps must agree with a line-by-line reading.
    filler = b"\r\n" * 3 if empty_lines else b""
    data = crlf(b"".join(b"x" * n + brk + filler for n, brk in parts) + b"y" * tail)
    longest = max(len(line) for line in data.split(b"\r\n"))
    assert _has_long_line(data) == (longest > MAX_LINE)
    assert _has_long_line(data) == bool(re.search(rb"(?m)^[^\r\n]{999}", data))
