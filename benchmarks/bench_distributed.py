"""G. The distributed relay: 1, 2 and 4 worker processes against one sink, through one Redis.

Postfix ``smtp-sink`` (plaintext, no AUTH; ``benchmarks/install.sh`` installs it). For each
worker count: a fresh namespace, ``hubspot-tx worker --processes N``, then
``DistributedRelay.submit`` of ``--messages`` ~2 KB messages, timed until every result is in.
Redis work per message comes from ``INFO commandstats`` before and after:
``lua/msg`` counts script calls (EVALSHA, one round trip each), ``rtt/msg`` adds the other
client commands (taskiq's XADD per batch, XREADGROUP, XAUTOCLAIM, XACK, the reader's XREAD,
DEL), ``cmds/msg`` counts every command Redis ran, those inside scripts included.

Each worker count runs against two Redis set-ups, in the same run: ``none`` (no persistence:
what the relay ran on before issue 18, now refused unless ``--allow-unsafe-redis``) and
``aof-always`` (``appendonly yes`` + ``appendfsync always``, the AOF in ``--aof-dir``, which
must be on the kind of disk Redis is deployed on: every write waits for its fsync).

    python benchmarks/bench_distributed.py [--messages 4000] [--workers 1 2 4]
        [--redis none aof-always] [--aof-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from typing import Any

from _common import mime_bytes, smtp_sink
from redis.asyncio import Redis

from hubspot_tx.distributed import DistributedRelay, redis_server

# Commands a client sends itself (never only from inside the ledger's scripts).
CLIENT = ("evalsha", "eval", "xreadgroup", "xautoclaim", "xread", "xack", "del", "ping")


async def commandstats(redis: Any) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


async def run(
    redis_url: str,
    n: int,
    messages: int,
    options: list[str],
    unsafe: bool,
    log_path: str | None = None,
) -> dict[str, float]:
    namespace = f"bench{n}"
    if unsafe:
        options = [*options, "--allow-unsafe-redis"]
    argv = ["--redis-url", redis_url, "--namespace", namespace, "--processes", str(n)]
    argv += ["--connections", "10", *options]
    log = open(os.devnull if log_path is None else log_path, "ab")  # noqa: ASYNC230, SIM115
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "worker",
        *argv,
        env={k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_SMTP")},
        stderr=log,
    )
    redis: Any = Redis.from_url(redis_url)
    try:
        async with DistributedRelay(
            redis_url, namespace=namespace, allow_unsafe_redis=unsafe
        ) as relay:
            async with asyncio.timeout(30):  # every worker up (its heartbeat key)
                while len(await redis.keys(relay.ledger.worker_prefix + "*")) < n:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            data = [mime_bytes(i + n * 1_000_000) for i in range(messages)]
            before = await commandstats(redis)
            started = time.perf_counter()
            submission = await relay.submit(data)
            sent = 0
            async for result in relay.results(keys=submission.keys, timeout=120):
                sent += result.outcome.ok
            elapsed = time.perf_counter() - started
            after = await commandstats(redis)
        if sent != messages:
            raise RuntimeError(f"{sent} of {messages} sent")
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta["info"] = 0
        lua = delta.get("evalsha", 0) + delta.get("eval", 0)
        client = sum(delta.get(k, 0) for k in CLIENT)
        client += delta.get("xadd", 0) - messages  # less the one XADD per result (in a script)
        return {
            "workers": n,
            "rate": messages / elapsed,
            "lua": lua / messages,
            "rtt": client / messages,
            "cmds": sum(delta.values()) / messages,
        }
    finally:
        await redis.aclose()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--redis", nargs="+", choices=["none", "aof-always"], default=["none", "aof-always"]
    )
    parser.add_argument("--aof-dir", default=None, help="where the AOF lives (default: $TMPDIR)")
    parser.add_argument("--worker-log", default=None, help="append the workers' stderr here")
    args = parser.parse_args()
    rows = []
    async with smtp_sink() as port:
        options = ["--host", "127.0.0.1", "--port", str(port), "--tls", "none"]
        for mode in args.redis:
            durable = mode == "aof-always"
            with tempfile.TemporaryDirectory(dir=args.aof_dir) as workdir:
                async with redis_server(durable=durable, workdir=workdir) as server:
                    for n in args.workers:
                        row = await run(
                            server.url, n, args.messages, options, not durable, args.worker_log
                        )
                        rows.append({**row, "mode": mode})
    print(
        f"distributed relay: {args.messages} messages of ~2 KB to Postfix smtp-sink "
        "(plaintext), 10 connections per worker, one redis-server "
        f"(AOF in {args.aof_dir or tempfile.gettempdir()})"
    )
    print(
        f"{'redis':>10}  {'workers':>7}  {'msgs/s':>8}  {'vs none':>8}  {'lua/msg':>7}  "
        f"{'rtt/msg':>7}  {'cmds/msg':>8}"
    )
    base = {r["workers"]: r["rate"] for r in rows if r["mode"] == "none"}
    for r in rows:
        ratio = r["rate"] / base[r["workers"]] if r["workers"] in base else float("nan")
        print(
            f"{r['mode']:>10}  {r['workers']:>7.0f}  {r['rate']:>8.0f}  {ratio:>7.2f}x  "
            f"{r['lua']:>7.2f}  {r['rtt']:>7.2f}  {r['cmds']:>8.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
