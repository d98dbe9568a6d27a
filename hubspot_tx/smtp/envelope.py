"""Turning what the caller gives into an SMTP envelope and wire-ready data (pure functions).

:func:`prepare_for_wire` is the one place a message is made ready for the wire: line endings
normalised to CRLF first (a bare LF, a bare CR and a doubled ``\r\r\n`` each count as one line
break, as mail clients display them), an mbox ``From`` line dropped, then the header block split,
scanned and checked, the ``Bcc`` header removed (its recipients stay in the envelope, as RFC 5322
section 3.6.3 intends), and the data dot-stuffed. Only the header block is parsed; the body is
never decoded.
"""

from __future__ import annotations

import email.generator
import email.policy
import inspect
import io
import re
from collections.abc import Iterable
from email.headerregistry import BaseHeader
from email.message import EmailMessage, Message
from email.utils import getaddresses
from typing import NamedTuple

import msgspec

from .._exceptions import InvalidMessageError
from .outcome import InvalidReason as Why

__all__ = [
    "Envelope",
    "MessageInput",
    "Prepared",
    "crlf",
    "dot_stuff",
    "needs_smtputf8",
    "prepare",
    "prepare_for_wire",
    "strip_bcc",
]

# Bcc, and Resent-Bcc (RFC 5322 3.6.6: as hidden; smtplib.send_message removes both).
_BCC_FIELD = re.compile(rb"(?im)^(?:resent-)?bcc[ \t]*:.*(?:\r?\n[ \t].*)*(?:\r?\n|$)")
# CR* LF (CRLF, LF, and the CR CR LF of a CRLF file converted again), or a bare CR.
_LINE_ENDINGS = re.compile(rb"\r*\n|\r")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BAD_ADDRESS = re.compile(r"[\x00-\x20\x7f<>]")  # controls (CR, LF...), spaces, brackets
MAX_LINE = 998  # RFC 5322 2.1.1: at most 998 bytes per line


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """An explicit SMTP envelope around a complete RFC 5322 message.

    Attributes:
        mail_from: the reverse path (``MAIL FROM``); ``""`` for a null sender.
        rcpt_to: the recipients (``RCPT TO``), whatever the headers say.
        data: the full message, headers and body. A ``Bcc`` header in it is removed.
        key: your id for this message, echoed in its outcome (default: its Message-ID).
    """

    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    key: str | None = None


MessageInput = bytes | bytearray | memoryview | EmailMessage | Message | Envelope
"""What the relay accepts: raw RFC 5322 bytes, an ``EmailMessage``, or an :class:`Envelope`."""


class Prepared(NamedTuple):
    """A message ready for the wire (internal)."""

    env: Envelope  # ``data``: CRLF line endings, no Bcc header, not dot-stuffed
    message_id: str | None
    stuffed: bytes  # ``env.data`` as sent after DATA (without the final ".")
    utf8: bool  # a non-ASCII address or header: needs SMTPUTF8
    eight_bit: bool  # a byte over 127 anywhere: needs 8BITMIME (BODY=8BITMIME)

    @property
    def size(self) -> int:
        """The message's size for SIZE= (RFC 1870: CRLF line endings, before dot-stuffing)."""
        return len(self.env.data)


def crlf(data: bytes) -> bytes:
    """``data`` with every line break as CRLF: a bare LF, a bare CR, and CR CR LF (a CRLF file
    converted again) each count as one."""
    # ``find``, not ``in``: ``in`` first tries its operand as an int, and formats the error.
    if data.find(b"\r") < 0:  # LF only (``EmailMessage.as_bytes()``): one C pass
        return data.replace(b"\n", b"\r\n")
    if len(data) > _SPLIT_UP_TO:  # no copy of each line of a large message
        if data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n"):
            return data
    elif data.find(b"\n") >= 0:
        rest = b"".join(data.split(b"\r\n"))
        if rest.find(b"\r") < 0 and rest.find(b"\n") < 0:  # CRLF only: the common case
            return data
    return _LINE_ENDINGS.sub(b"\r\n", data)


def _split(data: bytes) -> tuple[bytes, bytes]:
    """The header block (with the empty line that ends it) and the body of CRLF ``data``.

    As a receiver's parser reads it: the block also ends at the first line that is neither a
    header field nor a folded line (a message that lost its empty line): the "Cc:" lines
    after such a line are body, not recipients."""
    end = data.find(b"\r\n\r\n")
    if (  # the common case
        end >= 0
        and _FIELD_START.match(data) is not None
        and _NOT_A_FIELD.search(data, 0, end + 1) is None
    ):
        return data[: end + 4], data[end + 4 :]
    end = _HEADER_LINES.match(data).end()  # type: ignore[union-attr]  # matches "" at least
    if data.startswith(b"\r\n", end):
        end += 2
    return data[:end], data[end:]


def _separated(data: bytes) -> tuple[bytes, bytes]:
    """CRLF ``data`` and its header block, which ends with an empty line if a body follows: a
    header block that ended at a line that is no field (a message that lost its empty line)
    gets one, so that no receiver reads the lines after it as header fields (a ``Bcc`` one,
    a parser that reads on past a ``:`` or ``From `` line, as Python's does)."""
    head, body = _split(data)
    if head and body and not head.endswith(b"\r\n\r\n"):
        head += b"\r\n"
        data = head + body
    return data, head


# A header field's first line (RFC 5322 2.2; obsolete syntax allows blanks before the colon),
# or a folded line.
_FIELD_OR_FOLD = rb"(?:[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t])"
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_NOT_A_FIELD = re.compile(rb"\n(?!" + _FIELD_OR_FOLD + rb")")
_HEADER_LINES = re.compile(rb"(?:" + _FIELD_OR_FOLD + rb"[^\r\n]*(?:\r\n|\Z))*")


def _normalised(data: bytes) -> bytes:
    """``data`` with CRLF line endings and no mbox ``From`` line."""
    data = crlf(data)
    # An mbox separator line ("From sender date"), not a header field (nor "From :").
    if data.startswith(b"From ") and not data[5:].lstrip(b" \t").startswith(b":"):
        end = data.find(b"\r\n")
        data = data[end + 2 :] if end >= 0 else b""
    return data


def strip_bcc(data: bytes) -> bytes:
    """``data`` without its ``Bcc`` (and ``Resent-Bcc``) header field(s), folded lines
    included (CRLF endings)."""
    return _without_bcc(crlf(data), None)[0]


# One plain address, or Name <addr>; an obsolete source route (RFC 5322 4.4: <@relay:addr>)
# is not part of the address (nor of what the receiver reads as its recipient).
_SIMPLE = re.compile(r"[^\"(),;:\\<>]*(?:<(?:@[^<>\s:]*:)?([^<>\s]+)>)?\s*")


def _addresses(values: Iterable[object]) -> list[str]:
    found: list[str] = []
    for value in values:
        text = str(value)
        match = _SIMPLE.fullmatch(text)
        if match is not None:  # the common case, without email.utils' general parser
            address = match.group(1) or text.strip()
            if address and " " not in address:
                found.append(address)
                continue
        if "=?" in text:  # encoded words: a raw comma in one (as some clients write) is no
            # separator for the receiver's parser; email.utils would split the address there
            if ":" not in text:  # no group: a ";" separates addresses (as Outlook writes
                text = text.replace(";", ",")  # them, and as email.utils reads them below)
            try:
                header = _HEADER_FACTORY("to", text)
                found.extend(a.addr_spec for a in header.addresses if a.username)
                continue
            except Exception:  # noqa: S110  # unparsable: the general parser decides
                pass
        found.extend(addr for _, addr in getaddresses([text], **_LENIENT) if addr)
    return found


# Python 3.13 (and 3.12.6, 3.11.10) read a list strictly: one stray "," or ";" (a trailing
# comma, a comment holding one) and the whole field is read as no address, so its recipients
# would silently not be sent to. Lists are read as every version read them before.
_LENIENT = {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}


_HEADER_FACTORY = email.policy.default.header_factory


_NONE: list[str] = []  # never appended to


class _Fields(dict[str, list[str]]):
    """The few header fields an envelope needs, scanned from raw bytes (a fraction of the cost
    of the ``email`` parser, which builds every field); ``get_all`` / ``get`` as on Message."""

    def get_all(self, name: str, default: list[str]) -> list[str]:
        return super().get(name.lower(), default)

    def get(self, name: str, default: object = None) -> str | None:  # type: ignore[override]
        values = super().get(name.lower())
        return values[0] if values else None


_WANTED_FIELD = re.compile(
    rb"(?im)^(from|sender|to|cc|bcc|resent-bcc|message-id)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
)


def _scan_headers(head: bytes) -> _Fields:
    """Unfold the header block (RFC 5322 2.2.3) and keep the fields an envelope needs."""
    found = _Fields()
    keys = _KEYS
    for name, value in _WANTED_FIELD.findall(head):
        if value.find(b"\n") >= 0:  # folded
            value = b" ".join(part.strip() for part in value.split(b"\n"))
        else:
            value = value.strip()
        key = keys.get(name) or name.lower().decode()
        text = value.decode("utf-8", "surrogateescape")
        if key in found:
            found[key].append(text)
        else:
            found[key] = [text]
    return found


# The usual spellings of the wanted field names, decoded once (others: ``lower().decode()``).
_KEYS = {
    spelling.encode(): spelling.lower()
    for spelling in (
        *("From", "Sender", "To", "Cc", "Bcc", "Resent-Bcc", "Message-ID", "Message-Id"),
        *("from", "sender", "to", "cc", "bcc", "resent-bcc", "message-id"),
        *("FROM", "SENDER", "TO", "CC", "BCC", "RESENT-BCC", "MESSAGE-ID"),
    )
}


class _Generator(email.generator.BytesGenerator):
    """BytesGenerator, minus most of its cost: a header set through the API (a header object,
    not source text kept from a parsed message) that needs no folding and no encoding (ASCII,
    one line, at most 78 characters, as most are) is written as it is; the others go through
    the policy's folding as before. The output is the same byte for byte."""

    def _write_headers(self, msg: Message) -> None:
        fp, fold = self._fp, self.policy.fold_binary  # type: ignore[attr-defined,union-attr]
        for name, value in msg.raw_items():
            line = f"{name}: {value}"
            if (
                isinstance(value, BaseHeader)
                and value
                and value == value.strip()  # the policy drops such spaces: let it
                and len(line) <= _FOLD_AT
                and line.isascii()
                and "\r" not in line
                and "\n" not in line
            ):
                fp.write(line.encode() + b"\r\n")
            else:
                fp.write(fold(name, value))
        self.write(self._NL)  # type: ignore[attr-defined]


_FOLD_AT = 78
_SMTP_POLICY = email.policy.SMTP  # linesep CRLF already
_SMTPUTF8_POLICY = email.policy.SMTPUTF8  # the same, with UTF-8 headers (no encoded words)
_COMPAT_POLICY = email.policy.compat32.clone(linesep="\r\n")


def _flatten(message: Message) -> bytes:
    buf = io.BytesIO()
    if isinstance(message, EmailMessage):
        # A message built for SMTPUTF8 keeps its UTF-8 addresses: RFC 2047 words are not
        # allowed inside an address, and the server is asked for SMTPUTF8 instead.
        policy = _SMTPUTF8_POLICY if getattr(message.policy, "utf8", False) else _SMTP_POLICY
        if message.policy.linesep in ("\n", "\r\n"):
            _Generator(buf, policy=policy).flatten(message)
        else:
            email.generator.BytesGenerator(buf, policy=policy).flatten(message)
    else:
        email.generator.BytesGenerator(buf, policy=_COMPAT_POLICY).flatten(message)
    return buf.getvalue()


def prepare(message: MessageInput, *, key: str | None = None) -> tuple[Envelope, str | None]:
    """The envelope to send ``message`` with, and its Message-ID.

    Without an explicit :class:`Envelope`, the sender comes from ``Sender`` or ``From`` and the
    recipients from ``To``, ``Cc`` and ``Bcc`` (duplicates removed, order kept).

    Raises:
        InvalidMessageError: no recipients, no sender, or not a message at all.
    """
    prepared = prepare_for_wire(message, key=key)
    return prepared.env, prepared.message_id


def prepare_for_wire(message: MessageInput, *, key: str | None = None) -> Prepared:
    """:func:`prepare`, and the data as it goes on the wire, with what the server must offer
    to take it (SMTPUTF8, 8BITMIME). The header block is split and scanned once per message.

    Raises:
        InvalidMessageError: with its ``reason``; nothing of the message may be sent.
        TypeError: not a message type at all.
    """
    if isinstance(message, Envelope):
        if not isinstance(message.mail_from, str):
            raise InvalidMessageError("Envelope.mail_from must be a str", reason=Why.NOT_A_MESSAGE)
        if isinstance(message.rcpt_to, str) or not all(
            isinstance(r, str) and r for r in message.rcpt_to
        ):
            raise InvalidMessageError(
                "Envelope.rcpt_to must be a tuple of addresses", reason=Why.NOT_A_MESSAGE
            )
        if not isinstance(message.data, bytes):
            raise InvalidMessageError("Envelope.data must be bytes", reason=Why.NOT_A_MESSAGE)
        if not message.rcpt_to:
            raise InvalidMessageError("the envelope has no recipients", reason=Why.NO_RECIPIENTS)
        data = _normalised(message.data)
        data, head = _without_bcc(*_separated(data))
        message_id = _clean_id(_scan_headers(head).get("Message-ID"))
        env = Envelope(
            mail_from=message.mail_from,
            rcpt_to=message.rcpt_to,
            data=data,
            key=message.key if message.key is not None else key,
        )
        return _ready(env, message_id, head)
    headers: Message | _Fields
    if isinstance(message, Message):
        data = _normalised(_flatten(message))
        headers = message
        data, head = _without_bcc(*_separated(data))
    elif isinstance(message, bytes | bytearray | memoryview):
        data = _normalised(bytes(message))
        data, head = _separated(data)
        if not head.strip():
            raise InvalidMessageError(
                "empty message, or one that does not begin with a header field",
                reason=Why.NOT_A_MESSAGE,
            )
        headers = _scan_headers(head)
        if "bcc" in headers or "resent-bcc" in headers:
            data, head = _without_bcc(data, head)
    else:
        raise TypeError(
            f"cannot send a {type(message).__name__}: give bytes, an EmailMessage or an Envelope"
        )
    if isinstance(headers, _Fields):  # the field names are lowercase keys
        fields: dict[str, list[str]] = headers
        # dict's own get (C), not _Fields.get: no Python call per field
        to, cc = dict.get(fields, "to", _NONE), dict.get(fields, "cc", _NONE)
        recipients = _addresses([*to, *cc, *dict.get(fields, "bcc", _NONE)])
        sender: list[str] = dict.get(fields, "sender", _NONE)
        if not sender:
            sender = dict.get(fields, "from", _NONE)
        senders = _addresses(sender)
    else:
        recipients = _addresses(v for f in ("To", "Cc", "Bcc") for v in headers.get_all(f, []))
        senders = _addresses(headers.get_all("Sender", []) or headers.get_all("From", []))
    if len(recipients) > 1:
        recipients = list(dict.fromkeys(recipients))  # duplicates removed, order kept
    if not senders:
        raise InvalidMessageError(
            "the message has no From (or Sender) address", reason=Why.NO_SENDER
        )
    if not recipients:
        raise InvalidMessageError(
            "the message has no To, Cc or Bcc recipients", reason=Why.NO_RECIPIENTS
        )
    message_id = _clean_id(headers.get("Message-ID"))
    env = Envelope(
        mail_from=senders[0],
        rcpt_to=tuple(recipients),
        data=data,
        key=key if key is not None else message_id,
    )
    return _ready(env, message_id, head)


def _ready(env: Envelope, message_id: str | None, head: bytes) -> Prepared:
    utf8 = _checked(env, head, message_id)
    return Prepared(env, message_id, _stuff(env.data), utf8, not env.data.isascii())


def _without_bcc(data: bytes, head: bytes | None) -> tuple[bytes, bytes]:
    """``data`` without its Bcc field(s), and its header block (``head``, when known)."""
    head, body = _split(data) if head is None else (head, data[len(head) :])
    if b"bcc" not in head.lower():
        return data, head
    head = _BCC_FIELD.sub(b"", head)
    return head + body, head


def _checked(env: Envelope, head: bytes, message_id: str | None) -> bool:
    """Refuse, before any byte is sent, what no SMTP server may receive; return whether the
    message needs SMTPUTF8 (a non-ASCII address or header)."""
    try:
        return _check(env, head)
    except InvalidMessageError as exc:  # its outcome still carries the caller's key
        exc.key, exc.message_id = env.key, message_id
        raise


def _check(env: Envelope, head: bytes) -> bool:
    addresses = env.mail_from + "".join(env.rcpt_to)
    if _BAD_ADDRESS.search(addresses):
        for address in (env.mail_from, *env.rcpt_to):
            if _BAD_ADDRESS.search(address):
                raise InvalidMessageError(
                    f"invalid address {address!r} (control characters, spaces or angle brackets)",
                    reason=Why.BAD_ADDRESS,
                )
    ascii_addresses = addresses.isascii()
    if not ascii_addresses:
        for address in (env.mail_from, *env.rcpt_to):
            try:
                address.encode()
            except UnicodeEncodeError:  # bytes of a legacy charset, kept as surrogate escapes
                shown = address.encode("utf-8", "surrogateescape").decode("latin-1")
                raise InvalidMessageError(
                    f"the address {shown!r} is not UTF-8 (a legacy charset's bytes); "
                    "an address may hold non-ASCII characters only in UTF-8 (RFC 6531)",
                    reason=Why.ADDRESS_NOT_UTF8,
                ) from None
    if env.mail_from and "@" not in env.mail_from:
        raise InvalidMessageError(
            f"invalid sender address {env.mail_from!r}", reason=Why.BAD_ADDRESS
        )
    for rcpt in env.rcpt_to:
        if "@" not in rcpt:
            raise InvalidMessageError(f"invalid recipient address {rcpt!r}", reason=Why.BAD_ADDRESS)
    if env.data.find(b"\x00") >= 0:
        raise InvalidMessageError("the message contains NUL bytes", reason=Why.NUL_BYTE)
    if _has_long_line(env.data):
        raise InvalidMessageError(
            f"a line of the message is longer than {MAX_LINE} bytes", reason=Why.LINE_TOO_LONG
        )
    return not (ascii_addresses and head.isascii())


def _has_long_line(data: bytes) -> bool:
    """Whether a line of CRLF ``data`` is longer than :data:`MAX_LINE` bytes.

    A window at a time, not a line at a time: the last LF within ``MAX_LINE + 2`` bytes of a
    line's start ends every line before it in time; none there, and that line is too long.
    Each step moves past the window before (a 2 KB message takes two or three ``rfind``s, in
    C; no copy, no regex)."""
    start, end, window = 0, len(data), MAX_LINE + 2
    while end - start > MAX_LINE:
        lf = data.rfind(b"\n", start, start + window)
        if lf < 0:
            return True
        start = lf + 1
    return False


_SPLIT_UP_TO = 256 * 1024


def needs_smtputf8(env: Envelope) -> bool:
    """Whether the message can only be sent to a server offering SMTPUTF8 (RFC 6531): a
    non-ASCII address or header."""
    if not (env.mail_from + "".join(env.rcpt_to)).isascii():
        return True
    return not _split(env.data)[0].isascii()


def _clean_id(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isascii():  # a legacy charset's bytes: no lone surrogates in a key
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text or None


def dot_stuff(data: bytes) -> bytes:
    """``data`` as sent after DATA: CRLF line endings (see :func:`crlf`), leading dots doubled,
    ending in CRLF (the terminating ``.\\r\\n`` is not included)."""
    return _stuff(crlf(data))


def _stuff(data: bytes) -> bytes:
    """:func:`dot_stuff` for data already CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    # ``rfind``: faster than ``find`` for a two-byte needle in CPython's fastsearch.
    if data.rfind(b"\n.") >= 0 or data.startswith(b"."):
        data = _LEADING_DOT.sub(b"..", data)
    return data
