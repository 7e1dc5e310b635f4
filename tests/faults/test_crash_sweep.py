"""The crash sweep (issue 11, "Safe when killed"): every fault kind, killed with SIGKILL at each
point of its life, is brought back to the steady state by `drills rollback`.

For each kind of `Fault.registry` (a kind without sweep parameters fails, so a new kind cannot
go unswept) and each kill point of `crash_driver.POINTS` (after journaling, before acting;
after acting, before the journal knows; in the middle of the revert), a harness
(`tests/faults/crash_driver.py`: a process of its own with the real injector and journal) is
SIGKILLed there. Acknowledged writes are then made to the damaged vaults while the fault
holds, `drills rollback` runs (its command-line entry with the twin and journal in its
environment, in a process of its own that the driver forks: the imports are paid once; the
CLI as a user types it is tested in tests/test_cli.py), and the steady state must come back:
capacity serving in both regions, health-check type, SSM parameters, AMIs and current-ami,
the sealing key and no scratch key, no scratch objects (nor their replicas), the API's DNS
records, a whole NATS cluster, no frozen enclave or API, no paused replication, an empty
journal, and every acknowledged write read back through the service. Each kill point is one
test: the figure "N of N kill points recovered" is the number that pass.

The sweep runs on a twin of its own (fast profile); `CRASH_SWEEP_TWIN=<dir>` reuses one
already running there instead (for working on the sweep), and leaves it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drills.faults import Fault
from drills.journal import FaultState, Journal
from drills.loop import LoopThread
from drills.procedures.enclave import instance_images
from drills.procedures.kms import diagnose
from drills.procedures.region import hosted_zone_id, record_sets
from drills.procedures.ssm import BACKUP_BUCKET, BackupRef, export_parameters, read_path
from drills.twin import api, control, manager
from drills.twin.manager import Twin
from drills.twin.nats.spec import NodeState
from drills.twin.procs import proc_state
from drills.vault import VaultClient, VaultUnavailable, connect, digest
from tests.conftest import ROOT, wait_for
from tests.faults.crash_driver import POINTS

pytestmark = [pytest.mark.twin, pytest.mark.long]

REGION = "us-east-1"
#: Seconds the steady state gets to come back after the rollback (replacements, refreshes,
#: a NATS node rejoining), on a loaded 2-core machine.
RECOVERY_TIMEOUT = 180.0
#: Vaults the sweep enrolls and damages (the twin's own population is only read).
SWEEP_VAULTS = 2


def product_kinds() -> list[str]:
    """Every fault kind the package registers (kinds defined by tests excluded)."""
    return sorted(kind for kind, cls in Fault.registry.items()
                  if cls.__module__.startswith("drills."))


# -- the steady state ------------------------------------------------------------------------
@dataclass
class Ledger:
    """What the service acknowledged, per vault: the hashes a read may return (the last
    acknowledged write; an unacknowledged attempt may also have landed, so it is allowed)."""

    allowed: dict[str, set[str]] = field(default_factory=dict)

    def acknowledged(self, vault_id: str, sha256: str) -> None:
        self.allowed[vault_id] = {sha256}

    def attempted(self, vault_id: str, sha256: str) -> None:
        self.allowed.setdefault(vault_id, set()).add(sha256)


class Service:
    """The vault service over NATS, as the harness reaches it (credentials read once, so an
    SSM fault does not blind the checks); a fresh connection for every batch of calls."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        creds = json.loads(twin.clients("ssm", REGION).get_parameter(
            Name=twin.names.param_nats_creds, WithDecryption=True)["Parameter"]["Value"])
        self.user, self.password = creds["user"], creds["password"]

    def _session(self, work: Callable[[VaultClient], Any], timeout: float) -> Any:
        loop = LoopThread("crash-sweep")
        try:
            async def run() -> Any:
                nc = await connect(self.twin.nats_spec(REGION).urls, self.user, self.password,
                                   "crash-sweep")
                try:
                    return await work(VaultClient(nc))
                finally:
                    await nc.close()

            return loop.run(run(), timeout=timeout)
        finally:
            loop.close()

    def write(self, ledger: Ledger, vault_ids: list[str], timeout: float = 3.0) -> int:
        """Update each vault once; the ledger learns what was acknowledged. Returns how many."""
        async def one(client: VaultClient, vault_id: str) -> bool:
            data = os.urandom(256)
            ledger.attempted(vault_id, digest(data))
            try:
                reply = await client.put(vault_id, data, timeout)
            except VaultUnavailable:
                return False
            ledger.acknowledged(vault_id, reply.fields["sha256"])
            return True

        async def all_(client: VaultClient) -> int:
            return sum(await asyncio.gather(*(one(client, v) for v in vault_ids)))

        try:
            return int(self._session(all_, timeout + 10))
        except Exception:  # NATS itself unreachable: nothing was acknowledged
            return 0

    def enroll(self, ledger: Ledger, count: int) -> list[str]:
        """Enroll `count` new vaults for the sweep to damage."""
        async def enroll(client: VaultClient) -> list[str]:
            out = []
            for _ in range(count):
                vault_id, data = f"crash-sweep-{secrets.token_hex(4)}", os.urandom(256)
                reply = await client.enroll(vault_id, data, 10)
                ledger.acknowledged(vault_id, reply.fields["sha256"])
                out.append(vault_id)
            return out

        return list(self._session(enroll, 60))

    def problems(self, ledger: Ledger, instance_ids: list[str]) -> list[str]:
        """Acknowledged writes that do not read back, and instances whose enclave does not
        answer its own health check."""
        async def check(client: VaultClient) -> list[str]:
            out = []
            for vault_id, allowed in sorted(ledger.allowed.items()):
                try:
                    data = await client.get(vault_id, 3)
                except VaultUnavailable as exc:
                    out.append(f"vault {vault_id} does not read back ({exc})")
                    continue
                if digest(data) not in allowed:
                    out.append(f"vault {vault_id} lost its acknowledged write (reads "
                               f"{digest(data)[:12]})")
            for iid in instance_ids:
                try:
                    await client.health(1, instance_id=iid)
                except VaultUnavailable:
                    out.append(f"instance {iid} is InService but its enclave does not serve")
            return out

        try:
            return list(self._session(check, 60 + 3 * len(ledger.allowed)))
        except Exception as exc:  # reported as a difference, polled again
            return [f"the service cannot be reached ({type(exc).__name__}: {exc})"]


@dataclass(frozen=True)
class Baseline:
    """What the sweep's twin looked like before any fault: the state every rollback restores."""

    desired: int
    dr_desired: int
    health_check_type: str
    parameters: dict[str, tuple[str, str]]  # name -> (type, sha256 of the value)
    images: frozenset[str]  # AMIs registered by the account
    live_keys: frozenset[str]  # KMS keys neither pending deletion nor deleted
    key_state: str
    api_records: str  # the API name's record sets (failover moves them), as JSON

    @classmethod
    def read(cls, twin: Twin) -> Baseline:
        clients, names = twin.clients, twin.names

        def group(region: str, asg: str) -> dict[str, Any]:
            return dict(clients("autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[asg])["AutoScalingGroups"][0])

        kms = clients("kms", REGION)
        keys = [k["KeyId"] for k in kms.list_keys()["Keys"]]
        live = frozenset(k for k in keys if kms.describe_key(KeyId=k)["KeyMetadata"][
            "KeyState"] not in ("PendingDeletion", "PendingReplicaDeletion"))
        images = clients("ec2", REGION).describe_images(Owners=["self"])["Images"]
        primary = group(REGION, names.asg)
        records = record_sets(clients, hosted_zone_id(clients, names), names.api_host)
        return cls(
            desired=primary["DesiredCapacity"],
            dr_desired=group(names.dr_region, names.dr_asg)["DesiredCapacity"],
            health_check_type=primary["HealthCheckType"],
            parameters={p.name: (p.type, digest(p.value.encode()))
                        for p in read_path(clients, REGION, "/vettid/")},
            images=frozenset(i["ImageId"] for i in images), live_keys=live,
            key_state=diagnose(clients, REGION, twin.state.primary.key_arn).state,
            api_records=json.dumps(records, sort_keys=True))

    def differences(self, now: Baseline) -> list[str]:
        """What `now` has that differs from this baseline, one line each."""
        out = []
        for name in ("desired", "dr_desired", "health_check_type", "key_state", "api_records"):
            if getattr(now, name) != getattr(self, name):
                out.append(f"{name} is {getattr(now, name)!r}, was {getattr(self, name)!r}")
        for name in sorted(set(self.parameters) | set(now.parameters)):
            if self.parameters.get(name) != now.parameters.get(name):
                out.append(f"SSM parameter {name} differs (or is missing)")
        if now.images != self.images:
            out.append(f"AMIs differ: {sorted(now.images - self.images)} left registered, "
                       f"{sorted(self.images - now.images)} gone")
        if now.live_keys != self.live_keys:
            out.append(f"KMS keys differ: {sorted(now.live_keys - self.live_keys)} left, "
                       f"{sorted(self.live_keys - now.live_keys)} gone")
        return out


class Harnesses:
    """The driver in `--serve` mode: a process forked per harness and per rollback."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.crash_driver", "--serve"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, request: Path) -> int:
        """A new harness process for `request`; its pid."""
        assert self.server.stdin is not None
        assert self.server.stdout is not None
        self.server.stdin.write(f"{request}\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        if not answer:
            pytest.fail(f"the crash driver server exited ({self.server.poll()})")
        return int(answer)

    def rollback(self, request: Path, what: str) -> tuple[int, str]:
        """Run `drills rollback` as `request` says, in a process of its own; its exit code
        and output."""
        spec = json.loads(request.read_text(encoding="utf-8"))
        pid = self.start(request)
        wait_for(lambda: not _alive(pid), 600, f"`drills rollback` of {what} to finish")
        log, exit_file = Path(spec["log"]), Path(spec["exit"])
        output = log.read_text(encoding="utf-8") if log.exists() else ""
        if not exit_file.exists():
            pytest.fail(f"`drills rollback` of {what} died without an exit code:\n{output}")
        return int(exit_file.read_text(encoding="utf-8")), output

    def close(self) -> None:
        if self.server.stdin is not None:
            self.server.stdin.close()
        self.server.wait(timeout=30)


def _alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


@dataclass
class Sweep:
    """The sweep's own twin and what it knows about it."""

    twin: Twin
    service: Service
    ledger: Ledger
    baseline: Baseline
    vaults: list[str]  # the sweep's own vaults, the ones data faults damage
    backup: BackupRef  # runbook 2.3's backup, which the SSM faults need
    harnesses: Harnesses
    unsteady: str = ""  # the kill point after which the steady state did not come back

    @property
    def names(self) -> Any:
        return self.twin.names

    def problems(self, journal: Journal) -> list[str]:
        """Everything that differs from the steady state now."""
        try:
            return self._problems(journal)
        except Exception as exc:  # an AWS API still held (an isolated region)
            return [f"the steady state cannot be read: {type(exc).__name__}: {exc}"]

    def _problems(self, journal: Journal) -> list[str]:
        twin, clients, names = self.twin, self.twin.clients, self.twin.names
        out = self.baseline.differences(Baseline.read(twin))
        out += [f"fault {e.fault_id} ({e.kind}) still pending: {e.state}"
                for e in journal.pending()]
        refreshes = clients("autoscaling", REGION).describe_instance_refreshes(
            AutoScalingGroupName=names.asg)["InstanceRefreshes"]
        out += [f"instance refresh {r['InstanceRefreshId'][:8]} {r['Status']}"
                for r in refreshes if r["Status"] in ("Pending", "InProgress", "Cancelling")]
        current = clients("ssm", REGION).get_parameter(
            Name=names.param_current_ami)["Parameter"]["Value"]
        out += [f"instance {iid} runs {ami}, not current-ami {current}"
                for iid, ami in instance_images(clients, names.asg, REGION).items()
                if ami != current]
        for region, bucket in ((REGION, names.bucket), (names.dr_region, names.dr_bucket)):
            listing = clients("s3", region).list_object_versions(Bucket=bucket,
                                                                 Prefix="drills-scratch/")
            if listing.get("Versions") or listing.get("DeleteMarkers"):
                out.append(f"scratch objects left under {bucket}/drills-scratch/")
        cluster = twin.nats(REGION)
        for node in cluster.spec.nodes:
            state = cluster.node_state(node.name)
            problem = cluster.formation_problem(node) if state is NodeState.RUNNING else None
            if state is not NodeState.RUNNING or problem:
                out.append(f"NATS node {node.name} is {state.value}"
                           + (f": {problem}" if problem else ""))
        out += [f"enclave {iid} (pid {pid}) is frozen"
                for iid, pid in twin.worker_pids(REGION).items() if proc_state(pid) == "T"]
        for region in twin.state.regions.values():
            front = api.ApiEndpoint.from_dict(region.name, region.api)
            pid = api.pid(Path(twin.state.state_dir), front)
            if pid is None or proc_state(pid) == "T":
                out.append(f"the API of {region.name} is {'frozen' if pid else 'not running'}")
        for service in ("s3", "dynamodb"):
            pauses = control.post(twin.state.aws_url, f"{service}/replication-status",
                                  {})["pauses"]
            if pauses:
                out.append(f"{service} replication still paused: {pauses}")
        for region, asg in ((REGION, names.asg), (names.dr_region, names.dr_asg)):
            group = clients("autoscaling", region).describe_auto_scaling_groups(
                AutoScalingGroupNames=[asg])["AutoScalingGroups"][0]
            if len(group["Instances"]) != group["DesiredCapacity"]:
                out.append(f"{asg} has {len(group['Instances'])} instances, desires "
                           f"{group['DesiredCapacity']}")
        desired, in_service = twin.in_service(REGION)
        if len(in_service) != desired:
            out.append(f"{len(in_service)} of {desired} instances InService and Healthy")
        return out + self.service.problems(self.ledger, in_service)

    def wait_steady(self, journal: Journal, timeout: float = RECOVERY_TIMEOUT) -> list[str]:
        """Wait for the steady state; what still differs at the deadline (empty: steady)."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self.problems(journal)
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.5)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """A twin of the module's own (fast profile): the sweep half-breaks it on purpose, and no
    other test should run on what a failed kill point leaves behind."""
    reuse = os.environ.get("CRASH_SWEEP_TWIN")
    state_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("crash-sweep") / "twin"
    twin = manager.up(state_dir, timing="fast", vaults=2)
    try:
        service, ledger = Service(twin), Ledger()
        for vault in twin.population():
            ledger.acknowledged(vault.vault_id, vault.sha256)
        vaults = service.enroll(ledger, SWEEP_VAULTS)
        backup = export_parameters(twin.clients, REGION, path="/vettid/", bucket=BACKUP_BUCKET,
                                   create_bucket=True)
        harnesses = Harnesses()
        try:
            yield Sweep(twin, service, ledger, Baseline.read(twin), vaults, backup, harnesses)
        finally:
            harnesses.close()
    finally:
        if not reuse:
            manager.down(state_dir)


# -- what each kind is swept with ------------------------------------------------------------
def _ami_params(s: Sweep) -> dict[str, Any]:
    return {"asg": s.names.asg, "current_param": s.names.param_current_ami,
            "latest_param": s.names.param_latest_ami}


#: Fault kind -> its parameters on the sweep's twin. Each damages as much as a drill does,
#: with more than one action where the kind allows it, so a revert has a middle.
SWEEP: dict[str, Callable[[Sweep], dict[str, Any]]] = {
    "enclave.terminate-instances": lambda s: {"asg": s.names.asg, "count": 1},
    "enclave.set-desired-capacity": lambda s: {"asg": s.names.asg, "to": 0},
    "enclave.kill-worker": lambda s: {"asg": s.names.asg, "count": 1},
    "enclave.freeze-workers": lambda s: {"asg": s.names.asg, "count": 2},
    "enclave.health-check-type": lambda s: {
        "asg": s.names.asg, "to": "EC2" if s.baseline.health_check_type == "ELB" else "ELB"},
    "enclave.deregister-current-ami": _ami_params,
    "enclave.release-build": lambda s: {**_ami_params(s), "defect": "",
                                        "version": f"9.9.{secrets.randbelow(10**6)}"},
    "dynamodb.delete-items": lambda s: {"table": s.names.credentials_table, "keys": s.vaults},
    "dynamodb.corrupt-items": lambda s: {"table": s.names.credentials_table, "keys": s.vaults},
    "kms.disable-key": lambda s: {"key": s.twin.state.primary.key_arn},
    "kms.schedule-key-deletion": lambda s: {"key": s.twin.state.primary.key_arn, "days": 7},
    "kms.scratch-key-deleted": lambda s: {"bucket": s.names.bucket, "count": 2},
    "kms.key-region-unreachable": lambda s: {"key_arn": s.twin.state.primary.key_arn},
    "nats.kill-nodes": lambda s: {"count": 1},
    "nats.freeze-nodes": lambda s: {"count": 1},
    "nats.partition-nodes": lambda s: {"count": 1},
    "s3.delete-vault-object": lambda s: {"bucket": s.names.bucket, "vault_id": s.vaults[0]},
    "s3.corrupt-vault-object": lambda s: {"bucket": s.names.bucket, "vault_id": s.vaults[0],
                                          "count": 2},
    "s3.purge-vault-object": lambda s: {"bucket": s.names.bucket, "vault_id": s.vaults[1]},
    "ssm.delete-parameter": lambda s: {"name": s.names.param_sealing_key,
                                       "backup": s.backup.to_params()},
    "ssm.corrupt-parameter": lambda s: {"name": s.names.param_nats_creds,
                                        "backup": s.backup.to_params()},
    "region.isolate": lambda s: {"region": REGION},
    "region.failover": lambda s: {"names": s.names.to_dict(), "capacity": 2},
    "api.down": lambda s: {"region": REGION},
    "s3.pause-replication": lambda s: {"bucket": s.names.bucket},
    "dynamodb.pause-replication": lambda s: {"table": s.names.credentials_table},
}

#: The journal state a kill at each point leaves (then `drills rollback` must finish the job).
LEFT_PENDING = {"journaled": FaultState.INJECTING, "acted": FaultState.INJECTING,
                "reverting": FaultState.INJECTED}


def _kill_at(sweep: Sweep, kind: str, point: str, workdir: Path) -> tuple[Journal, str]:
    """Start a harness, wait until it stops at `point`, SIGKILL it; the fault's journal id."""
    workdir.mkdir(parents=True)
    journal, ready = Journal(workdir / "journal.jsonl"), workdir / "ready.json"
    request, log = workdir / "request.json", workdir / "driver.log"
    request.write_text(json.dumps({
        "state_dir": sweep.twin.state.state_dir, "journal": str(journal.path), "kind": kind,
        "params": SWEEP[kind](sweep), "point": point, "ready": str(ready), "log": str(log)}),
        encoding="utf-8")
    pid = sweep.harnesses.start(request)
    try:
        def stopped() -> bool:
            if not _alive(pid):
                pytest.fail(f"the harness of {kind} exited before its kill point {point}:\n"
                            f"{log.read_text() if log.exists() else ''}")
            return ready.exists()

        wait_for(stopped, 180, f"{kind} to reach kill point {point}", step=0.05)
    finally:
        # SIGKILL: no handler, no finally, no atexit runs in the harness.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 30, f"harness {pid} to die")
    (entry,) = journal.pending()
    assert entry.kind == kind
    assert entry.state is LEFT_PENDING[point], (point, entry.state)
    return journal, entry.fault_id


def test_every_fault_kind_has_sweep_parameters() -> None:
    """Every kind the package registers is swept: a new kind fails here until it is added
    to SWEEP (and the sweep below fails for it too)."""
    missing = sorted(set(product_kinds()) - set(SWEEP))
    assert not missing, f"add crash-sweep parameters to SWEEP for {missing}"
    unknown = sorted(set(SWEEP) - set(product_kinds()))
    assert not unknown, f"SWEEP names fault kinds that no longer exist: {unknown}"


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("kind", product_kinds())
def test_killed_then_rolled_back(sweep: Sweep, kind: str, point: str, tmp_path: Path,
                                 record_property: Callable[[str, Any], None]) -> None:
    """SIGKILL at the kill point, acknowledged writes while the fault holds, then `drills
    rollback` restores the steady state and no acknowledged write is lost."""
    if kind not in SWEEP:
        pytest.fail(f"fault kind {kind} has no crash-sweep parameters: add it to SWEEP in "
                    f"{Path(__file__).name}")
    if sweep.unsteady:  # an earlier kill point failed: its leftovers are not this one's
        left = sweep.wait_steady(Journal(tmp_path / "none.jsonl"))
        if left:
            pytest.fail(f"not steady before the kill, since {sweep.unsteady}: {'; '.join(left)}")
        sweep.unsteady = ""
    started = time.monotonic()
    sweep.unsteady = f"{kind} at {point}"
    journal, fault_id = _kill_at(sweep, kind, point, tmp_path / "kill")
    sweep.service.write(sweep.ledger, sweep.vaults)  # must survive the rollback
    request = tmp_path / "rollback.json"
    request.write_text(json.dumps({
        "action": "rollback", "state_dir": sweep.twin.state.state_dir,
        "journal": str(journal.path), "log": str(tmp_path / "rollback.log"),
        "exit": str(tmp_path / "rollback.exit")}), encoding="utf-8")
    code, output = sweep.harnesses.rollback(request, f"{kind} at {point}")
    assert code == 0, output[-2000:]
    assert f"reverted {fault_id}" in output, output[-2000:]
    problems = sweep.wait_steady(journal)
    record_property("crash_sweep_seconds", round(time.monotonic() - started, 1))
    assert not problems, f"{kind} killed at {point}, then rolled back: " + "; ".join(problems)
    sweep.unsteady = ""
