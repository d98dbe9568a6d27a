"""The sandbox as a separate process (``hubspot-tx sandbox``), for tests and tools that want its
memory, CPU and event loop apart from theirs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["SandboxProcess", "sandbox_process"]


@dataclass(frozen=True, slots=True)
class SandboxProcess:
    """Where a sandbox process listens, and the credentials it accepts (test values)."""

    base_url: str
    https_url: str
    access_token: str
    ca_file: str
    smtp_host: str
    smtp_port: int
    smtps_port: int
    inspection_url: str = ""
    """The inspection API's root (``/_sandbox/v1``)."""
    smtp_user: str = ""
    """The id of the SMTP token the process created at start (its SMTP user name)."""
    smtp_password: str = field(default="", repr=False)
    """That token's password."""

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context trusting the process's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def env(self) -> dict[str, str]:
        """The ``HUBSPOT_*`` variables that point the CLI, ``HubSpot()`` and ``SmtpPool()`` at it
        (the ``export`` line the process prints)."""
        return {
            "HUBSPOT_BASE_URL": self.https_url,
            "HUBSPOT_ACCESS_TOKEN": self.access_token,
            "HUBSPOT_CA_FILE": self.ca_file,
            "HUBSPOT_SMTP_HOST": self.smtp_host,
            "HUBSPOT_SMTP_PORT": str(self.smtp_port),
            "HUBSPOT_SMTP_USER": self.smtp_user,
            "HUBSPOT_SMTP_PASSWORD": self.smtp_password,
        }


@contextlib.asynccontextmanager
async def sandbox_process(*args: str, timeout: float = 30.0) -> AsyncIterator[SandboxProcess]:
    """Run ``hubspot-tx sandbox`` on free ports (plus ``args``); stop it with SIGTERM on exit.

    Raises ``RuntimeError`` if it does not start, or does not stop cleanly.
    """
    ports = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "sandbox",
        "--json",
        *ports,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        if proc.stdout is None:  # never: stdout=PIPE
            raise RuntimeError("the sandbox process has no stdout pipe")
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the sandbox process did not start")
        yield SandboxProcess(**json.loads(line))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout)
    if code != 0:
        raise RuntimeError(f"the sandbox process exited with {code}")
