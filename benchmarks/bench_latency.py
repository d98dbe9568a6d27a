"""C. SMTP over a slow network: smtp-sink behind a proxy adding 10 ms each way (20 ms RTT).

The proxy (benchmarks/delay_proxy.py) runs in its own process; its added round trip is measured
first with NOOP ping-pongs (through the proxy minus direct). Then the SDK's pool and aiosmtplib,
10 connections each, relay ~2 KB messages; the reference is connections / RTT (one round trip per
message per connection).

    python benchmarks/bench_latency.py [--quick] [--json out.json] [--loop uvloop]
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from _common import Json, Variant, alternate, cli, fresh, smtp_sink, table
from bench_smtp_sink import HOST, aiosmtplib_persistent, sdk_pool

DELAY = 0.010  # each way
CONNECTIONS = 10


@contextlib.asynccontextmanager
async def delay_proxy(target_port: int, delay: float) -> AsyncIterator[int]:
    script = Path(__file__).with_name("delay_proxy.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *("--target", f"{HOST}:{target_port}", "--delay", str(delay)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        yield int(line.split()[1])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


async def noop_rtts(port: int, count: int) -> list[float]:
    """Seconds per NOOP round trip on one SMTP session."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        await reader.readline()  # banner
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            writer.write(b"NOOP\r\n")
            await reader.readline()
            times.append(time.perf_counter() - t0)
        writer.write(b"QUIT\r\n")
        return times
    finally:
        writer.close()


async def run(quick: bool) -> Json:
    total = 500 if quick else 2_000
    rounds = 2 if quick else 3
    async with smtp_sink() as sink_port, delay_proxy(sink_port, DELAY) as port:
        direct = statistics.median(await noop_rtts(sink_port, 50))
        proxied = statistics.median(await noop_rtts(port, 50))
        added = proxied - direct
        print(
            f"proxy ping-pong: direct RTT {direct * 1e3:.3f} ms, through proxy "
            f"{proxied * 1e3:.3f} ms, added {added * 1e3:.2f} ms (target {2 * DELAY * 1e3:.0f})",
            file=sys.stderr,
        )
        variants = [
            Variant(
                f"hubspot_tx SmtpPool, {CONNECTIONS} connections",
                lambda: sdk_pool(port, fresh("crlf", total), CONNECTIONS),
                "bytes",
                sdk=True,
            ),
            Variant(
                f"aiosmtplib SMTP.sendmail, {CONNECTIONS} persistent connections",
                lambda: aiosmtplib_persistent(port, fresh("crlf", total), CONNECTIONS),
                "bytes",
            ),
        ]
        await alternate(variants, rounds, "C")
    limit = CONNECTIONS / proxied
    return {
        "id": "C",
        "title": "SMTP over a 20 ms RTT link (delay proxy in front of smtp-sink)",
        "notes": [
            f"Proxy ping-pong (NOOP, median of 50): direct {direct * 1e3:.3f} ms, through the "
            f"proxy {proxied * 1e3:.2f} ms, added {added * 1e3:.2f} ms (target 20 ms).",
            f"Reference limit connections / RTT = {CONNECTIONS} / {proxied * 1e3:.1f} ms = "
            f"{limit:.0f} msgs/s (one round trip per message per connection); without "
            "PIPELINING a transaction costs 4 round trips (MAIL, RCPT, DATA, final dot).",
            f"~2 KB messages, {total} per round, {rounds} rounds alternating.",
        ],
        "latency": {"direct_rtt_s": direct, "proxied_rtt_s": proxied, "added_s": added},
        "limit_msgs_per_s": limit,
        "tables": [table(f"{total} messages per round, 20 ms RTT", variants)],
    }


if __name__ == "__main__":
    cli(__doc__, run)
