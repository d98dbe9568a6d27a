"""The relay's record: a results file (one JSON line per message and run) and a journal of
starts beside it.

A message is journaled *before* its first transaction. On ``--resume``: messages recorded
``sent`` or ``delivery_unknown`` are skipped; other failures are tried again; a journaled message
without a result was in flight when the previous run died: it may have been delivered, so it is
recorded as ``delivery_unknown`` and never sent again. At most ``--concurrency`` messages can
be in that state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Ledger", "Resumed"]


@dataclass
class Resumed:
    """What a previous run recorded: ids not to send again (sent, or possibly delivered) and,
    among them, those left unknown by an interrupted run."""

    done: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash: its message is in the journal
    return records


class Ledger:
    """Appends results and journal lines, flushed to the OS at once."""

    def __init__(self, results: Path) -> None:
        self.results_path = results
        self.journal_path = results.with_name(results.name + ".journal")
        self._results: IO[str] | None = None
        self._journal: IO[str] | None = None

    def resume(self) -> Resumed:
        """Read the previous run; record its in-flight messages as ``delivery_unknown``."""
        resumed = Resumed()
        decided: set[str] = set()
        for record in _read_lines(self.results_path):
            decided.add(record["id"])
            # Sent, or maybe delivered: never again. Other failures are tried again.
            if record.get("status") == "sent" or record.get("category") == "delivery_unknown":
                resumed.done.add(record["id"])
        for record in _read_lines(self.journal_path):
            if record["id"] not in decided:  # started, no result: the run died mid-send
                resumed.unknown.append(record["id"])
                resumed.done.add(record["id"])
                decided.add(record["id"])
        if resumed.unknown:
            self.open()
            for message_id in resumed.unknown:
                self.result(
                    {
                        "id": message_id,
                        "status": "failed",
                        "category": "delivery_unknown",
                        "reply": "in flight when a previous run was interrupted: not resent",
                    }
                )
        return resumed

    def open(self) -> None:
        if self._results is None:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            self._results = self.results_path.open("a", encoding="utf-8")
            self._journal = self.journal_path.open("a", encoding="utf-8")

    def started(self, message_id: str) -> None:
        if self._journal is None:
            raise RuntimeError("the ledger is not open")
        self._journal.write(json.dumps({"id": message_id}) + "\n")
        # In the OS before the message leaves: survives the process being killed (fsync would
        # also survive a power cut, at a disk flush per message).
        self._journal.flush()

    def result(self, record: dict[str, Any]) -> None:
        if self._results is None:
            raise RuntimeError("the ledger is not open")
        self._results.write(json.dumps(record) + "\n")
        self._results.flush()

    def close(self) -> None:
        for handle in (self._results, self._journal):
            if handle is not None:
                handle.close()
        self._results = self._journal = None
