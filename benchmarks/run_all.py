"""Run every comparison (A-F), write benchmarks/results.json, render benchmarks/RESULTS.md.

    bash benchmarks/install.sh /path/to/venv/bin/python   # once
    python benchmarks/run_all.py [--quick] [--only A,C] [--loops asyncio,uvloop]

Each comparison runs in its own subprocess (its own CPU accounting and memory), bounded by a
timeout; a failing one is recorded with its error and the others still run. With ``--only``,
the comparisons run replace theirs in the existing results.json (each carries its date) and the
others are kept. The SMTP
comparisons (A-C) run on asyncio, then again on uvloop (the targets are decided on asyncio; the
uvloop figures are shown beside them).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import render
from _common import Json, sbin

HERE = Path(__file__).parent
# id, script, timeout in seconds (full mode; quick mode gets half, at least 400 s)
COMPARISONS = [
    ("A", "bench_smtp_sink.py", 600),
    ("B", "bench_starttls.py", 300),
    ("C", "bench_latency.py", 400),
    ("D", "bench_rest.py", 600),
    ("E", "bench_decode.py", 300),
    ("F", "bench_footprint.py", 1000),
    ("G", "bench_inbox.py", 900),
]
ON_UVLOOP = {"A", "B", "C"}
PACKAGES = [
    "hubspot-tx",
    "aiohttp",
    "aiosmtplib",
    "msgspec",
    "hubspot-api-client",
    "urllib3",
    "hubspot-sdk",
    "httpx",
    "httpx-aiohttp",
    "pydantic",
    "pydantic-core",
    "uvloop",
]


def tool_version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (p.stdout + p.stderr).strip().splitlines()[0] if p.stdout + p.stderr else "?"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    with contextlib.suppress(FileNotFoundError):
        found["nginx"] = tool_version([sbin("nginx"), "-v"]).removeprefix("nginx version: ")
    with contextlib.suppress(FileNotFoundError):
        found["postfix (smtp-sink, smtp-source)"] = tool_version(
            [sbin("postconf"), "-d", "-h", "mail_version"]
        )
    return found


def machine() -> str:
    """The CPU model, for RESULTS.md: the same code gives other figures on other machines."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared)."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_one(cid: str, script: str, timeout: float, quick: bool, loop: str = "asyncio") -> Json:
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        argv = [sys.executable, str(HERE / script), "--json", tmp.name, "--loop", loop]
        if quick:
            argv.append("--quick")
        print(f"== {cid} ({loop}, load {load()}): {script}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            p = subprocess.run(
                argv, cwd=HERE, timeout=timeout, stdout=subprocess.PIPE, text=True, check=False
            )
        except subprocess.TimeoutExpired:
            error = f"timed out after {timeout:.0f} s"
            return {"id": cid, "title": script, "loop": loop, "error": error}
        wall = time.monotonic() - t0
        print(p.stdout, file=sys.stderr, flush=True)
        if p.returncode != 0:
            error = f"exit {p.returncode}; see stderr"
            return {"id": cid, "title": script, "loop": loop, "error": error}
        result: Json = json.loads(Path(tmp.name).read_text())
        result["wall_seconds"] = wall
        result["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
        result["loop"] = loop
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller counts, fewer rounds (< 5 min)")
    ap.add_argument("--only", help="comma-separated comparison ids, e.g. A,D")
    ap.add_argument(
        "--loops", default="asyncio,uvloop", help="event loops for A-C (default asyncio,uvloop)"
    )
    args = ap.parse_args()
    only = set(args.only.upper().split(",")) if args.only else None
    loops = [x for x in args.loops.split(",") if x]
    started = time.monotonic()
    load_before = load()
    comparisons = []
    for cid, script, timeout in COMPARISONS:
        if only is None or cid in only:
            limit = max(400, timeout / 2) if args.quick else timeout  # a loaded machine
            for loop in loops if cid in ON_UVLOOP else ["asyncio"]:
                comparisons.append(run_one(cid, script, limit, args.quick, loop))
    unavailable = []
    sdk_error = HERE / ".hubspot_sdk_error.txt"
    if sdk_error.exists():
        unavailable.append(f"hubspot-sdk could not be installed: {sdk_error.read_text()[-800:]}")
    data: Json = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            "uname": tool_version(["uname", "-a"]),
            "nproc": os.cpu_count(),
            "cpu": machine(),
            "load": f"{load_before} before, {load()} after",
            "quick": args.quick,
            "wall_seconds": time.monotonic() - started,
            "versions": versions(),
        },
        "comparisons": comparisons,
        "unavailable": unavailable,
    }
    previous = HERE / "results.json"
    if only is not None and previous.exists():  # keep the comparisons not run this time
        kept: Json = json.loads(previous.read_text())
        ran = {c["id"] for c in comparisons}
        merged = [c for c in kept["comparisons"] if c["id"] not in ran] + comparisons
        kept["comparisons"] = sorted(merged, key=lambda c: str(c["id"]))
        data = kept
    previous.write_text(json.dumps(data, indent=1) + "\n")
    render.main()
    print(f"total wall time {data['meta']['wall_seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
