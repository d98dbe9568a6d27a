"""Shared helpers: CPU/wall metering, alternating rounds, summaries, servers on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import resource
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any

Json = dict[str, Any]


@dataclass
class Sample:
    """One timed run: how many operations, wall seconds, CPU seconds (self and children)."""

    ops: int
    wall: float
    cpu_self: float
    cpu_children: float

    @property
    def rate(self) -> float:
        return self.ops / self.wall

    @property
    def cpu_ms_per_op(self) -> float:
        return 1000 * (self.cpu_self + self.cpu_children) / self.ops


class Meter:
    """Wall clock and process CPU (RUSAGE_SELF + RUSAGE_CHILDREN) between start and stop."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.s0 = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = resource.getrusage(resource.RUSAGE_CHILDREN)

    def stop(self, ops: int) -> Sample:
        wall = time.perf_counter() - self.t0
        s1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_self = (s1.ru_utime - self.s0.ru_utime) + (s1.ru_stime - self.s0.ru_stime)
        cpu_children = (c1.ru_utime - self.c0.ru_utime) + (c1.ru_stime - self.c0.ru_stime)
        return Sample(ops, wall, cpu_self, cpu_children)


@dataclass
class Variant:
    """One row: ``run`` does one bounded round and returns its Sample."""

    name: str
    run: Callable[[], Awaitable[Sample]]
    input: str = ""
    sdk: bool = False
    note: str = ""
    samples: list[Sample] = field(default_factory=list)


async def alternate(variants: Sequence[Variant], rounds: int, label: str = "") -> None:
    """Run every variant once per round, reversing the order every other round."""
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for v in order:
            gc.collect()
            sample = await v.run()
            v.samples.append(sample)
            print(
                f"  [{label} round {r + 1}/{rounds}] {v.name}: {sample.ops} ops, "
                f"{sample.rate:,.0f}/s, {sample.cpu_ms_per_op:.3f} ms CPU/op",
                file=sys.stderr,
                flush=True,
            )


def table(
    title: str, variants: Sequence[Variant], unit: str = "msgs/s", metric: str = "rate"
) -> Json:
    """A table of raw samples (``metric``: ``rate`` = ops/s, ``latency`` = µs/op)."""
    return {
        "kind": "bench",
        "title": title,
        "unit": unit,
        "metric": metric,
        "rows": [
            {
                "name": v.name,
                "input": v.input,
                "sdk": v.sdk,
                "note": v.note,
                "samples": [asdict(s) for s in v.samples],
            }
            for v in variants
        ],
    }


def summarise(row: Json) -> Json:
    """Median / min / max of rate (ops/s) and median CPU ms per op of a row's samples."""
    samples = [Sample(**s) for s in row["samples"]]
    rates = [s.rate for s in samples]
    cpus = [s.cpu_ms_per_op for s in samples]
    return {
        "rate_median": statistics.median(rates),
        "rate_min": min(rates),
        "rate_max": max(rates),
        "cpu_ms_median": statistics.median(cpus),
        "ops": samples[0].ops,
    }


LOOPS = ("asyncio", "uvloop")


def run_on(loop: str, main: Coroutine[Any, Any, Json]) -> Json:
    """Run ``main`` on a fresh event loop of the kind named (``asyncio`` or ``uvloop``)."""
    if loop == "uvloop":
        import uvloop  # only when asked: the asyncio rows must not pay for it

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def cli(doc: str | None, run: Callable[[bool], Coroutine[Any, Any, Json]]) -> None:
    """Common command line: ``[--quick] [--json PATH] [--loop asyncio|uvloop]``; prints a
    summary."""
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--loop", choices=LOOPS, default="asyncio", help="the event loop to run on")
    a = p.parse_args()
    result = run_on(a.loop, run(a.quick))
    result["loop"] = a.loop
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    for t in result.get("tables", []):
        if t["kind"] != "bench":
            continue
        print(f"{result['id']}. {t['title']} ({a.loop})")
        for row in t["rows"]:
            s = summarise(row)
            print(
                f"  {row['name']:<55} {s['rate_median']:>10,.0f} {t['unit']}"
                f"  {s['cpu_ms_median']:.4f} ms CPU/op"
            )


# -- messages ----------------------------------------------------------------------------------
BODY_LINE = b"The quick brown fox jumps over the lazy dog, 0123456789 abcdefghij.\r\n"  # 70 bytes


def mime_bytes(i: int, size: int = 2048) -> bytes:
    """A flattened ~``size``-byte plaintext message with unique Message-ID."""
    head = (
        f"From: bench@example.com\r\nTo: rcpt{i % 1000}@example.org\r\n"
        f"Subject: benchmark message {i}\r\nMessage-ID: <bench{i}@example.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    lines = max(1, (size - len(head)) // len(BODY_LINE))
    return head + BODY_LINE * lines


def email_message(i: int, size: int = 2048) -> EmailMessage:
    """The same message as an ``EmailMessage`` (aiosmtplib flattens it itself)."""
    msg = EmailMessage()
    msg["From"] = "bench@example.com"
    msg["To"] = f"rcpt{i % 1000}@example.org"
    msg["Subject"] = f"benchmark message {i}"
    msg["Message-ID"] = f"<bench{i}@example.com>"
    body = BODY_LINE.decode() * max(1, (size - 200) // len(BODY_LINE))
    msg.set_content(body.replace("\r\n", "\n"), cte="7bit")
    return msg


_ROUNDS = itertools.count(1)
MessageKind = str  # "crlf" (bytes, CRLF), "lf" (EmailMessage.as_bytes(), LF), "EmailMessage"


def fresh(kind: MessageKind, total: int) -> list[Any]:
    """``total`` new messages for one round, unlike every earlier round's (their Message-IDs
    and subjects carry the round), built before the clock starts: nothing the SDK could keep
    from an earlier round (a cache of prepared messages) can serve this one.

    ``lf`` is what most Python code passes: ``EmailMessage.as_bytes()`` under the default
    policy, LF line endings."""
    base = next(_ROUNDS) * 1_000_000
    if kind == "crlf":
        return [mime_bytes(base + i) for i in range(total)]
    if kind == "lf":
        return [email_message(base + i).as_bytes() for i in range(total)]
    if kind == "EmailMessage":
        return [email_message(base + i) for i in range(total)]
    raise ValueError(kind)


# -- processes on loopback ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def process(*argv: str, port: int | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a helper process (stdout/stderr discarded), wait for ``port``; stop it on exit."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if port is not None:
            await wait_port(port)
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def sbin(name: str) -> str:
    """Path of a Debian binary that may be outside PATH (/usr/sbin)."""
    for d in (*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/usr/bin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"{name} not found: run benchmarks/install.sh")


@contextlib.asynccontextmanager
async def smtp_sink() -> AsyncIterator[int]:
    """Postfix ``smtp-sink`` (advertises PIPELINING) on a free loopback port; yields the port."""
    port = free_port()
    argv = [sbin("smtp-sink"), "-u", "nobody", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() != 0:
        argv = [argv[0], *argv[3:]]
    async with process(*argv, port=port):
        yield port
