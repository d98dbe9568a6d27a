"""A. Plaintext SMTP relay of ~2 KB messages to Postfix ``smtp-sink`` on loopback.

The SDK's pool (1 and 10 connections; bytes with CRLF, ``EmailMessage.as_bytes()`` with LF, and
EmailMessage) beside aiosmtplib (10 persistent connections with EmailMessage and with bytes),
stdlib smtplib (one persistent connection, in a thread), Postfix ``smtp-source`` (C, 10
sessions), and the event loop's floor (``_floor_client.py``: a bare pipelined asyncio Protocol
with no checks, 1 and 10 sessions).

    python benchmarks/bench_smtp_sink.py [--quick] [--json out.json] [--loop uvloop]
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from email.message import EmailMessage

import _floor_client
import aiosmtplib
from _common import (
    Json,
    Meter,
    Sample,
    Variant,
    alternate,
    cli,
    fresh,
    sbin,
    smtp_sink,
    table,
)

from hubspot_tx import SmtpPool

HOST = "127.0.0.1"
SENDER = "bench@example.com"


def rcpt(i: int) -> list[str]:
    return [f"rcpt{i % 1000}@example.org"]


async def sdk_pool(
    port: int, data: Sequence[bytes] | Sequence[EmailMessage], connections: int
) -> Sample:
    meter = Meter()
    sent = 0
    async with SmtpPool(HOST, port, tls="none", credentials=None, max_connections=connections) as p:
        # The default concurrency (3x the sessions): a session takes its next message while
        # the reply to the previous one's final "." is on its way. Still `connections` sessions.
        relay = p.send_many(iter(data))
        async with relay:
            async for outcome in relay:
                sent += outcome.status == "sent"
    sample = meter.stop(sent)
    if sent != len(data):
        raise RuntimeError(f"SDK pool: {sent} of {len(data)} sent")
    return sample


async def workers(n: int, total: int, work: Callable[[Iterator[int]], Awaitable[int]]) -> int:
    """``n`` tasks sharing one counter; returns the messages they report as accepted."""
    counter = iter(range(total))
    return sum(await asyncio.gather(*(work(counter) for _ in range(n))))


async def aiosmtplib_persistent(
    port: int, data: Sequence[bytes] | Sequence[EmailMessage], connections: int = 10
) -> Sample:
    async def work(counter: Iterator[int]) -> int:
        ok = 0
        async with aiosmtplib.SMTP(
            hostname=HOST, port=port, use_tls=False, start_tls=False
        ) as smtp:
            for i in counter:
                msg = data[i]
                if isinstance(msg, EmailMessage):
                    errors, _ = await smtp.send_message(msg)
                else:
                    errors, _ = await smtp.sendmail(SENDER, rcpt(i), msg)
                ok += not errors
        return ok

    meter = Meter()
    ok = await workers(connections, len(data), work)
    return checked(meter.stop(ok), len(data), "aiosmtplib persistent")


def smtplib_sync(port: int, data: Sequence[bytes]) -> int:
    ok = 0
    with smtplib.SMTP(HOST, port) as smtp:
        for i, msg in enumerate(data):
            ok += not smtp.sendmail(SENDER, rcpt(i), msg)
    return ok


async def smtplib_thread(port: int, data: Sequence[bytes]) -> Sample:
    meter = Meter()  # RUSAGE_SELF covers the thread; the event loop only waits meanwhile
    ok = await asyncio.to_thread(smtplib_sync, port, data)
    return checked(meter.stop(ok), len(data), "smtplib")


async def smtp_source(port: int, count: int) -> Sample:
    meter = Meter()  # smtp-source's CPU arrives in RUSAGE_CHILDREN once it is reaped
    proc = await asyncio.create_subprocess_exec(
        sbin("smtp-source"),
        *("-s", "10", "-d", "-m", str(count), "-l", "2048", f"{HOST}:{port}"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 600)
    if proc.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {err.decode(errors='replace')[-500:]}")
    return meter.stop(count)


def checked(sample: Sample, expected: int, what: str) -> Sample:
    if sample.ops != expected:
        raise RuntimeError(f"{what}: {sample.ops} of {expected} accepted")
    return sample


SDK_1 = "hubspot_tx SmtpPool, 1 connection"
SDK_10 = "hubspot_tx SmtpPool, 10 connections"
SDK_10_LF = "hubspot_tx SmtpPool, 10 connections, LF bytes (EmailMessage.as_bytes())"
SDK_10_MESSAGE = "hubspot_tx SmtpPool, 10 connections, EmailMessage input"
SENDMAIL = "aiosmtplib SMTP.sendmail, 10 persistent connections"
SEND_MESSAGE = "aiosmtplib SMTP.send_message, 10 persistent connections"
SMTPLIB = "smtplib.SMTP.sendmail, 1 persistent connection (thread)"
SOURCE = "Postfix smtp-source -s 10 -d (C)"
FLOOR_10 = "asyncio floor: bare pipelined Protocol, no checks, 10 connections"
FLOOR_1 = "asyncio floor: bare pipelined Protocol, no checks, 1 connection"


async def floor(port: int, data: Sequence[bytes], connections: int) -> Sample:
    meter = Meter()
    ok = await _floor_client.relay(HOST, port, data, connections)
    return checked(meter.stop(ok), len(data), "floor client")


async def run(quick: bool) -> Json:
    total = 2_000 if quick else 10_000
    rounds = 3 if quick else 5
    # Every round of every row gets new message objects, built before its clock starts
    # (``fresh``): the arguments below are evaluated when the round runs.
    async with smtp_sink() as port:
        await smtp_source(port, 100)  # warm the sink
        variants = [
            Variant(SDK_1, lambda: sdk_pool(port, fresh("crlf", total), 1), "bytes (CRLF)"),
            Variant(
                SDK_10, lambda: sdk_pool(port, fresh("crlf", total), 10), "bytes (CRLF)", sdk=True
            ),
            Variant(SDK_10_LF, lambda: sdk_pool(port, fresh("lf", total), 10), "bytes (LF)"),
            Variant(
                SDK_10_MESSAGE,
                lambda: sdk_pool(port, fresh("EmailMessage", total), 10),
                "EmailMessage",
            ),
            Variant(
                SEND_MESSAGE,
                lambda: aiosmtplib_persistent(port, fresh("EmailMessage", total)),
                "EmailMessage",
            ),
            Variant(
                SENDMAIL,
                lambda: aiosmtplib_persistent(port, fresh("crlf", total)),
                "bytes (CRLF)",
            ),
            Variant(SMTPLIB, lambda: smtplib_thread(port, fresh("crlf", total)), "bytes (CRLF)"),
            Variant(FLOOR_1, lambda: floor(port, fresh("crlf", total), 1), "bytes (CRLF)"),
            Variant(FLOOR_10, lambda: floor(port, fresh("crlf", total), 10), "bytes (CRLF)"),
            Variant(
                SOURCE,
                lambda: smtp_source(port, total),
                "generated",
                note="CPU via RUSAGE_CHILDREN",
            ),
        ]
        await alternate(variants, rounds, "A")
    return {
        "id": "A",
        "title": "SMTP relay, plaintext, to Postfix smtp-sink",
        "notes": [
            f"~2 KB messages, {total} per round, "
            f"{rounds} rounds alternating; smtp-sink advertises PIPELINING.",
            "Every round of every row relays new message objects (unique Message-IDs), built "
            "before its clock starts; LF bytes are `EmailMessage.as_bytes()` (default policy).",
            "Counts verified: every SDK outcome `sent`, every peer reply accepted.",
        ],
        "tables": [table(f"{total} messages per round", variants)],
    }


if __name__ == "__main__":
    cli(__doc__, run)
