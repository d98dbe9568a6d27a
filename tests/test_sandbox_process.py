"""The sandbox as a separate server process, used over HTTPS with its CA file."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys

from hubspot_tx import HubSpot, SendResult


async def test_server_process_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.sandbox",
        "--http-port",
        "0",
        "--https-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        info = json.loads(line)
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        async with HubSpot(info["access_token"], base_url=info["https_url"], ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="process")
            assert [t.id async for t in hs.smtp_tokens.list()] == [token.id]
            status = await hs.single_send.send(email_id=1001, to="a@example.com")
            final = await hs.send_status.wait(status, timeout=10)
            assert final.send_result is SendResult.SENT
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=30)
    assert code == 0
