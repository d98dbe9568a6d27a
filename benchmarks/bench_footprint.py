"""F. Footprint: import time and RSS in a fresh interpreter; RSS during a long relay.

Each import is timed in a fresh subprocess (``time.perf_counter`` around the import statement,
RSS from /proc/self/status VmRSS before and after), alternating the packages over rounds. The
relay figure comes from benchmarks/relay_memory.py run as a subprocess (100 000 messages over
STARTTLS to the sandbox; 20 000 with --quick).

    python benchmarks/bench_footprint.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import statistics
import sys
import time
from pathlib import Path

from _common import Json, cli

PROBE = """
import json, time
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
before = rss()
t0 = time.perf_counter()
{stmt}
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "rss_before_mb": before, "rss_after_mb": rss()}}))
"""
IMPORTS = {
    "hubspot_tx": "import hubspot_tx",
    "hubspot_tx + HubSpot, SmtpPool, models": (
        "import hubspot_tx\nfrom hubspot_tx import HubSpot, SmtpPool\n"
        "import hubspot_tx.models.smtp_tokens"
    ),
    "hubspot (hubspot-api-client)": "import hubspot",
    "hubspot + marketing.transactional API (what a call loads)": (
        "import hubspot\nfrom hubspot.marketing.transactional import PublicSMTPTokensApi"
    ),
    "hubspot_sdk (AsyncHubSpot)": "from hubspot_sdk import AsyncHubSpot",
    "aiohttp (reference)": "import aiohttp",
    "its dependencies (aiohttp, aiosmtplib, msgspec, anyio)": (
        "import aiohttp, aiosmtplib, msgspec, anyio"
    ),
}
# Whole processes, start to exit (the interpreter's own start-up included).
PROCESSES = {
    'python -c "import hubspot_tx"': [sys.executable, "-c", "import hubspot_tx"],
    "hubspot-tx --help": [sys.executable, "-m", "hubspot_tx.cli", "--help"],
    'python -c "pass" (the interpreter alone)': [sys.executable, "-c", "pass"],
}
PACKAGE = {
    "hubspot (hubspot-api-client)": "hubspot",
    "hubspot + marketing.transactional API (what a call loads)": "hubspot",
    "hubspot_sdk (AsyncHubSpot)": "hubspot_sdk",
    "its dependencies (aiohttp, aiosmtplib, msgspec, anyio)": "aiohttp",
}


async def process_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    if await asyncio.wait_for(proc.wait(), 60) != 0:
        raise RuntimeError(f"{argv} failed")
    return 1000 * (time.perf_counter() - started)


async def probe(stmt: str) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE.format(stmt=stmt),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"{stmt!r} failed: {err.decode()[-300:]}")
    result: dict[str, float] = json.loads(out)
    return result


async def relay_memory(messages: int) -> Json:
    script = Path(__file__).with_name("relay_memory.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *("--messages", str(messages), "--max-seconds", "900"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 1000)
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"relay_memory.py failed: {err.decode()[-500:]}")
    head = re.search(r"relayed (\d+) messages \((\d+) failed\) in ([\d.]+) s", text)
    if head is None:
        raise RuntimeError(f"unexpected relay_memory.py output: {text[:500]}")
    marks = [
        [int(m[0]), float(m[1]), float(m[2]), float(m[3]), float(m[4])]
        for m in re.findall(
            r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", text, re.M
        )
    ]
    return {
        "relayed": int(head[1]),
        "failed": int(head[2]),
        "seconds": float(head[3]),
        "marks": marks,
        "output": text,
    }


async def run(quick: bool) -> Json:
    rounds = 3 if quick else 7
    names = [
        n for n in IMPORTS if importlib.util.find_spec(PACKAGE.get(n, n.split()[0])) is not None
    ]
    samples: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            samples[name].append(await probe(IMPORTS[name]))
        print(f"  [F imports round {r + 1}/{rounds}]", file=sys.stderr, flush=True)
    import_rows = []
    for name in names:
        ms = [1000 * s["seconds"] for s in samples[name]]
        after = statistics.median(s["rss_after_mb"] for s in samples[name])
        delta = statistics.median(s["rss_after_mb"] - s["rss_before_mb"] for s in samples[name])
        import_rows.append([name, statistics.median(ms), min(ms), max(ms), delta, after])
    startup: dict[str, list[float]] = {n: [] for n in PROCESSES}
    for r in range(rounds * 3):
        for name in PROCESSES if r % 2 == 0 else reversed(PROCESSES):
            startup[name].append(await process_ms(PROCESSES[name]))
    startup_rows = [[name, statistics.median(ms), min(ms), max(ms)] for name, ms in startup.items()]
    messages = 20_000 if quick else 100_000
    print(f"  [F relay_memory.py --messages {messages}]", file=sys.stderr, flush=True)
    relay = await relay_memory(messages)
    return {
        "id": "F",
        "title": "Footprint",
        "notes": [
            f"Imports: fresh interpreter each, {rounds} rounds alternating; RSS = VmRSS.",
            f"Relay: benchmarks/relay_memory.py --messages {messages} (10 STARTTLS connections "
            f"to the sandbox in its own process): {relay['relayed']} relayed, "
            f"{relay['failed']} failed, {relay['seconds']:.1f} s "
            f"({relay['relayed'] / relay['seconds']:.0f} msgs/s).",
        ],
        "relay": relay,
        "tables": [
            {
                "kind": "plain",
                "title": "Import time and RSS (fresh interpreter)",
                "columns": [
                    ["import", "{}"],
                    ["median ms", "{:.1f}"],
                    ["min ms", "{:.1f}"],
                    ["max ms", "{:.1f}"],
                    ["RSS added MB", "{:.1f}"],
                    ["RSS after MB", "{:.1f}"],
                ],
                "rows": import_rows,
            },
            {
                "kind": "plain",
                "title": "Start-up, whole process",
                "columns": [
                    ["command", "{}"],
                    ["median ms", "{:.1f}"],
                    ["min ms", "{:.1f}"],
                    ["max ms", "{:.1f}"],
                ],
                "rows": startup_rows,
            },
            {
                "kind": "plain",
                "title": f"Client RSS during a {messages}-message STARTTLS relay",
                "columns": [
                    ["messages done", "{:,}"],
                    ["peak RSS MB", "{:.1f}"],
                    ["RSS MB", "{:.1f}"],
                    ["peak / 1k", "{:.3f}"],
                    ["peak / 10k", "{:.3f}"],
                ],
                "rows": relay["marks"],
            },
        ],
    }


if __name__ == "__main__":
    cli(__doc__, run)
