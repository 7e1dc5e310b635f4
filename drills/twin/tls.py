"""TLS for the twin's API: a certificate authority of its own and a server certificate for the
names the apps use (`api.vettid.dev`, `api-dr.vettid.dev`) and the loopback addresses the
twin listens on. `drills twin env` exports the CA as DRILLS_CA_BUNDLE and CURL_CA_BUNDLE, so
the runbook's `curl` and any HTTP client verify the twin's API as they would the real one."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

API_NAMES = ("api.vettid.dev", "api-dr.vettid.dev", "localhost")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drills local twin"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_api_tls(directory: Path, addresses: list[str]) -> Path:
    """Write `ca.pem`, `api.pem` and `api.key` into `directory`; returns the CA's path.

    The server certificate names the API's DNS names and every address in `addresses`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("VettID twin TLS root"))
          .issuer_name(_name("VettID twin TLS root")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in API_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(set(addresses))]
    cert = (x509.CertificateBuilder().subject_name(_name("api.vettid.dev"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "api.key").write_bytes(_pem_key(key))
    (directory / "api.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path = directory / "ca.pem"
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return path
