"""An independent judge of what a relay did to a message: the standard library's parser reads
the input and the bytes the server received, and they must have the same header fields (less
Bcc) and the same decoded parts. Nothing here uses the SDK's own normaliser."""

from __future__ import annotations

import email
import email.policy
import inspect
import re
from email.message import Message
from email.utils import getaddresses

_EOL = re.compile(rb"\r\n|\r|\n")
_FOLD = re.compile(r"\r\n|\r|\n")


_OBS_NAME = re.compile(rb"(\A|\r\n|\n|\r)([!-9;-~]+)[ \t]+:")  # at any line start


def parse(data: bytes) -> Message:
    """The stdlib's reading, with two exceptions it does not share: CR CR LF (a CRLF file
    converted again) is one line break, as mail clients display it; and a field name
    followed by spaces before its colon (RFC 5322 4.5's obsolete syntax, ``BCC :``) is that
    field, not the start of the body."""
    data = data.replace(b"\r\r\n", b"\r\n")
    head, sep, body = _split(data)
    data = _OBS_NAME.sub(rb"\1\2:", head) + sep + body
    return email.message_from_bytes(data, policy=email.policy.compat32)


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    match = re.search(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))", data)
    if match is None:
        return data, b"", b""
    return data[: match.start()], match.group(), data[match.end() :]


def _text(value: object) -> str:
    return " ".join(_FOLD.sub(" ", str(value)).split())


def headers(message: Message) -> list[tuple[str, str]]:
    """Every header field but Bcc, in order, unfolded, whitespace collapsed."""
    return [(k.lower(), _text(v)) for k, v in message.raw_items() if k.lower() != "bcc"]


def parts(message: Message) -> list[tuple[str, bytes]]:
    """Every leaf part's content type and decoded content (line endings as LF, no trailing)."""
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        found.append((part.get_content_type(), _EOL.sub(b"\n", content).rstrip(b"\n")))
    return found


def _utf8(address: str) -> str:
    return address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# A stray "," or ";" makes the strict reading (Python 3.13, 3.12.6, 3.11.10) of a whole field
# no address at all; receivers read the addresses that are there, as older versions do.
LENIENT = {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}


def _addresses(message: Message, *names: str) -> list[str]:
    values = [_text(v) for k, v in message.raw_items() if k.lower() in names]
    return [_utf8(a) for _, a in getaddresses(values, **LENIENT) if a]


def envelope(message: Message) -> tuple[str, list[str]]:
    """The sender (Sender, else From) and the recipients (To, Cc, Bcc, each once)."""
    senders = _addresses(message, "sender") or _addresses(message, "from")
    recipients = list(dict.fromkeys(_addresses(message, "to", "cc", "bcc")))
    return (senders[0] if senders else ""), recipients


def longest_line(data: bytes) -> int:
    """The longest line, once CR CR LF, CR and LF are each one line break."""
    return max(len(line) for line in re.split(rb"\r*\n|\r", data))


def not_utf8_address(message: Message) -> bool:
    everyone = [*_raw_addresses(message, "sender", "from"), *_raw_addresses(message, "to", "cc")]
    everyone += _raw_addresses(message, "bcc")
    try:
        for address in everyone:
            address.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _raw_addresses(message: Message, *names: str) -> list[str]:
    values = [_text(v) for k, v in message.raw_items() if k.lower() in names]
    return [a for _, a in getaddresses(values, **LENIENT) if a]


def check_relayed(original: bytes, got_from: str, got_rcpt: list[str], got: bytes) -> None:
    """Assert that ``got`` (what the server received) is ``original`` normalised."""
    before, after = parse(original), parse(got)
    sender, recipients = envelope(before)
    assert got_from == sender, (original, got_from, sender)
    # The order of RCPT commands is free.
    assert sorted(got_rcpt) == sorted(recipients), (original, got_rcpt, recipients)
    assert len(set(got_rcpt)) == len(got_rcpt)  # each once
    assert after.get_all("bcc") is None
    assert re.search(rb"(?im)^bcc[ \t]*:", got.split(b"\r\n\r\n", 1)[0]) is None
    assert headers(after) == headers(before), (original, got)
    assert parts(after) == parts(before)
    assert b"\r\r" not in got
    assert longest_line(got) <= 998
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", got) is None  # CRLF only
