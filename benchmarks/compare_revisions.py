"""The plaintext relay (bench_smtp_sink.py's SDK pool, 10 sessions, ~2 KB messages to Postfix
``smtp-sink``) on two revisions of the SDK in the same run: CPU per message of each, and the
ratio. The other revision's ``hubspot_tx`` is exported with ``git archive`` and put first on
``sys.path`` of its own processes; rounds alternate between the two.

    python benchmarks/compare_revisions.py OLD_REV [--messages N] [--rounds R] [--loop uvloop]
        [--connections C] [--lf]

``--lf`` relays ``EmailMessage.as_bytes()`` (LF line endings) instead of CRLF bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


async def _measure(messages: int, connections: int, kind: str) -> dict[str, float | str]:
    from _common import Meter, fresh, smtp_sink

    import hubspot_tx
    from hubspot_tx import SmtpPool

    data = fresh(kind, messages)
    async with (
        smtp_sink() as port,
        SmtpPool("127.0.0.1", port, tls="none", max_connections=connections) as pool,
    ):
        assert (await pool.send(data[0])).ok  # warm: session open, code paths hot
        meter = Meter()
        relay = pool.send_many(iter(data))
        async with relay:
            sent = sum([o.ok async for o in relay])
        sample = meter.stop(sent)
    if sent != messages:
        raise RuntimeError(f"{sent} of {messages} sent")
    return {
        "code": str(Path(hubspot_tx.__file__).parent),
        "cpu_ms": 1000 * sample.cpu_self / sent,
        "rate": sample.rate,
    }


def _run(
    code: Path | None, messages: int, loop: str, connections: int, kind: str
) -> dict[str, float | str]:
    env = dict(os.environ)
    paths = [str(HERE)] + ([str(code)] if code else [])
    env["PYTHONPATH"] = os.pathsep.join([*reversed(paths), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(messages), loop, str(connections), kind],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: dict[str, float | str] = json.loads(out.splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        work = _measure(int(sys.argv[2]), int(sys.argv[4]), sys.argv[5])
        if sys.argv[3] == "uvloop":
            import uvloop

            print(json.dumps(uvloop.run(work)))
        else:
            print(json.dumps(asyncio.run(work)))
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("old", help="the git revision to compare with (e.g. main)")
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--lf", action="store_true", help="EmailMessage.as_bytes() input (LF)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.old, "hubspot_tx"],
            check=True,
            capture_output=True,
        ).stdout
        tar_path = Path(tmp, "old.tar")
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        results: dict[str, list[dict[str, float | str]]] = {"old": [], "new": []}
        how = (args.messages, args.loop, args.connections, "lf" if args.lf else "crlf")
        for _ in range(args.rounds):
            results["old"].append(_run(Path(tmp), *how))
            results["new"].append(_run(None, *how))
    for name, runs in results.items():
        cpu = statistics.median(float(r["cpu_ms"]) for r in runs)
        rate = statistics.median(float(r["rate"]) for r in runs)
        print(f"{name:4} {runs[0]['code']}: {cpu:.4f} ms CPU/msg, {rate:,.0f} msg/s (median)")
    old = statistics.median(float(r["cpu_ms"]) for r in results["old"])
    new = statistics.median(float(r["cpu_ms"]) for r in results["new"])
    print(f"new / old CPU per message: {new / old:.3f}x")
    old_rate = statistics.median(float(r["rate"]) for r in results["old"])
    new_rate = statistics.median(float(r["rate"]) for r in results["new"])
    print(f"new / old msg/s: {new_rate / old_rate:.3f}x")


if __name__ == "__main__":
    main()
