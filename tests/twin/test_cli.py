"""`drills twin` as a user types it: real subprocesses against the session's twin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drills.twin.manager import Twin
from tests.conftest import drills_cli

pytestmark = pytest.mark.twin


def test_build_enclave_registers_an_ami_and_prints_its_pcrs(healthy_twin: Twin,
                                                             tmp_path: Path) -> None:
    """`drills twin build-enclave --version X` prints what build-enclave.sh prints (runbook
    6.2 step 1): the new AMI and PCR0/1/2 of that build; a bad version exits 2."""
    from drills.attestation import build_pcrs

    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=healthy_twin.state.state_dir)
    done = drills_cli("twin", "build-enclave", "--version", "9.9.9", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    ec2 = healthy_twin.clients("ec2")
    try:
        assert lines["Version"] == "9.9.9"
        assert lines["AMI"].startswith("ami-")
        assert {k: v for k, v in lines.items() if k.startswith("PCR")} == {
            f"PCR{i}": v for i, v in sorted(build_pcrs("9.9.9").items())}
        (image,) = ec2.describe_images(ImageIds=[lines["AMI"]])["Images"]
        assert image["State"] == "available"
    finally:
        ec2.deregister_image(ImageId=lines["AMI"])
    bad = drills_cli("twin", "build-enclave", "--version", "two words", env=env, timeout=120)
    assert bad.returncode == 2
    assert "one word" in bad.stderr
