"""Nitro-style attestation documents: made by the twin's enclaves, verified as the apps verify.

An AWS Nitro Enclave proves what it runs with an attestation document (AWS, "Nitro Enclaves
User Guide: Verifying the root of trust"): a COSE_Sign1 structure (RFC 9052) signed with
ES384, whose payload is a CBOR map of `module_id`, `digest` ("SHA384"), `timestamp` (ms),
`pcrs` (index -> SHA-384 measurement), `certificate` (the signing certificate, DER),
`cabundle` (the chain, root first), and the optional `public_key`, `user_data` and `nonce`.
An app trusts the enclave only when the chain ends at the root it pins, the signature holds,
the nonce is the one it sent, the document is fresh, and the PCRs are one of the sets in its
`expected_pcrs.json` (runbook 6) that is still valid.

CBOR is cbor2's and every signature and certificate is `cryptography`'s; nothing is encoded by
hand. The twin's own choices: a root of its own stands in for the AWS Nitro root, each
instance's enclave issues itself a leaf under it at boot (the Nitro hypervisor's job), and
PCR0/1/2 are the SHA-384 of the enclave build's image, kernel and application identities,
which `drills twin build-enclave` records on the AMI it registers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from drills.errors import ConfigError

#: COSE algorithm id of ES384 (ECDSA P-384 with SHA-384), in the protected header (label 1).
ES384 = -35
PCR_INDEXES = (0, 1, 2)
#: How old an attestation may be before an app refuses it (apps verify a fresh document).
MAX_AGE = timedelta(minutes=5)


class Failure(StrEnum):
    """Why an app refused an attestation document."""

    MALFORMED = "malformed"  # not a COSE_Sign1 / CBOR document of the expected shape
    CHAIN = "chain"  # the certificate chain does not end at the pinned root, or has expired
    SIGNATURE = "signature"  # the COSE signature does not verify with the certificate's key
    NONCE = "nonce"  # not the nonce the app sent
    STALE = "stale"  # older than the app accepts (or from the future)
    PCRS = "pcrs"  # the PCRs are none of the app's valid sets


class AttestationError(Exception):
    """An attestation document an app would refuse; `failure` says why."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(f"attestation {failure}: {detail}")
        self.failure = failure


# -- PCRs ------------------------------------------------------------------------------------
def build_pcrs(version: str) -> dict[int, str]:
    """PCR0/1/2 (hex SHA-384) of enclave build `version`: image, kernel+boot, application."""
    parts = {0: f"vettid-enclave-image:{version}", 1: "vettid-enclave-kernel:5.10-nitro",
             2: f"vettid-enclave-app:{version}"}
    return {i: hashlib.sha384(text.encode()).hexdigest() for i, text in parts.items()}


@dataclass(frozen=True, slots=True)
class PcrSet:
    """One set of PCR values an app accepts, until `valid_until` (None: no end)."""

    name: str
    pcrs: dict[int, str]
    valid_until: datetime | None = None

    def matches(self, pcrs: dict[int, str]) -> bool:
        return all(pcrs.get(i) == value for i, value in self.pcrs.items())

    def valid_at(self, now: datetime) -> bool:
        return self.valid_until is None or now < self.valid_until


@dataclass(frozen=True, slots=True)
class ExpectedPcrs:
    """An app's `expected_pcrs.json`: the PCR sets it accepts."""

    sets: tuple[PcrSet, ...] = ()

    def check(self, pcrs: dict[int, str], now: datetime) -> PcrSet:
        """The valid set these PCRs match, or AttestationError(PCRS) saying why not."""
        matching = [s for s in self.sets if s.matches(pcrs)]
        valid = [s for s in matching if s.valid_at(now)]
        if valid:
            return valid[0]
        if matching:
            until = matching[0].valid_until
            raise AttestationError(Failure.PCRS, f"PCR set {matching[0].name!r} expired on "
                                   f"{until:%Y-%m-%d %H:%M} UTC" if until else "expired")
        raise AttestationError(Failure.PCRS, f"PCR0 {pcrs.get(0, '')[:16]}... matches none of "
                               f"the app's sets ({', '.join(s.name for s in self.sets)})")

    def with_set(self, pcr_set: PcrSet) -> ExpectedPcrs:
        """These sets and one more (an app update adds a set, runbook 6.2 step 3)."""
        return ExpectedPcrs((*[s for s in self.sets if s.name != pcr_set.name], pcr_set))

    def without(self, name: str) -> ExpectedPcrs:
        """These sets less one (runbook 6.2 step 5: the old set removed)."""
        return ExpectedPcrs(tuple(s for s in self.sets if s.name != name))

    def to_json(self) -> dict[str, Any]:
        return {"sets": [{"name": s.name, **{f"PCR{i}": v for i, v in sorted(s.pcrs.items())},
                          "valid_until": s.valid_until.isoformat().replace("+00:00", "Z")
                          if s.valid_until else None} for s in self.sets]}

    @classmethod
    def from_json(cls, data: Any, where: str = "expected_pcrs.json") -> ExpectedPcrs:
        """Read the app's file format; ConfigError saying what is wrong where."""
        if not isinstance(data, dict) or not isinstance(data.get("sets"), list):
            raise ConfigError(f"{where}: expected an object with a list of \"sets\"")
        sets = []
        for n, item in enumerate(data["sets"]):
            at = f"{where} sets[{n}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ConfigError(f"{at}: each set needs a \"name\" and PCR0, PCR1, PCR2")
            pcrs = {}
            for i in PCR_INDEXES:
                value = item.get(f"PCR{i}")
                if not isinstance(value, str) or len(value) != 96:
                    raise ConfigError(f"{at}: PCR{i} must be 96 hex digits (SHA-384)")
                pcrs[i] = value.lower()
            until = item.get("valid_until")
            try:
                valid = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else None
            except (AttributeError, ValueError):
                raise ConfigError(f"{at}: valid_until must be an ISO-8601 time or null, got "
                                  f"{until!r}") from None
            sets.append(PcrSet(item["name"], pcrs, valid))
        return cls(tuple(sets))

    @classmethod
    def load(cls, path: Path) -> ExpectedPcrs:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")), str(path))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist; pass an app's expected_pcrs.json") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not JSON ({exc})") from None


# -- the twin's PKI --------------------------------------------------------------------------
def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drills local twin"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, days: int, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA384()))


@dataclass(frozen=True, slots=True)
class Signer:
    """What signs attestation documents: a key, its certificate, and the chain (root first)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cabundle: tuple[x509.Certificate, ...]


ROOT_NAME = "VettID twin Nitro root"


def new_root(directory: Path) -> Path:
    """Create the twin's root (key and certificate) in `directory`; returns the cert's path."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _cert(ROOT_NAME, key, ROOT_NAME, key, 3650, ca=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nitro-root.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path = directory / "nitro-root.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def instance_signer(directory: Path, module_id: str) -> Signer:
    """A leaf for one enclave, under the twin's root in `directory` (the hypervisor's job)."""
    root_key = serialization.load_pem_private_key((directory / "nitro-root.key").read_bytes(),
                                                  None)
    if not isinstance(root_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{directory}/nitro-root.key is not an EC key")
    root = load_roots(directory / "nitro-root.pem")[0]
    key = ec.generate_private_key(ec.SECP384R1())
    leaf = _cert(module_id, key, ROOT_NAME, root_key, 1, ca=False)
    return Signer(key, leaf, (root,))


def load_roots(path: Path) -> list[x509.Certificate]:
    """The root certificate(s) an app pins, from a PEM file."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read attestation root {path}: {exc}") from None


# -- documents -------------------------------------------------------------------------------
def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def make_document(signer: Signer, module_id: str, pcrs: dict[int, str], *,
                  nonce: bytes | None = None, user_data: bytes | None = None,
                  public_key: bytes | None = None, timestamp_ms: int | None = None) -> bytes:
    """A COSE_Sign1 attestation document (ES384) over the Nitro payload fields."""
    payload = cbor2.dumps({
        "module_id": module_id, "digest": "SHA384",
        "timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
        "pcrs": {i: bytes.fromhex(v) for i, v in sorted(pcrs.items())},
        "certificate": signer.certificate.public_bytes(serialization.Encoding.DER),
        "cabundle": [c.public_bytes(serialization.Encoding.DER) for c in signer.cabundle],
        "public_key": public_key, "user_data": user_data, "nonce": nonce})
    protected = cbor2.dumps({1: ES384})
    der = signer.key.sign(_sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    return cbor2.dumps([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])


@dataclass(frozen=True, slots=True)
class Attestation:
    """A verified attestation document's facts."""

    module_id: str
    timestamp: datetime
    pcrs: dict[int, str]
    pcr_set: str  # the name of the expected set it matched
    nonce: bytes | None = None
    user_data: bytes | None = field(default=None, repr=False)


def _parse(document: bytes) -> tuple[bytes, bytes, bytes, dict[str, Any]]:
    try:
        value = cbor2.loads(document)
        if isinstance(value, cbor2.CBORTag) and value.tag == 18:  # tagged COSE_Sign1
            value = value.value
        protected, _unprotected, payload, signature = value
        header, body = cbor2.loads(protected), cbor2.loads(payload)
    except Exception as exc:  # any shape error is the same answer: not a document
        raise AttestationError(Failure.MALFORMED, f"not a COSE_Sign1 document ({exc})") from None
    if not isinstance(header, dict) or header.get(1) != ES384:
        raise AttestationError(Failure.MALFORMED, f"algorithm {header!r} is not ES384")
    if not isinstance(body, dict) or not all(k in body for k in (
            "module_id", "timestamp", "pcrs", "certificate", "cabundle")):
        raise AttestationError(Failure.MALFORMED, "payload lacks Nitro attestation fields")
    if not isinstance(signature, bytes) or len(signature) != 96:
        raise AttestationError(Failure.MALFORMED, "an ES384 signature is 96 bytes")
    return protected, payload, signature, body


def _check_chain(body: dict[str, Any], roots: list[x509.Certificate],
                 now: datetime) -> x509.Certificate:
    try:
        leaf = x509.load_der_x509_certificate(body["certificate"])
        bundle = [x509.load_der_x509_certificate(c) for c in body["cabundle"]]
    except (TypeError, ValueError) as exc:
        raise AttestationError(Failure.MALFORMED, f"unreadable certificate ({exc})") from None
    if not bundle or bundle[0] not in roots:
        raise AttestationError(Failure.CHAIN, "the chain does not start at the pinned root")
    chain = [*bundle, leaf]
    for issuer, cert in itertools.pairwise(chain):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise AttestationError(Failure.CHAIN, f"{cert.subject.rfc4514_string()} is not "
                                   f"issued by {issuer.subject.rfc4514_string()}") from None
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise AttestationError(Failure.CHAIN, f"{cert.subject.rfc4514_string()} is not "
                                   f"valid at {now:%Y-%m-%d %H:%M} UTC")
    return leaf


def verify(document: bytes, *, roots: list[x509.Certificate], expected: ExpectedPcrs,
           nonce: bytes | None, now: datetime | None = None,
           max_age: timedelta = MAX_AGE) -> Attestation:
    """Verify like an app: chain to a pinned root, signature, nonce, freshness, then PCRs
    against its expected sets. AttestationError with the failure otherwise."""
    now = now or datetime.now(UTC)
    protected, payload, signature, body = _parse(document)
    leaf = _check_chain(body, roots, now)
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise AttestationError(Failure.SIGNATURE, "the signing certificate's key is not EC")
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"),
                               int.from_bytes(signature[48:], "big"))
    try:
        public.verify(der, _sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(Failure.SIGNATURE, "the signature does not verify") from None
    if nonce is not None and body.get("nonce") != nonce:
        raise AttestationError(Failure.NONCE, "the document does not carry the app's nonce")
    stamp = datetime.fromtimestamp(int(body["timestamp"]) / 1000, UTC)
    if not now - max_age <= stamp <= now + timedelta(seconds=30):
        raise AttestationError(Failure.STALE, f"made at {stamp:%H:%M:%S} UTC, "
                               f"{(now - stamp).total_seconds():.0f}s before {now:%H:%M:%S}")
    try:
        pcrs = {int(i): bytes(v).hex() for i, v in body["pcrs"].items()}
    except (AttributeError, TypeError, ValueError):
        raise AttestationError(Failure.MALFORMED, "pcrs is not a map of index to bytes") from None
    matched = expected.check(pcrs, now)
    return Attestation(str(body["module_id"]), stamp, pcrs, matched.name, body.get("nonce"),
                       body.get("user_data"))
