"""Region faults on the session's twin: a region isolated as a unit (AWS APIs, NATS, enclaves,
API endpoint, replication) and whole again once reverted, also from the journal alone; the
primary API taken down moves api.vettid.dev to the DR region in the DNS answers, as `dig`
sees them; replication pauses hold writes PENDING until reverted."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from drills.api_client import tls_context
from drills.capabilities import ALL
from drills.faults import AllowList, BlastRadius, FaultContext, FaultInjector, rollback
from drills.faults.region import ApiDown, Failover, IsolateRegion, PauseBucketReplication
from drills.journal import FaultState, Journal
from drills.procedures.region import FailbackOrder, FailbackStep
from drills.twin import api, control, manager
from drills.twin.manager import Twin
from drills.twin.state import DR_REGION, PRIMARY_REGION
from tests.conftest import wait_for, wait_serving

pytestmark = pytest.mark.twin
ENV = "twin:test-region"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def _injector(journal: Journal, twin: Twin) -> tuple[FaultInjector, FaultContext]:
    allow = AllowList({"region": (PRIMARY_REGION,), "bucket": (twin.names.bucket,)})
    # A region isolated is a full outage of it, as in the @full_outage region drill.
    return (FaultInjector(journal, "run-1", ENV, allow, BlastRadius(full_outage=True)),
            FaultContext(twin.clients, twin, ALL))


def _impatient_s3(twin: Twin, region: str) -> object:
    """An S3 client that gives up after 2 s and never retries."""
    return boto3.client("s3", region_name=region, endpoint_url=twin.state.aws_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(connect_timeout=2, read_timeout=2,
                                      retries={"total_max_attempts": 1}))


def _health(twin: Twin, region: str) -> int | str:
    front = api.ApiEndpoint.from_dict(region, twin.state.regions[region].api)
    try:
        return httpx.get(f"{front.url}/health", verify=tls_context(twin.ca_bundle), timeout=2,
                         trust_env=False).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _state(pid: int) -> str:
    """The kernel's state letter of `pid` (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _dig(twin: Twin, name: str) -> list[str]:
    env = manager.env(Path(twin.state.state_dir))
    return subprocess.run(["dig", f"@{env['DRILLS_DNS_HOST']}", "-p", env["DRILLS_DNS_PORT"],
                           name, "+short"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.split()


def test_an_isolated_region_stops_answering_as_a_unit_and_returns_whole(
        healthy_twin: Twin, journal: Journal) -> None:
    """Journaled first; while it holds, us-east-1's S3 does not answer but us-west-2's does,
    its enclaves and API are stopped, replication out of and into it is paused; reverted,
    all of it serves again and the pauses are lifted."""
    injector, ctx = _injector(journal, healthy_twin)
    active = injector.inject(IsolateRegion(ctx, {"region": PRIMARY_REGION}))
    try:
        assert journal.entries()[0].kind == "region.isolate"
        with pytest.raises(botocore.exceptions.BotoCoreError):
            _impatient_s3(healthy_twin, PRIMARY_REGION).list_buckets()  # type: ignore[attr-defined]
        _impatient_s3(healthy_twin, DR_REGION).list_buckets()  # type: ignore[attr-defined]
        assert _health(healthy_twin, PRIMARY_REGION) in ("ConnectTimeout", "ReadTimeout")  # TLS
        assert {_state(pid) for pid in active.fault.params["workers"].values()} == {"T"}
        pauses = control.post(healthy_twin.state.aws_url, "s3/replication-status", {})["pauses"]
        assert {"source_region": PRIMARY_REGION} in [
            {k: v for k, v in p.items() if v} for p in pauses]
    finally:
        injector.revert(active)
    assert _health(healthy_twin, PRIMARY_REGION) == 200
    assert control.post(healthy_twin.state.aws_url, "s3/replication-status", {})["pauses"] == []
    wait_serving(healthy_twin)


def test_rollback_brings_an_isolated_region_back_from_the_journal_alone(
        healthy_twin: Twin, journal: Journal) -> None:
    """A run killed while the region is isolated: `rollback` rebuilds the fault from its
    journal entry and reverts it."""
    injector, ctx = _injector(journal, healthy_twin)
    injector.inject(IsolateRegion(ctx, {"region": PRIMARY_REGION}))
    results = rollback(Journal(journal.path), ctx, ENV)
    assert [r.reverted for r in results] == [True]
    assert Journal(journal.path).entries()[-1].state is FaultState.REVERTED
    assert _health(healthy_twin, PRIMARY_REGION) == 200
    wait_serving(healthy_twin)


def test_a_paused_bucket_holds_its_versions_pending_until_reverted(
        healthy_twin: Twin, journal: Journal) -> None:
    """aws:s3:bucket-pause-replication: an object put meanwhile stays PENDING and absent
    from the DR bucket; after the revert it is COMPLETED and there."""
    injector, ctx = _injector(journal, healthy_twin)
    names, s3 = healthy_twin.names, healthy_twin.clients("s3")
    dr_s3 = healthy_twin.clients("s3", DR_REGION)
    key = f"drills-probe/pause-{uuid.uuid4().hex[:8]}"
    active = injector.inject(PauseBucketReplication(ctx, {"bucket": names.bucket}))
    try:
        s3.put_object(Bucket=names.bucket, Key=key, Body=b"marker")
        assert s3.head_object(Bucket=names.bucket, Key=key)["ReplicationStatus"] == "PENDING"
        with pytest.raises(botocore.exceptions.ClientError):
            dr_s3.head_object(Bucket=names.dr_bucket, Key=key)
    finally:
        injector.revert(active)
    try:
        wait_for(lambda: s3.head_object(Bucket=names.bucket, Key=key)[
            "ReplicationStatus"] == "COMPLETED", 30, "the held version to replicate")
        assert dr_s3.head_object(Bucket=names.dr_bucket, Key=key)["ReplicationStatus"] == \
            "REPLICA"
    finally:
        for bucket, client in ((names.bucket, s3), (names.dr_bucket, dr_s3)):
            for version in client.list_object_versions(Bucket=bucket, Prefix=key).get(
                    "Versions", []):
                client.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])


@pytest.fixture
def dr_serving(healthy_twin: Twin) -> Iterator[Twin]:
    """The DR ASG scaled to 2 (runbook 5.2 step 1) until its API is healthy; back to 0."""
    asg = healthy_twin.clients("autoscaling", DR_REGION)
    name = healthy_twin.names.dr_asg
    asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=2)
    try:
        wait_for(lambda: _health(healthy_twin, DR_REGION) == 200, 90,
                 "the DR region's API to have an enclave behind it")
        yield healthy_twin
    finally:
        asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=0)
        wait_for(lambda: not healthy_twin.worker_pids(DR_REGION), 60,
                 "the DR workers to stop")


def test_dig_sees_api_vettid_dev_fail_over_when_the_primary_health_check_fails(
        dr_serving: Twin, journal: Journal) -> None:
    """Issue 9's `dig` check: the primary's API down, Route 53's checkers fail its health
    check and the name servers answer the SECONDARY (us-west-2); reverted, the PRIMARY."""
    twin = dr_serving
    primary, dr = twin.state.primary.host, twin.state.regions[DR_REGION].host
    wait_for(lambda: _dig(twin, "api.vettid.dev") == [primary], 30,
             "api.vettid.dev to answer the primary")
    injector, ctx = _injector(journal, twin)
    active = injector.inject(ApiDown(ctx, {"region": PRIMARY_REGION}))
    try:
        wait_for(lambda: _dig(twin, "api.vettid.dev") == [dr], 60,
                 "api.vettid.dev to answer the DR region")
        assert _dig(twin, "api-dr.vettid.dev") == [dr]
    finally:
        injector.revert(active)
    wait_for(lambda: _dig(twin, "api.vettid.dev") == [primary], 60,
             "api.vettid.dev to answer the primary again")


def test_failback_calls_the_operators_pace_after_each_step_before_the_next(
        healthy_twin: Twin, journal: Journal) -> None:
    """`Failover.pace` runs between 5.3's steps, in the runbook's order as written: when it
    is called after step 2 (the sync) the DR group still desires its failover capacity, and
    step 3 (DR down) waits for it to return."""
    twin = healthy_twin
    names = twin.names
    allow = AllowList({"region": (DR_REGION,)})
    faults = FaultInjector(journal, "run-1", ENV, allow, BlastRadius(full_outage=True))
    active = faults.inject(Failover(FaultContext(twin.clients, twin, ALL), {
        "region": DR_REGION, "names": names.to_dict(), "capacity": 1,
        "failback": FailbackOrder.AS_WRITTEN.value}))
    seen: list[tuple[str, int]] = []

    def pace(step: FailbackStep) -> None:
        dr = twin.clients("autoscaling", DR_REGION).describe_auto_scaling_groups(
            AutoScalingGroupNames=[names.dr_asg])["AutoScalingGroups"][0]
        seen.append((step.step, dr["DesiredCapacity"]))
    assert isinstance(active.fault, Failover)
    active.fault.pace = pace
    try:
        wait_for(lambda: active.fault.dns_ready, 60, "the failover's DNS change")
    finally:
        faults.revert(active)
    assert [s for s, _ in seen] == ["5.3 step 1", "5.3 step 2", "5.3 step 3", "5.3 step 4",
                                    "(clients back)"]
    assert dict(seen)["5.3 step 2"] == 1  # DR still up when the operator paused after the sync
    assert dict(seen)["5.3 step 3"] == 0
