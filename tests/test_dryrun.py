"""`drills run --dry-run`: the read/mutate rule, the guard on real clients, every fault kind's
declared calls, and a dry run over every feature on the session's twin."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from pytest_bdd import parsers
from pytest_bdd.parser import Step
from pytest_bdd.steps import StepFunctionContext, step_function_context_registry

from drills.capabilities import referenced_faults
from drills.clients import Clients
from drills.dryrun import CallGuard, PlanningDrill, is_read, plan_step
from drills.environment import Names
from drills.errors import DryRunViolation
from drills.faults import AllowList, Fault, FaultContext
from drills.plan import NOT_AWS
from drills.target import Target
from drills.twin.manager import Twin
from tests.conftest import ROOT, drills_cli


def _kinds() -> dict[str, type[Fault]]:
    """The registered fault kinds of drills itself (tests register kinds of their own)."""
    return {kind: fault for kind, fault in Fault.registry.items()
            if fault.__module__.startswith("drills.faults.")}


@pytest.mark.parametrize("operation", [
    "DescribeAutoScalingGroups", "GetParameter", "ListObjectVersions", "HeadObject",
    "BatchGetItem", "Query", "Scan", "SelectObjectContent", "LookupEvents", "SearchResources",
    "TestDNSAnswer", "FilterLogEvents", "GetCallerIdentity"])
def test_reads_are_reads(operation: str) -> None:
    """Operations named with a read verb, and Query and Scan, are reads."""
    assert is_read(operation)


@pytest.mark.parametrize("operation", [
    "SetDesiredCapacity", "TerminateInstanceInAutoScalingGroup", "PutParameter",
    "DeleteObject", "CreateBackup", "UpdateAutoScalingGroup", "ScheduleKeyDeletion",
    "ChangeResourceRecordSets", "StartInstanceRefresh", "Decrypt", "GenerateDataKey",
    "RestoreTableToPointInTime", "Getaway", "Describe", "QueryEverything", "Listen"])
def test_everything_else_is_mutating(operation: str) -> None:
    """Any other operation is mutating, cryptographic calls included; a read verb counts only
    as a whole word ("Getaway", "Listen" are not reads)."""
    assert not is_read(operation)


def test_every_fault_kind_declares_the_calls_it_makes() -> None:
    """Each registered fault kind names its inject calls; each AWS one is an operation of its
    service (as botocore names it) and is mutating, the rest are the twin's processes or
    control routes. A new fault kind without `calls` fails here."""
    session = botocore.session.get_session()
    assert len(_kinds()) >= 25
    for kind, fault in _kinds().items():
        assert fault.calls, f"{kind} declares no calls"
        for call in fault.calls + fault.revert_calls:
            service, _, operation = call.partition(":")
            if service in NOT_AWS:
                assert operation, call
                continue
            model = session.get_service_model(service)
            assert operation in model.operation_names, f"{kind}: no {call} in botocore"
            assert not is_read(operation), f"{kind}: {call} is a read"


#: Enough of every kind's params for its `plan()`: a new kind that needs another one fails
#: `test_every_fault_kind_plans_without_any_call` with the KeyError, until it is added here.
PARAMS = {"asg": "VettID-Nitro-EnclaveASG", "count": 1, "to": 0, "bucket": "vault-bucket",
          "vault_id": "v1", "table": "VettID-Ledger-Credentials", "keys": ["v1"],
          "key": "arn:aws:kms:us-east-1:123456789012:key/k1", "name": "/vettid/x",
          "key_arn": "arn:aws:kms:us-east-1:123456789012:key/k1", "cluster": "nats-c1",
          "names": Names().to_dict(), "version": "2.0.0", "current_param": "/vettid/c",
          "latest_param": "/vettid/l", "days": 7, "region": "us-east-1",
          "backup": {"bucket": "vettid-dr-backups", "key": "ssm/backup.json"}}


def test_every_fault_kind_plans_without_any_call() -> None:
    """`plan()` of every registered kind says what it would do, on what, from its params
    alone: with guarded clients aimed at an endpoint that answers nothing and no twin, no
    call of any kind is made (prepare() is where a fault reads)."""
    clients = Clients.for_twin("http://127.0.0.1:9", "us-east-1")
    guard = CallGuard()
    guard.watch(clients)
    for kind, fault in _kinds().items():
        plan = fault(FaultContext(clients), PARAMS).plan()
        assert (plan.kind, plan.target_kind, plan.calls) == (kind, fault.target_kind,
                                                              fault.calls)
        assert plan.target, plan
        assert plan.action == fault(FaultContext(clients), PARAMS).describe()
        assert next(plan.lines()) == f"fault {kind}: {plan.action}"
    assert (guard.reads, guard.mutating) == ({}, {})


def test_the_guard_counts_reads_and_refuses_a_mutating_call_before_it_is_sent(
        clients: Clients) -> None:
    """On real clients (a moto server): reads go through and are counted; a CreateBucket is
    refused with DryRunViolation, counted, and never reaches the endpoint (the bucket does
    not exist for an unguarded client); clients built after `watch` are guarded too."""
    unguarded, clients = clients, _fresh(clients)
    guard = CallGuard()
    clients("s3").list_buckets()  # a client built before the guard
    guard.watch(clients)
    clients("s3").list_buckets()
    name = "dry-run-never-made"
    with pytest.raises(DryRunViolation, match="refused s3:CreateBucket"):
        clients("s3").create_bucket(Bucket=name)
    with pytest.raises(DryRunViolation, match="refused ssm:PutParameter"):
        clients("ssm").put_parameter(Name="/dry/run", Value="x", Type="String")
    assert guard.reads == {"s3:ListBuckets": 1}
    assert guard.mutating == {"s3:CreateBucket": 1, "ssm:PutParameter": 1}
    with pytest.raises(ClientError):
        unguarded("s3").head_bucket(Bucket=name)
    with pytest.raises(ClientError):
        unguarded("ssm").get_parameter(Name="/dry/run")


class _PrepareWrites(Fault):
    """A fault whose prepare() writes: what a dry run must refuse and report."""

    kind = "test.prepare-writes"
    target_kind = "asg"
    calls = ("autoscaling:SetDesiredCapacity",)

    @property
    def target(self) -> str:
        return str(self.params["asg"])

    def describe(self) -> str:
        return f"set the capacity of {self.target}"

    def prepare(self) -> None:
        self.ctx.clients("autoscaling").set_desired_capacity(
            AutoScalingGroupName=self.target, DesiredCapacity=1)

    def inject(self) -> None:
        raise AssertionError("a dry run never injects")

    def revert(self) -> None:
        raise AssertionError("a dry run never reverts")


def _capacity_step(drill: Any, capacity: int) -> Iterator[None]:
    """Set the capacity (a step as the step library writes them)."""
    drill.inject(_PrepareWrites, asg=drill.target.names.asg, to=capacity)
    yield
    raise AssertionError("a dry run never resumes a step")


def _fresh(clients: Clients) -> Clients:
    """Clients of their own on the module's endpoint: a guard stays with its test."""
    return Clients.for_twin(str(clients.endpoint_url), "us-east-1")


def _planning_drill(clients: Clients) -> tuple[PlanningDrill, CallGuard]:
    guard, own = CallGuard(), _fresh(clients)
    guard.watch(own)
    return PlanningDrill(Target(own, Names()), None, AllowList({"asg": ("*",)})), guard


def _step(text: str) -> Step:
    return Step(name=text, type="when", indent=4, line_number=1, keyword="When")


def test_a_step_whose_fault_writes_when_prepared_is_planned_as_failing(
        clients: Clients) -> None:
    """A fault step is called up to its `drill.inject(...)`, with its parsed arguments; a
    write in the fault's prepare() is refused, counted, and the step's plan says where it
    came from; the step is never resumed and nothing is injected."""
    drill, guard = _planning_drill(clients)
    definition = StepFunctionContext("when", _capacity_step,
                                     parsers.parse("capacity is set to {capacity:d}"))
    plan = plan_step(_step("capacity is set to 3"), definition, drill)
    assert guard.mutating == {"autoscaling:SetDesiredCapacity": 1}
    assert plan.problem is not None
    assert "refused autoscaling:SetDesiredCapacity" in plan.problem
    assert "in prepare" in plan.problem
    (fault,) = plan.faults
    assert (fault.kind, fault.target, fault.resolved) == (
        "test.prepare-writes", "VettID-Nitro-EnclaveASG", False)


def test_a_step_needing_an_earlier_steps_fixture_is_planned_from_its_fault_class(
        clients: Clients) -> None:
    """A step that uses what an earlier step made (a target fixture) is not an error: its
    fault is planned from the class, on the resource [environment] names, with the reason."""
    drill, guard = _planning_drill(clients)

    def step(drill: Any, backup: Any) -> None:
        """Damage what the backup holds."""
        drill.inject(_PrepareWrites, asg=backup.asg)

    plan = plan_step(_step("the backed-up group is damaged"),
                     StepFunctionContext("when", step, parsers.parse(
                         "the backed-up group is damaged")), drill)
    assert plan.problem is None
    (fault,) = plan.faults
    assert not fault.resolved
    assert "it uses 'backup', made by an earlier step" in fault.note
    assert fault.target == Names().asg
    assert (guard.reads, guard.mutating) == ({}, {})


def test_a_dry_run_starts_no_twin(tmp_path: Path) -> None:
    """With no twin running, `--dry-run` exits 3 saying how to start one, and starts none."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=str(tmp_path / "twin"))
    result = drills_cli("run", "monthly", "--dry-run", "--reports", str(tmp_path / "reports"),
                        env=env, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "a dry run starts none" in result.stdout + result.stderr
    assert not (tmp_path / "twin").exists()
    assert not (tmp_path / "journal.jsonl").exists()


def test_a_dry_run_on_an_account_without_the_stack_fails_with_reads_only(
        clients: Clients, tmp_path: Path) -> None:
    """On an account (a moto server without the runbook's stack): drills needing what an
    account lacks are planned as skipped with the reason; the others cannot name their
    fault's target (no stack VettID-Nitro), so the run exits 1 saying so; every call was a
    read, the account id's included, and plan.json says so."""
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=str(tmp_path / "twin"), AWS_ENDPOINT_URL=str(
                   clients.endpoint_url), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_MAX_ATTEMPTS="1")
    allowed = tmp_path / "objectives.toml"  # the account allow-listed, as a run needs it
    allowed.write_text('[allow]\naccounts = ["123456789012"]\nregions = ["us-east-1", '
                       '"us-west-2"]\n')
    result = drills_cli("run", "monthly", "--target", "aws", "--dry-run", "--run-id", "acct",
                        "--reports", str(tmp_path / "reports"), "--objectives", str(allowed),
                        env=env, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "WOULD FAIL: a resource DescribeStacks needs does not exist" in out
    assert "Stack with id VettID-Nitro does not exist" in out
    plan = json.loads((tmp_path / "reports" / "acct" / "plan.json").read_text(
        encoding="utf-8"))
    assert plan["calls"]["mutating"] == {}
    assert plan["calls"]["read"]["sts:GetCallerIdentity"] == 1
    assert plan["calls"]["read"]["cloudformation:DescribeStacks"] >= 1
    skipped = [d for d in plan["drills"] if d["skipped"] is not None]
    assert skipped
    assert all("which the account target lacks" in d["skipped"] for d in skipped)
    assert not (tmp_path / "twin").exists()
    assert not (tmp_path / "journal.jsonl").exists()


def _load_steps() -> None:
    """Import the step library, so its definitions are registered."""
    sys.path.insert(0, str(ROOT))
    for module in sorted((ROOT / "steps").glob("*.py")):
        if not module.stem.startswith(("_", "test_")):
            importlib.import_module(f"steps.{module.stem}")


def _kinds_for(text: str) -> set[str]:
    """The fault kinds the step definitions matching `text` name in their code."""
    return {fault.kind for ctx in step_function_context_registry.values()
            if ctx.parser.is_matching(text) for fault in referenced_faults(ctx.step_func)}


@pytest.mark.twin
def test_dry_run_over_every_feature_makes_no_mutating_call(twin: Twin, tmp_path: Path) -> None:
    """`drills run features --dry-run` on the twin plans every drill: exit 0, 0 mutating
    calls (every call counted by the guard, reads only), a plan of at least one fault with
    its calls for every step that injects one (of a kind the step names), nothing journaled,
    no report, and the enclave ASG as it was."""
    _load_steps()
    asg = twin.clients("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[twin.names.asg])["AutoScalingGroups"][0]
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               DRILLS_STATE_DIR=twin.state.state_dir)
    result = drills_cli("run", "features", "--dry-run", "--reports", str(tmp_path / "reports"),
                        "--run-id", "dry", env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "reports" / "dry"
    assert result.stdout.strip().endswith(str(folder / "plan.json"))
    plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    assert plan["calls"]["mutating"] == {}
    assert sum(plan["calls"]["read"].values()) > 0
    assert "0 mutating calls" in (folder / "plan.txt").read_text(encoding="utf-8")
    drills = [d for d in plan["drills"] if d["skipped"] is None]
    features = {p.relative_to(ROOT / "features").with_suffix("").as_posix()
                for p in (ROOT / "features").rglob("*.feature")}
    assert {d["feature"] for d in drills} == features
    injecting = 0
    for drill in drills:
        for step in drill["steps"]:
            assert step["problem"] is None, (drill["scenario"], step)
            kinds = _kinds_for(step["text"])
            if not kinds:
                assert step["faults"] == [], step
                continue
            injecting += 1
            assert step["faults"], (drill["scenario"], step["text"])
            for fault in step["faults"]:
                assert fault["kind"] in kinds, fault
                assert fault["calls"], fault
    assert injecting >= 40
    resolved = [f for d in drills for s in d["steps"] for f in s["faults"] if f["resolved"]]
    assert any(f["kind"] == "enclave.terminate-instances" for f in resolved)
    journal = tmp_path / "journal.jsonl"
    assert not journal.exists() or not journal.read_text(encoding="utf-8").strip()
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json", "plan.txt"]
    after = twin.clients("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[twin.names.asg])["AutoScalingGroups"][0]
    assert (after["DesiredCapacity"], after["HealthCheckType"]) == (
        asg["DesiredCapacity"], asg["HealthCheckType"])
