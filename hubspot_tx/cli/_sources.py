"""Where ``hubspot-tx relay`` reads messages: a Maildir, an mbox, a folder of .eml, or stdin.

Everything is read as a stream, one message at a time: a 400 MB mbox costs the memory of its
largest message, and its first message is sent before the rest is read. Stdin is read as what
it is: an mbox if it begins with ``From ``, else one message (refused if it does not begin
with a header field).

Each message gets an id that identifies it by its content (:class:`MessageIds`), not by its
place, so ``--resume`` recognises it however its source was reordered or edited.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import mailbox
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "ID_PATTERN",
    "MessageIds",
    "aread_messages",
    "describe",
    "ensure_message_id",
    "read_messages",
    "stop_reading_stdin",
]

# A header field's first line (RFC 5322 §2.2: printable ASCII but ":", then ":"; obsolete
# syntax allows blanks before the colon).
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_MBOX = b"From "
_BOM = b"\xef\xbb\xbf"
ID_PATTERN = re.compile(r"sha256:[0-9a-f]{32}:[0-9]+")
"""The relay's message ids: a content hash and the occurrence of that content in the run."""


def _is_message(first_line: bytes) -> bool:
    return _FIELD.match(first_line) is not None


def _is_eml(entry: os.DirEntry[str]) -> bool:
    return entry.name.lower().endswith(".eml") and entry.is_file()


def _eml_files(folder: Path) -> list[str]:
    """The folder's ``*.eml`` files (any case), sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(entry.path for entry in entries if _is_eml(entry))


def describe(source: str) -> str:
    """What kind of source ``source`` is (raises ``ValueError`` if none, or an empty folder)."""
    if source == "-":
        return "stdin"
    path = Path(source)
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return "maildir"
        with os.scandir(path) as entries:
            has_eml = any(_is_eml(entry) for entry in entries)
        if not has_eml:
            others = sum(1 for _ in path.iterdir())
            raise ValueError(
                f"{source}: no .eml files in this folder ({others} other entries); relay takes "
                "a folder of *.eml files, a Maildir (with cur/ and new/), an mbox file, or - "
                "for stdin"
            )
        return "eml-folder"
    if path.is_file():
        if path.name.lower().endswith(".eml"):
            # One message, as in a folder of .eml files, even saved with its mbox "From "
            # line: its body's "From " lines are not escaped as an mbox's are.
            return "eml"
        with path.open("rb") as file:
            return "mbox" if _unbom(file.read(len(_BOM + _MBOX))).startswith(_MBOX) else "eml"
    raise ValueError(f"{source}: no such file or directory")


class _MboxSplitter:
    """Cuts an mbox into messages, line by line (as :class:`mailbox.mbox` does: every line
    that begins with ``From `` starts a message; the blank line before it is the separator)."""

    def __init__(self) -> None:
        self._lines: list[bytes] | None = None

    def line(self, line: bytes) -> bytes | None:
        """Take one line; return the message it ended, if any."""
        if line.startswith(_MBOX):
            done = self.end()
            self._lines = []
            return done
        if self._lines is not None:
            self._lines.append(line)
        return None

    def end(self) -> bytes | None:
        """The last message (at the end of the input)."""
        lines, self._lines = self._lines, None
        if lines is None:
            return None
        if lines and lines[-1] in (b"\n", b"\r\n"):
            lines.pop()  # the separator, not part of the message
        return b"".join(lines)


def _unbom(data: bytes) -> bytes:
    """``data`` without a leading UTF-8 byte-order mark: Windows editors and some mail
    exporters save .eml files with one, which is no part of the message."""
    return data.removeprefix(_BOM)


def _split_mbox(lines: Iterable[bytes]) -> Iterator[bytes]:
    splitter = _MboxSplitter()
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return
    for line in itertools.chain((_unbom(first),), lines):
        if (message := splitter.line(line)) is not None:
            yield message
    if (message := splitter.end()) is not None:
        yield message


def _stdin_kind(first_line: bytes) -> str:
    if first_line.startswith(_MBOX):
        return "mbox"
    if _is_message(first_line):
        return "message"
    if not first_line:
        raise ValueError("stdin is empty: pipe one message or an mbox into `relay -`")
    raise ValueError(
        "stdin is neither an mbox (which begins with 'From ') nor one message (which begins "
        "with a header field such as 'From:'): give files or folders as SOURCE instead"
    )


def _read_stdin(stream: BinaryIO) -> Iterator[bytes]:
    lines = iter(stream)
    first = _unbom(next(lines, b""))
    if _stdin_kind(first) == "mbox":
        yield from _split_mbox(itertools.chain((first,), lines))
    else:
        yield first + stream.read()


def read_messages(source: str) -> Iterator[tuple[str, bytes]]:
    """``(where, raw message)`` for every message of ``source``, read one at a time; ``where``
    names the message's place (``eml:/abs/path``, ``mbox:/abs/path:3`` for the 4th message of
    an mbox, ``maildir:/abs/path:key``, ``stdin:3``)."""
    kind = describe(source)
    if kind == "stdin":
        for index, raw in enumerate(_read_stdin(sys.stdin.buffer)):
            yield f"stdin:{index}", raw
    elif kind == "eml":
        yield f"eml:{Path(source).resolve()}", _unbom(Path(source).read_bytes())
    elif kind == "eml-folder":
        folder = Path(source).resolve()
        for path in _eml_files(folder):
            with open(path, "rb") as file:
                yield f"eml:{path}", _unbom(file.read())
    elif kind == "maildir":
        box = mailbox.Maildir(source, factory=None, create=False)
        for key in sorted(box.iterkeys()):
            yield f"maildir:{Path(source).resolve()}:{key}", box.get_bytes(key)
    else:
        with Path(source).open("rb") as file:
            for index, raw in enumerate(_split_mbox(file)):
                yield f"mbox:{Path(source).resolve()}:{index}", raw


_stdin: asyncio.ReadTransport | None = None  # stdin as the event loop reads it (a pipe)
_stdin_stopped = False


def stop_reading_stdin() -> None:
    """Read no more of stdin (on Ctrl-C): a producer that writes nothing more cannot hold the
    relay up. What was read of the message in progress is dropped."""
    global _stdin_stopped
    _stdin_stopped = True
    if _stdin is not None:
        _stdin.close()  # the reader sees the end of its input


async def _stdin_pipe() -> asyncio.StreamReader | None:
    """Stdin as a stream the event loop reads (so that a signal is never stuck behind a
    blocking read), or ``None`` when it is a regular file (read as a file)."""
    global _stdin
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if stat.S_ISREG(mode):
        return None
    if os.isatty(sys.stdin.fileno()):
        raise ValueError("stdin is a terminal: pipe one message or an mbox into `relay -`")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31)  # a line is as long as it is
    _stdin, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def _aread_stdin() -> AsyncIterator[tuple[str, bytes]]:
    reader = await _stdin_pipe()
    if reader is None:
        for item in read_messages("-"):
            yield item
        return
    try:
        first = _unbom(await reader.readline())
        if _stdin_kind(first) == "message":
            raw = first + await reader.read()
            if not _stdin_stopped:
                yield "stdin:0", raw
            return
        splitter = _MboxSplitter()
        splitter.line(first)
        index = 0
        while (line := await reader.readline()) and not _stdin_stopped:
            if (message := splitter.line(line)) is not None:
                yield f"stdin:{index}", message
                index += 1
        if not _stdin_stopped and (message := splitter.end()) is not None:
            yield f"stdin:{index}", message
    finally:
        if _stdin is not None:
            _stdin.close()


async def aread_messages(source: str) -> AsyncIterator[tuple[str, bytes]]:
    """:func:`read_messages` for the event loop: stdin (a pipe) is read without blocking it."""
    if describe(source) == "stdin":
        async for item in _aread_stdin():
            yield item
        return
    for item in read_messages(source):
        yield item


class MessageIds:
    """Ids that identify messages: ``sha256:<128 bits of the content's SHA-256>:<n>``, where
    ``n`` counts earlier messages of the same content in this run (identical messages stay
    distinct, and interchangeable: which copy is which does not matter)."""

    def __init__(self) -> None:
        self._seen: Counter[bytes] = Counter()

    def __call__(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).digest()[:16]
        occurrence = self._seen[digest]
        self._seen[digest] = occurrence + 1
        return f"sha256:{digest.hex()}:{occurrence}"


# A line break as mail clients show it: CRLF, LF, a lone CR, or "\r\r\n" (a CRLF converted
# twice) as one break.
_BREAK = re.compile(rb"\r*\n|\r")
_MESSAGE_ID = re.compile(rb"message-id[ \t]*:", re.IGNORECASE)
_ANY_MESSAGE_ID = re.compile(rb"(?:\A|[\r\n])message-id[ \t]*:", re.IGNORECASE)
_BLANK_LINE = re.compile(rb"(?:\r*\n|\r(?!\r*\n)){2}")  # two breaks as _BREAK reads them
_FROM = re.compile(rb"from[ \t]*:", re.IGNORECASE)
_FIELD_OR_FOLD = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]")
# A line (after a line break, or the first) that is neither a field nor a folded line nor
# the rest of a line break; a false find only costs the slow path below.
_NOT_A_FIELD = re.compile(rb"(?:\A|[\r\n])(?![\r\n]|[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t])")
_DOMAIN = re.compile(rb"@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)")


def _lines(raw: bytes) -> Iterator[tuple[int, bytes, int]]:
    """Each line's end, its line break, and where the next line starts (read lazily)."""
    after = 0
    for match in _BREAK.finditer(raw):
        after = match.end()
        yield match.start(), match.group(), after
    if after < len(raw):
        yield len(raw), b"", len(raw)  # a last line without a line break


def ensure_message_id(raw: bytes, message_id: str) -> tuple[bytes, str | None]:
    """``raw`` with a ``Message-ID`` field added at the end of its header if it has none (as a
    submission server does, RFC 6409 §8.3), and the id added (``None``: none added).

    The id is ``<message_id-derived local part@the From domain>`` (``hubspot-tx.invalid`` if
    the From field names none), the same on every run: a resent copy keeps its id.
    """
    # The common case first, at C speed: a Message-ID field with no blank line before it.
    found = _ANY_MESSAGE_ID.search(raw)
    if (
        found is not None
        and _BLANK_LINE.search(raw, 0, found.start() + 1) is None
        and _NOT_A_FIELD.search(raw, 0, found.start()) is None
    ):
        return raw, None
    pos = 0
    end: int | None = None  # where the last header line ends
    brk = b"\r\n"
    domain: bytes | None = None
    in_from = False  # in the From field (its first line or a folded one)
    for start, line_break, after in _lines(raw):
        line = raw[pos:start]
        if not line:
            break  # the blank line: end of the header
        if not _FIELD_OR_FOLD.match(line):
            break  # not a field: the header ended, as the receiver's parser reads it
        if _MESSAGE_ID.match(line):
            return raw, None
        in_from = _FROM.match(line) is not None or (in_from and line[:1] in b" \t")
        if in_from and domain is None and (found := _DOMAIN.search(line)):
            domain = found.group(1)
        end, pos = start, after
        brk = line_break or brk
    if end is None:
        return raw, None  # no header at all: not a message the relay can send anyway
    local = message_id.removeprefix("sha256:").replace(":", ".")
    added = f"<{local}@{(domain or b'hubspot-tx.invalid').decode('ascii')}>"
    return raw[:end] + brk + b"Message-ID: " + added.encode("ascii") + raw[end:], added
