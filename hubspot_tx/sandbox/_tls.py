"""A throwaway certificate authority for the sandbox's HTTPS and SMTP listeners."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path

import trustme

__all__ = ["SandboxCA"]

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")


class SandboxCA:
    """A fresh CA and a server certificate for the loopback names, valid for this run only.

    Clients trust it through :meth:`client_context` or the PEM file at :attr:`ca_file`.
    """

    def __init__(self, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> None:
        self._ca = trustme.CA(organization_name="hubspot-tx sandbox")
        self._cert = self._ca.issue_cert(*hosts)
        self._dir = Path(tempfile.mkdtemp(prefix="hubspot-tx-sandbox-"))
        self.ca_file = self._dir / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self, *, hosts: tuple[str, ...] | None = None) -> ssl.SSLContext:
        """A server-side context presenting the sandbox certificate (or one for ``hosts``)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert = self._cert if hosts is None else self._ca.issue_cert(*hosts)
        cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(ctx)
        return ctx

    def cleanup(self) -> None:
        """Remove the CA file."""
        shutil.rmtree(self._dir, ignore_errors=True)
