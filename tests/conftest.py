"""Fixtures shared by the tests: the session's twin (the same one the features use), and
three real `drills run`s on it whose reports and output several test modules read."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.session import new_run_id
from drills.target import Target, TwinTarget
from drills.twin.aws import AwsEndpoint, start_aws, stop_aws
from drills.twin.manager import Twin, _serving
from drills.twin.nats import Backend, NatsCluster, allocate, cluster_for

ROOT = Path(__file__).resolve().parents[1]
CANARY_PARAM = "/vettid/nitro/drills-evidence-canary"
CREDS_PARAM = "/vettid/nitro/parent-nats-creds"


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             step: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


@pytest.fixture(scope="session")
def twin(drills_target: Target) -> Twin:
    """The running twin of this test session (started by the drills plugin if needed)."""
    assert isinstance(drills_target, TwinTarget)
    return drills_target.twin


@pytest.fixture
def healthy_twin(twin: Twin) -> Twin:
    """The twin, after making sure it serves at desired capacity again (tests break it)."""
    wait_serving(twin)
    return twin


def wait_serving(twin: Twin) -> None:
    """Wait until the group has settled (no instance refresh under way, exactly the desired
    number of instances, all InService and Healthy) and as many workers answer their health
    subject as it desires: a test that starts while an earlier one's replacement is still
    launching races the controller."""
    autoscaling = twin.clients("autoscaling")

    def settled() -> bool:
        group = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[twin.names.asg])["AutoScalingGroups"][0]
        refreshing = any(r["Status"] in ("Pending", "InProgress", "Cancelling")
                         for r in autoscaling.describe_instance_refreshes(
                             AutoScalingGroupName=twin.names.asg)["InstanceRefreshes"])
        members = group["Instances"]
        return (not refreshing and len(members) == group["DesiredCapacity"]
                and all(i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
                        for i in members)
                and len(_serving(twin)) >= group["DesiredCapacity"])

    wait_for(settled, 90, "the twin to settle and serve at capacity", step=0.25)


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEndpoint]:
    """A bare AWS endpoint (moto + fidelity layer) of this module's own, in its own process."""
    endpoint = start_aws(tmp_path_factory.mktemp("aws"))
    yield endpoint
    stop_aws(endpoint)


@pytest.fixture(scope="module")
def clients(aws: AwsEndpoint) -> Clients:
    """boto3 clients aimed at the module's AWS endpoint, in us-east-1."""
    return Clients.for_twin(aws.url, "us-east-1")


@pytest.fixture
def bucket(clients: Clients) -> str:
    """A fresh versioned bucket on the module's AWS endpoint (the vault bucket's shape)."""
    name = f"vault-{uuid.uuid4().hex[:10]}"
    clients("s3").create_bucket(Bucket=name)
    clients("s3").put_bucket_versioning(Bucket=name,
                                        VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node JetStream NATS cluster of this module's own (process backend, user u/p)."""
    spec = allocate("us-east-1", tmp_path_factory.mktemp("nats") / "c", Backend.PROCESS, "u",
                    "p", cluster_name=f"t-{uuid.uuid4().hex[:8]}")
    started = cluster_for(spec)
    started.start()
    yield started
    started.stop()


@dataclass
class Runs:
    """The reports root, each run's report directory, exit code and output (stdout alone
    and stdout + stderr), and the secret values planted or read during the runs."""

    root: Path
    journal: Path
    dirs: dict[str, Path] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    stdout: dict[str, str] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    def report(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads((self.dirs[name] / "report.json").read_text(encoding="utf-8"))


def drills_cli(*args: str, env: dict[str, str], timeout: float = 900
               ) -> subprocess.CompletedProcess[str]:
    """`drills ...` as a user runs it, from the project root (not as a pytest-xdist worker:
    the state directory and journal it is given are used as they are)."""
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "drills.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


#: The features the evidence runs below run through the CLI, as a user types it; tests of
#: them assert they pass, so a session with those tests does not run them again through
#: steps/test_drills.py (the root conftest deselects them there).
COMPLETE_FAILURE = "scenarios/complete_enclave_failure.feature"
RUN_BY_THE_EVIDENCE_RUNS = ("monthly/", COMPLETE_FAILURE)


@pytest.fixture(scope="session")
def runs(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Three real `drills run`s, as a user types them, into one reports root:

    1. `breach`: the single-instance feature with a 0.2 s Nitro Enclave ASG objective: both
       drills breach it, so the run exits 1 and its report has findings.
    2. `outage`: the complete-enclave-failure feature: probes fail, then recover (a real
       outage on the timeline); the breach findings are carried over (their drills did not
       run).
    3. `monthly`: `drills run monthly` (the README's main job) with an on-call participant:
       the single-instance drills pass and close the findings.

    A canary SecureString is planted under /vettid/ for the duration of the runs, and the
    twin's own SecureString (`/vettid/nitro/parent-nats-creds`) is read, so every artifact
    can be scanned for both.
    """
    base = tmp_path_factory.mktemp("evidence")
    result = Runs(root=base / "reports", journal=base / "journal.jsonl")
    env = {k: v for k, v in os.environ.items() if k != "DRILLS_REMEDIATION"}
    env.update(DRILLS_STATE_DIR=twin.state.state_dir, DRILLS_JOURNAL=str(result.journal))
    ssm = twin.clients("ssm")
    creds = ssm.get_parameter(Name=CREDS_PARAM, WithDecryption=True)["Parameter"]["Value"]
    canary = f"canary-{secrets.token_hex(16)}"
    result.secrets = [creds, json.loads(creds)["password"], canary]
    tight = base / "tight.toml"
    tight.write_text('[components."Nitro Enclave ASG"]\nrto = 0.2\n', encoding="utf-8")
    plan = [
        ("breach", "ad-hoc", ["--objectives", str(tight),
                              "features/monthly/single_instance_failure.feature"]),
        ("outage", "ad-hoc", [f"features/{COMPLETE_FAILURE}"]),
        ("monthly", "monthly", ["--participant", "Ana Ops:on-call engineer", "monthly"]),
    ]
    ssm.put_parameter(Name=CANARY_PARAM, Value=canary, Type="SecureString", Overwrite=True)
    try:
        for name, exercise, args in plan:
            wait_serving(twin)
            run_id = new_run_id(exercise)
            done = drills_cli("run", "--reports", str(result.root), "--run-id", run_id, *args,
                              env=env, timeout=1800)
            result.dirs[name] = result.root / run_id
            result.codes[name] = done.returncode
            result.stdout[name] = done.stdout
            result.output[name] = done.stdout + done.stderr
            assert (result.dirs[name] / "report.json").exists(), result.output[name]
    finally:
        ssm.delete_parameter(Name=CANARY_PARAM)  # other tests on this twin never see it
    wait_serving(twin)
    return result
