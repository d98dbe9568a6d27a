"""The sandbox's optional persistence: its state written through to one SQLite file, read back
at start (``Sandbox(data_dir=...)``, ``hubspot-tx sandbox --data DIR``).

Memory stays the source of truth while the sandbox runs; every change is written at once (WAL,
one implicit transaction per change), so a restart, or a crash, finds what was accepted.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ..models.single_send import SendResult, SingleSendRequest

if TYPE_CHECKING:
    from ._emails import EmailRecord
    from ._state import SandboxEvent, SandboxState, SendRecord, StoredMessage, TokenRecord

__all__ = ["Store", "private_dir", "private_file"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, campaign_name TEXT NOT NULL,
    email_campaign_id TEXT NOT NULL, create_contact INTEGER NOT NULL, created_at REAL NOT NULL,
    created_by TEXT NOT NULL, salt BLOB NOT NULL, password_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY, received_at REAL NOT NULL, session_id INTEGER NOT NULL,
    token_id TEXT, email_campaign_id TEXT, mail_from TEXT NOT NULL, rcpt_to TEXT NOT NULL,
    data BLOB NOT NULL, message_id TEXT, arrival INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, recipient TEXT NOT NULL,
    email_campaign_id TEXT, created REAL NOT NULL, smtp_id TEXT, send_id TEXT, subject TEXT,
    sent_by_id TEXT, sent_by_created REAL, drop_reason TEXT);
CREATE TABLE IF NOT EXISTS sends (
    status_id TEXT PRIMARY KEY, request BLOB NOT NULL, requested_at REAL NOT NULL,
    result TEXT NOT NULL, duplicate INTEGER NOT NULL, event_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emails (id INTEGER PRIMARY KEY, record BLOB NOT NULL);
"""


def private_dir(path: Path) -> None:
    """Create the data folder for this user only (0700, whatever the umask): it holds token
    password hashes and the CA's key. A folder that exists keeps its mode; its files are 0600.

    Raises:
        PermissionError: the folder exists and another user owns it or may write in it (e.g.
            one made in /tmp by someone else): they could swap the CA's key for theirs, or link
            the database's files to this user's files, which the sandbox would then overwrite.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        found = path.stat()
        if found.st_uid != os.getuid() or found.st_mode & stat.S_IWOTH:
            raise PermissionError(
                f"{path} is not this user's alone (another user owns it or may write in it): "
                "choose a folder of yours for the sandbox's data"
            ) from None
        return
    path.chmod(0o700)  # mkdir's mode is masked by the umask


def private_file(path: Path, content: bytes | None = None) -> None:
    """Make ``path`` (new or kept) readable and writable by this user only, then write
    ``content`` when given."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # a file kept from before, or a permissive umask
        if content is not None:
            file.truncate()
            file.write(content)


class Store:
    """One SQLite database (``sandbox.sqlite3`` in ``data_dir``) mirroring the sandbox's state."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / "sandbox.sqlite3"
        private_dir(self.path.parent)
        # SQLite gives its -wal and -shm files the database file's mode.
        private_file(self.path)
        for journal in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            if journal.exists():  # left by a crash, maybe by an older version
                private_file(journal)
        # The sandbox is single-threaded (one event loop), except for a reset or a read from a
        # test's thread, which the sandbox serialises; autocommit keeps each change durable.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        version = self.meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION).encode())
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: schema version {int(version)}, expected 1")

    def meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()

    # -- loading ----------------------------------------------------------------------------
    def load(self, state: SandboxState) -> None:
        """Fill ``state`` with what was stored; keep its cursor key stable across restarts."""
        from ._emails import EmailRecord
        from ._index import read_headers
        from ._state import ASSIGNED_ID_DOMAIN, SandboxEvent, SendRecord, StoredMessage, TokenRecord

        key = self.meta("cursor_key")
        if key is None:
            self.set_meta("cursor_key", state._cursor_key)
        else:
            state._cursor_key = key
        db = self._db
        for row in db.execute("SELECT * FROM tokens ORDER BY seq"):
            tid, seq, name, campaign, contact, created, by, salt, pw_hash = row
            when = datetime.fromtimestamp(created, UTC)
            record = TokenRecord(seq, tid, name, campaign, bool(contact), when, by, salt, pw_hash)
            state.tokens[tid] = record
        for row in db.execute("SELECT * FROM messages ORDER BY seq"):
            seq, at, session, tid, campaign, mail_from, rcpt, data, mid, arrival = row
            rcpt_to = tuple(msgspec.json.decode(rcpt, type=list[str]))
            headers = read_headers(bytes(data))
            message = StoredMessage(
                seq,
                at,
                session,
                tid,
                campaign,
                mail_from,
                rcpt_to,
                bytes(data),
                mid,
                arrival,
                subject=headers.subject,
                from_header=headers.from_,
                to=headers.to,
                message_id_assigned=mid is not None and mid.endswith(f"@{ASSIGNED_ID_DOMAIN}>"),
            )
            state.messages.append(message)
            if mid is not None:
                state.arrivals[mid] = max(arrival, state.arrivals.get(mid, 0))
        for row in db.execute("SELECT * FROM events ORDER BY seq"):
            seq, eid, kind, rcpt, campaign, created, smtp_id, send_id, subject, sid, sat, drop = row
            sent_by = None if sid is None else (sid, sat)
            state.events.append(
                SandboxEvent(
                    seq,
                    eid,
                    kind,
                    rcpt,
                    campaign,
                    created,
                    smtp_id,
                    send_id,
                    subject,
                    sent_by,
                    drop,
                )
            )
        for status_id, request, at, result, duplicate, event_id in db.execute(
            "SELECT * FROM sends ORDER BY requested_at"
        ):
            decoded = msgspec.json.decode(request, type=SingleSendRequest)
            send = SendRecord(status_id, decoded, at, SendResult(result), bool(duplicate), event_id)
            state.sends[status_id] = send
            send_id = decoded.message.send_id
            if send_id is not None and not send.duplicate:
                state._send_ids[send_id] = status_id
        state.emails.restore(
            msgspec.json.decode(record, type=EmailRecord)
            for (record,) in db.execute("SELECT record FROM emails ORDER BY id")
        )
        # Counters carry on after the largest value stored (message ids are never reused).
        last = self.meta("last_message_seq")
        top = max(int(last) if last else 0, max((m.seq for m in state.messages), default=0))
        state._message_seq = itertools.count(top + 1)
        state._seq = itertools.count(max((t.seq for t in state.tokens.values()), default=0) + 1)
        campaigns = [int(t.email_campaign_id) for t in state.tokens.values()]
        state._campaign_ids = itertools.count(max(campaigns, default=14862037) + 1)

    # -- writing ----------------------------------------------------------------------------
    def save_token(self, t: TokenRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.id,
                t.seq,
                t.campaign_name,
                t.email_campaign_id,
                int(t.create_contact),
                t.created_at.timestamp(),
                t.created_by,
                t.salt,
                t.password_hash,
            ),
        )

    def save_email(self, e: EmailRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO emails VALUES (?, ?)", (e.id, msgspec.json.encode(e))
        )

    def delete_token(self, token_id: str) -> None:
        self._db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))

    def add_message(self, m: StoredMessage, events: Sequence[SandboxEvent]) -> None:
        with self._db:  # one transaction: a message never lands without its events
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.seq,
                    m.received_at,
                    m.session_id,
                    m.token_id,
                    m.email_campaign_id,
                    m.mail_from,
                    msgspec.json.encode(list(m.rcpt_to)),
                    m.data,
                    m.message_id,
                    m.arrival,
                ),
            )
            self.set_meta("last_message_seq", str(m.seq).encode())
            self._add_events(events)

    def delete_messages(self, seqs: list[int] | None) -> None:
        if seqs is None:
            self._db.execute("DELETE FROM messages")
        else:
            self._db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in seqs])

    def add_send(self, r: SendRecord, events: Sequence[SandboxEvent]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO sends VALUES (?, ?, ?, ?, ?, ?)",
                (
                    r.status_id,
                    msgspec.json.encode(r.request),
                    r.requested_at,
                    r.result.value,
                    int(r.duplicate),
                    r.event_id,
                ),
            )
            self._add_events(events)

    def _add_events(self, events: Sequence[SandboxEvent]) -> None:
        self._db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.seq,
                    e.id,
                    e.type,
                    e.recipient,
                    e.email_campaign_id,
                    e.created,
                    e.smtp_id,
                    e.send_id,
                    e.subject,
                    None if e.sent_by is None else e.sent_by[0],
                    None if e.sent_by is None else e.sent_by[1],
                    e.drop_reason,
                )
                for e in events
            ],
        )

    def reset(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            for table in ("tokens", "messages", "events", "sends", "emails"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
