"""The end-to-end demo, against the embedded sandbox: ``python -m hubspot_tx.demo``.

It starts the sandbox on loopback (HTTPS and SMTP, one throwaway CA, verification on), then:

1. creates an SMTP token through the REST API;
2. relays a few thousand generated MIME messages through the SMTP pool over STARTTLS, logged in
   with that token, with a live progress line;
3. reads the email events of the relay and checks them against the sandbox's recipient rules;
4. single-sends three emails, one to an address the sandbox's recipient rules refuse, and waits
   for their final statuses;
5. rotates the token's password and shows the old password refused, the new one accepted;
6. prints a summary table.

It exits 0 only if everything it claims happened did happen (checked against the sandbox's
own records), else 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from . import SendResult, SmtpAuthError, SmtpCredentials
from .cli._output import Progress, table

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["main", "run"]

DEFAULT_MESSAGES = 3000


def recipient(i: int) -> str:
    """Mostly customers; every 20th a bouncing address, every 7th one that opens (sandbox rules)."""
    if i % 20 == 0:
        return f"bounce{i}@example.org"
    if i % 7 == 0:
        return f"open{i}@example.org"
    return f"customer{i}@example.org"


def messages(count: int) -> Iterator[bytes]:
    """``count`` order confirmations, ~1 KB each, as raw RFC 5322 bytes."""
    body = b"".join(b"Line %d of your receipt, thank you for shopping.\r\n" % n for n in range(16))
    for i in range(count):
        yield (
            f"From: Shop <orders@shop.example.com>\r\nTo: {recipient(i)}\r\n"
            f"Subject: Order {i} confirmed\r\nMessage-ID: <order-{i}@shop.example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        ).encode() + body


class _Check:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, ok: bool, claim: str) -> None:
        print(f"  {'ok ' if ok else 'FAIL'} {claim}", flush=True)
        if not ok:
            self.failures.append(claim)


async def run(
    count: int = DEFAULT_MESSAGES, *, prepare: Callable[[Sandbox], None] | None = None
) -> int:
    """Run the demo; return the exit code. ``prepare`` may arm faults (used by its test)."""
    # Imported here: without the sandbox extra, its ImportError (with the install line) is what
    # the CLI prints, as one line.
    from .sandbox import Sandbox

    check = _Check()
    started = time.perf_counter()
    async with Sandbox(pending_seconds=0.1, processing_seconds=0.2) as sb:
        if prepare is not None:
            prepare(sb)
        print(f"sandbox: REST {sb.https_url}, SMTP {sb.host}:{sb.smtp_port} (STARTTLS)")
        async with sb.client(https=True) as hs:
            print("1. SMTP token")
            token = await hs.smtp_tokens.create(campaign_name="Order confirmations")
            check(
                token.id in {t.id async for t in hs.smtp_tokens.list()},
                f"created token {token.id} (password shown once: {token.password})",
            )

            print(f"2. relay {count} messages over STARTTLS")
            progress = Progress("   relay", enabled=True)
            async with sb.smtp_pool(token, max_connections=8) as pool:
                relay = pool.send_many(
                    messages(count),
                    progress=lambda s: progress.update(s.done, sum(s.failed.values())),
                )
                outcomes = Counter(
                    [o.category.value if o.category else "sent" async for o in relay]
                )
            progress.close()
            summary = relay.summary
            stored = Counter(m.message_id for m in sb.state.messages)
            check(outcomes["sent"] == count, f"{outcomes['sent']}/{count} relayed messages sent")
            check(
                len(stored) == count and set(stored.values()) == {1},
                f"the SMTP server holds {len(stored)} distinct messages, each once",
            )

            print("3. what happened after the relay (email events)")
            await asyncio.sleep(4 * sb.state.event_step)  # the last events' time comes
            campaign = token.email_campaign_id
            check(campaign is not None, "the token has its email campaign")
            states = await hs.events.outcomes(campaign or "")
            events = Counter(o.state.value for o in states.values())
            bounced = sum(1 for i in range(count) if i % 20 == 0)
            opened = sum(1 for i in range(count) if i % 7 == 0 and i % 20 != 0)
            print(f"     per recipient: {dict(sorted(events.items()))}")
            check(
                events
                == Counter(
                    {"BOUNCE": bounced, "OPEN": opened, "DELIVERED": count - bounced - opened}
                ),
                f"events: {count - bounced} delivered ({opened} opened), {bounced} bounced",
            )

            print("4. single-sends")
            recipients = ["ada@example.org", "grace@example.org", "bounced@example.org"]
            statuses = [await hs.single_send.send(email_id=1001, to=r) for r in recipients]
            finals = [await hs.send_status.wait(s, timeout=30) for s in statuses]
            results = [f.send_result for f in finals]
            for recipient, final in zip(recipients, finals, strict=True):
                print(f"     {recipient:<22} {final.status} / {final.send_result}")
            check(
                results == [SendResult.SENT, SendResult.SENT, SendResult.PREVIOUSLY_BOUNCED],
                "two sent, one refused by a recipient rule",
            )
            # Single-send events are keyed by the email's campaign id, not by its email id.
            campaign_ids = await hs.marketing_emails.campaign_ids(1001)
            await asyncio.sleep(4 * sb.state.event_step)
            sends = await hs.events.outcomes(campaign_ids[0])
            print(f"     email 1001 -> campaign {campaign_ids[0]}")
            check(
                {r: o.state.value for r, o in sends.items()}
                == {
                    "ada@example.org": "DELIVERED",
                    "grace@example.org": "DELIVERED",
                    "bounced@example.org": "DROPPED",
                },
                "their events, found by the email's campaign id",
            )

            print("5. password rotation")
            rotated = await hs.smtp_tokens.reset_password(token.id)
            async with sb.smtp_pool(token) as stale:
                try:
                    await stale.send(next(messages(1)))
                    refused = False
                except SmtpAuthError:
                    refused = True
            check(refused, "the old password is refused (535)")
            async with sb.smtp_pool(SmtpCredentials.from_token(rotated)) as fresh:
                outcome = await fresh.send(next(messages(1)))
            check(outcome.ok, "the new password is accepted")

    elapsed = time.perf_counter() - started
    print("\nsummary")
    rows = [{"what": f"relay: {k}", "count": v} for k, v in sorted(outcomes.items())]
    rows += [{"what": f"events: {k.lower()}", "count": v} for k, v in sorted(events.items())]
    rows += [
        {"what": f"single-send: {r}", "count": n}
        for r, n in sorted(Counter(str(x) for x in results).items())
    ]
    rows += [
        {"what": "relay throughput (msg/s)", "count": f"{summary.done / summary.elapsed:,.0f}"},
        {"what": "total time (s)", "count": f"{elapsed:.2f}"},
    ]
    table(rows, ["what", "count"], sys.stdout)
    if check.failures:
        print(f"\ndemo FAILED: {len(check.failures)} claim(s) did not hold", file=sys.stderr)
        return 1
    print("\ndemo OK")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point: the same as ``hubspot-tx demo`` (and its one-line errors)."""
    from .cli import main as cli_main

    sys.exit(cli_main(["demo", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
