"""S3 Cross-Region Replication on the twin, each behaviour checked against what AWS documents.

References (Amazon S3 User Guide unless named): "Getting replication status information",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html ("status guide"
below); "Requirements and considerations for replication" (replication-requirements.html);
"Replicating delete markers between buckets" (delete-marker-replication.html); "Replicating
encrypted objects" (replication-config-for-kms-objects.html); "Meeting compliance requirements
using S3 Replication Time Control" (replication-time-control.html); "Using S3 Replication
metrics" (repl-metrics.html); the AWS FIS User Guide, "AWS FIS Actions reference"
(fis-actions-reference.html, aws:s3:bucket-pause-replication); the API Reference pages named.
"""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.twin.aws import AwsEndpoint
from drills.twin.control import request as control_request
from drills.twin.fidelity.s3_replication import Lag
from tests.conftest import wait_for

REGION, DR_REGION = "us-east-1", "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/s3-replication"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
WAIT = 20.0  # seconds: deadline of every wait (the lag is set to 50 ms below)


@pytest.fixture(scope="module")
def dr(aws: AwsEndpoint) -> Clients:
    """boto3 clients of the DR region, us-west-2."""
    return Clients.for_twin(aws.url, DR_REGION)


def control(aws: AwsEndpoint, route: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = control_request(aws.url, f"s3/{route}", body)
    assert status == 200, answer
    return answer


@pytest.fixture(autouse=True)
def short_lag(aws: AwsEndpoint) -> Iterator[None]:
    """Every version takes 50 ms to replicate; metrics every 0.5 s; no pause left behind."""
    control(aws, "replication-settings", {"median": 0.05, "sigma": 0, "max": 2,
                                          "metric_period": 0.5})
    yield
    control(aws, "resume-replication", {"all": True})


def bucket(s3: Any, region: str, versioned: bool = True) -> str:
    name = f"repl-{uuid.uuid4().hex[:12]}"
    config = {} if region == REGION else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **config)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def rule(destination: str, **extra: Any) -> dict[str, Any]:
    """A rule replicating the whole bucket to `destination` (the Filter form of AWS's
    current configuration version)."""
    body = {"ID": "dr", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": f"arn:aws:s3:::{destination}"}}
    for name, value in extra.items():
        if name in ("Metrics", "ReplicationTime", "EncryptionConfiguration"):
            body["Destination"][name] = value  # type: ignore[index]
        else:
            body[name] = value
    return body


@pytest.fixture
def pair(clients: Clients, dr: Clients) -> tuple[str, str]:
    """A versioned source in us-east-1 replicating everything to a versioned bucket in
    us-west-2 (as the vault's bucket to its `-dr` replica)."""
    source, destination = bucket(clients("s3"), REGION), bucket(dr("s3"), DR_REGION)
    clients("s3").put_bucket_replication(Bucket=source, ReplicationConfiguration={
        "Role": ROLE, "Rules": [rule(destination)]})
    return source, destination


def status_of(s3: Any, name: str, key: str, version: str | None = None) -> str | None:
    extra = {"VersionId": version} if version else {}
    return s3.head_object(Bucket=name, Key=key, **extra).get("ReplicationStatus")


def wait_status(s3: Any, name: str, key: str, wanted: str, version: str | None = None) -> None:
    wait_for(lambda: status_of(s3, name, key, version) == wanted, WAIT,
             f"{name}/{key} to be {wanted}")


def error_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def link(aws: AwsEndpoint, source: str) -> dict[str, Any]:
    links = control(aws, "replication-status", {})["links"]
    return next(entry for entry in links if entry["source_bucket"] == source)


# ------------------------------------------------------------------ status and content


def test_a_new_version_is_pending_then_completed_and_its_copy_a_replica(
        aws: AwsEndpoint, clients: Clients, dr: Clients, pair: tuple[str, str]) -> None:
    """Status guide: the source version reports PENDING, then COMPLETED; the replica
    reports REPLICA. "What does Amazon S3 replicate?" (replication-what-is-isnot-replicated
    .html): object metadata and tags; the replica keeps the key name and version ID, and
    "creation time of the replica remains the same as the corresponding object in the source
    bucket" (crr-and-other-bucket-configs.html)."""
    source, destination = pair
    s3, s3_dr = clients("s3"), dr("s3")
    control(aws, "pause-replication", {"source_bucket": source})
    version = s3.put_object(Bucket=source, Key="vaults/v1", Body=b"sealed", ContentType="x/y",
                            Metadata={"vault": "v1"}, Tagging="tier=gold")["VersionId"]
    assert status_of(s3, source, "vaults/v1") == "PENDING"
    control(aws, "resume-replication", {"source_bucket": source})

    wait_status(s3, source, "vaults/v1", "COMPLETED")
    replica = s3_dr.get_object(Bucket=destination, Key="vaults/v1")
    assert replica["ReplicationStatus"] == "REPLICA"
    assert (replica["VersionId"], replica["Body"].read()) == (version, b"sealed")
    assert (replica["ContentType"], replica["Metadata"]) == ("x/y", {"vault": "v1"})
    original = s3.head_object(Bucket=source, Key="vaults/v1")
    assert replica["LastModified"] == original["LastModified"]
    assert s3_dr.get_object_tagging(Bucket=destination, Key="vaults/v1")["TagSet"] == [
        {"Key": "tier", "Value": "gold"}]


def test_objects_outside_the_rule_have_no_replication_status(
        clients: Clients, dr: Clients) -> None:
    """Status guide: S3 returns x-amz-replication-status only for objects "eligible for
    replication" (here: outside the rule's prefix), and copies nothing else."""
    s3 = clients("s3")
    source, destination = bucket(s3, REGION), bucket(dr("s3"), DR_REGION)
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": ROLE, "Rules": [
        rule(destination, Filter={"Prefix": "vaults/"})]})
    s3.put_object(Bucket=source, Key="logs/1", Body=b"x")
    s3.put_object(Bucket=source, Key="vaults/1", Body=b"x")
    assert status_of(s3, source, "logs/1") is None
    wait_status(s3, source, "vaults/1", "COMPLETED")
    listed = dr("s3").list_objects_v2(Bucket=destination)["Contents"]
    assert [o["Key"] for o in listed] == ["vaults/1"]


def test_replicas_are_not_replicated_back(clients: Clients, dr: Clients,
                                          pair: tuple[str, str]) -> None:
    """Replication overview: replication is not chained and replicas are not replicated
    again, even when the destination replicates back to the source (failback, runbook 5.3);
    a new write in the destination is."""
    source, destination = pair
    s3, s3_dr = clients("s3"), dr("s3")
    s3_dr.put_bucket_replication(Bucket=destination, ReplicationConfiguration={
        "Role": ROLE, "Rules": [rule(source)]})
    first = s3.put_object(Bucket=source, Key="k", Body=b"1")["VersionId"]
    wait_status(s3, source, "k", "COMPLETED")
    assert status_of(s3_dr, destination, "k") == "REPLICA"
    second = s3_dr.put_object(Bucket=destination, Key="k", Body=b"2")["VersionId"]
    wait_status(s3_dr, destination, "k", "COMPLETED")
    versions = s3.list_object_versions(Bucket=source, Prefix="k")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted([first, second])


# ------------------------------------------------------------------ SSE-KMS


@pytest.fixture
def sealing_key(clients: Clients) -> tuple[str, str]:
    """A multi-Region KMS key and its us-west-2 replica: (primary ARN, replica ARN)."""
    kms = clients("kms")
    meta = kms.create_key(MultiRegion=True, Description="sealing")["KeyMetadata"]
    replica = kms.replicate_key(KeyId=meta["KeyId"], ReplicaRegion=DR_REGION)
    return meta["Arn"], replica["ReplicaKeyMetadata"]["Arn"]


def kms_pair(clients: Clients, dr: Clients, key: tuple[str, str], opt_in: bool) -> tuple[str, str]:
    s3 = clients("s3")
    source, destination = bucket(s3, REGION), bucket(dr("s3"), DR_REGION)
    s3.put_bucket_encryption(Bucket=source, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key[0]}}]})
    extra: dict[str, Any] = {}
    if opt_in:
        extra = {"SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
                 "EncryptionConfiguration": {"ReplicaKmsKeyID": key[1]}}
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={
        "Role": ROLE, "Rules": [rule(destination, **extra)]})
    return source, destination


def test_sse_kms_versions_replicate_under_the_replica_key(
        clients: Clients, dr: Clients, sealing_key: tuple[str, str]) -> None:
    """Replicating encrypted objects: with SseKmsEncryptedObjects Enabled, S3 replicates
    SSE-KMS objects and encrypts the replica with the destination's ReplicaKmsKeyID (here
    the us-west-2 replica of a multi-Region key, as the DR stack does)."""
    source, destination = kms_pair(clients, dr, sealing_key, opt_in=True)
    clients("s3").put_object(Bucket=source, Key="vaults/v", Body=b"sealed")
    wait_status(clients("s3"), source, "vaults/v", "COMPLETED")
    replica = dr("s3").get_object(Bucket=destination, Key="vaults/v")
    assert (replica["ServerSideEncryption"], replica["SSEKMSKeyId"]) == ("aws:kms",
                                                                        sealing_key[1])
    assert replica["Body"].read() == b"sealed"


def test_sse_kms_versions_are_not_replicated_without_opting_in(
        clients: Clients, dr: Clients, sealing_key: tuple[str, str]) -> None:
    """Replicating encrypted objects: "By default, Amazon S3 doesn't replicate objects that
    are stored at rest using server-side encryption with AWS KMS keys"."""
    source, destination = kms_pair(clients, dr, sealing_key, opt_in=False)
    s3 = clients("s3")
    s3.put_object(Bucket=source, Key="kms", Body=b"sealed")
    s3.put_object(Bucket=source, Key="plain", Body=b"open", ServerSideEncryption="AES256")
    assert status_of(s3, source, "kms") is None
    wait_status(s3, source, "plain", "COMPLETED")
    assert [o["Key"] for o in dr("s3").list_objects_v2(Bucket=destination)["Contents"]] == [
        "plain"]


def test_an_unusable_replica_key_fails_the_replication(
        aws: AwsEndpoint, clients: Clients, dr: Clients,
        sealing_key: tuple[str, str]) -> None:
    """Status guide: "Objects transition to a FAILED state for issues such as ... AWS Key
    Management Service (AWS KMS) permissions"; here the replica key is disabled."""
    source, _ = kms_pair(clients, dr, sealing_key, opt_in=True)
    dr("kms").disable_key(KeyId=sealing_key[1])
    clients("s3").put_object(Bucket=source, Key="v", Body=b"sealed")
    wait_status(clients("s3"), source, "v", "FAILED")
    entry = link(aws, source)
    assert (entry["failed"], entry["pending"]) == (1, 0)
    assert "KMS.DisabledException" in entry["last_failure"]


# ------------------------------------------------------------------ deletes


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_delete_markers_replicate_only_when_enabled(
        aws: AwsEndpoint, clients: Clients, dr: Clients, enabled: bool) -> None:
    """Delete marker replication guide: with DeleteMarkerReplication Enabled, the delete
    marker a DELETE adds is replicated (same version ID); when Disabled, it is not, and the
    destination still serves the object."""
    s3, s3_dr = clients("s3"), dr("s3")
    source, destination = bucket(s3, REGION), bucket(s3_dr, DR_REGION)
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": ROLE, "Rules": [
        rule(destination, DeleteMarkerReplication={
            "Status": "Enabled" if enabled else "Disabled"})]})
    s3.put_object(Bucket=source, Key="v", Body=b"1")
    wait_status(s3, source, "v", "COMPLETED")
    marker = s3.delete_object(Bucket=source, Key="v")["VersionId"]
    if enabled:
        wait_for(lambda: s3_dr.list_object_versions(Bucket=destination).get("DeleteMarkers"),
                 WAIT, "the delete marker in the destination")
        markers = s3_dr.list_object_versions(Bucket=destination)["DeleteMarkers"]
        assert [m["VersionId"] for m in markers] == [marker]
    else:
        assert link(aws, source)["pending"] == 0  # nothing was queued for it
        assert "DeleteMarkers" not in s3_dr.list_object_versions(Bucket=destination)
        assert s3_dr.get_object(Bucket=destination, Key="v")["Body"].read() == b"1"


def test_deleting_a_version_is_not_replicated(aws: AwsEndpoint, clients: Clients, dr: Clients,
                                              pair: tuple[str, str]) -> None:
    """Delete marker replication guide: "If you specify an object version ID to delete in a
    DELETE request, Amazon S3 deletes that object version in the source bucket. But it
    doesn't replicate the deletion in the destination buckets"."""
    source, destination = pair
    s3 = clients("s3")
    version = s3.put_object(Bucket=source, Key="v", Body=b"1")["VersionId"]
    wait_status(s3, source, "v", "COMPLETED")
    s3.delete_object(Bucket=source, Key="v", VersionId=version)
    assert link(aws, source)["pending"] == 0
    assert dr("s3").get_object(Bucket=destination, Key="v")["VersionId"] == version


# ------------------------------------------------------------------ configuration


def test_get_bucket_replication_answers_the_rules_as_put(clients: Clients, dr: Clients) -> None:
    """API_GetBucketReplication.html returns the configuration that was put: moto reported
    DeleteMarkerReplication Disabled and an empty Filter whatever was set."""
    s3 = clients("s3")
    source, destination = bucket(s3, REGION), bucket(dr("s3"), DR_REGION)
    put = rule(destination, Filter={"Prefix": "vaults/"},
               DeleteMarkerReplication={"Status": "Enabled"},
               ReplicationTime={"Status": "Enabled", "Time": {"Minutes": 15}},
               Metrics={"Status": "Enabled", "EventThreshold": {"Minutes": 15}})
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": ROLE,
                                                                      "Rules": [put]})
    got = s3.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
    assert got["Role"] == ROLE
    assert got["Rules"] == [put]


@pytest.mark.parametrize(("case", "message"), [
    ("source unversioned", "Versioning must be 'Enabled' on the bucket to apply a "
                           "replication configuration"),
    ("destination unversioned", "Destination bucket must have versioning enabled."),
    ("destination missing", "Destination bucket must exist."),
    ("kms without replica key", "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects "
                                "tag is present."),
])
def test_put_bucket_replication_needs_versioned_buckets(clients: Clients, dr: Clients,
                                                        case: str, message: str) -> None:
    """Replication requirements: "Both source and destination buckets must have S3
    Versioning enabled". AWS refuses PutBucketReplication with InvalidRequest: for an
    unversioned source, an unversioned or missing destination, and SseKmsEncryptedObjects
    without ReplicaKmsKeyID (the messages AWS gives, as Terraform users report them)."""
    s3 = clients("s3")
    source = bucket(s3, REGION, versioned=case != "source unversioned")
    destination = bucket(dr("s3"), DR_REGION, versioned=case != "destination unversioned")
    extra: dict[str, Any] = {}
    if case == "destination missing":
        destination = f"missing-{uuid.uuid4().hex[:8]}"
    if case == "kms without replica key":
        extra = {"SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}}}
    code, got = error_of(lambda: s3.put_bucket_replication(
        Bucket=source, ReplicationConfiguration={"Role": ROLE,
                                                 "Rules": [rule(destination, **extra)]}))
    assert (code, got) == ("InvalidRequest", message)


# ------------------------------------------------------------------ pauses


def test_a_paused_destination_keeps_versions_pending_and_they_drain_in_order(
        aws: AwsEndpoint, clients: Clients, dr: Clients, pair: tuple[str, str]) -> None:
    """Status guide: "For temporary failures, such as if a bucket or Region is unavailable,
    replication status doesn't transition to FAILED, but remains PENDING"; once the
    destination is back they replicate, the versions of a key in the order written."""
    source, destination = pair
    s3 = clients("s3")
    control(aws, "pause-replication", {"destination_region": DR_REGION})
    versions = [s3.put_object(Bucket=source, Key="k", Body=str(i).encode())["VersionId"]
                for i in range(5)]
    s3.put_object(Bucket=source, Key="other", Body=b"x")
    assert {status_of(s3, source, "k", v) for v in versions} == {"PENDING"}
    entry = link(aws, source)
    assert (entry["paused"], entry["pending"], entry["pending_bytes"]) == (True, 6, 6)

    control(aws, "resume-replication", {"destination_region": DR_REGION})
    for version in versions:
        wait_status(s3, source, "k", "COMPLETED", version)
    wait_status(s3, source, "other", "COMPLETED")
    listed = dr("s3").list_object_versions(Bucket=destination, Prefix="k")["Versions"]
    newest_first = [v["VersionId"] for v in listed if v["Key"] == "k"]
    assert newest_first == versions[::-1]
    assert dr("s3").get_object(Bucket=destination, Key="k")["Body"].read() == b"4"


def test_bucket_pause_replication_resumes_where_it_stopped(
        aws: AwsEndpoint, clients: Clients, dr: Clients, pair: tuple[str, str]) -> None:
    """FIS aws:s3:bucket-pause-replication "pauses replication from target source buckets
    to destination buckets"; when it ends replication resumes: versions written before the
    pause are already copied, those written during it are copied after, none is lost."""
    source, destination = pair
    s3 = clients("s3")
    s3.put_object(Bucket=source, Key="before", Body=b"b")
    wait_status(s3, source, "before", "COMPLETED")
    selector = {"source_bucket": source, "destination_region": DR_REGION,
                "destination_bucket": destination}
    paused = control(aws, "pause-replication", selector)
    assert selector in paused["pauses"]
    during = [f"during-{i}" for i in range(3)]
    for key in during:
        s3.put_object(Bucket=source, Key=key, Body=b"d")
    assert {status_of(s3, source, key) for key in during} == {"PENDING"}
    resumed = control(aws, "resume-replication", selector)
    assert resumed["pauses"] == []
    for key in during:
        wait_status(s3, source, key, "COMPLETED")
    keys = {o["Key"] for o in dr("s3").list_objects_v2(Bucket=destination)["Contents"]}
    assert keys == {"before", *during}


# ------------------------------------------------------------------ metrics and lag


def statistic(cw: Any, name: str, source: str, destination: str, stat: str,
              since: datetime) -> float | None:
    points = cw.get_metric_statistics(
        Namespace="AWS/S3", MetricName=name, StartTime=since,
        EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=3600, Statistics=[stat],
        Dimensions=[{"Name": "SourceBucket", "Value": source},
                    {"Name": "DestinationBucket", "Value": destination},
                    {"Name": "RuleId", "Value": "dr"}])["Datapoints"]
    return float(points[0][stat]) if points else None


def test_replication_metrics_are_published_in_the_destination_region(
        aws: AwsEndpoint, clients: Clients, dr: Clients) -> None:
    """repl-metrics.html: with replication metrics (or S3 RTC) on, S3 publishes
    OperationsPendingReplication, BytesPendingReplication and ReplicationLatency ("the
    maximum number of seconds by which the replication destination bucket is behind the
    source bucket") to CloudWatch, namespace AWS/S3, dimensions SourceBucket,
    DestinationBucket and RuleId, in the destination bucket's Region."""
    s3, cw = clients("s3"), dr("cloudwatch")
    source, destination = bucket(s3, REGION), bucket(dr("s3"), DR_REGION)
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": ROLE, "Rules": [
        rule(destination, ReplicationTime={"Status": "Enabled", "Time": {"Minutes": 15}},
             Metrics={"Status": "Enabled", "EventThreshold": {"Minutes": 15}})]})
    since = datetime.now(UTC) - timedelta(minutes=1)
    control(aws, "pause-replication", {"source_bucket": source})
    for i, size in enumerate((10, 20, 30)):
        s3.put_object(Bucket=source, Key=f"o{i}", Body=b"x" * size)
    wait_for(lambda: statistic(cw, "OperationsPendingReplication", source, destination,
                               "Maximum", since) == 3, WAIT, "3 operations pending")
    assert statistic(cw, "BytesPendingReplication", source, destination, "Maximum",
                     since) == 60
    control(aws, "resume-replication", {"source_bucket": source})
    wait_for(lambda: statistic(cw, "OperationsPendingReplication", source, destination,
                               "Minimum", since) == 0, WAIT, "the backlog back to 0")
    latency = statistic(cw, "ReplicationLatency", source, destination, "Maximum", since)
    assert latency is not None
    assert latency > 0


def test_no_replication_metrics_without_metrics_or_rtc(
        clients: Clients, dr: Clients, pair: tuple[str, str]) -> None:
    """repl-metrics.html: replication metrics are published when enabled on the rule
    (directly or through S3 RTC), not otherwise. (A second link with metrics on shows that
    the publisher has run since the first link's copy.)"""
    source, _ = pair
    s3, cw = clients("s3"), dr("cloudwatch")
    s3.put_object(Bucket=source, Key="v", Body=b"1")
    wait_status(s3, source, "v", "COMPLETED")
    watched, watched_destination = bucket(s3, REGION), bucket(dr("s3"), DR_REGION)
    s3.put_bucket_replication(Bucket=watched, ReplicationConfiguration={"Role": ROLE, "Rules": [
        rule(watched_destination, Metrics={"Status": "Enabled",
                                           "EventThreshold": {"Minutes": 15}})]})
    since = datetime.now(UTC) - timedelta(minutes=1)
    s3.put_object(Bucket=watched, Key="v", Body=b"1")
    wait_for(lambda: statistic(cw, "ReplicationLatency", watched, watched_destination,
                               "Maximum", since) is not None, WAIT, "the watched link's metric")
    metrics = cw.list_metrics(Namespace="AWS/S3", Dimensions=[
        {"Name": "SourceBucket", "Value": source}])["Metrics"]
    assert metrics == []


def test_realistic_lag_is_seconds_for_most_and_under_15_minutes_for_99_99_percent() -> None:
    """replication-time-control.html: S3 RTC "replicates most objects that you upload to
    Amazon S3 in seconds, and 99.99 percent of those objects within 15 minutes". The
    `realistic` draw (twin estimate) keeps both: its median is seconds, its p99.99 (observed
    over 200 000 draws) under 15 minutes, and its tail is long (p99 over a minute)."""
    from drills.twin.fidelity.s3_replication import PROFILES

    lag, period = PROFILES["realistic"]
    rng = random.Random(9)
    draws = sorted(lag.draw(rng) for _ in range(200_000))
    assert 1 < draws[len(draws) // 2] < 10
    assert 60 < draws[int(len(draws) * 0.99)] < 900
    assert draws[int(len(draws) * 0.9999)] < 900
    assert period == 60  # "minute-by-minute" metrics


def test_lag_quantiles_and_fixed_lag() -> None:
    """The lag model the settings route reports: sigma 0 is a fixed lag; quantiles are
    capped at `max`."""
    assert Lag(0.05, 0, 2).draw(random.Random(1)) == 0.05
    assert Lag(4, 1.2, 3600).quantile(0.5) == pytest.approx(4)
    assert Lag(4, 5, 60).quantile(0.9999) == 60


def test_settings_route_selects_a_profile_and_rejects_bad_values(aws: AwsEndpoint) -> None:
    """The twin-only settings route: a profile name, or numbers >= 0; anything else is a
    400 ValidationException."""
    answer = control(aws, "replication-settings", {"profile": "realistic"})
    assert (answer["profile"], answer["median"], answer["metric_period"]) == (
        "realistic", 4.0, 60.0)
    assert answer["p99_99"] < 900
    for body in ({"profile": "slow"}, {"median": -1}, {"sigma": "x"}, {"seed": 1.5}):
        status, reply = control_request(aws.url, "s3/replication-settings", body)
        assert (status, reply["__type"]) == (400, "ValidationException"), body
    status, reply = control_request(aws.url, "s3/pause-replication", {"bucket": "b"})
    assert (status, reply["__type"]) == (400, "ValidationException")


def test_install_is_idempotent() -> None:
    """install() twice patches moto once."""
    script = """
from moto.s3.models import FakeKey, S3Backend
from drills.twin import fidelity
from drills.twin.fidelity import s3_replication
fidelity.install()
patched = (S3Backend.put_object, FakeKey.response_dict, dict(s3_replication._ORIGINAL))
fidelity.install()
assert (S3Backend.put_object, FakeKey.response_dict, s3_replication._ORIGINAL) == patched
"""
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, timeout=60)
