"""A sandbox in its own process with N messages seeded straight into its store (no SMTP), for
bench_inbox.py. Prints one JSON line (its URLs, ports, CA file, token), then serves until
stdin closes.

    python benchmarks/_inbox_sandbox.py N
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _common import mime_bytes

from hubspot_tx.sandbox import Sandbox


async def main(count: int) -> None:
    async with Sandbox(rate_limit=None) as sb:
        token, password = sb.state.create_token("inbox-benchmark", False)
        started = time.perf_counter()
        for i in range(count):
            data = mime_bytes(i, 1024)
            sb.state.store_message(
                session_id=0,
                token_id=token.id,
                mail_from="bench@example.com",
                rcpt_to=(f"rcpt{i % 1000}@example.org",),
                data=data,
                message_id=f"<bench{i}@example.com>",
            )
        seeded = time.perf_counter() - started
        info = {
            "inspection_url": sb.inspection_url,
            "smtp_host": sb.host,
            "smtp_port": sb.smtp_port,
            "ca_file": sb.ca_file,
            "token_id": token.id,
            "password": password,
            "seconds_to_seed": seeded,
        }
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
