"""No report artifact, log or journal ever holds a secret value from the twin."""

from __future__ import annotations

import pytest

from drills.evidence.redact import scrub
from tests.conftest import Runs


@pytest.mark.twin
def test_no_artifact_contains_a_secret(runs: Runs) -> None:
    """The NATS credentials SecureString, its password and a planted canary SecureString
    appear in no file under the reports root, in the journal, or in the runs' output."""
    files = [p for p in runs.root.rglob("*") if p.is_file()] + [runs.journal]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for secret in runs.secrets:
            assert secret.encode() not in data, f"a secret value is in {path}"
    for name, output in runs.output.items():
        for secret in runs.secrets:
            assert secret not in output, f"a secret value is in the output of run {name}"


@pytest.mark.parametrize(("text", "hidden"), [
    ("connect nats://vettid-parent:pa55-W0rd_x@127.0.0.1:4222 failed", "pa55-W0rd_x"),
    ('{"user": "vettid-parent", "password": "pa55-W0rd_x"}', "pa55-W0rd_x"),
    ("secret_access_key=abcDEF123/xyz", "abcDEF123/xyz"),
    ("AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("blob 3q2+7w8kR1Zm0pYx4tLcN9vB6aQe2Jh5Ws7Uo1Ki3Pl8Mn0Bv4Cx6Zz9Yy7Xx5Ww3== end",
     "3q2+7w8kR1Zm0pYx4tLcN9vB6aQe2Jh5Ws7Uo1Ki3Pl8Mn0Bv4Cx6Zz9Yy7Xx5Ww3=="),
])
def test_scrub_masks_credentials_in_foreign_text(text: str, hidden: str) -> None:
    """Credentials in URLs, keyed secrets, access key ids and key-sized blobs are masked."""
    assert hidden not in scrub(text)
    assert "***" in scrub(text)


@pytest.mark.parametrize("text", [
    "no-responders: no enclave is listening on vettid.vault.get",
    "DisabledException: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab is disabled",
    "/work/main/features/scenarios/complete_enclave_failure_and_a_very_long_name_indeed.feature",
])
def test_scrub_leaves_ordinary_evidence_alone(text: str) -> None:
    """Error details an engineer needs are not mangled."""
    assert scrub(text) == text
