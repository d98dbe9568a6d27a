"""A. Plaintext SMTP relay of ~2 KB messages to Postfix ``smtp-sink`` on loopback.

The SDK's pool (1 and 10 connections, pre-flattened bytes) beside aiosmtplib (new connection per
message; 10 persistent connections with EmailMessage and with bytes), stdlib smtplib (one
persistent connection, in a thread) and Postfix ``smtp-source`` (C, 10 sessions).

    python benchmarks/bench_smtp_sink.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from email.message import EmailMessage

import aiosmtplib
from _common import (
    Json,
    Meter,
    Sample,
    Variant,
    alternate,
    cli,
    email_message,
    mime_bytes,
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
        # The default concurrency (2x the sessions): a session takes its next message while
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


async def aiosmtplib_new_connection(port: int, data: Sequence[bytes]) -> Sample:
    async def work(counter: Iterator[int]) -> int:
        ok = 0
        for i in counter:
            errors, _ = await aiosmtplib.send(
                data[i],
                sender=SENDER,
                recipients=rcpt(i),
                hostname=HOST,
                port=port,
                use_tls=False,
                start_tls=False,
            )
            ok += not errors
        return ok

    meter = Meter()
    ok = await workers(10, len(data), work)
    return checked(meter.stop(ok), len(data), "aiosmtplib.send")


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


async def run(quick: bool) -> Json:
    total = 2_000 if quick else 10_000
    rounds = 3 if quick else 5
    data = [mime_bytes(i) for i in range(total)]
    messages = [email_message(i) for i in range(total)]
    async with smtp_sink() as port:
        await smtp_source(port, 100)  # warm the sink
        variants = [
            Variant("hubspot_tx SmtpPool, 1 connection", lambda: sdk_pool(port, data, 1), "bytes"),
            Variant(
                "hubspot_tx SmtpPool, 10 connections",
                lambda: sdk_pool(port, data, 10),
                "bytes",
                sdk=True,
            ),
            Variant(
                "hubspot_tx SmtpPool, 10 connections, EmailMessage input",
                lambda: sdk_pool(port, messages, 10),
                "EmailMessage",
            ),
            Variant(
                "aiosmtplib.send, new connection per message, 10 at a time",
                lambda: aiosmtplib_new_connection(port, data),
                "bytes",
            ),
            Variant(
                "aiosmtplib SMTP.send_message, 10 persistent connections",
                lambda: aiosmtplib_persistent(port, messages),
                "EmailMessage",
            ),
            Variant(
                "aiosmtplib SMTP.sendmail, 10 persistent connections",
                lambda: aiosmtplib_persistent(port, data),
                "bytes",
            ),
            Variant(
                "smtplib.SMTP.sendmail, 1 persistent connection (thread)",
                lambda: smtplib_thread(port, data),
                "bytes",
            ),
            Variant(
                "Postfix smtp-source -s 10 -d (C)",
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
            "Counts verified: every SDK outcome `sent`, every peer reply accepted.",
        ],
        "tables": [table(f"{total} messages per round", variants)],
    }


if __name__ == "__main__":
    cli(__doc__, run)
