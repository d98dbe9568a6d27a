"""``hubspot-tx relay``: every message of the sources through the SMTP pool, with a ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import SmtpError, SmtpTLSError
from .._pipeline import Pipeline
from ..smtp import FailureCategory, Outcome, OutcomeStatus, SmtpCredentials, SmtpPool
from ._ledger import Ledger
from ._output import Progress, outcome_record, table
from ._sources import describe, read_messages

__all__ = ["run_relay"]

Item = tuple[str, bytes]


class _Interrupted(Exception):
    """SIGINT / SIGTERM: finish what is in flight, start nothing more."""


@dataclass(frozen=True, slots=True)
class _Done:
    id: str
    outcome: Outcome | None  # None: never started (interrupted first)
    recorded: bool = False  # already in the results file


def _record(done: _Done) -> dict[str, object]:
    if done.outcome is None:
        raise ValueError(f"{done.id} has no outcome to record")
    return outcome_record(done.id, done.outcome)


def _pool(args: argparse.Namespace) -> SmtpPool:
    from ._main import ssl_context

    user = args.smtp_user or os.environ.get("HUBSPOT_SMTP_USER")
    password = args.smtp_password or os.environ.get("HUBSPOT_SMTP_PASSWORD")
    if not user or not password:
        raise ValueError(
            "no SMTP credentials: set HUBSPOT_SMTP_USER (the token id) and "
            "HUBSPOT_SMTP_PASSWORD, or pass --smtp-user / --smtp-password"
        )
    port = args.port or (
        int(os.environ["HUBSPOT_SMTP_PORT"]) if os.environ.get("HUBSPOT_SMTP_PORT") else None
    )
    context = ssl_context(args.ca_file)
    return SmtpPool(
        args.host or os.environ.get("HUBSPOT_SMTP_HOST"),
        port,
        credentials=SmtpCredentials(user, password),
        tls=args.tls,
        region=args.region,
        ssl_context=None if context is True else context,  # type: ignore[arg-type]
        max_connections=args.concurrency,
    )


async def run_relay(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    for source in args.sources:
        describe(source)  # fail early on a missing source
    ledger = Ledger(Path(args.results))
    resumed = ledger.resume() if args.resume else None
    if resumed and resumed.unknown:
        print(
            f"{len(resumed.unknown)} message(s) were in flight when the previous run stopped; "
            "left as delivery_unknown, not resent:",
            file=sys.stderr,
        )
        for message_id in resumed.unknown:
            print(f"  {message_id}", file=sys.stderr)
    skip = resumed.done if resumed else set()
    ledger.open()
    counts: Counter[str] = Counter()
    progress = Progress("relay", enabled=not args.quiet)
    started = time.monotonic()

    def items() -> Iterator[Item]:
        for source in args.sources:
            for message_id, raw in read_messages(source):
                if message_id not in skip:
                    yield message_id, raw

    pool = _pool(args)

    async def work(index: int, item: Item) -> _Done:
        message_id, raw = item
        ledger.started(message_id)
        done = _Done(message_id, await pool.send(raw, key=message_id), recorded=True)
        # Recorded at once, not when the loop below reads it: a kill then leaves unrecorded only
        # the messages in a transaction (at most --concurrency), never finished ones queued.
        ledger.result(_record(done))
        return done

    def abandoned(index: int, item: Item, exc: Exception, attempted: bool) -> _Done:
        if not attempted:
            return _Done(item[0], None)  # never started: the next run sends it
        # Its send raised the fatal error (journaled, so record that it was not sent).
        category = FailureCategory.TLS if isinstance(exc, SmtpTLSError) else FailureCategory.AUTH
        return _Done(
            item[0],
            Outcome(key=item[0], status=OutcomeStatus.FAILED, category=category, reply=str(exc)),
        )

    pipeline: Pipeline[Item, _Done] = Pipeline(
        items(),
        work,
        concurrency=args.concurrency,
        fatal=lambda exc: isinstance(exc, SmtpError) and exc.fatal,
        abandoned=abandoned,
        closed=lambda: _Interrupted("closed"),
    )
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        pipeline.stop_working(_Interrupted("interrupted"))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        async with pool:
            async for done in pipeline:
                if done.outcome is None:
                    continue  # not started: the next run (with --resume) sends it
                if not done.recorded:  # abandoned by a fatal error: recorded here
                    ledger.result(_record(done))
                key = done.outcome.category.value if done.outcome.category else "sent"
                counts[key] += 1
                progress.update(sum(counts.values()), sum(counts.values()) - counts["sent"])
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        progress.close()
        ledger.close()
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    summary = {
        "messages": total,
        "skipped": len(skip),
        "outcomes": dict(counts),
        "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1) if elapsed > 0 else None,
        "interrupted": interrupted,
        "results": str(ledger.results_path),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        rows = [{"outcome": k, "messages": v} for k, v in sorted(counts.items())]
        table(rows or [{"outcome": "(none)", "messages": 0}], ["outcome", "messages"], sys.stdout)
        print(
            f"{total} message(s) in {elapsed:.2f} s ({summary['per_second']} msg/s); "
            f"{len(skip)} skipped from an earlier run; results in {ledger.results_path}"
        )
    if interrupted:
        return 130
    return 0 if counts["sent"] == total else 1
