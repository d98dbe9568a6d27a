"""Where ``hubspot-tx relay`` reads messages: a Maildir, an mbox, a folder of .eml, or stdin.

Each message gets a stable id (its place in its source), so that ``--resume`` recognises it on
the next run whatever its headers say.
"""

from __future__ import annotations

import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["describe", "read_messages"]


def describe(source: str) -> str:
    """What kind of source ``source`` is (raises ``ValueError`` if none)."""
    if source == "-":
        return "stdin"
    path = Path(source)
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return "maildir"
        return "eml-folder"
    if path.is_file():
        return "mbox" if path.read_bytes()[:5] == b"From " else "eml"
    raise ValueError(f"{source}: no such file or directory")


def read_messages(source: str) -> Iterator[tuple[str, bytes]]:
    """``(id, raw message)`` for every message of ``source``, read lazily."""
    kind = describe(source)
    if kind == "stdin":
        yield "stdin:0", sys.stdin.buffer.read()
    elif kind == "eml":
        yield f"eml:{Path(source).resolve()}", Path(source).read_bytes()
    elif kind == "eml-folder":
        for path in sorted(Path(source).glob("*.eml")):
            yield f"eml:{path.resolve()}", path.read_bytes()
    elif kind == "maildir":
        box = mailbox.Maildir(source, factory=None, create=False)
        for key in sorted(box.iterkeys()):
            yield f"maildir:{Path(source).resolve()}:{key}", box.get_bytes(key)
    else:
        box_ = mailbox.mbox(source, factory=None, create=False)
        for index, key in enumerate(box_.iterkeys()):
            yield f"mbox:{Path(source).resolve()}:{index}", box_.get_bytes(key)
