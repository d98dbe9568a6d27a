"""A small SMTP server of the tests' own (no aiosmtpd, no sandbox code): it speaks just enough
ESMTP, optionally advertises PIPELINING, stores what it accepts, and injects a fault planned per
transaction number, so that the relay's guarantees have a second, independent judge.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from dataclasses import dataclass, field

# Faults, by the transaction (MAIL command) number they strike, counting from 1.
FAULTS = (
    "drop_at_mail",  # close instead of answering MAIL
    "drop_at_rcpt",
    "drop_at_data",  # close instead of answering DATA
    "drop_in_body",  # close after part of the body arrived
    "drop_after_store",  # store, then close without the reply
    "421_at_mail",
    "451_at_rcpt",  # every recipient of the transaction
    "550_first_rcpt",  # only the first recipient
    "451_at_end",  # refuse the message at the final "." (not stored)
    "554_at_end",
    "slow_end",  # store, reply after a delay (past a short command timeout)
)


@dataclass
class FaultServer:
    pipelining: bool = False
    plan: dict[int, str] = field(default_factory=dict)
    slow_seconds: float = 0.5
    chaos: float = 0.0  # probability of a random fault on a transaction not in ``plan``
    seed: int = 0
    keep: bool = True  # store accepted messages (False: only count them, for long soaks)
    data_timeout: float | None = None  # seconds the body may keep the server waiting (421)
    auth: bool = False  # advertise AUTH PLAIN (any credentials accepted)
    auth_454: int = 0  # answer this many AUTH commands 454 (temporary failure) first
    store: list[tuple[str, tuple[str, ...], bytes]] = field(default_factory=list)
    accepted: int = 0
    transactions: int = 0
    data_timeouts: int = 0
    auth_attempts: int = 0
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def _fault(self, transaction: int) -> str:
        if transaction in self.plan:
            return self.plan[transaction]
        if self.chaos and self._random.random() < self.chaos:
            return self._random.choice(FAULTS)
        return ""

    def stored_ids(self) -> Counter[str]:
        ids: Counter[str] = Counter()
        for _, _, data in self.store:
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    ids[line.split(b":", 1)[1].strip().decode()] += 1
                    break
        return ids

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._session, sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 fault-server ESMTP")
        mail_from: str | None = None
        rcpts: list[str] = []
        fault = ""
        while line := await reader.readline():
            command = line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                say("250-fault-server")
                if self.pipelining:
                    say("250-PIPELINING")
                if self.auth:
                    say("250-AUTH PLAIN")
                say("250 SIZE 10485760")
            elif verb == "MAIL":
                self.transactions += 1
                fault = self._fault(self.transactions)
                if fault == "drop_at_mail":
                    return
                if fault == "421_at_mail":
                    say("421 closing")
                    await writer.drain()
                    return
                mail_from, rcpts = command[10:].strip("<> "), []
                say("250 OK")
            elif verb == "RCPT":
                if fault == "drop_at_rcpt":
                    return
                address = command[8:].strip("<> ")
                if fault == "451_at_rcpt":
                    say("451 try later")
                elif fault == "550_first_rcpt" and not rcpts:
                    rcpts.append("")  # remember the refusal, not the address
                    say("550 no such user")
                else:
                    rcpts.append(address)
                    say("250 OK")
            elif verb == "DATA":
                if fault == "drop_at_data":
                    return
                if not [r for r in rcpts if r]:
                    say("554 no valid recipients")
                    continue
                say("354 go ahead")
                await writer.drain()
                body = bytearray()
                while True:
                    try:
                        chunk = await asyncio.wait_for(reader.readline(), self.data_timeout)
                    except TimeoutError:
                        self.data_timeouts += 1
                        say("421 4.4.2 timeout waiting for data")
                        await writer.drain()
                        return
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    body += chunk[1:] if chunk.startswith(b".") else chunk
                    if fault == "drop_in_body" and len(body) > 40:
                        return
                accepted = tuple(r for r in rcpts if r)
                if fault == "451_at_end":
                    say("451 try again")
                elif fault == "554_at_end":
                    say("554 rejected")
                else:
                    assert mail_from is not None
                    self.accepted += 1
                    if self.keep:
                        self.store.append((mail_from, accepted, bytes(body)))
                    if fault == "drop_after_store":
                        return
                    if fault == "slow_end":
                        await asyncio.sleep(self.slow_seconds)
                    say("250 queued")
                mail_from, rcpts, fault = None, [], ""
            elif verb == "RSET":
                mail_from, rcpts, fault = None, [], ""
                say("250 OK")
            elif verb == "NOOP":
                say("250 OK")
            elif verb == "AUTH" and self.auth:
                self.auth_attempts += 1
                if self.auth_454 > 0:
                    self.auth_454 -= 1
                    say("454 4.7.0 Temporary authentication failure")
                else:
                    say("235 2.7.0 Authentication successful")
            elif verb == "QUIT":
                say("221 bye")
                await writer.drain()
                return
            else:
                say("502 not implemented")
            await writer.drain()
