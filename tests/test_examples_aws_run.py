"""The drills against an environment the twin did not make: the examples/aws template deployed
with `aws cloudformation deploy` (and its completing script) into the twin's AWS endpoint
alone, nothing of the twin's provisioning, and beside it (`drills.twin.software`) each
region's service software (NATS, the API) and what AWS itself runs behind its APIs (the ASG
controller as EC2 Auto Scaling, the name servers as Route 53's), drilled with
`drills run --target aws` through AWS_ENDPOINT_URL, `[api] url` and `dns`, and
DRILLS_NATS_URL as on an account. It proves the account path uses only public APIs and the
configured names, and that a run leaves none of its vaults behind.

Why not plain moto: moto 5.2.1 writes a 36-byte key id into each ciphertext and a
multi-Region key's id has 40 characters, so nothing sealed under the runbook's (multi-Region)
sealing key decrypts: no vault can be read. The endpoint used here is moto with the twin's
fidelity layer (`drills.twin.fidelity`, AWS behaviours moto lacks, on the `fast` timing
profile); the account target never calls its control routes (it has no `control`): only the
pieces that stand for AWS services do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drills.attestation import build_pcrs
from drills.clients import Clients
from drills.environment import Names
from drills.hygiene import VAULT_PREFIX
from drills.twin.software import ServiceSoftware
from tests.conftest import drills_cli
from tests.example_stack import aws_env, deploy, moto_with_fidelity

pytestmark = pytest.mark.long

NAMES = Names()
SELECTION = ("monthly", "scenario")


@dataclass(frozen=True, slots=True)
class Environment:
    """The deployed environment, its software, and how `drills run --target aws` reaches it."""

    clients: Clients
    software: ServiceSoftware
    env: dict[str, str]
    objectives: Path
    journal: Path
    reports: Path


def _objectives(path: Path, software: ServiceSoftware, clients: Clients, image: str) -> Path:
    """The operator's objectives file for this environment: the API and its attestation
    (the enclave build the AMI carries), probes patient enough for a loaded machine and a
    short settle window, every drilled resource under [allow], by the runbook's names (the
    [environment] defaults)."""
    key = clients("kms").describe_key(KeyId=NAMES.key_alias)["KeyMetadata"]["Arn"]
    version = clients("ec2").describe_images(ImageIds=[image])["Images"][0].get("Name", image)
    pcrs = path.parent / "expected_pcrs.json"
    pcrs.write_text(json.dumps({"sets": [{"name": version, **{
        f"PCR{i}": value for i, value in build_pcrs(version).items()}}]}), encoding="utf-8")
    allow = {"accounts": [NAMES.account_id], "regions": [NAMES.primary_region, NAMES.dr_region],
             "asg": [NAMES.asg], "bucket": [NAMES.bucket], "key": [key],
             "table": list(NAMES.tables), "region": [NAMES.primary_region, NAMES.dr_region],
             "ssm-parameter": [NAMES.param_nats_creds, NAMES.param_current_ami,
                               NAMES.param_latest_ami, NAMES.param_sealing_key]}
    path.write_text("\n".join([
        # On a loaded 2-core machine an answer may take over 0.5 s (most reads timed out).
        "[probes]", 'settle = "5s"', "interval = 0.25", "timeout = 2.0",
        "[api]", f'url = "{software.api_url}"', f'dns = "{software.dns_address}"',
        f'ca_bundle = "{software.ca_bundle}"',
        f'attestation_root = "{software.attestation_root}"', f'expected_pcrs = "{pcrs}"',
        "[allow]", *(f"{kind} = {json.dumps(names)}" for kind, names in allow.items())]) + "\n",
        encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    root = tmp_path_factory.mktemp("account")
    with moto_with_fidelity(root / "aws") as url:
        env = aws_env(url, NAMES)
        software = ServiceSoftware(root / "service", url, NAMES)
        clients = deploy(url, env, NAMES, software.api_parameters)
        image = clients("ssm").get_parameter(Name=NAMES.param_current_ami)["Parameter"]["Value"]
        with software.start():
            env = {**env, "DRILLS_NATS_URL": ",".join(software.nats_urls()),
                   "DRILLS_STATE_DIR": str(root / "no-twin"),
                   "DRILLS_JOURNAL": str(root / "journal.jsonl")}
            env.pop("DRILLS_PROBE_VAULTS", None)
            env.pop("DRILLS_API_URL", None)
            yield Environment(clients, software, env,
                              _objectives(root / "objectives.toml", software, clients, image),
                              root / "journal.jsonl", root / "reports")


def _drill_vaults(clients: Clients) -> dict[str, list[str]]:
    """Where any trace of a drill's vault is left: bucket -> keys, table -> vault ids."""
    found: dict[str, list[str]] = {}
    for region in (NAMES.primary_region, NAMES.dr_region):
        bucket = NAMES.bucket_in(region)
        listed = clients("s3", region).list_object_versions(
            Bucket=bucket, Prefix=f"vaults/{VAULT_PREFIX}")
        keys = [v["Key"] for v in [*listed.get("Versions", []),
                                   *listed.get("DeleteMarkers", [])]]
        if keys:
            found[bucket] = keys
        for table in NAMES.tables:
            items = clients("dynamodb", region).scan(TableName=table)["Items"]
            ids = [i["vault_id"]["S"] for i in items
                   if i.get("vault_id", {}).get("S", "").startswith(VAULT_PREFIX)]
            if ids:
                found[f"{region}/{table}"] = ids
    return found


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    output: str
    report: dict[str, Any]


@pytest.fixture(scope="module")
def run(environment: Environment) -> Run:
    """`drills run monthly scenario --target aws`, as an operator types it against an
    account."""
    args = ["run", *SELECTION, "--target", "aws", "--objectives", str(environment.objectives),
            "--reports", str(environment.reports), "--region", NAMES.primary_region]
    done = drills_cli(*args, env=environment.env, timeout=3600)
    report_path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert report_path.endswith("report.json"), done.stdout + done.stderr
    return Run(done.returncode, done.stdout + done.stderr,
               json.loads(Path(report_path).read_text(encoding="utf-8")))


def test_every_drill_an_account_can_run_passes(run: Run, environment: Environment) -> None:
    """Every monthly and scenario drill that `--list` plans to run on an account (it needs no
    twin-only ability) passes; the rest were skipped."""
    listed = drills_cli("run", *SELECTION, "--target", "aws", "--list",
                        env=environment.env, timeout=300)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    planned = {line.split(" :: ", 1)[1] for line in listed.stdout.splitlines()
               if line.startswith("run ")}
    statuses = {d["name"]: d["status"] for d in run.report["drills"]}
    assert run.code == 0, run.output
    assert statuses == {name: statuses.get(name, "not run") for name in planned}
    assert set(statuses.values()) <= {"passed", "expected-breach"}, statuses


def test_the_run_said_how_it_found_the_asg_and_what_it_deleted(run: Run) -> None:
    """The stacks have no outputs on moto: the report notes the configured ASG was drilled,
    and what the run deleted of its own vaults."""
    assert run.report["target"]["kind"] == "account"
    notes = run.report["notes"]
    assert f"stack {NAMES.stack} in {NAMES.primary_region} has no outputs; using the " \
           f"configured ASG name {NAMES.asg} ([environment] asg)" in notes
    assert [n for n in notes if n.endswith("(probe hygiene)")], notes


def test_a_run_leaves_none_of_its_vaults_behind(run: Run, environment: Environment) -> None:
    """Probe hygiene: the canary's and the probes' vaults (ids drills-*) are gone from both
    regions' buckets and tables once the run is over."""
    assert _drill_vaults(environment.clients) == {}


def test_rollback_deletes_the_vaults_a_killed_run_left(
        run: Run, environment: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed before its end leaves its vaults: `drills rollback --target aws` deletes
    them (and nothing else)."""
    from drills.loop import LoopThread
    from drills.target import AccountTarget

    env = environment.env
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "DRILLS_NATS_URL"):
        monkeypatch.setenv(key, env[key])
    loop = LoopThread("test-enrol")
    try:
        client = AccountTarget(names=NAMES).connect(loop)
        for vault_id in (f"{VAULT_PREFIX}canary-left-000001", "app-vault-kept"):
            loop.run(client.enroll(vault_id, b"data", timeout=10), timeout=15)
        loop.run(client.nc.close(), timeout=5)
    finally:
        loop.close()
    assert _drill_vaults(environment.clients)
    done = drills_cli("rollback", "--target", "aws", "--journal", str(environment.journal),
                      "--objectives", str(environment.objectives), env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(probe hygiene)" in done.stdout + done.stderr
    assert _drill_vaults(environment.clients) == {}
    ledger = environment.clients("dynamodb").get_item(
        TableName=NAMES.credentials_table, Key={"vault_id": {"S": "app-vault-kept"}})
    assert "Item" in ledger
