"""A bounded soak: a long relay through random faults, sampling the client's RSS, open file
descriptors and asyncio tasks. All must stay flat, and every connection be closed at the end.

    .venv/bin/python benchmarks/soak.py [--messages 200000] [--seconds 300] [--chaos 0.02]

The fault server (tests/fault_server.py, plaintext, optional PIPELINING) runs in a child
process so that its memory is not the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hubspot_tx import SmtpPool, SmtpRetry
from tests.fault_server import FaultServer


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def serve(chaos: float, seed: int) -> None:
    server = FaultServer(chaos=chaos, seed=seed, keep=False, slow_seconds=0.3)
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().create_future()  # until killed


def messages(count: int) -> Iterator[bytes]:
    body = b"soak line\r\n" * 40
    for i in range(count):
        yield (
            f"From: soak@example.com\r\nTo: r{i % 997}@example.org\r\n"
            f"Message-ID: <soak{i}@bench>\r\nSubject: {i}\r\n\r\n"
        ).encode() + body


async def soak(total: int, seconds: float, chaos: float, seed: int) -> int:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--chaos",
        str(chaos),
        "--seed",
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    port = int(await child.stdout.readline())
    samples: list[tuple[float, int, float, int, int]] = []
    started = time.monotonic()
    counts: Counter[str] = Counter()
    base_fds, base_tasks = fds(), len(asyncio.all_tasks())
    try:
        async with SmtpPool(
            "127.0.0.1",
            port,
            tls="none",
            max_connections=10,
            command_timeout=0.2,
            final_reply_timeout=0.2,
            retry=SmtpRetry(max_attempts=3, initial_backoff=0.01, max_backoff=0.05),
        ) as pool:
            relay = pool.send_many(messages(total), concurrency=10)
            next_sample = 0.0
            async with relay, asyncio.timeout(seconds):
                async for outcome in relay:
                    counts[outcome.category.value if outcome.category else "sent"] += 1
                    elapsed = time.monotonic() - started
                    if elapsed >= next_sample:
                        done = sum(counts.values())
                        samples.append((elapsed, done, rss_mb(), fds(), len(asyncio.all_tasks())))
                        next_sample += max(seconds / 20, 1.0)
    except TimeoutError:
        print(f"stopped by the time bound ({seconds:g} s)")
    finally:
        child.kill()
        await child.wait()
    await asyncio.sleep(0.2)
    end = (
        time.monotonic() - started,
        sum(counts.values()),
        rss_mb(),
        fds(),
        len(asyncio.all_tasks()),
    )
    print(f"{'t (s)':>7} {'done':>8} {'RSS MB':>8} {'fds':>5} {'tasks':>6}")
    for t, done, rss, nfd, tasks in [*samples, end]:
        print(f"{t:7.1f} {done:8d} {rss:8.1f} {nfd:5d} {tasks:6d}")
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    total_done = sum(counts.values())
    print(f"outcomes: {dict(counts)}")
    print(
        f"{total_done} messages in {end[0]:.0f} s ({total_done / end[0]:.0f} msg/s), "
        f"client CPU {1000 * (cpu.ru_utime + cpu.ru_stime) / max(total_done, 1):.3f} ms/msg"
    )
    print(
        f"after close: fds {end[3]} (before the relay {base_fds}), "
        f"tasks {end[4]} (before {base_tasks})"
    )
    flat = end[3] <= base_fds and end[4] <= base_tasks
    print("connections and tasks all closed" if flat else "LEAK")
    return 0 if flat else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--chaos", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        asyncio.run(serve(a.chaos, a.seed))
    else:
        sys.exit(asyncio.run(soak(a.messages, a.seconds, a.chaos, a.seed)))


if __name__ == "__main__":
    main()
