"""Runbook 5.2 (failover to the DR region) and 5.3 (failback), with the commands it prints.

    5.2 step 1  AWS_DEFAULT_REGION=us-west-2 aws autoscaling set-desired-capacity \\
                  --auto-scaling-group-name VettID-Nitro-DR-EnclaveASG --desired-capacity 2
    5.2 step 2  aws route53 change-resource-record-sets --hosted-zone-id <zone-id> \\
                  --change-batch file://dr-failover-records.json
    5.2 step 3  curl -X POST "https://api-dr.vettid.dev/vault/enroll/start-direct" ...
    5.3 step 1  verify the primary region recovered (its Route 53 health check and ASG)
    5.3 step 2  aws s3 sync s3://vettid-vault-data-dr-<account-id>/ \\
                  s3://vettid-vault-data-<account-id>/ --source-region us-west-2
    5.3 step 3  the primary's ASG to 2, then (after it is healthy) the DR ASG to 0
    5.3 step 4  DNS back to the primary

The runbook does not print `dr-failover-records.json`. The one written here UPSERTs the
PRIMARY failover record of `api.vettid.dev` with what `api-dr.vettid.dev` answers and the
SECONDARY's health check, so the name is served from the DR region whatever the primary's
health; step 4 UPSERTs the records as they were before the failover (read before it).

5.3 as written syncs the DR bucket back (step 2) while the DR region still serves, then
scales DR down (step 3) and only then moves DNS back (step 4): writes the DR region
acknowledges after the sync never reach the primary, and between step 3 and the clients'
next lookup the name points at a region with no enclaves. `FailbackOrder.DR_STOPPED_FIRST`
(the default) runs step 3 before step 2 and waits until the DR ASG has no instance left, so
that nothing acknowledges a write while the bucket is synced; then DNS moves back, and
failback is complete once the record's TTL has passed after INSYNC (the apps' cached answers
have expired; in either order). The price
is a planned outage, from DR's scale-down until clients follow the DNS change (the sync,
INSYNC and the record's TTL), inside the maintenance window 7.2 announces.

Two other orders lose writes, found by these drills:
- syncing while DR serves and syncing again after DNS moved back: `aws s3 sync` copies an
  object only when its size differs or the source's LastModified is newer than the
  destination's, and the first pass gives the primary's copy the time of the copy, so a
  same-sized write DR acknowledged after the first pass listed the object looks older than the
  copy and is skipped (three writes lost in the region-outage drill);
- moving DNS back, waiting for the TTL, then syncing: the sync overwrites writes the primary
  takes meanwhile with the DR copies it listed before them (one write lost).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.environment import Names
from drills.errors import RecoveryError
from drills.measure.rpo import MISSING, VaultState, ledger_reader
from drills.procedures.s3 import object_key

Progress = Callable[[str], None]
#: How long one command may take before the step gives up on it (seconds).
COMMAND_TIMEOUT = 120.0
#: The enrolment test's body, as runbook 5.2 step 3 prints it.
ENROLMENT_TEST = {"device_id": "dr-test", "device_type": "android",
                  "invitation_code": "DR-TEST"}


def _quiet(_: str) -> None:
    pass


class FailbackOrder(StrEnum):
    AS_WRITTEN = "as-written"  # 5.3 steps 1, 2, 3, 4
    DR_STOPPED_FIRST = "dr-stopped-first"  # 1, 3 (until DR has no instance), 2, 4


@dataclass(frozen=True, slots=True)
class Command:
    """One command as run: its line, exit code, output, and when it ran (monotonic)."""

    line: str
    returncode: int
    stdout: str
    stderr: str
    started: float
    ended: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        return (self.stderr or self.stdout).strip().splitlines()[-1:][0] if (
            self.stderr or self.stdout).strip() else f"exit code {self.returncode}"


def run(argv: Sequence[str], env: dict[str, str], timeout: float = COMMAND_TIMEOUT) -> Command:
    """Run a runbook command; a timeout is an answer (exit code 124), not an exception: a
    command that cannot reach a dark region is a finding, not a crashed drill."""
    line = shlex.join(argv)
    started = time.monotonic()
    try:
        done = subprocess.run(list(argv), env=env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RecoveryError(f"{argv[0]} is not installed, so `{line}` cannot run; install it "
                            "and run the step again") from None
    except subprocess.TimeoutExpired:
        return Command(line, 124, "", f"no answer within {timeout:g}s", started,
                       time.monotonic())
    return Command(line, done.returncode, done.stdout, done.stderr, started, time.monotonic())


def env_in(env: dict[str, str], region: str) -> dict[str, str]:
    """`env` with the runbook's `export AWS_DEFAULT_REGION=<region>`."""
    return {**env, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}


# -- Route 53 ------------------------------------------------------------------------------
def hosted_zone_id(clients: Clients, names: Names) -> str:
    """The id of the public zone `names.hosted_zone` (the runbook's `<zone-id>`)."""
    found = clients("route53", names.primary_region).list_hosted_zones_by_name(
        DNSName=names.hosted_zone, MaxItems="1")["HostedZones"]
    if not found or found[0]["Name"].rstrip(".") != names.hosted_zone:
        raise RecoveryError(f"no Route 53 hosted zone {names.hosted_zone}; check "
                            "[environment] hosted_zone")
    return str(found[0]["Id"]).rsplit("/", 1)[-1]


def record_sets(clients: Clients, zone_id: str, name: str) -> list[dict[str, Any]]:
    """The A record sets of `name` in the zone, as Route 53 lists them."""
    want = name.rstrip(".") + "."
    pages = clients("route53").get_paginator("list_resource_record_sets").paginate(
        HostedZoneId=zone_id, StartRecordName=want, StartRecordType="A")
    out: list[dict[str, Any]] = []
    for page in pages:
        for rrset in page["ResourceRecordSets"]:
            if rrset["Name"] != want:
                return out
            if rrset["Type"] == "A":
                out.append(rrset)
    return out


def failover_batch(api_sets: Sequence[dict[str, Any]],
                   dr_sets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """dr-failover-records.json: the PRIMARY record of the API name answers what the DR
    name answers, checked by the SECONDARY's health check."""
    primary = [r for r in api_sets if r.get("Failover") == "PRIMARY"]
    secondary = [r for r in api_sets if r.get("Failover") == "SECONDARY"]
    if not primary or not dr_sets:
        raise RecoveryError("runbook 5.2 step 2 needs a PRIMARY failover record for the API "
                            "name and a record for the DR name; found "
                            f"{len(primary)} and {len(dr_sets)}")
    moved = {k: v for k, v in primary[0].items()
             if k not in ("ResourceRecords", "AliasTarget", "HealthCheckId", "TTL")}
    for key in ("ResourceRecords", "AliasTarget", "TTL"):
        if key in dr_sets[0]:
            moved[key] = dr_sets[0][key]
    if secondary and "HealthCheckId" in secondary[0]:
        moved["HealthCheckId"] = secondary[0]["HealthCheckId"]
    return {"Comment": "runbook 5.2 step 2: the API name to the DR region",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": moved}]}


def restore_batch(api_sets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Runbook 5.3 step 4: the API name's records as they were before the failover."""
    return {"Comment": "runbook 5.3 step 4: the API name back to the primary region",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": dict(r)} for r in api_sets]}


@dataclass(frozen=True, slots=True)
class DnsChange:
    """A change-resource-record-sets as run: the command and the change's id (None: it was
    not accepted)."""

    command: Command
    change_id: str | None


def change_records(env: dict[str, str], zone_id: str, batch: dict[str, Any], batch_file: Path,
                   timeout: float = COMMAND_TIMEOUT) -> DnsChange:
    """`aws route53 change-resource-record-sets --change-batch file://<batch_file>`."""
    batch_file.parent.mkdir(parents=True, exist_ok=True)
    batch_file.write_text(json.dumps(batch, indent=2))
    done = run(["aws", "route53", "change-resource-record-sets", "--hosted-zone-id", zone_id,
                "--change-batch", f"file://{batch_file}"], env, timeout)
    change_id = None
    if done.ok:
        change_id = str(json.loads(done.stdout)["ChangeInfo"]["Id"]).rsplit("/", 1)[-1]
    return DnsChange(done, change_id)


def change_status(clients: Clients, change_id: str) -> str:
    """PENDING or INSYNC (GetChange)."""
    return str(clients("route53").get_change(Id=change_id)["ChangeInfo"]["Status"])


def health_check_healthy(clients: Clients, check_id: str) -> bool:
    """Route 53's verdict: healthy when more than 18 % of its checkers report healthy."""
    observations = clients("route53").get_health_check_status(
        HealthCheckId=check_id)["HealthCheckObservations"]
    healthy = sum(o["StatusReport"]["Status"].startswith("Success") for o in observations)
    return bool(observations) and healthy / len(observations) > 0.18


def read_plan(clients: Clients, names: Names) -> dict[str, Any]:
    """What failover and failback need, read while us-east-1 answers (Route 53's control
    plane and the primary's ASG are there): the zone, the API name's records and the DR
    name's, the PRIMARY record's health check and TTL, both ASGs' desired capacity. An
    operator prepares the same before an outage (dr-failover-records.json is a file)."""
    zone = hosted_zone_id(clients, names)
    api_sets = record_sets(clients, zone, names.api_host)
    dr_sets = record_sets(clients, zone, names.dr_api_host)
    failover_batch(api_sets, dr_sets)  # refuse now, before anything acts
    primary = next(r for r in api_sets if r.get("Failover") == "PRIMARY")

    def desired(region: str, asg: str) -> int:
        return int(clients("autoscaling", region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]["DesiredCapacity"])

    return {"zone_id": zone, "api_sets": api_sets, "dr_sets": dr_sets,
            "primary_check": primary.get("HealthCheckId", ""),
            "ttl": int(primary.get("TTL", 60)),
            "primary_desired": desired(names.primary_region, names.asg) or 2,
            "dr_desired": desired(names.dr_region, names.dr_asg)}


# -- capacity and data ----------------------------------------------------------------------
def set_desired(env: dict[str, str], region: str, asg: str, desired: int,
                timeout: float = COMMAND_TIMEOUT) -> Command:
    """`aws autoscaling set-desired-capacity` with AWS_DEFAULT_REGION=<region>."""
    return run(["aws", "autoscaling", "set-desired-capacity", "--auto-scaling-group-name", asg,
                "--desired-capacity", str(desired)], env_in(env, region), timeout)


@dataclass(frozen=True, slots=True)
class RegionCapacity:
    """An enclave ASG as its load balancer sees it."""

    desired: int
    in_service: int
    healthy_targets: int

    @property
    def ready(self) -> bool:
        return self.desired > 0 and self.healthy_targets >= self.desired


def group_members(clients: Clients, region: str, asg: str) -> set[str]:
    """The ids of every instance in the ASG, whatever its lifecycle state (a terminated
    instance leaves the list)."""
    group = clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    return {i["InstanceId"] for i in group["Instances"]}


def region_capacity(clients: Clients, region: str, asg: str) -> RegionCapacity:
    """Desired capacity, InService instances, and healthy targets in the ASG's target groups
    (the enclave's own health check, as the load balancer runs it)."""
    group = clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
    members = {i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"}
    healthy: set[str] = set()
    elb = clients("elbv2", region)
    for arn in group.get("TargetGroupARNs", []):
        for target in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
            if target["TargetHealth"]["State"] == "healthy" and target["Target"]["Id"] in members:
                healthy.add(target["Target"]["Id"])
    return RegionCapacity(group["DesiredCapacity"], len(members), len(healthy))


def reverse_sync(env: dict[str, str], names: Names, timeout: float = COMMAND_TIMEOUT) -> Command:
    """Runbook 5.3 step 2: `aws s3 sync` of the DR bucket into the primary's."""
    return run(["aws", "s3", "sync", f"s3://{names.dr_bucket}/", f"s3://{names.bucket}/",
                "--source-region", names.dr_region], env_in(env, names.primary_region), timeout)


def enrolment_test(url: str, ca_bundle: Path | None, address: str | None,
                   timeout: float = 30.0) -> Command:
    """Runbook 5.2 step 3's curl against `url` (https://api-dr.vettid.dev[:port]); `address`:
    where the name resolves (given to curl with --resolve, as the twin's DNS answers it)."""
    from urllib.parse import urlsplit

    where = urlsplit(url)
    argv = ["curl", "-sS", "--fail-with-body", "--max-time", f"{timeout:g}", "-X", "POST",
            f"{url.rstrip('/')}/vault/enroll/start-direct",
            "-H", "Content-Type: application/json", "-d", json.dumps(ENROLMENT_TEST)]
    if address:
        argv[1:1] = ["--resolve", f"{where.hostname}:{where.port or 443}:{address}"]
    if ca_bundle:
        argv[1:1] = ["--cacert", str(ca_bundle)]
    return run(argv, {"PATH": "/usr/bin:/bin:/usr/local/bin"}, timeout + 5)


def buried_in_dr(clients: Clients, names: Names, vault_ids: Sequence[str]) -> dict[str, str]:
    """Vaults whose object in the DR bucket has a write made in DR buried under a replica:
    the current version is a REPLICA from the primary, and a version DR wrote itself is as
    new or newer (LastModified). A replica is stored when it arrives and keeps its source's
    LastModified ("creation time of the replica remains the same as the corresponding object
    in the source bucket"), so one that arrives after DR's own later write becomes current
    over it. vault id -> what was seen."""
    s3 = clients("s3", names.dr_region)
    out: dict[str, str] = {}
    for vault_id in vault_ids:
        key = object_key(vault_id)
        try:  # the current version as GET answers it (a listing's IsLatest may disagree)
            head = s3.head_object(Bucket=names.dr_bucket, Key=key)
        except ClientError:
            continue
        versions = {v["VersionId"]: v for v in s3.list_object_versions(
            Bucket=names.dr_bucket, Prefix=key).get("Versions", []) if v["Key"] == key}
        current = versions.get(head.get("VersionId", ""))
        if current is None or head.get("ReplicationStatus") != "REPLICA":
            continue
        buried = [v for vid, v in versions.items() if vid != current["VersionId"]
                  and v["LastModified"] >= current["LastModified"]
                  and not _is_replica(s3, names.dr_bucket, key, vid)]
        if buried:
            out[vault_id] = (f"replica {current['VersionId']} (written "
                             f"{current['LastModified']:%H:%M:%S}) is current over DR's own "
                             f"{buried[0]['VersionId']} (written "
                             f"{buried[0]['LastModified']:%H:%M:%S})")
    return out


def _is_replica(s3: Any, bucket: str, key: str, version_id: str) -> bool:
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version_id)
    return bool(head.get("ReplicationStatus") == "REPLICA")


def replica_states(clients: Clients, names: Names,
                   vault_ids: Sequence[str]) -> dict[str, dict[str, VaultState]]:
    """What the DR region holds of each vault, read there: its ledger replica's content hash,
    and whether the object version that ledger item names is in the replica bucket (S3
    replication keeps version ids). A DR enclave can serve a vault only with both."""
    dr = names.dr_region
    ddb, s3 = clients("dynamodb", dr), clients("s3", dr)
    shas = ledger_reader(ddb, names.credentials_table)(vault_ids)
    versions = ledger_reader(ddb, names.credentials_table, attribute="version_id")(vault_ids)
    ledger = {v: VaultState(sha) if sha else VaultState(None, MISSING) for v, sha in shas.items()}
    bucket = {}
    for vault_id in vault_ids:
        version, sha = versions.get(vault_id), shas.get(vault_id)
        try:
            if version:
                s3.head_object(Bucket=names.dr_bucket, Key=object_key(vault_id),
                               VersionId=version)
        except ClientError:
            version = None
        bucket[vault_id] = VaultState(sha) if version and sha else VaultState(None, MISSING)
    return {f"{dr} ledger": ledger, f"{dr} bucket": bucket}


# -- 5.2 pre-requisites -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Prerequisite:
    """One of runbook 5.2's pre-requisites, checked with a read-only call."""

    name: str
    met: bool
    found: str


def prerequisites(clients: Clients, names: Names) -> list[Prerequisite]:
    """Runbook 5.2's five pre-requisites, each read from the service that holds it."""
    primary, dr = names.primary_region, names.dr_region
    out = []

    def check(name: str, probe: Callable[[], tuple[bool, str]]) -> None:
        try:
            met, found = probe()
        except Exception as exc:  # any failure to read is "not met", and says why
            met, found = False, f"{type(exc).__name__}: {exc}"
        out.append(Prerequisite(name, met, found))

    def replication() -> tuple[bool, str]:
        rules = clients("s3", primary).get_bucket_replication(Bucket=names.bucket)[
            "ReplicationConfiguration"]["Rules"]
        to_dr = [r for r in rules if r["Status"] == "Enabled"
                 and r["Destination"]["Bucket"] == f"arn:aws:s3:::{names.dr_bucket}"]
        return bool(to_dr), f"{len(to_dr)} enabled rule(s) to {names.dr_bucket}"

    def global_tables() -> tuple[bool, str]:
        missing = []
        for table in names.tables:
            replicas = clients("dynamodb", primary).describe_table(TableName=table)[
                "Table"].get("Replicas", [])
            if not any(r["RegionName"] == dr and r.get("ReplicaStatus") == "ACTIVE"
                       for r in replicas):
                missing.append(table)
        return not missing, f"no ACTIVE {dr} replica: {', '.join(missing)}" if missing else (
            f"{len(names.tables)} tables with an ACTIVE replica in {dr}")

    def key() -> tuple[bool, str]:
        arn = clients("ssm", dr).get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
        meta = clients("kms", dr).describe_key(KeyId=arn)["KeyMetadata"]
        ok = meta.get("MultiRegion") is True and meta["KeyState"] == "Enabled"
        return ok, f"{arn} in {dr}: MultiRegion {meta.get('MultiRegion')}, {meta['KeyState']}"

    def ami() -> tuple[bool, str]:
        image = clients("ssm", dr).get_parameter(Name=names.param_current_ami)["Parameter"][
            "Value"]
        found = clients("ec2", dr).describe_images(ImageIds=[image])["Images"]
        return bool(found) and found[0]["State"] == "available", f"{image} in {dr}: " + (
            found[0]["State"] if found else "not found")

    def health_checks() -> tuple[bool, str]:
        zone = hosted_zone_id(clients, names)
        api_sets = record_sets(clients, zone, names.api_host)
        roles = {r.get("Failover"): r.get("HealthCheckId") for r in api_sets}
        ok = bool(roles.get("PRIMARY")) and bool(roles.get("SECONDARY"))
        return ok, f"{names.api_host}: " + ", ".join(
            f"{role} {'with' if check else 'without'} a health check"
            for role, check in roles.items()) if roles else "no records"

    check("Cross-region replication enabled for S3", replication)
    check("DynamoDB Global Tables configured", global_tables)
    check("Multi-region KMS key enabled", key)
    check(f"DR AMI replicated to {dr}", ami)
    check("Route 53 health checks configured", health_checks)
    return out


# -- failback ------------------------------------------------------------------------------
@dataclass(slots=True)
class FailbackStep:
    """One step of 5.3 as run: the runbook's number, what was done, when, and how it went."""

    step: str
    what: str
    started: float
    ended: float
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Failback:
    """5.3 as run, step by step."""

    order: FailbackOrder
    steps: list[FailbackStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def add(self, step: str, what: str, started: float, ok: bool, detail: str = "") -> None:
        self.steps.append(FailbackStep(step, what, started, time.monotonic(), ok, detail))


@dataclass(frozen=True, slots=True)
class FailbackPlan:
    """What failback needs to know, read before the failover (journaled with it)."""

    names: Names
    zone_id: str
    api_sets: tuple[dict[str, Any], ...]  # the API name's records before the failover
    primary_check: str  # the PRIMARY record's health check
    primary_desired: int
    dr_desired: int  # the DR ASG's desired capacity before the failover (0: standby)
    ttl: int
    batch_dir: Path

    def wait_until(self, condition: Callable[[], bool], timeout: float, poll: float = 0.5
                   ) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True


def failback(plan: FailbackPlan, clients: Clients, env: dict[str, str],
             order: FailbackOrder = FailbackOrder.DR_STOPPED_FIRST, timeout: float = 300.0,
             progress: Progress = _quiet,
             pace: Callable[[FailbackStep], None] | None = None) -> Failback:
    """Runbook 5.3 in `order`; every step runs even when one before it failed (what failed
    is in the result), so that failback leaves nothing half done that it could do. `pace`
    is called with each step once done, before the next: where a person running the
    procedure takes their time (a drill waits there for what that time lets happen)."""
    names, done = plan.names, Failback(order)

    def add(step: str, what: str, started: float, ok: bool, detail: str = "") -> None:
        done.add(step, what, started, ok, detail)
        if pace is not None:
            pace(done.steps[-1])

    primary, dr = names.primary_region, names.dr_region

    def verify() -> None:
        progress("runbook 5.3 step 1: verifying the primary region recovered")
        started = time.monotonic()
        ok = plan.wait_until(lambda: health_check_healthy(clients, plan.primary_check)
                             and region_capacity(clients, primary, names.asg).ready, timeout)
        add("5.3 step 1", "primary health check healthy and its ASG serving", started,
            ok, "" if ok else f"not within {timeout:g}s")

    def sync(label: str) -> None:
        progress(f"runbook 5.3 step 2: aws s3 sync from {names.dr_bucket} ({label})")
        command = reverse_sync(env, names)
        copied = command.stdout.count("copy:")
        add("5.3 step 2", f"{command.line} ({label})", command.started, command.ok,
            f"{copied} object(s) copied" if command.ok else command.why())

    def scale(emptied: bool) -> None:
        progress("runbook 5.3 step 3: primary ASG up, then DR ASG down")
        started = time.monotonic()
        up = set_desired(env, primary, names.asg, plan.primary_desired)
        healthy = up.ok and plan.wait_until(
            lambda: region_capacity(clients, primary, names.asg).ready, timeout)
        down = set_desired(env, dr, names.dr_asg, plan.dr_desired) if healthy else None
        ok = bool(down and down.ok)
        detail = "" if ok else (up.why() if not up.ok else "primary not healthy" if
                                not healthy else down.why() if down else "")
        if ok and emptied:  # nothing in DR acknowledges a write from here on
            progress(f"waiting until {names.dr_asg} has no instance left")
            ok = plan.wait_until(lambda: not group_members(clients, dr, names.dr_asg), timeout)
            detail = "DR ASG emptied" if ok else f"DR instances left after {timeout:g}s"
        add("5.3 step 3", f"{up.line}; {down.line if down else '(DR left up)'}", started,
            ok, detail)

    def dns_back() -> None:
        progress("runbook 5.3 step 4: DNS back to the primary")
        started = time.monotonic()
        change = change_records(env, plan.zone_id, restore_batch(plan.api_sets),
                                plan.batch_dir / "primary-records.json")
        insync = change.change_id is not None and plan.wait_until(
            lambda: change_status(clients, change.change_id or "") == "INSYNC", timeout)
        add("5.3 step 4", change.command.line, started, insync,
            "INSYNC" if insync else change.command.why() if not change.command.ok
            else "not INSYNC in time")

    def drain() -> None:
        progress(f"waiting {plan.ttl}s (the record's TTL) for clients to follow DNS back")
        started = time.monotonic()
        time.sleep(plan.ttl + 1)  # a client keeps its answer this long: nothing to poll
        add("(clients back)", f"waited the record's TTL ({plan.ttl}s) after INSYNC",
            started, True)

    verify()
    if order is FailbackOrder.AS_WRITTEN:
        sync("as written, DR still serving")
        scale(emptied=False)
    else:
        scale(emptied=True)
        sync("DR stopped")
    dns_back()
    drain()  # failback is complete when the apps are served by the primary again
    return done
