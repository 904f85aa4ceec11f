"""Self-signed certificates for first boot and dev mode (replaced by ACME later)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from appliance.core.fsio import atomic_write

VALID_DAYS = 825   # the longest lifetime mainstream clients accept for a server certificate


def make_self_signed(hostname: str, cert_file: Path, key_file: Path) -> None:
    """Write an RSA-2048 key (mode 0600) and a self-signed certificate for `hostname`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(key_file, key_pem, mode=0o600)
    atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
