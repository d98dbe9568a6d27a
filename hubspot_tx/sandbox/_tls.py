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
    """A throwaway CA and a server certificate for the loopback names.

    Clients trust it through :meth:`client_context` or the PEM file at :attr:`ca_file`. It is
    fresh for each run, unless ``data_dir`` is given: then it is kept there (key included) and
    reused, so that a restarted sandbox is trusted by the clients of the previous one.
    """

    def __init__(
        self, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, data_dir: Path | None = None
    ) -> None:
        self._kept = data_dir is not None
        self._dir = data_dir or Path(tempfile.mkdtemp(prefix="hubspot-tx-sandbox-"))
        self.ca_file = self._dir / "sandbox-ca.pem"
        key_file = self._dir / "sandbox-ca-key.pem"
        if self._kept and self.ca_file.exists() and key_file.exists():
            self._ca = trustme.CA.from_pem(self.ca_file.read_bytes(), key_file.read_bytes())
        else:
            self._ca = trustme.CA(organization_name="hubspot-tx sandbox")
            self._ca.cert_pem.write_to_path(str(self.ca_file))
            if self._kept:
                key_file.touch(mode=0o600)
                self._ca.private_key_pem.write_to_path(str(key_file))
        self._cert = self._ca.issue_cert(*hosts)

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
        """Remove the CA file (unless it is kept in a data folder)."""
        if not self._kept:
            shutil.rmtree(self._dir, ignore_errors=True)
