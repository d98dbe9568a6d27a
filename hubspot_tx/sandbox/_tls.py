"""A throwaway certificate authority for the sandbox's HTTPS and SMTP listeners.

The CA is name-constrained (RFC 5280, critical): it can only vouch for the loopback names, so a
program told to trust it (``HUBSPOT_CA_FILE``) cannot be fooled by a certificate it signs for
any other host, even if its key leaks from a data folder.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import tempfile
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._store import private_dir, private_file

__all__ = ["LOOPBACK_NAMES", "SandboxCA"]

DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")

#: What the CA may vouch for: ``localhost`` (and names under it), 127.0.0.1 and ::1.
LOOPBACK_NAMES = x509.NameConstraints(
    permitted_subtrees=[
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ],
    excluded_subtrees=None,
)


def _constrained_ca() -> trustme.CA:
    """A fresh CA (EC P-256, ten years) whose certificate carries :data:`LOOPBACK_NAMES`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hubspot-tx sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "hubspot-tx sandbox CA (loopback only)"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(LOOPBACK_NAMES, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return trustme.CA.from_pem(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _is_constrained(cert_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        found = cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False
    return found.critical and found.value == LOOPBACK_NAMES


class SandboxCA:
    """A throwaway CA and a server certificate for the loopback names.

    The CA can only vouch for loopback names (X.509 name constraints): a certificate it signs
    for any other name fails verification. Clients trust it through :meth:`client_context` or
    the PEM file at :attr:`ca_file`. It is fresh for each run, unless ``data_dir`` is given:
    then it is kept there (key included) and reused, so that a restarted sandbox is trusted by
    the clients of the previous one (a kept CA without the name constraints is replaced).
    """

    def __init__(
        self, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, data_dir: Path | None = None
    ) -> None:
        self._kept = data_dir is not None
        self._dir = data_dir or Path(tempfile.mkdtemp(prefix="hubspot-tx-sandbox-"))
        private_dir(self._dir)
        self.ca_file = self._dir / "sandbox-ca.pem"
        key_file = self._dir / "sandbox-ca-key.pem"
        kept = self._kept and self.ca_file.exists() and key_file.exists()
        # A CA kept by an older version, without the name constraints, is replaced.
        if kept and _is_constrained(self.ca_file.read_bytes()):
            private_file(key_file)  # kept by an older version, maybe readable by all
            private_file(self.ca_file)
            self._ca = trustme.CA.from_pem(self.ca_file.read_bytes(), key_file.read_bytes())
        else:
            self._ca = _constrained_ca()
            private_file(self.ca_file, self._ca.cert_pem.bytes())
            if self._kept:
                private_file(key_file, self._ca.private_key_pem.bytes())
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
