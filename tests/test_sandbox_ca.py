"""The sandbox's CA can only vouch for loopback names (X.509 name constraints, critical)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubspot_tx.sandbox import SandboxCA
from hubspot_tx.sandbox._tls import LOOPBACK_NAMES


def _leaf(ca_dir: Path, name: x509.GeneralName, tmp: Path) -> tuple[Path, Path]:
    """A server certificate for ``name``, signed with the CA's key as kept on disk (the key
    leaked, say): built by hand, so nothing but the verifier stands in its way."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "sandbox-ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key(
        (ca_dir / "sandbox-ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([name]), critical=True)
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT): a leaf needs
        # its Authority Key Identifier, as any CA-issued certificate has.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "leaf.pem", tmp / "leaf-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str | None = None
) -> None:
    """A TLS handshake between two in-memory ends (OpenSSL on both sides, no socket)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):  # a handshake takes a few flights; bounded
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def _verify(ca: SandboxCA, cert_file: Path, key_file: Path) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(ca.ca_file))
    client_ctx.check_hostname = False  # the chain alone is judged, not the name asked for
    _handshake(server_ctx, client_ctx)


def test_the_ca_certificate_carries_critical_loopback_name_constraints(tmp_path: Path) -> None:
    ca = SandboxCA(data_dir=tmp_path)
    cert = x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    found = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert found.critical
    assert found.value == LOOPBACK_NAMES
    assert found.value.excluded_subtrees is None


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("example.com"),
        x509.DNSName("localhost.example.com"),
        x509.DNSName("smtp.hubapi.com"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("127.0.0.2")),
    ],
    ids=str,
)
def test_a_certificate_for_another_name_fails_verification(
    tmp_path: Path, name: x509.GeneralName
) -> None:
    ca = SandboxCA(data_dir=tmp_path / "ca")
    cert_file, key_file = _leaf(tmp_path / "ca", name, tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        _verify(ca, cert_file, key_file)
    assert info.value.verify_code == 47  # X509_V_ERR_PERMITTED_VIOLATION
    assert "permitted" in str(info.value.verify_message)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "mail.localhost"])
def test_a_certificate_for_a_loopback_name_verifies(tmp_path: Path, host: str) -> None:
    ca = SandboxCA(data_dir=tmp_path / "ca")
    try:
        name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        name = x509.DNSName(host)
    cert_file, key_file = _leaf(tmp_path / "ca", name, tmp_path)
    _verify(ca, cert_file, key_file)  # no error


def test_the_sandbox_certificate_verifies_for_each_loopback_name() -> None:
    ca = SandboxCA()
    try:
        for host in ("localhost", "127.0.0.1", "::1"):
            _handshake(ca.server_context(), ca.client_context(), host)  # hostname checked too
    finally:
        ca.cleanup()


def test_a_kept_ca_without_constraints_is_replaced(tmp_path: Path) -> None:
    old = trustme.CA()
    old.cert_pem.write_to_path(str(tmp_path / "sandbox-ca.pem"))
    old.private_key_pem.write_to_path(str(tmp_path / "sandbox-ca-key.pem"))
    ca = SandboxCA(data_dir=tmp_path)
    assert ca.ca_file.read_bytes() != old.cert_pem.bytes()
    cert = x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.NameConstraints).value == LOOPBACK_NAMES
    again = SandboxCA(data_dir=tmp_path)  # a constrained one is kept
    assert again.ca_file.read_bytes() == ca.ca_file.read_bytes()
