"""What the inspection API filters and searches on, read once when a message arrives, and the
posting lists that let a listing or a search cost what its page costs, not what the inbox holds.

Search keeps its meaning (a case-insensitive substring of subject, envelope sender and
recipients, and Message-ID): a query of three characters or more looks only at the messages
holding its rarest trigram, and every candidate is checked against the query itself.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import getaddresses
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ._state import StoredMessage

__all__ = ["Headers", "MessageIndex", "chunks", "clean_text", "read_headers", "search_text"]

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_parser = BytesHeaderParser(policy=default)


class Headers(NamedTuple):
    """The headers the inbox lists, decoded (encoded words included) as ``policy.default``."""

    subject: str | None
    from_: str | None
    to: tuple[str, ...]
    """The addresses of ``To`` and ``Cc``."""


# The standard library's structured-header parser raises on some hostile values (``To: <``,
# ``To: "``: IndexError in Python 3.11-3.13). Such a message must still be stored and listed, so
# a header that cannot be parsed falls back to its raw text (addresses: lenient ``getaddresses``).
_PARSE_ERRORS = (IndexError, ValueError, TypeError, AttributeError)


def _raw(parsed: Message, name: str) -> list[str]:
    return [str(v) for k, v in parsed.raw_items() if k.lower() == name.lower()]


def _text(parsed: Message, name: str) -> str | None:
    try:
        value = parsed[name]
    except _PARSE_ERRORS:
        raw = _raw(parsed, name)
        return raw[0] if raw else None
    return None if value is None else str(value)


def _addresses(parsed: Message, *names: str) -> tuple[str, ...]:
    found: list[str] = []
    for name in names:
        try:
            for header in parsed.get_all(name) or ():
                found.extend(str(a.addr_spec) for a in getattr(header, "addresses", ()))
        except _PARSE_ERRORS:
            found.extend(addr for _, addr in getaddresses(_raw(parsed, name)) if addr)
    return tuple(found)


# The fast path: header lines of the plain kind almost every message has (ASCII, no encoded
# word, no quoting or comment, addresses as ``name <addr>`` or ``addr``). Anything else goes
# to ``policy.default`` (~0.1-1 ms a message: too slow for every arrival).
_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*(.*)", re.S)
_PLAIN = re.compile(r"[\x20-\x7e]*")
_ADDR = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_MAILBOX = re.compile(rf"(?:([A-Za-z0-9_-]+(?: [A-Za-z0-9_-]+)*) <({_ADDR})>|({_ADDR}))")
_LINES = re.compile(r"\r\n|\r|\n")


def _mailboxes(value: str) -> list[tuple[str, str]] | None:
    """``[(rendered, addr-spec)]`` for a plain address list, else ``None``."""
    found: list[tuple[str, str]] = []
    for item in value.split(","):
        match = _MAILBOX.fullmatch(item.strip(" "))
        if match is None:
            return None
        name, addr, bare = match.groups()
        found.append((f"{name} <{addr}>", addr) if addr else (bare, bare))
    return found


def _fast(head: bytes) -> Headers | None:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    fields: list[tuple[str, str]] = []
    for line in _LINES.split(text.rstrip("\r\n")):
        if line[:1] in (" ", "\t"):
            return None  # folded: leave it to the real parser
        match = _FIELD.fullmatch(line)
        if match is None:
            return None
        fields.append((match.group(1).lower(), match.group(2)))
    subject = sender = None
    to: list[str] = []
    for name, value in fields:
        if name not in ("subject", "from", "to", "cc"):
            continue
        if not _PLAIN.fullmatch(value) or "=?" in value or value != value.strip(" "):
            return None
        if name == "subject":
            subject = value if subject is None else subject
            continue
        boxes = _mailboxes(value)
        if boxes is None:
            return None
        if name == "from":
            sender = ", ".join(r for r, _ in boxes) if sender is None else sender
        else:
            to.extend(a for _, a in boxes)
    return Headers(subject, sender, tuple(to))


def clean_text(text: str) -> str:
    """``text`` without the lone surrogates the parser leaves for 8-bit bytes (JSON cannot
    carry them): UTF-8 bytes (an SMTPUTF8 address) read as such, others as U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_headers(data: bytes) -> Headers:
    """Parse the header block only (the body may be megabytes): once per message."""
    end = _HEADER_END.search(data)
    head = data if end is None else data[: end.end()]
    fast = _fast(head) if end is not None else None
    if fast is not None:
        return fast
    parsed = _parser.parsebytes(head)
    subject, sender = _text(parsed, "Subject"), _text(parsed, "From")
    return Headers(
        None if subject is None else clean_text(subject),
        None if sender is None else clean_text(sender),
        tuple(clean_text(a) for a in _addresses(parsed, "To", "Cc")),
    )


def search_text(m: StoredMessage) -> str:
    """What a ``q`` search looks in, lower-cased."""
    return " ".join((m.subject or "", m.mail_from, *m.rcpt_to, m.message_id or "")).lower()


def _trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


class MessageIndex:
    """Seqs (ascending, as messages arrive) by filter value and by search trigram.

    A deletion leaves its seq in the lists (every candidate is looked up, so a stale one is
    skipped); the lists are rebuilt once the stale outnumber the live.
    """

    def __init__(self) -> None:
        self._by_seq: dict[int, StoredMessage] = {}
        self._text: dict[int, str] = {}
        self._postings: dict[tuple[str, str], array[int]] = {}
        self._grams: dict[str, array[int]] = {}  # search trigram -> seqs
        self.counts: Counter[tuple[str, str]] = Counter()
        """Live messages by ``("token", id)`` and ``("campaign", id)``."""
        self._stale = 0

    def __len__(self) -> int:
        return len(self._by_seq)

    def get(self, seq: int) -> StoredMessage | None:
        return self._by_seq.get(seq)

    def text(self, seq: int) -> str:
        return self._text[seq]

    def _post(self, key: tuple[str, str], seq: int) -> None:
        found = self._postings.get(key)
        if found is None:
            self._postings[key] = array("q", (seq,))
        elif found[-1] != seq:
            found.append(seq)

    def add(self, m: StoredMessage) -> None:
        seq = m.seq
        self._by_seq[seq] = m
        text = self._text[seq] = search_text(m)
        grams = self._grams
        for gram in _trigrams(text):  # a set: each once, so a plain append
            found = grams.get(gram)
            if found is None:
                grams[gram] = array("q", (seq,))
            else:
                found.append(seq)
        for rcpt in m.rcpt_to:
            self._post(("recipient", rcpt.lower()), seq)
        if m.message_id is not None:
            self._post(("messageId", m.message_id), seq)
        if m.subject is not None:
            self._post(("subject", m.subject), seq)
        if m.token_id is not None:
            self._post(("tokenId", m.token_id), seq)
            self.counts["token", m.token_id] += 1
        if m.email_campaign_id is not None:
            self._post(("campaignId", m.email_campaign_id), seq)
            self.counts["campaign", m.email_campaign_id] += 1

    def discard(self, seq: int) -> None:
        m = self._by_seq.pop(seq, None)
        if m is None:
            return
        del self._text[seq]
        if m.token_id is not None:
            self.counts["token", m.token_id] -= 1
        if m.email_campaign_id is not None:
            self.counts["campaign", m.email_campaign_id] -= 1
        self._stale += 1
        if self._stale > len(self._by_seq):
            self.rebuild(list(self._by_seq.values()))

    def rebuild(self, messages: Sequence[StoredMessage]) -> None:
        self.clear()
        for m in messages:
            self.add(m)

    def clear(self) -> None:
        self._by_seq.clear()
        self._text.clear()
        self._postings.clear()
        self._grams.clear()
        self.counts.clear()
        self._stale = 0

    def candidates(self, filters: dict[str, str]) -> Sequence[int] | None:
        """The shortest posting list that every match is in (``None``: no filter narrows
        it, look at every message). ``filters`` are already normalised (lower-cased
        recipient and query)."""
        lists: list[Sequence[int]] = []
        for name, value in filters.items():
            if name == "q":
                if len(value) < 3:
                    continue
                lists += [self._grams.get(gram, ()) for gram in _trigrams(value)]
            else:
                lists.append(self._postings.get((name, value), ()))
        return min(lists, key=len) if lists else None


def chunks(
    seqs: Sequence[int], after: int, before: int | None, newest_first: bool, size: int
) -> Iterator[list[int]]:
    """The seqs of an ascending list within ``(after, before)``, in the order asked for, ``size``
    at a time. Each chunk is found again by bisection from the last seq given, so the caller
    may give the event loop back between chunks: the list may lose seqs meanwhile, and seqs
    appended past the window at the start are not walked."""
    lo_seq = after
    hi_seq = before if before is not None else (seqs[-1] + 1 if len(seqs) else after + 1)
    while True:
        lo, hi = bisect_right(seqs, lo_seq), bisect_left(seqs, hi_seq)
        if lo >= hi:
            return
        if newest_first:
            chunk = [seqs[i] for i in range(hi - 1, max(lo, hi - size) - 1, -1)]
            hi_seq = chunk[-1]
        else:
            chunk = [seqs[i] for i in range(lo, min(hi, lo + size))]
            lo_seq = chunk[-1]
        yield chunk
