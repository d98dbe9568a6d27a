"""G. The sandbox's inbox at 10^4 and 10^5 stored messages (seeded straight into its store).

1. Per-call time of the inspection and inbox calls at both sizes (same run): they should cost
   what their page costs, not what the store holds.
2. The relay rate into the sandbox (10^5 stored) with an inbox search open (a client polling a
   search as the web inbox does: a 500-row search, then a long-poll for newer messages, at
   most ~3 times a second) against the rate with nothing open, alternating rounds.

    python benchmarks/bench_inbox.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from _common import Json, Meter, Sample, Variant, alternate, cli, mime_bytes, table

from hubspot_tx import SmtpCredentials, SmtpPool

HERE = Path(__file__).parent
SIZES = (10_000, 100_000)
CONNECTIONS = 10
SEARCH = "benchmark message"  # matches every seeded message: a full 500-row page
# (name, path and query); {mid} is the middle message's id
CALLS: list[tuple[str, str]] = [
    ("inbox: newest 500", "/messages?order=desc&limit=500"),
    ("inbox: search, 500 rows", f"/messages?order=desc&limit=500&q={SEARCH}"),
    ("inbox: search, one match", "/messages?order=desc&limit=500&q=message%20{mid}%20bench"),
    ("inbox: search, no match", "/messages?order=desc&limit=500&q=nothing-like-it"),
    ("inbox: long-poll, nothing new", "/messages?order=desc&limit=500&after={last}&q=bench"),
    ("recipient filter, 100 rows", "/messages?limit=100&recipient=rcpt7@example.org"),
    ("page 50 of 100 (after=)", "/messages?limit=100&after={mid}"),
    ("one message", "/messages/{mid}"),
    ("events, 100", "/events?limit=100"),
    ("events of one type, 100", "/events?type=DELIVERED&limit=100"),
    ("stats", "/stats"),
    ("tokens", "/tokens"),
    ("campaigns", "/campaigns"),
]


@contextlib.asynccontextmanager
async def seeded_sandbox(count: int) -> AsyncIterator[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_inbox_sandbox.py"),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=HERE,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 600))
        info["count"] = count
        yield info
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def per_call_ms(
    http: aiohttp.ClientSession, infos: Sequence[dict[str, Any]], reps: int
) -> list[list[float]]:
    """Median milliseconds per call, for each of CALLS at each size (client round trip on
    loopback). The sizes alternate call by call, so that a load that comes and goes on a
    shared machine weighs on both alike; one warm-up call each first."""
    times: list[list[list[float]]] = [[[] for _ in infos] for _ in CALLS]
    for rep in range(reps + 1):
        for c, (_, path) in enumerate(CALLS):
            for s, info in enumerate(infos):
                count = info["count"]
                url = info["inspection_url"] + path.format(mid=count // 2, last=count)
                t0 = time.perf_counter()
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url}: {r.status}")
                if rep:
                    times[c][s].append((time.perf_counter() - t0) * 1000)
    return [[statistics.median(per_size) for per_size in per_call] for per_call in times]


async def relay(info: dict[str, Any], data: Sequence[bytes]) -> Sample:
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    creds = SmtpCredentials(info["token_id"], info["password"])
    meter = Meter()
    sent = 0
    pool = SmtpPool(
        info["smtp_host"],
        info["smtp_port"],
        credentials=creds,
        ssl_context=ctx,
        max_connections=CONNECTIONS,
    )
    async with pool, pool.send_many(iter(data)) as outcomes:
        async for outcome in outcomes:
            sent += outcome.status == "sent"
    sample = meter.stop(sent)
    if sent != len(data):
        raise RuntimeError(f"{sent} of {len(data)} sent")
    return sample


async def inbox_open(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> int:
    """What the web inbox (inbox.js) does with a search typed in: a 500-row sync, then
    long-polls for newer matches (at most ~3 a second), a new sync at most every 5 s."""
    calls = 0
    newest, generation, synced = 0, 0, 0.0
    search = {"order": "desc", "limit": "500", "q": SEARCH}
    while not stop.is_set():
        started = time.monotonic()
        if started - synced > 5.0:
            async with http.get(url + "/messages", params=search) as r:
                page = await r.json()
            newest = max([newest, *(m["id"] for m in page["results"])])
            generation, synced = page["generation"], started
            calls += 1
        poll = {**search, "after": str(newest), "wait": "1", "since": str(generation)}
        async with http.get(url + "/messages", params=poll) as r:
            page = await r.json()
        newest = max([newest, *(m["id"] for m in page["results"])])
        generation = page["generation"]
        calls += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, 0.3 - (time.monotonic() - started)))
    return calls


def with_inbox(
    http: aiohttp.ClientSession, info: dict[str, Any], data: Sequence[bytes], polls: list[int]
) -> Callable[[], Any]:
    async def run() -> Sample:
        stop = asyncio.Event()
        poller = asyncio.create_task(inbox_open(http, info["inspection_url"], stop))
        try:
            return await relay(info, data)
        finally:
            stop.set()
            polls.append(await poller)

    return run


async def run(quick: bool) -> Json:
    reps = 5 if quick else 15
    total = 1_000 if quick else 3_000
    rounds = 2 if quick else 4
    rows: list[list[Any]] = [[name] for name, _ in CALLS]
    polls: list[int] = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        seeded_sandbox(SIZES[0]) as small,
        seeded_sandbox(SIZES[1]) as large,
    ):
        seconds_to_seed = [small["seconds_to_seed"], large["seconds_to_seed"]]
        for row, ms in zip(rows, await per_call_ms(http, [small, large], reps), strict=True):
            row.extend(ms)
        data = [mime_bytes(SIZES[1] + i) for i in range(total)]
        relay_variants = [
            Variant(
                "relay, inbox search open",
                with_inbox(http, large, data, polls),
                "bytes",
                sdk=True,
            ),
            Variant("relay, nothing open", lambda: relay(large, data), "bytes"),
        ]
        await alternate(relay_variants, rounds, "G")
    for row in rows:
        row.append(row[2] / row[1])
    return {
        "id": "G",
        "title": "The sandbox's inbox at 10^4 and 10^5 stored messages",
        "notes": [
            f"Messages seeded straight into the sandbox's store (its own process): "
            f"{SIZES[0]:,} in {seconds_to_seed[0]:.1f} s, {SIZES[1]:,} in "
            f"{seconds_to_seed[1]:.1f} s (headers read and indexed once, at arrival).",
            f"Per call: median of {reps} sequential calls from one client over loopback "
            "(round trip included), the two sizes alternating call by call.",
            f"Relay: {total} ~2 KB messages per round over STARTTLS + AUTH, {CONNECTIONS} "
            f"sessions, into the sandbox holding {SIZES[-1]:,}; {rounds} rounds alternating. "
            "Bold row = with the inbox open; 'SDK / row, speed' = its rate / the other's. "
            f"The open inbox made {sum(polls)} calls in all.",
        ],
        "tables": [
            {
                "kind": "plain",
                "title": "Per-call time, ms",
                "columns": [
                    ["call", "{}"],
                    [f"{SIZES[0]:,} stored", "{:.2f}"],
                    [f"{SIZES[1]:,} stored", "{:.2f}"],
                    ["ratio", "{:.2f}x"],
                ],
                "rows": rows,
            },
            table(f"Relay into the sandbox, {total} messages per round", relay_variants),
        ],
    }


if __name__ == "__main__":
    cli(__doc__, run)
