"""Profile the SDK and its peers on this machine; write text profiles to profiles/.

    python benchmarks/profile_sdk.py [--only smtp,peers,tls,rest,import]   # needs pyinstrument

- smtp_pool.txt: SmtpPool, 10 connections, 10 000 messages (bytes, CRLF) to smtp-sink (row A)
- smtp_pool_lf.txt: the same with ``EmailMessage.as_bytes()`` input (LF line endings)
- smtp_pool_1.txt: SmtpPool, 1 connection, 5 000 messages (row A's one-session row)
- aiosmtplib_sendmail.txt: aiosmtplib SMTP.sendmail(bytes), 10 persistent connections
- smtplib.txt: smtplib.SMTP.sendmail, 1 connection, 5 000 messages (blocking, main thread)
- smtp_starttls.txt: SmtpPool, 10 STARTTLS sessions, 2 000 messages to the sandbox (row B)
- rest_get.txt: HubSpot.smtp_tokens.get at concurrency 64, 5 000 calls to nginx (row D)
- import.txt / help.txt: the slowest modules of ``import hubspot_tx`` and of
  ``hubspot-tx --help`` (``python -X importtime``, row F)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from _common import Sample, fresh, smtp_sink
from _sandbox_proc import sandbox_process
from bench_rest import TOKEN, TOKEN_ID, async_calls, nginx
from bench_smtp_sink import aiosmtplib_persistent, sdk_pool, smtplib_sync
from bench_starttls import sdk_pool as sdk_tls_pool
from pyinstrument import Profiler

from hubspot_tx import HubSpot, SmtpCredentials

OUT = Path(__file__).with_name("profiles")


def save(name: str, profiler: Profiler) -> None:
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (OUT / name).write_text(text)
    print(f"wrote {OUT / name}")


async def profile_pool(name: str, kind: str, total: int, connections: int) -> None:
    async with smtp_sink() as port:
        await sdk_pool(port, fresh(kind, 1000), connections)  # warm
        data = fresh(kind, total)  # new messages, built before the profile starts
        with Profiler(interval=0.0005, async_mode="disabled") as prof:
            sample = await sdk_pool(port, data, connections)
    report(name, sample, prof)


async def profile_aiosmtplib() -> None:
    async with smtp_sink() as port:
        await aiosmtplib_persistent(port, fresh("crlf", 1000))  # warm
        data = fresh("crlf", 10_000)
        with Profiler(interval=0.0005, async_mode="disabled") as prof:
            sample = await aiosmtplib_persistent(port, data)
    report("aiosmtplib_sendmail.txt", sample, prof)


async def profile_smtplib() -> None:
    async with smtp_sink() as port:
        data = fresh("crlf", 5_000)
        # Blocking, in this thread (the profiler samples this thread only): the sink runs in
        # its own process, so nothing here needs the event loop meanwhile.
        with Profiler(interval=0.0005) as prof:
            sent = smtplib_sync(port, data)
    print(f"smtplib: {sent} sent; {prof.last_session.duration if prof.last_session else 0:.2f} s")
    save("smtplib.txt", prof)


def report(name: str, sample: Sample, prof: Profiler) -> None:
    print(
        f"{name}: {sample.rate:,.0f} msgs/s, {sample.cpu_ms_per_op:.3f} ms CPU/msg "
        "under the profiler"
    )
    save(name, prof)


async def profile_starttls() -> None:
    async with sandbox_process() as info:
        ctx = info["ssl_context"]
        async with HubSpot(info["access_token"], base_url=info["https_url"], ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="profile")
        creds = SmtpCredentials.from_token(token)
        host, port = info["smtp_host"], info["smtp_port"]
        await sdk_tls_pool(host, port, creds, ctx, fresh("crlf", 200))  # warm
        data = fresh("crlf", 2_000)
        with Profiler(interval=0.0005, async_mode="disabled") as prof:
            sample = await sdk_tls_pool(host, port, creds, ctx, data)
    print(f"starttls: {sample.rate:,.0f} msgs/s under the profiler")
    save("smtp_starttls.txt", prof)


async def profile_rest() -> None:
    async with nginx() as url, HubSpot(TOKEN, base_url=url, rate_limit=None, retry=None) as hs:

        async def call() -> None:
            await hs.smtp_tokens.get(TOKEN_ID)

        await async_calls(call, 200, 64)
        with Profiler(interval=0.0005, async_mode="disabled") as prof:
            sample = await async_calls(call, 5_000, 64)
    print(f"rest: {sample.rate:,.0f} req/s under the profiler")
    save("rest_get.txt", prof)


def profile_import(name: str, code: str) -> None:
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(reverse=True)
    lines = [f"cumulative us | module (python -X importtime -c {code!r})"]
    lines += [f"{us:>12} | {mod}" for us, mod in rows[:30]]
    (OUT / name).write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / name}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="smtp,peers,tls,rest,import")
    only = set(ap.parse_args().only.split(","))
    OUT.mkdir(exist_ok=True)
    if "smtp" in only:
        asyncio.run(profile_pool("smtp_pool.txt", "crlf", 10_000, 10))
        asyncio.run(profile_pool("smtp_pool_lf.txt", "lf", 10_000, 10))
        asyncio.run(profile_pool("smtp_pool_1.txt", "crlf", 5_000, 1))
    if "peers" in only:
        asyncio.run(profile_aiosmtplib())
        asyncio.run(profile_smtplib())
    if "tls" in only:
        asyncio.run(profile_starttls())
    if "rest" in only:
        asyncio.run(profile_rest())
    if "import" in only:
        profile_import("import.txt", "import hubspot_tx")
        help_code = (
            "import sys; from hubspot_tx.cli import main; sys.argv = ['hubspot-tx', '--help']; "
            "main()"
        )
        profile_import("help.txt", help_code)
