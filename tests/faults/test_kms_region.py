"""The sealing key's region cut off, on a real moto server with the twin's fidelity layer:
requests signed for that region get no answer while the other region answers; revert lets
them through; it refuses a target that is not the twin."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from drills.capabilities import ALL
from drills.clients import Clients
from drills.errors import CapabilityMissing, TargetNotAllowed
from drills.faults import AllowList, FaultContext, FaultInjector
from drills.faults.kms_region import KeyRegionUnreachable
from drills.journal import Journal
from drills.procedures.replication import Unanswered
from drills.twin.aws import AwsEndpoint

REGION, DR_REGION = "us-east-1", "us-west-2"


@pytest.fixture
def key(clients: Clients) -> str:
    kms = clients("kms", REGION)
    meta = kms.create_key(MultiRegion=True)["KeyMetadata"]
    kms.replicate_key(KeyId=meta["KeyId"], ReplicaRegion=DR_REGION)
    return str(meta["Arn"])


@pytest.fixture
def injector(tmp_path: Path, key: str) -> FaultInjector:
    return FaultInjector(Journal(tmp_path / "journal.jsonl"), "run-1", "env-a",
                         AllowList({"key": (key,)}))


def twin_at(aws: AwsEndpoint) -> SimpleNamespace:
    """What the fault reads of a twin: the URL of its AWS endpoint."""
    return SimpleNamespace(state=SimpleNamespace(aws_url=aws.url))


def test_the_keys_region_answers_nothing_until_reverted(
        aws: AwsEndpoint, clients: Clients, key: str, injector: FaultInjector) -> None:
    """While injected, a describe-key in us-east-1 gets no answer and the replica answers in
    us-west-2; after the revert the held request is answered."""
    active = injector.inject(KeyRegionUnreachable(FaultContext(clients, twin_at(aws), ALL), {
        "key_arn": key, "region": REGION}))
    try:
        held = Unanswered(lambda: clients("kms", REGION).describe_key(KeyId=key))
        assert held.held_for(1.5)
        replica = key.replace(REGION, DR_REGION)
        assert clients("kms", DR_REGION).describe_key(KeyId=replica)["KeyMetadata"][
            "KeyState"] == "Enabled"
    finally:
        injector.revert(active)
    held.close(timeout=40)
    assert not held.held
    assert clients("kms", REGION).describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key


def test_it_only_runs_on_the_twin(clients: Clients, key: str, injector: FaultInjector) -> None:
    """On a target without `control` (an account) the fault is refused before anything
    is journaled."""
    with pytest.raises(CapabilityMissing, match="control"):
        injector.inject(KeyRegionUnreachable(FaultContext(clients), {"key_arn": key,
                                                                     "region": REGION}))
    assert injector.journal.pending() == []


def test_another_key_is_not_allowed(aws: AwsEndpoint, clients: Clients,
                                    injector: FaultInjector) -> None:
    """The allow-listed target is the key whose region is cut: another key is refused."""
    with pytest.raises(TargetNotAllowed):
        injector.inject(KeyRegionUnreachable(FaultContext(clients, twin_at(aws), ALL), {
            "key_arn": "arn:aws:kms:us-east-1:123456789012:key/other", "region": REGION}))
