"""Profile the SDK side of the rows where a peer is faster; write text profiles to profiles/.

    python benchmarks/profile_sdk.py        # needs pyinstrument (benchmarks/install.sh)

- smtp_pool.txt: SmtpPool, 10 connections, 10 000 messages to smtp-sink (row A)
- smtp_starttls.txt: SmtpPool, 10 STARTTLS sessions, 2 000 messages to the sandbox (row B)
- rest_get.txt: HubSpot.smtp_tokens.get at concurrency 64, 5 000 calls to nginx (row D)
- import.txt / help.txt: the slowest modules of ``import hubspot_tx`` and of
  ``hubspot-tx --help`` (``python -X importtime``, row F)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from _common import mime_bytes, smtp_sink
from _sandbox_proc import sandbox_process
from bench_rest import TOKEN, TOKEN_ID, async_calls, nginx
from bench_smtp_sink import sdk_pool
from bench_starttls import sdk_pool as sdk_tls_pool
from pyinstrument import Profiler

from hubspot_tx import HubSpot, SmtpCredentials

OUT = Path(__file__).with_name("profiles")


def save(name: str, profiler: Profiler) -> None:
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (OUT / name).write_text(text)
    print(f"wrote {OUT / name}")


async def profile_pool() -> None:
    data = [mime_bytes(i) for i in range(10_000)]
    async with smtp_sink() as port:
        await sdk_pool(port, data[:1000], 10)  # warm
        with Profiler(interval=0.0005, async_mode="disabled") as prof:
            sample = await sdk_pool(port, data, 10)
    print(f"pool: {sample.rate:,.0f} msgs/s under the profiler")
    save("smtp_pool.txt", prof)


async def profile_starttls() -> None:
    data = [mime_bytes(i) for i in range(2_000)]
    async with sandbox_process() as info:
        ctx = info["ssl_context"]
        async with HubSpot(info["access_token"], base_url=info["https_url"], ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="profile")
        creds = SmtpCredentials.from_token(token)
        host, port = info["smtp_host"], info["smtp_port"]
        await sdk_tls_pool(host, port, creds, ctx, data[:200])  # warm
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
    OUT.mkdir(exist_ok=True)
    asyncio.run(profile_pool())
    asyncio.run(profile_starttls())
    asyncio.run(profile_rest())
    profile_import("import.txt", "import hubspot_tx")
    help_code = (
        "import sys; from hubspot_tx.cli import main; sys.argv = ['hubspot-tx', '--help']; main()"
    )
    profile_import("help.txt", help_code)
