"""End-to-end demo against the embedded sandbox: ``python -m hubspot_tx.demo``.

Starts the sandbox on loopback (HTTPS and SMTP, verified against its throwaway CA), then: create
an SMTP token through REST, list tokens, relay a batch of MIME messages through the SMTP pool
(STARTTLS, logged in with the token), single-send an email and wait for its final status. Exits 0
only if every step did what it claims.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

from . import HubSpot, SendResult, SendState
from .sandbox import Sandbox

RELAY_COUNT = 500


def _messages(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield (
            f"From: Shop <shop@example.com>\r\nTo: customer{i}@example.org\r\n"
            f"Subject: Order {i} confirmed\r\nMessage-ID: <order-{i}@shop.example.com>\r\n"
            f"\r\nThanks for order {i}.\r\n"
        ).encode()


def _step(text: str) -> None:
    print(f"  - {text}", flush=True)


async def run() -> int:
    """Run the demo; return the process exit code."""
    started = time.perf_counter()
    async with Sandbox() as sandbox:
        print(f"sandbox running at {sandbox.https_url} (CA {sandbox.ca_file})")
        hs: HubSpot
        async with sandbox.client(https=True) as hs:
            token = await hs.smtp_tokens.create(campaign_name="Order confirmations")
            _step(f"created SMTP token {token.id} (password {token.password}, shown once)")
            _step(f"token expires {token.expires_at:%Y-%m-%d}")
            listed = [t.id async for t in hs.smtp_tokens.list()]
            _step(f"listed {len(listed)} token(s)")
            if token.id not in listed:
                print("FAILED: the new token is not listed", file=sys.stderr)
                return 1
            relayed = 0
            async with sandbox.smtp_pool(token, max_connections=4) as pool:
                relay = pool.send_many(_messages(RELAY_COUNT))
                relayed = len([o async for o in relay if o.ok])
            summary = relay.summary
            rate = summary.done / summary.elapsed
            _step(f"relayed {relayed}/{RELAY_COUNT} messages over SMTP ({rate:.0f} msg/s)")
            stored = {m.message_id for m in sandbox.state.messages}
            if relayed != RELAY_COUNT or len(stored) != RELAY_COUNT:
                print("FAILED: the sandbox did not store every relayed message", file=sys.stderr)
                return 1
            status = await hs.single_send.send(email_id=1001, to="customer@example.com")
            _step(f"single-send accepted: {status.status} (status id {status.status_id})")
            final = await hs.send_status.wait(status, timeout=30)
            _step(f"final status: {final.status} / {final.send_result}")
            if final.status is not SendState.COMPLETE or final.send_result is not SendResult.SENT:
                print("FAILED: the single-send did not complete as SENT", file=sys.stderr)
                return 1
    print(f"demo OK in {time.perf_counter() - started:.2f} s")
    return 0


def main() -> None:
    """Entry point."""
    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
