"""Printing for the CLI: tables for people, JSON for scripts, a progress line on stderr."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import msgspec

from ..models import encode
from ..smtp.outcome import Outcome

__all__ = ["Progress", "emit", "event_loop_name", "fail", "outcome_record", "table"]


def _plain(value: Any) -> Any:
    """A struct as HubSpot's JSON, every field included (defaults too)."""
    if not isinstance(value, msgspec.Struct):
        return value
    return {
        f.encode_name: msgspec.json.decode(encode(getattr(value, f.name)))
        for f in msgspec.structs.fields(value)
    }


def outcome_record(key: str, outcome: Outcome) -> dict[str, object]:
    """One line of a relay's results file (JSONL): the outcome of the message ``key``."""
    return {
        "id": key,
        "messageId": outcome.message_id,
        "status": outcome.status.value,
        "category": outcome.category.value if outcome.category else None,
        "reason": outcome.reason.value if outcome.reason else None,  # of an invalid_message
        "code": outcome.code,
        "reply": outcome.reply,
        "accepted": list(outcome.accepted),
        "refused": [[r.recipient, r.code, r.message] for r in outcome.refused],
        "unsent": [[r.recipient, r.code, r.message] for r in outcome.unsent],
        "inDoubt": list(outcome.in_doubt),
        "attempts": outcome.attempts,
    }


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    """A left-aligned text table."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    print(header.rstrip(), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def emit(value: Any, *, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a model, a list of models or a mapping: JSON with ``--json``, else a table."""
    items = value if isinstance(value, list) else [value]
    rows = [_plain(v) for v in items]
    if as_json:
        print(json.dumps(rows if isinstance(value, list) else rows[0], indent=None))
        return
    if not rows:
        print("(none)")
        return
    table(rows, columns or list(rows[0]), sys.stdout)


def event_loop_name() -> str:
    """The running event loop's kind, ``uvloop`` or ``asyncio`` (shown by relay and worker)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def fail(message: str, code: int) -> int:
    """One clear line on stderr; the exit code to return."""
    print(f"hubspot-tx: error: {message}", file=sys.stderr)
    return code


class Progress:
    """A one-line progress display on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, failed: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        print(
            f"\r{self.label}: {done} done, {failed} failed, {rate:,.0f} msg/s ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)
