"""The relay's record: a results file (one JSON line per message and run) and a journal beside
it of the messages that reached their data phase.

Ids are content ids (:class:`~hubspot_tx.cli._sources.MessageIds`). A message is journaled once
the server has said 354 and before any byte of it is written: a message that never got there
was certainly not delivered. On ``--resume``: messages recorded ``sent``, ``delivery_unknown``,
or with any recipient accepted or in doubt are skipped; other failures are tried again; a
journal line that no result answers (one marked ``journaled``: a result of the same run) was
a message in its data phase when a run died: it may have been delivered, so it is recorded as
``delivery_unknown`` and never sent again, whatever an earlier run recorded (a failure to
retry does not answer a later run's attempt). At most ``--concurrency`` per killed run.

A results file that records sends is not appended to by a run that neither resumes nor forces
(that run would send them again); one written by an older hubspot-tx (ids by position) is
refused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._sources import ID_PATTERN

__all__ = ["Ledger", "Resumed"]


@dataclass
class Resumed:
    """What a previous run recorded: ids not to send again (sent, or possibly delivered) and,
    among them, those left unknown by an interrupted run."""

    done: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: its message is in the journal
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise ValueError(f"{path} is not a relay results file: give another --results")
            if not ID_PATTERN.fullmatch(record["id"]):
                raise ValueError(
                    f"{path} was written by an older hubspot-tx (ids by position, not content) "
                    "or by relay --distributed: finish that run with what wrote it, or give "
                    "another --results"
                )
            yield record


def _delivered(record: dict[str, Any]) -> bool:
    """Sent, maybe delivered, or delivered (or maybe) to some recipients: never send it
    again."""
    return (
        record.get("status") == "sent"
        or record.get("category") == "delivery_unknown"
        or bool(record.get("accepted"))
        or bool(record.get("inDoubt"))
    )


class Ledger:
    """Appends results and journal lines, flushed to the OS at once."""

    def __init__(self, results: Path) -> None:
        self.results_path = results
        self.journal_path = results.with_name(results.name + ".journal")
        self._results: IO[str] | None = None
        self._journal: IO[str] | None = None

    def resume(self, *, apply: bool = True) -> Resumed:
        """Read the previous runs; record their in-flight messages as ``delivery_unknown``
        (unless ``apply`` is false: then only read).

        Raises:
            ValueError: the results file is not one, or is from an older id scheme.
        """
        resumed = Resumed()
        answered: Counter[str] = Counter()  # results of runs in which the message was journaled
        for record in _read_lines(self.results_path):
            # Sent, or maybe delivered: never again. Other failures are tried again.
            if _delivered(record):
                resumed.done.add(record["id"])
            if record.get("journaled"):
                answered[record["id"]] += 1
        for record in _read_lines(self.journal_path):
            message_id = record["id"]
            if answered[message_id]:
                answered[message_id] -= 1
            elif message_id not in resumed.done:  # started, no result: the run died mid-send
                resumed.unknown.append(message_id)
                resumed.done.add(message_id)
        if resumed.unknown and apply:
            self.open()
            for message_id in resumed.unknown:
                self.result(
                    {
                        "id": message_id,
                        "status": "failed",
                        "category": "delivery_unknown",
                        "reply": "in flight when a previous run was interrupted: not resent",
                        "journaled": True,  # answers its journal line
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
