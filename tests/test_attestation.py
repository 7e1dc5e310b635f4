"""Attestation documents as the apps verify them (pure logic: keys and documents made here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest

from drills.attestation import (
    AttestationError,
    ExpectedPcrs,
    Failure,
    PcrSet,
    build_pcrs,
    instance_signer,
    load_roots,
    make_document,
    new_root,
    verify,
)
from drills.errors import ConfigError

V1, V2 = build_pcrs("1.0.0"), build_pcrs("2.0.0")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    new_root(directory)
    return directory


def _check(pki: Path, document: bytes, expected: ExpectedPcrs | None = None,
           nonce: bytes | None = b"n-1", **kw: object) -> object:
    return verify(document, roots=load_roots(pki / "nitro-root.pem"),
                  expected=expected or ExpectedPcrs((PcrSet("v1", V1),)), nonce=nonce, **kw)


def test_a_document_from_the_twin_verifies_and_names_the_set(pki: Path) -> None:
    """Chain, signature, nonce, freshness and PCRs all hold: the matching set is named."""
    doc = make_document(instance_signer(pki, "i-1"), "i-1", V1, nonce=b"n-1")
    seen = _check(pki, doc, ExpectedPcrs((PcrSet("v0", V2), PcrSet("v1", V1))))
    assert seen.pcr_set == "v1"  # type: ignore[attr-defined]
    assert seen.module_id == "i-1"  # type: ignore[attr-defined]


def test_the_payload_is_a_nitro_shaped_cose_sign1(pki: Path) -> None:
    """COSE_Sign1 [protected {1: -35}, {}, payload, 96-byte signature]; the payload has the
    Nitro fields, PCRs as 48-byte SHA-384 values."""
    protected, unprotected, payload, signature = cbor2.loads(
        make_document(instance_signer(pki, "i-1"), "i-1", V1, nonce=b"x"))
    assert cbor2.loads(protected) == {1: -35}
    assert unprotected == {}
    assert len(signature) == 96
    body = cbor2.loads(payload)
    assert {"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle",
            "public_key", "user_data", "nonce"} <= set(body)
    assert body["digest"] == "SHA384"
    assert {len(v) for v in body["pcrs"].values()} == {48}


@pytest.mark.parametrize(("tamper", "failure"), [
    ("payload", Failure.SIGNATURE), ("nonce", Failure.NONCE), ("root", Failure.CHAIN),
    ("old", Failure.STALE), ("pcrs", Failure.PCRS), ("garbage", Failure.MALFORMED),
])
def test_each_way_a_document_can_be_wrong_is_refused_with_its_reason(
        pki: Path, tmp_path: Path, tamper: str, failure: Failure) -> None:
    """A changed payload, another nonce, an unknown root, an old document, PCRs of another
    build, and bytes that are no document: each refused, each with its own reason."""
    signer = instance_signer(pki, "i-1")
    doc = make_document(signer, "i-1", V1, nonce=b"n-1")
    kw: dict[str, object] = {}
    if tamper == "payload":
        protected, unprotected, payload, signature = cbor2.loads(doc)
        body = cbor2.loads(payload)
        body["module_id"] = "i-evil"
        doc = cbor2.dumps([protected, unprotected, cbor2.dumps(body), signature])
    elif tamper == "nonce":
        kw["nonce"] = b"n-2"
    elif tamper == "root":
        new_root(tmp_path)
        doc = make_document(instance_signer(tmp_path, "i-1"), "i-1", V1, nonce=b"n-1")
    elif tamper == "old":
        doc = make_document(signer, "i-1", V1, nonce=b"n-1",
                            timestamp_ms=int((datetime.now(UTC) - timedelta(hours=1))
                                             .timestamp() * 1000))
    elif tamper == "pcrs":
        doc = make_document(signer, "i-1", V2, nonce=b"n-1")
    else:
        doc = b"\x00not cbor"
    with pytest.raises(AttestationError) as caught:
        _check(pki, doc, **kw)  # type: ignore[arg-type]
    assert caught.value.failure is failure


def test_a_set_past_its_valid_until_is_refused(pki: Path) -> None:
    """Runbook 6.2 step 5: the old set, marked with valid_until, is refused after it."""
    doc = make_document(instance_signer(pki, "i-1"), "i-1", V1, nonce=b"n-1")
    past = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(AttestationError, match="expired") as caught:
        _check(pki, doc, ExpectedPcrs((PcrSet("v1", V1, past),)))
    assert caught.value.failure is Failure.PCRS


def test_expected_pcrs_json_round_trips_and_bad_files_say_where(tmp_path: Path) -> None:
    """The app's file: sets with PCR0-2 (96 hex digits) and valid_until; errors name the set."""
    until = datetime(2027, 1, 1, tzinfo=UTC)
    expected = ExpectedPcrs((PcrSet("v1", V1, until), PcrSet("v2", V2)))
    path = tmp_path / "expected_pcrs.json"
    path.write_text(json.dumps(expected.to_json()))
    assert ExpectedPcrs.load(path) == expected
    path.write_text(json.dumps({"sets": [{"name": "v1", "PCR0": "ab", "PCR1": "", "PCR2": ""}]}))
    with pytest.raises(ConfigError, match=r"sets\[0\]: PCR0 must be 96 hex digits"):
        ExpectedPcrs.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        ExpectedPcrs.load(tmp_path / "nope.json")


def test_builds_differ_in_image_and_application_pcrs_only() -> None:
    """A new version changes PCR0 and PCR2; the kernel (PCR1) stays."""
    assert V1[1] == V2[1]
    assert V1[0] != V2[0]
    assert V1[2] != V2[2]
