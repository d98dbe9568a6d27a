"""The hot paths' edges, each against a plain reference: ``prepare_for_wire``'s line endings,
998-byte check and dot-stuffing (regexes, on messy and on large input), ``Wire._parse`` reading
a read where it lies (every split of the reply stream over a real socket), and the lanes' fast
path for one recipient (the pool's non-lane path, ``transact``, taken when a ``before_data``
hook is given, gives the same outcomes, with and without PIPELINING).
"""

from __future__ import annotations

import asyncio
import email
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubspot_tx import Outcome
from hubspot_tx._exceptions import InvalidMessageError
from hubspot_tx.smtp import Envelope, SmtpRetry
from hubspot_tx.smtp._wire import MAX_REPLY, Reply, Wire, WireClosed
from hubspot_tx.smtp.envelope import (
    MAX_LINE,
    _has_long_line,
    crlf,
    dot_stuff,
    prepare_for_wire,
)
from hubspot_tx.smtp.outcome import InvalidReason

from .lane_server import LaneServer, pool_for
from .test_smtp_lanes_lockstep import step_server


# -- references ----------------------------------------------------------------------------------
def ref_crlf(data: bytes) -> bytes:
    return re.sub(rb"\r*\n|\r", b"\r\n", data)


def ref_longest(crlf_data: bytes) -> int:
    return max(len(line) for line in crlf_data.split(b"\r\n"))


def ref_stuff(crlf_data: bytes) -> bytes:
    if not crlf_data.endswith(b"\r\n"):
        crlf_data += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", crlf_data)


# -- 8ff7d33: crlf, the long-line check, dot-stuffing ---------------------------------------------
_PIECE = st.one_of(
    st.sampled_from([b"\n", b"\r", b"\r\n", b"\r\r\n", b"\n\r", b"\r\r", b".", b"\x00", b"\xff"]),
    st.sampled_from([0, 1, 996, 997, 998, 999, 1000, 1997, 1998]).map(lambda n: b"x" * n),
    st.binary(max_size=8),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECE, max_size=14))
def test_crlf_long_line_and_stuffing_agree_with_references_on_messy_bytes(
    pieces: list[bytes],
) -> None:
    data = b"".join(pieces)
    normal = crlf(data)
    assert normal == ref_crlf(data)
    assert _has_long_line(normal) == (ref_longest(normal) > MAX_LINE)
    assert dot_stuff(data) == ref_stuff(ref_crlf(data))


@settings(max_examples=40, deadline=None)
@given(st.lists(_PIECE, min_size=1, max_size=10), st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_large_messages_take_the_no_split_paths_and_agree_too(
    pieces: list[bytes], brk: bytes
) -> None:
    unit = b"".join(pieces) + brk
    data = unit * (300 * 1024 // len(unit) + 1)  # over _SPLIT_UP_TO (256 KiB)
    normal = crlf(data)
    assert normal == ref_crlf(data)
    assert _has_long_line(normal) == (ref_longest(normal) > MAX_LINE)


@pytest.mark.parametrize("data", [b"", b"\n", b"\r", b"\r\n", b"\r\r\n", b"\n\n\n", b"\r\r\r"])
def test_data_of_only_line_breaks(data: bytes) -> None:
    assert crlf(data) == ref_crlf(data)
    assert not _has_long_line(crlf(data))
    assert _has_long_line(crlf(data * 2000)) is False


HEAD = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\n"


def _as(kind: str, data: bytes) -> Any:
    if kind == "bytes":
        return data
    if kind == "envelope":
        return Envelope(mail_from="a@example.com", rcpt_to=("b@example.org",), data=data)
    return email.message_from_bytes(data)  # a Message (compat32): the body kept as it is


@pytest.mark.parametrize("kind", ["bytes", "envelope", "message"])
@pytest.mark.parametrize("length", [997, 998, 999, 1000])
@pytest.mark.parametrize("where", ["first", "middle", "last", "last-unterminated"])
@pytest.mark.parametrize("brk", [b"\n", b"\r\n", b"\r", b"\r\r\n"])
def test_a_line_at_the_limit_anywhere_in_the_body(
    kind: str, length: int, where: str, brk: bytes
) -> None:
    line = b"x" * length
    short = [b"short", b"", b".dot"]
    if where == "first":
        body = [line, *short]
    elif where == "middle":
        body = [short[0], line, *short[1:]]
    else:
        body = [*short, line]
    text = brk.join(body) + (b"" if where == "last-unterminated" else brk)
    # Python's parser (a Message) reads "\r\r\n" as two breaks: its head keeps CRLF.
    head_brk = b"\r\n" if kind == "message" and brk == b"\r\r\n" else brk
    data = HEAD.replace(b"\r\n", head_brk) + text
    message = _as(kind, data)
    if length > MAX_LINE:
        with pytest.raises(InvalidMessageError) as raised:
            prepare_for_wire(message)
        assert raised.value.reason is InvalidReason.LINE_TOO_LONG
        return
    prepared = prepare_for_wire(message)
    assert ref_longest(prepared.env.data) == length
    assert b"\r\n" + line + b"\r\n" in prepared.stuffed


@pytest.mark.parametrize("kind", ["bytes", "envelope", "message"])
def test_a_long_bcc_line_is_not_sent_so_it_is_no_reason_to_refuse(kind: str) -> None:
    bcc = b"Bcc: " + b"c@example.net, " * 80 + b"d@example.net\r\n"  # > 998 bytes
    assert len(bcc) > MAX_LINE + 2
    data = b"From: a@example.com\r\nTo: b@example.org\r\n" + bcc + b"\r\nbody\r\n"
    prepared = prepare_for_wire(_as(kind, data))
    assert b"Bcc" not in prepared.stuffed
    assert ref_longest(prepared.env.data) < MAX_LINE


@pytest.mark.parametrize("kind", ["bytes", "envelope", "message"])
def test_a_long_header_line_that_is_not_bcc_is_refused(kind: str) -> None:
    data = b"From: a@example.com\r\nTo: b@example.org\r\nX-Long: " + b"y" * 1100 + b"\r\n\r\nb\r\n"
    with pytest.raises(InvalidMessageError) as raised:
        prepare_for_wire(_as(kind, data))
    assert raised.value.reason is InvalidReason.LINE_TOO_LONG


@pytest.mark.parametrize(
    "data", [b"", b"x", b"\n", b"\r", b"\r\n", b".", b".\n", b"..\r", b"a\r\r", b"\x00", b"\xff"]
)
def test_envelopes_of_zero_to_three_bytes(data: bytes) -> None:
    env = Envelope(mail_from="a@example.com", rcpt_to=("b@example.org",), data=data)
    if b"\x00" in data:
        with pytest.raises(InvalidMessageError) as raised:
            prepare_for_wire(env)
        assert raised.value.reason is InvalidReason.NUL_BYTE
        return
    prepared = prepare_for_wire(env)
    assert prepared.env.data == ref_crlf(data)
    assert prepared.stuffed == ref_stuff(ref_crlf(data))
    assert prepared.eight_bit == (not data.isascii())


def test_a_long_line_at_the_end_of_a_large_message_is_refused() -> None:
    body = (b"z" * 70 + b"\n") * 5000 + b"." + b"q" * 998  # 999 bytes, no final break
    with pytest.raises(InvalidMessageError) as raised:
        prepare_for_wire(HEAD + body)
    assert raised.value.reason is InvalidReason.LINE_TOO_LONG
    prepared = prepare_for_wire(HEAD + body[:-1])  # 998: fine, and its dot doubled
    assert prepared.stuffed.endswith(b"\r\n.." + b"q" * 997 + b"\r\n")


# -- 116bff3: Wire._parse, over a real socket -----------------------------------------------------
@asynccontextmanager
async def wire_to(chunks: list[bytes], pause: float = 0.005) -> AsyncIterator[Wire]:
    """A Wire on a real TCP session whose server writes ``chunks`` one by one (a pause between
    them, so that each is, most likely, a read of its own), then keeps the session open."""
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
        await done.wait()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, wire = await loop.create_connection(Wire, "127.0.0.1", port)
    try:
        yield wire
    finally:
        done.set()
        transport.abort()
        server.close()
        await server.wait_closed()


STREAM = (
    b"250-first line\r\n250-second\r\n250 last\r\n"  # one multi-line reply
    b"354 go ahead\r\n250 queued as X\n"  # a bare-LF line
    b"550 5.1.1 no\r\n221\r\n"  # a reply of only its code
)
EXPECTED: list[Reply] = [
    (250, "first line\nsecond\nlast"),
    (354, "go ahead"),
    (250, "queued as X"),
    (550, "5.1.1 no"),
    (221, ""),
]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
async def test_replies_split_at_every_byte(cut: int) -> None:
    async with wire_to([STREAM[:cut], STREAM[cut:]]) as wire:
        assert await wire.replies(len(EXPECTED), 5) == EXPECTED


async def test_replies_a_byte_at_a_time() -> None:
    async with wire_to([STREAM[i : i + 1] for i in range(len(STREAM))], pause=0.001) as wire:
        assert await wire.replies(len(EXPECTED), 10) == EXPECTED


async def test_a_read_ending_in_cr_then_one_ending_in_lf() -> None:
    chunks = [b"250 a\r\n250 b\r", b"\n354 c\r", b"\n"]
    async with wire_to(chunks) as wire:
        assert await wire.replies(3, 5) == [(250, "a"), (250, "b"), (354, "c")]


async def test_a_partial_line_buffered_then_a_read_of_whole_lines() -> None:
    # The second read ends in "\n" but the buffer holds "25": the buffered path must take it.
    chunks = [b"25", b"0 ok\r\n", b"251 fwd\r\n354 go\r\n"]
    async with wire_to(chunks) as wire:
        assert await wire.replies(3, 5) == [(250, "ok"), (251, "fwd"), (354, "go")]


async def test_many_replies_in_one_read() -> None:
    stream = b"".join(b"250 r%d\r\n" % i for i in range(500))
    async with wire_to([stream]) as wire:
        assert await wire.replies(500, 5) == [(250, f"r{i}") for i in range(500)]


async def test_an_endless_line_is_refused_after_max_reply() -> None:
    async with wire_to([b"250-", b"x" * (MAX_REPLY + 10)]) as wire:
        with pytest.raises(WireClosed, match="too long"):
            await wire.replies(1, 5)


@pytest.mark.parametrize("split", [False, True])
async def test_a_malformed_reply_closes_the_wire(split: bool) -> None:
    stream = b"250 ok\r\nhello there\r\n250 never\r\n"
    chunks = [stream[:10], stream[10:]] if split else [stream]
    async with wire_to(chunks) as wire:
        with pytest.raises(WireClosed, match="malformed"):
            await wire.replies(3, 5)
        assert wire.closed


# -- 5c12b78: the lane's fast path against the plain (transact) path -----------------------------
ONE = SmtpRetry(max_attempts=1)


def _summary(o: Outcome) -> tuple[Any, ...]:
    return (
        o.status,
        o.category,
        o.accepted,
        tuple((r.recipient, r.code) for r in o.refused),
        tuple((r.recipient, r.code) for r in o.unsent),
        o.in_doubt,
    )


def _msg(rcpts: int) -> Envelope:
    data = b"From: s@example.com\r\nTo: x@example.org\r\nMessage-ID: <m@t>\r\n\r\nhi\r\n"
    to = tuple(f"r{k}@example.org" for k in range(rcpts))
    return Envelope(mail_from="s@example.com", rcpt_to=to, data=data)


async def _plain() -> None:  # a before_data hook: the message takes ``transact``, not a lane
    return None


async def _outcome(
    plan: dict[str, str], rcpts: int, pipelining: bool, hook: Callable[[], Awaitable[None]] | None
) -> tuple[Outcome, LaneServer]:
    async with step_server(pipelining=pipelining) as server:
        server.plan = {(1, phase): reply for phase, reply in plan.items()}
        async with pool_for(server, retry=ONE, max_connections=1) as pool:
            outcome = await asyncio.wait_for(pool.send(_msg(rcpts), before_data=hook), 10)
    return outcome, server


PLANS: list[tuple[dict[str, str], int]] = [
    ({}, 1),
    ({"rcpt": "251 2.1.5 will forward"}, 1),
    ({"rcpt": "252 2.1.5 cannot verify"}, 1),
    ({"rcpt": "450 4.2.1 later"}, 1),
    ({"rcpt": "550 5.1.1 nobody"}, 1),
    ({"mail": "550 5.7.1 no"}, 1),
    ({"mail": "451 4.3.0 later"}, 1),
    ({"data": "554 5.7.1 no"}, 1),
    ({"data": "451 4.3.0 later"}, 1),
    ({"end": "554 5.7.1 rejected"}, 1),
    ({"end": "451 4.3.0 later"}, 1),
    ({"rcpt": "421 4.3.2 closing"}, 1),
    ({"data": "421 4.3.2 closing"}, 1),
    ({"data": "drop"}, 1),
    ({"end": "drop"}, 1),
    ({}, 2),
    ({"rcpt1": "251 fwd", "rcpt2": "251 fwd"}, 2),
    ({"rcpt2": "550 5.1.1 nobody"}, 3),
    ({"rcpt1": "450 later", "rcpt3": "550 nobody"}, 3),
    ({"rcpt1": "550 nobody", "rcpt2": "550 nobody"}, 2),
    ({"rcpt2": "550 nobody", "data": "554 no"}, 2),
]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
@pytest.mark.parametrize(("plan", "rcpts"), PLANS, ids=[repr(p) for p in PLANS])
async def test_lane_outcome_equals_the_plain_path(
    plan: dict[str, str], rcpts: int, pipelining: bool
) -> None:
    lane, lane_server = await _outcome(plan, rcpts, pipelining, None)
    plain, plain_server = await _outcome(plan, rcpts, pipelining, _plain)
    assert _summary(lane) == _summary(plain)
    assert lane_server.delivered == plain_server.delivered
    assert not lane_server.ahead


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_one_recipient_accepted_with_251_is_sent(pipelining: bool) -> None:
    outcome, server = await _outcome({"rcpt": "251 2.1.5 will forward"}, 1, pipelining, None)
    assert outcome.ok
    assert outcome.accepted == ("r0@example.org",)
    assert outcome.refused == ()
    assert server.delivered[("<m@t>", "r0@example.org")] == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "lockstep"])
async def test_354_then_a_drop_is_unknown_on_a_lane(pipelining: bool) -> None:
    outcome, server = await _outcome({"end": "drop"}, 1, pipelining, None)
    assert not outcome.ok
    assert outcome.in_doubt == ("r0@example.org",)
    assert outcome.accepted == ()
    assert not server.delivered
