"""B. SMTP relay with STARTTLS + AUTH to the sandbox's SMTP server (in its own process).

The SDK's pool beside aiosmtplib persistent connections (login with the token id / password), both
fed pre-flattened bytes. The Python server bounds wall time; the figure that matters is the
client's CPU per message.

    python benchmarks/bench_starttls.py [--quick] [--json out.json] [--loop uvloop]
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Sequence
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
    table,
)
from _sandbox_proc import sandbox_process

from hubspot_tx import HubSpot, SmtpCredentials, SmtpPool

SENDER = "bench@example.com"
CONNECTIONS = 10


async def sdk_pool(
    host: str, port: int, creds: SmtpCredentials, ctx: ssl.SSLContext, data: Sequence[bytes]
) -> Sample:
    meter = Meter()
    sent = 0
    async with SmtpPool(
        host, port, credentials=creds, ssl_context=ctx, max_connections=CONNECTIONS
    ) as pool:
        relay = pool.send_many(iter(data))  # default concurrency; still CONNECTIONS sessions
        async with relay:
            async for outcome in relay:
                sent += outcome.status == "sent"
    sample = meter.stop(sent)
    if sent != len(data):
        raise RuntimeError(f"SDK pool: {sent} of {len(data)} sent")
    return sample


async def aiosmtplib_pool(
    host: str,
    port: int,
    creds: SmtpCredentials,
    ctx: ssl.SSLContext,
    data: Sequence[bytes] | Sequence[EmailMessage],
) -> Sample:
    async def work(counter: Iterator[int]) -> int:
        ok = 0
        async with aiosmtplib.SMTP(
            hostname=host, port=port, start_tls=True, tls_context=ctx
        ) as smtp:
            await smtp.login(creds.username, creds.password.get_secret_value())
            for i in counter:
                msg = data[i]
                if isinstance(msg, EmailMessage):
                    errors, _ = await smtp.send_message(msg)
                else:
                    errors, _ = await smtp.sendmail(SENDER, [f"rcpt{i % 1000}@example.org"], msg)
                ok += not errors
        return ok

    meter = Meter()
    counter = iter(range(len(data)))
    ok = sum(await asyncio.gather(*(work(counter) for _ in range(CONNECTIONS))))
    sample = meter.stop(ok)
    if ok != len(data):
        raise RuntimeError(f"aiosmtplib: {ok} of {len(data)} accepted")
    return sample


FLOOR = f"asyncio floor: bare lock-step Protocol on aiosmtplib's session, {CONNECTIONS} connections"


async def floor(
    host: str, port: int, creds: SmtpCredentials, ctx: ssl.SSLContext, data: Sequence[bytes]
) -> Sample:
    meter = Meter()
    login = (creds.username, creds.password.get_secret_value())
    ok = await _floor_client.relay_lockstep_tls(host, port, ctx, login, data, CONNECTIONS)
    sample = meter.stop(ok)
    if ok != len(data):
        raise RuntimeError(f"floor client: {ok} of {len(data)} accepted")
    return sample


async def run(quick: bool) -> Json:
    total = 500 if quick else 2_000
    rounds = 3 if quick else 5
    async with sandbox_process() as info:
        ctx: ssl.SSLContext = info["ssl_context"]
        async with HubSpot(info["access_token"], base_url=info["https_url"], ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="starttls-benchmark")
        creds = SmtpCredentials.from_token(token)
        host, port = info["smtp_host"], info["smtp_port"]
        variants = [
            Variant(
                f"hubspot_tx SmtpPool, {CONNECTIONS} connections",
                lambda: sdk_pool(host, port, creds, ctx, fresh("crlf", total)),
                "bytes",
                sdk=True,
            ),
            Variant(
                f"aiosmtplib SMTP.sendmail, {CONNECTIONS} persistent connections",
                lambda: aiosmtplib_pool(host, port, creds, ctx, fresh("crlf", total)),
                "bytes",
            ),
            Variant(
                f"aiosmtplib SMTP.send_message, {CONNECTIONS} persistent connections",
                lambda: aiosmtplib_pool(host, port, creds, ctx, fresh("EmailMessage", total)),
                "EmailMessage",
            ),
            Variant(FLOOR, lambda: floor(host, port, creds, ctx, fresh("crlf", total)), "bytes"),
        ]
        await alternate(variants, rounds, "B")
    return {
        "id": "B",
        "title": "SMTP relay, STARTTLS + AUTH, to the sandbox (separate process)",
        "notes": [
            f"~2 KB messages, {total} per round, {rounds} rounds alternating; each round opens "
            f"{CONNECTIONS} sessions (TLS handshake + AUTH PLAIN/LOGIN) and relays over them.",
            "The sandbox (Python, aiosmtpd) is the wall-time bottleneck: compare CPU per message.",
            "The floor row: what any asyncio client pays in lock-step on the same TLS sessions "
            "(no checks, no outcomes); it bounds from below what the SDK can reach.",
        ],
        "tables": [table(f"{total} messages per round", variants)],
    }


if __name__ == "__main__":
    cli(__doc__, run)
