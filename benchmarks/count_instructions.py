"""Instructions per message (valgrind callgrind): a figure that does not move with the machine's
load or clock, unlike CPU time.

    python benchmarks/count_instructions.py [--clients sdk10,sdk10lf,sdk1,aiosmtplib,smtplib]

Each client relays ``small`` then ``large`` messages to smtp-sink, each run a separate process
under ``valgrind --tool=callgrind`` (smtp-sink itself is not traced); the difference divided by
``large - small`` is the instruction count per message, start-up and imports cancelled out.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
CLIENTS = ("sdk10", "sdk10lf", "sdk1", "aiosmtplib", "smtplib")


async def relay(client: str, count: int) -> None:
    from _common import fresh, smtp_sink
    from bench_smtp_sink import aiosmtplib_persistent, sdk_pool, smtplib_thread

    async with smtp_sink() as port:
        if client == "sdk10":
            await sdk_pool(port, fresh("crlf", count), 10)
        elif client == "sdk10lf":
            await sdk_pool(port, fresh("lf", count), 10)
        elif client == "sdk1":
            await sdk_pool(port, fresh("crlf", count), 1)
        elif client == "aiosmtplib":
            await aiosmtplib_persistent(port, fresh("crlf", count))
        elif client == "smtplib":
            await smtplib_thread(port, fresh("crlf", count))


def instructions(client: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            client,
            str(count),
        ]
        subprocess.run(argv, cwd=HERE, check=True, capture_output=True, timeout=1800)
        text = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if match is None:
        raise RuntimeError("no totals in the callgrind output")
    return int(match.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=1200)
    ap.add_argument("--run", nargs=2, help=argparse.SUPPRESS)  # inside valgrind
    args = ap.parse_args()
    if args.run:
        sys.path.insert(0, str(HERE))
        asyncio.run(relay(args.run[0], int(args.run[1])))
        return
    for client in args.clients.split(","):
        small, large = instructions(client, args.small), instructions(client, args.large)
        per = (large - small) / (args.large - args.small)
        print(f"{client:<12} {per / 1e3:10,.0f} k instructions per message", flush=True)


if __name__ == "__main__":
    main()
