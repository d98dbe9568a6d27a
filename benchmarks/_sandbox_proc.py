"""Start the sandbox as a separate process (so its memory and CPU are not the client's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def sandbox_process(*extra: str) -> AsyncIterator[dict[str, Any]]:
    """Yield the sandbox's connection info (plus an ``ssl_context``); stop it on exit."""
    ports = [
        "--json",
        "--http-port",
        "0",
        "--https-port",
        "0",
        "--smtp-port",
        "0",
        "--smtps-port",
        "0",
    ]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.sandbox",
        *ports,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        info["ssl_context"] = ssl.create_default_context(cafile=info["ca_file"])
        yield info
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
