"""Relay every .eml file of a folder through HubSpot's SMTP server, one JSON line per message.

    export HUBSPOT_SMTP_USER=<token id> HUBSPOT_SMTP_PASSWORD=...
    python examples/bulk_relay.py DIR OUT.jsonl

(For resumable runs with a progress bar, ``hubspot-tx relay DIR --results OUT.jsonl`` does the
same and more.)
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

from hubspot_tx import Envelope, RelaySummary, SmtpCredentials, SmtpPool


def messages(folder: Path) -> Iterator[Envelope]:
    for path in sorted(folder.glob("*.eml")):  # read lazily, one file at a time
        raw = path.read_bytes()
        sender = "bounces@shop.example.com"
        to = [
            line.split(b":", 1)[1].strip().decode()
            for line in raw.split(b"\r\n\r\n", 1)[0].splitlines()
            if line.lower().startswith(b"to:")
        ]
        yield Envelope(mail_from=sender, rcpt_to=tuple(to), data=raw, key=path.name)


def report(summary: RelaySummary) -> None:
    if summary.done % 100 == 0:
        print(f"\r{summary.done} done, {summary.sent} sent", end="", file=sys.stderr)


async def main(folder: Path, out: Path) -> int:
    context = ssl.create_default_context()
    if ca_file := os.environ.get("HUBSPOT_CA_FILE"):
        context.load_verify_locations(cafile=ca_file)
    credentials = SmtpCredentials(
        os.environ["HUBSPOT_SMTP_USER"], os.environ["HUBSPOT_SMTP_PASSWORD"]
    )
    async with SmtpPool(
        os.environ.get("HUBSPOT_SMTP_HOST"),
        int(os.environ.get("HUBSPOT_SMTP_PORT", "587")),
        credentials=credentials,
        ssl_context=context,
        max_connections=10,
    ) as pool:
        relay = pool.send_many(messages(folder), progress=report)
        with out.open("w") as results:
            async for outcome in relay:
                line = {"file": outcome.key, "status": outcome.status, "category": outcome.category}
                results.write(json.dumps(line) + "\n")
    print(f"\n{relay.summary}", file=sys.stderr)
    return 0 if relay.summary.sent == relay.summary.consumed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]))))
