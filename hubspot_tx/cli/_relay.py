"""``hubspot-tx relay``: every message of the sources through the SMTP pool, with a ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from .. import _env
from .._exceptions import SmtpConnectError, SmtpError, SmtpTLSError
from .._pipeline import Pipeline
from ..smtp import FailureCategory, Outcome, OutcomeStatus, SmtpCredentials, SmtpPool
from ._ledger import Ledger, Resumed
from ._output import Progress, event_loop_name, outcome_record, table
from ._sources import (
    MessageIds,
    aread_messages,
    describe,
    ensure_message_id,
    stop_reading_stdin,
)

__all__ = ["run_relay"]


@dataclass(frozen=True, slots=True)
class _Item:
    id: str  # identifies the message (see MessageIds)
    where: str  # its place, for people
    raw: bytes


class _Interrupted(Exception):
    """SIGINT / SIGTERM: finish what is in its data phase, start nothing more."""


class _Unreachable(SmtpConnectError):
    """No session could be opened with the server before any message reached it."""

    fatal = True


@dataclass(frozen=True, slots=True)
class _Done:
    id: str
    outcome: Outcome | None  # None: never started (interrupted first)
    recorded: bool = False  # already in the results file
    where: str = ""
    added_id: str | None = None  # the Message-ID the relay added, if any
    journaled: bool = False  # reached its data phase in this run (its journal line's answer)


@dataclass(slots=True)
class _Flight:
    """A message in work: whether it reached its data phase (journaled)."""

    item: _Item
    journaled: bool = False


def _record(done: _Done) -> dict[str, object]:
    if done.outcome is None:
        raise ValueError(f"{done.id} has no outcome to record")
    record = outcome_record(done.id, done.outcome)
    record["source"] = done.where
    if done.added_id is not None:
        record["messageIdAdded"] = True
    if done.journaled:
        record["journaled"] = True
    return record


def _unreachable_hint(args: argparse.Namespace, pool: SmtpPool, reply: str) -> str:
    port = pool.settings.port
    if args.tls == "starttls" and port == 465:
        return "; port 465 is implicit TLS: add --tls implicit"
    if args.tls == "starttls" and "Timeout" in reply:  # no greeting: TLS expected first?
        return (
            "; a server that waits for the client to speak first is an implicit-TLS port "
            "(then add --tls implicit); else check --host / --port"
        )
    if args.tls == "implicit" and port in (25, 587):
        return f"; port {port} is STARTTLS: use --tls starttls"
    return f"; check --host / --port (or ${_HOST_VARIABLE} / ${_PORT_VARIABLE})"


_HOST_VARIABLE, _PORT_VARIABLE = _env.SMTP_HOST, _env.SMTP_PORT


def _pool(args: argparse.Namespace, on_outcome: Callable[[Outcome], None]) -> SmtpPool:
    user = args.smtp_user or _env.get(_env.SMTP_USER)
    password = args.smtp_password or _env.get(_env.SMTP_PASSWORD)
    if not user or not password:
        raise ValueError(
            f"no SMTP credentials: set {_env.SMTP_USER} (the token id) and "
            f"{_env.SMTP_PASSWORD}, or pass --smtp-user / --smtp-password"
        )
    if args.tls == "none" and not args.allow_plaintext_auth:
        raise ValueError(
            "--tls none would send the SMTP password unencrypted: use --tls starttls or "
            "--tls implicit, or add --allow-plaintext-auth (only on a network you trust)"
        )
    # Host, port and CA left out are read by SmtpPool() from the same variables.
    return SmtpPool(
        args.host,
        args.port,
        credentials=SmtpCredentials(user, password),
        tls=args.tls,
        region=args.region,
        max_connections=args.concurrency,
        allow_plaintext_auth=args.allow_plaintext_auth,
        on_outcome=on_outcome,
    )


async def run_relay(args: argparse.Namespace) -> int:
    """``hubspot-tx relay``: every message of the sources, once, with a results file."""
    if args.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    if args.resume and args.force:
        raise ValueError("--resume skips what was sent, --force sends it again: give one")
    if args.sources.count("-") > 1:
        raise ValueError("- (stdin) can be given only once")
    for source in args.sources:
        describe(source)  # fail early on a missing source or a folder without messages
    ledger = Ledger(Path(args.results))
    resumed = ledger.resume(apply=args.resume)  # also refuses a file of the older id scheme
    if not args.resume:
        if resumed.done and not args.force:
            raise ValueError(
                f"{ledger.results_path} already records {len(resumed.done)} message(s) sent (or "
                "possibly sent): add --resume to send only the others, --force to send every "
                "message again, or give another --results"
            )
        resumed = Resumed()
    if resumed.unknown:
        print(
            f"{len(resumed.unknown)} message(s) were in flight when the previous run stopped; "
            "left as delivery_unknown, not resent:",
            file=sys.stderr,
        )
        for message_id in resumed.unknown:
            print(f"  {message_id}", file=sys.stderr)
    skip = resumed.done
    counts: Counter[str] = Counter()
    skipped = 0
    progress = Progress("relay", enabled=not args.quiet)
    started = time.monotonic()
    ids = MessageIds()

    async def items() -> AsyncIterator[_Item]:
        nonlocal skipped
        for source in args.sources:
            async for where, raw in aread_messages(source):
                message_id = ids(raw)
                if message_id in skip:
                    skipped += 1
                else:
                    yield _Item(message_id, where, raw)

    flights: dict[asyncio.Task[Outcome], _Flight] = {}
    interrupted_outcomes: dict[str, Outcome] = {}  # the pool's outcome of a cancelled send

    def on_outcome(outcome: Outcome) -> None:
        if outcome.key is not None and outcome.key in interrupted_outcomes:
            interrupted_outcomes[outcome.key] = outcome

    pool = _pool(args, on_outcome)
    reached = False  # a server answered a transaction in this run
    journaled: set[str] = set()  # ids journaled in this run and not yet recorded

    async def work(index: int, item: _Item) -> _Done:
        nonlocal reached
        flight = _Flight(item)
        raw, added = ensure_message_id(item.raw, item.id)

        async def before_data() -> None:  # after the 354, before any byte of the message
            if not flight.journaled:
                flight.journaled = True
                journaled.add(item.id)
                ledger.started(item.id)

        # A task of its own, so that a signal can cancel this send and not the worker.
        send = asyncio.ensure_future(pool.send(raw, key=item.id, before_data=before_data))
        flights[send] = flight
        try:
            outcome = await send  # raises a fatal error (the pipeline stops)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not send.cancelled() or (task is not None and task.cancelling()):
                send.cancel()
                raise  # this worker was cancelled, not only its send
            reported = interrupted_outcomes.pop(item.id, None)
            if reported is None or reported is _NO_OUTCOME or not flight.journaled:
                # Never reached its data: the next run sends it. (Journaled and not reported
                # cannot happen; if it did, the journal makes the next run call it unknown.)
                return _Done(item.id, None)
            outcome = reported
        finally:
            del flights[send]
        interrupted_outcomes.pop(item.id, None)
        # No reply at all (refused, unresolvable, silent) before any server answered: the
        # server is unreachable, and so is every other message. (A 421 greeting is an answer.)
        if outcome.category is FailureCategory.CONNECTION and outcome.code is None and not reached:
            hint = _unreachable_hint(args, pool, outcome.reply)
            raise _Unreachable(outcome.reply + hint, code=outcome.code)
        reached = True
        journaled.discard(item.id)
        done = _Done(
            item.id,
            outcome,
            recorded=True,
            where=item.where,
            added_id=added,
            journaled=flight.journaled,
        )
        # Recorded at once, not when the loop below reads it: a kill then leaves unrecorded only
        # the messages in a transaction (at most --concurrency), never finished ones queued.
        ledger.result(_record(done))
        return done

    def abandoned(index: int, item: _Item, exc: Exception, attempted: bool) -> _Done:
        if not attempted:
            return _Done(item.id, None)  # never started: the next run sends it
        # Its send raised the fatal error (nothing sent), or found the server unreachable.
        category = (
            FailureCategory.CONNECTION
            if isinstance(exc, _Unreachable)
            else FailureCategory.TLS
            if isinstance(exc, SmtpTLSError)
            else FailureCategory.AUTH
        )
        outcome = Outcome(
            key=item.id, status=OutcomeStatus.FAILED, category=category, reply=str(exc)
        )
        return _Done(item.id, outcome, where=item.where, journaled=item.id in journaled)

    pipeline: Pipeline[_Item, _Done] = Pipeline(
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
        now = not interrupted  # a second signal also stops the messages in their data phase
        interrupted = True
        pipeline.stop_working(_Interrupted("interrupted"))
        stop_reading_stdin()
        for send, flight in list(flights.items()):
            if not flight.journaled or not now:
                interrupted_outcomes[flight.item.id] = _NO_OUTCOME
                send.cancel()  # its connect, or its wait for a session: nothing of it was sent
        if now and flights:
            print(
                f"\ninterrupted: finishing {len(flights)} message(s) already being sent; "
                "press Ctrl-C again to stop them too (they are then recorded delivery_unknown)",
                file=sys.stderr,
            )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        ledger.open()
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
        "skipped": skipped,
        "outcomes": dict(counts),
        "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1) if elapsed > 0 else None,
        "interrupted": interrupted,
        "results": str(ledger.results_path),
        "event_loop": event_loop_name(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        rows = [{"outcome": k, "messages": v} for k, v in sorted(counts.items())]
        table(rows or [{"outcome": "(none)", "messages": 0}], ["outcome", "messages"], sys.stdout)
        print(
            f"{total} message(s) in {elapsed:.2f} s ({summary['per_second']} msg/s); "
            f"{skipped} skipped (recorded by an earlier run); results in {ledger.results_path}"
        )
    if interrupted:
        print(
            f"interrupted after {total} message(s): to send the others, run the same command "
            "again with --resume",
            file=sys.stderr,
        )
        return 130
    return 0 if counts["sent"] == total else 1


# A placeholder until the pool reports the outcome of a send the signal cancelled.
_NO_OUTCOME = Outcome(key=None, status=OutcomeStatus.FAILED, category=FailureCategory.CANCELLED)
