"""Runbook 7.1 items 1 and 3 on a real moto server with the twin's fidelity layer: the
replication rule read as configured, marker lags measured from what the replica bucket
shows (set by the endpoint's lag, never assumed), markers removed, the key's replica."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.errors import ObjectiveBreached
from drills.measure.replication import Arrival, LagSummary
from drills.procedures.replication import (
    PROBE_PREFIX,
    ReplicationRule,
    Unanswered,
    Watcher,
    decrypt_in,
    put_markers,
    remove_markers,
    remove_test_objects,
    replication_rule,
    replication_statuses,
    sealing_key_replica,
    versions_present,
)
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post
from tests.procedures.conftest import fresh_names, replicating_buckets

REGION, DR_REGION = "us-east-1", "us-west-2"
LAG = 0.3  # seconds every version takes to replicate, set on the endpoint


@pytest.fixture(autouse=True)
def fixed_lag(aws: AwsEndpoint) -> Iterator[None]:
    """Every version takes exactly LAG to replicate; no pause outlives a test."""
    post(aws.url, "s3/replication-settings", {"median": LAG, "sigma": 0, "max": 5})
    yield
    post(aws.url, "s3/resume-replication", {"all": True})


class Timed:
    """An S3 client that notes when each put-object was sent (the test's own clock)."""

    def __init__(self, s3: Any) -> None:
        self.s3, self.sent = s3, dict[str, float]()

    def put_object(self, **kwargs: Any) -> Any:
        self.sent[kwargs["Key"]] = time.monotonic()
        return self.s3.put_object(**kwargs)


def measure(clients: Clients, rule: ReplicationRule, count: int, deadline: float,
            interval: float = 0.05
            ) -> tuple[LagSummary, list[tuple[str, str]], str, dict[str, float]]:
    token = uuid.uuid4().hex[:8]
    dr = clients("s3", DR_REGION)
    watcher = Watcher("replica", lambda _: versions_present(
        dr, rule.destination, rule.marker_prefix(token)), interval).start()
    timed = Timed(clients("s3", REGION))
    try:
        written = put_markers(timed, rule, token, count, watcher.expect)
        watcher.wait_all(time.monotonic() + deadline)
    finally:
        watcher.stop()
    return LagSummary.of(watcher.lags(), 10.0), written, token, timed.sent


def test_the_rule_is_read_as_configured(clients: Clients, names: Names) -> None:
    """The enabled rule to the DR bucket: its prefix, RTC threshold and destination region."""
    rule = replication_rule(clients, names)
    assert (rule.source, rule.destination, rule.destination_region) == (
        names.bucket, names.dr_bucket, DR_REGION)
    assert (rule.rule_id, rule.prefix, rule.rtc_minutes) == ("to-dr", "", 15)
    assert rule.marker_prefix("t") == f"{PROBE_PREFIX}t/"


def test_markers_go_under_the_rules_prefix_and_carry_its_tags(clients: Clients) -> None:
    """A rule for `vaults/` objects tagged dr=yes replicates only those: the markers are put
    there, tagged, so they replicate."""
    names = fresh_names()
    replicating_buckets(clients, names, rule={
        "ID": "vaults", "Priority": 1, "Status": "Enabled",
        "Filter": {"And": {"Prefix": "vaults/", "Tags": [{"Key": "dr", "Value": "yes"}]}},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": f"arn:aws:s3:::{names.dr_bucket}"}})
    rule = replication_rule(clients, names)
    assert (rule.prefix, rule.tags, rule.rtc_minutes) == ("vaults/", (("dr", "yes"),), None)
    summary, written, _, _ = measure(clients, rule, 2, deadline=20)
    assert summary.met
    assert all(key.startswith(f"vaults/{PROBE_PREFIX}") for key, _ in written)


def test_no_rule_to_the_dr_bucket_is_a_breach(clients: Clients) -> None:
    """A bucket without replication fails the check, naming what to do."""
    names = fresh_names()
    clients("s3", REGION).create_bucket(Bucket=names.bucket)
    with pytest.raises(ObjectiveBreached, match="no replication configuration"):
        replication_rule(clients, names)


def test_a_replica_bucket_without_versioning_is_a_breach(clients: Clients,
                                                         names: Names) -> None:
    """Replication needs versioning on both buckets: a suspended replica fails the check."""
    clients("s3", DR_REGION).put_bucket_versioning(
        Bucket=names.dr_bucket, VersioningConfiguration={"Status": "Suspended"})
    with pytest.raises(ObjectiveBreached, match=f"versioning of bucket {names.dr_bucket}"):
        replication_rule(clients, names)


def test_marker_lags_are_what_the_replica_bucket_shows(clients: Clients, names: Names) -> None:
    """With every version taking 0.3 s to replicate (from when S3 took the put, between its
    sending and its acknowledgement), each marker is first seen at least 0.3 s after its put
    was sent, and no poll sent 0.3 s after the acknowledgement missed it (the bracket holds
    the true arrival); then COMPLETED on the source, REPLICA on the copy."""
    rule = replication_rule(clients, names)
    summary, written, _, sent = measure(clients, rule, 10, deadline=30)
    assert summary.met
    assert len(summary.lags) == 10
    for lag in summary.lags:
        assert lag.lag is not None
        assert lag.lower is not None
        key = str(lag.key[0])  # type: ignore[index]
        assert lag.lag + (lag.acked - sent[key]) >= LAG  # seen - sent
        assert lag.lower <= LAG
    worst = summary.quantile("max")
    assert worst.lag is not None
    assert worst.lag < LAG + 3
    assert set(replication_statuses(clients("s3", REGION), names.bucket, written).values()) \
        == {"COMPLETED"}
    assert set(replication_statuses(clients("s3", DR_REGION), names.dr_bucket,
                                    written).values()) == {"REPLICA"}


def test_paused_replication_leaves_every_marker_missing(aws: AwsEndpoint, clients: Clients,
                                                        names: Names) -> None:
    """FIS bucket-pause-replication: nothing reaches the replica, every marker is missing,
    the max did not happen and the check fails; the source says PENDING."""
    rule = replication_rule(clients, names)
    post(aws.url, "s3/pause-replication", {"source_bucket": names.bucket})
    summary, written, _, _ = measure(clients, rule, 3, deadline=1.5)
    assert not summary.met
    assert len(summary.by_arrival(Arrival.MISSING)) == 3
    assert summary.quantile("max").lag is None
    assert set(replication_statuses(clients("s3", REGION), names.bucket, written).values()) \
        == {"PENDING"}


def test_markers_are_removed_from_both_buckets_with_earlier_leftovers(
        clients: Clients, names: Names) -> None:
    """Every version of this run's markers goes, in both buckets; another run's markers go
    only once they are stale; the vault data is never touched."""
    rule = replication_rule(clients, names)
    s3, dr = clients("s3", REGION), clients("s3", DR_REGION)
    s3.put_object(Bucket=names.bucket, Key="vaults/v1/data.enc", Body=b"sealed")
    other = f"{PROBE_PREFIX}other-run/0000"
    s3.put_object(Bucket=names.bucket, Key=other, Body=b"x")
    _, written, token, _ = measure(clients, rule, 3, deadline=20)
    key = written[0][0]
    s3.put_object(Bucket=names.bucket, Key=key, Body=b"second version")
    s3.delete_object(Bucket=names.bucket, Key=key)  # a delete marker too
    source, replica = remove_markers(clients, rule, token, REGION)
    assert source == 5
    assert replica >= 3
    assert versions_present(s3, names.bucket, rule.marker_prefix(token)) == set()
    assert versions_present(dr, names.dr_bucket, rule.marker_prefix(token)) == set()
    assert {k for k, _ in versions_present(s3, names.bucket, PROBE_PREFIX)} == {other}
    later = datetime.now(UTC) + timedelta(hours=2)
    assert remove_test_objects(s3, names.bucket, PROBE_PREFIX, older_than=later) == 1
    assert {k for k, _ in versions_present(s3, names.bucket, "vaults/")} == {
        "vaults/v1/data.enc"}


# ------------------------------------------------------------------ 7.1.3


def sealing_key(clients: Clients, names: Names, *, multi_region: bool = True,
                replicate: bool = True) -> str:
    kms = clients("kms", REGION)
    meta = kms.create_key(MultiRegion=multi_region)["KeyMetadata"]
    if replicate and multi_region:
        kms.replicate_key(KeyId=meta["KeyId"], ReplicaRegion=DR_REGION)
    clients("ssm", REGION).put_parameter(Name=names.param_sealing_key, Value=meta["Arn"],
                                         Type="String", Overwrite=True)
    return str(meta["Arn"])


def test_the_replica_decrypts_what_the_primary_encrypted(clients: Clients) -> None:
    """The key the parameter names has a replica in us-west-2 (same mrk- id, its own ARN and
    state); a ciphertext made in us-east-1 decrypts there, answered by the replica."""
    names = Names(account_id="111111111111")
    arn = sealing_key(clients, names)
    found = sealing_key_replica(clients, names)
    assert found.primary_arn == arn
    assert found.replica_arn == arn.replace(REGION, DR_REGION)
    assert found.replica_state == "Enabled"
    blob = clients("kms", REGION).encrypt(KeyId=arn, Plaintext=b"p")["CiphertextBlob"]
    done = decrypt_in(clients("kms", DR_REGION), DR_REGION, found.replica_arn, blob, b"p")
    assert (done.key_arn, done.matches) == (found.replica_arn, True)


def test_the_replica_state_is_read_in_its_own_region(clients: Clients) -> None:
    """Key state is per region: a disabled replica reads Disabled while the primary is
    Enabled."""
    names = Names(account_id="222222222222")
    arn = sealing_key(clients, names)
    clients("kms", DR_REGION).disable_key(KeyId=arn.rsplit("/", 1)[-1])
    assert sealing_key_replica(clients, names).replica_state == "Disabled"


@pytest.mark.parametrize(("multi_region", "message"), [
    (False, "not the primary of a multi-Region key"), (True, "has no replica in us-west-2")])
def test_a_key_without_a_replica_is_a_breach(clients: Clients, multi_region: bool,
                                             message: str) -> None:
    """A single-Region key, or a multi-Region key never replicated, fails the check."""
    names = Names(account_id="333333333333")
    sealing_key(clients, names, multi_region=multi_region, replicate=False)
    with pytest.raises(ObjectiveBreached, match=message):
        sealing_key_replica(clients, names)


def test_an_unanswered_call_is_held_until_it_returns(aws: AwsEndpoint,
                                                     clients: Clients) -> None:
    """A call to an isolated region gets no answer while it is isolated; once the region
    returns it is answered and the witness lets go."""
    post(aws.url, "regions/isolate", {"region": REGION, "isolated": True})
    try:
        witness = Unanswered(lambda: clients("kms", REGION).list_keys())
        assert witness.held_for(1.0)
        assert witness.outcome() == "no answer"
        clients("kms", DR_REGION).list_keys()  # the other region answers meanwhile
    finally:
        post(aws.url, "regions/isolate", {"region": REGION, "isolated": False})
    witness.close(timeout=30)
    assert not witness.held
