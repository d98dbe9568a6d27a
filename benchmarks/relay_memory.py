"""Does the client's memory stay flat during a long relay?

Relays N small messages (default 100 000) from a generator through the pool over STARTTLS to the
sandbox running as a separate process, and prints the client's peak RSS when 1 000, 10 000 and
100 000 messages are done, with the ratios to the 1 000 and 10 000 marks (flat = ~1.0).

    .venv/bin/python benchmarks/relay_memory.py [--messages 100000] [--max-seconds 900]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from _sandbox_proc import sandbox_process

from hubspot_tx import HubSpot, RelaySummary, SmtpCredentials, SmtpPool


def rss_mb() -> tuple[float, float]:
    """(peak RSS, current RSS) of this process in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    return peak, current


def message(i: int) -> bytes:
    return (
        f"From: bench@example.com\r\nTo: rcpt{i % 1000}@example.org\r\n"
        f"Subject: memory {i}\r\nMessage-ID: <mem{i}@bench>\r\n\r\n".encode()
        + b"small body\r\n" * 8
    )


async def main(total: int, max_seconds: float, connections: int) -> None:
    marks = sorted({m for m in (1_000, 10_000, 100_000, total) if m <= total})
    seen: dict[int, tuple[float, float]] = {}

    def progress(summary: RelaySummary) -> None:
        if summary.done in marks:
            seen[summary.done] = rss_mb()

    async with sandbox_process() as info:
        ctx = info["ssl_context"]
        async with HubSpot(info["access_token"], base_url=info["https_url"], ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="memory-benchmark")
        started = time.monotonic()
        async with SmtpPool(
            info["smtp_host"],
            info["smtp_port"],
            credentials=SmtpCredentials.from_token(token),
            ssl_context=ctx,
            max_connections=connections,
        ) as pool:
            relay = pool.send_many((message(i) for i in range(total)), progress=progress)
            async with relay, asyncio.timeout(max_seconds):
                failed = len([1 async for outcome in relay if not outcome.ok])
        elapsed = time.monotonic() - started

    print(
        f"relayed {relay.summary.done} messages ({failed} failed) in {elapsed:.1f} s "
        f"over {connections} STARTTLS connections ({relay.summary.done / elapsed:.0f} msg/s)"
    )
    print(f"{'done':>8} {'peak RSS MB':>12} {'RSS MB':>8} {'peak / 1k':>10} {'peak / 10k':>11}")
    base1 = seen[marks[0]][0]
    base10 = seen.get(10_000, seen[marks[0]])[0]
    for mark in marks:
        peak, current = seen[mark]
        print(
            f"{mark:>8} {peak:>12.1f} {current:>8.1f} {peak / base1:>10.3f} {peak / base10:>11.3f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--connections", type=int, default=10)
    a = p.parse_args()
    asyncio.run(main(a.messages, a.max_seconds, a.connections))
