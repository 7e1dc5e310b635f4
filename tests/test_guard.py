"""Allow-listed accounts and regions, and production on purpose: the verdicts as pure logic,
then end to end (`drills run` and `drills rollback` on an account target, a moto endpoint),
where a refusal exits 2 with nothing journaled and nothing changed."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from drills.capabilities import ALL
from drills.clients import Clients
from drills.config import Clearance
from drills.errors import TargetNotAllowed
from drills.faults import AllowList, BlastRadius, FaultInjector, SetDesiredCapacity
from drills.faults.base import FaultContext
from drills.guard import Identity, account_alias, clear
from drills.journal import FaultState, Journal
from drills.twin.aws import AwsEndpoint
from tests.conftest import drills_cli

ACCOUNT = "123456789012"  # moto's
OTHER = "210987654321"
BOTH = ("us-east-1", "us-west-2")
ACCOUNT_TARGET = f"the account target aws:{ACCOUNT}/us-east-1"


def _clear(clearance: Clearance, *, alias: str | None = None, twin: bool = False,
           allow_production: bool = False, regions: tuple[str, ...] = BOTH) -> object:
    return clear(Identity(ACCOUNT, alias, regions), clearance, named=ACCOUNT_TARGET,
                 capabilities=ALL if twin else frozenset(), allow_production=allow_production)


@pytest.mark.parametrize(("clearance", "message"), [
    (Clearance(), r"no account is allow-listed; add \[allow\] accounts = \[\"123456789012\"\]"),
    (Clearance((OTHER,), BOTH), r"account 123456789012 is not in \[allow\] accounts "
                                r"\(210987654321\); check your credentials"),
    (Clearance((ACCOUNT,)), r'no region is allow-listed; add \[allow\] regions = '
                            r'\["us-east-1", "us-west-2"\]'),
    (Clearance((ACCOUNT,), ("us-east-1",)), r"region\(s\) us-west-2 not in \[allow\] regions"),
    (Clearance((ACCOUNT,), BOTH, (ACCOUNT,)), r"it is production \(account 123456789012 is "
                                              r"in \[allow\] production_accounts\); pass "
                                              r"--allow-production"),
])
def test_an_account_outside_the_allow_lists_is_refused(clearance: Clearance,
                                                      message: str) -> None:
    """Each refusal names the target, what is missing and what to write."""
    with pytest.raises(TargetNotAllowed, match=message) as info:
        _clear(clearance)
    assert ACCOUNT_TARGET in str(info.value)


def test_an_alias_saying_prod_is_production() -> None:
    """An account alias with "prod" in it (any case) needs --allow-production; given, the
    verdict says production, why, and that the flag was given."""
    allowed = Clearance((ACCOUNT,), BOTH)
    with pytest.raises(TargetNotAllowed, match="its account alias 'VettID-Prod' says 'prod'"):
        _clear(allowed, alias="VettID-Prod")
    cleared = _clear(allowed, alias="VettID-Prod", allow_production=True)
    assert cleared.describe() == {"production": True, "allow_production": True,
                                  "account_alias": "VettID-Prod"}
    assert _clear(allowed, alias="vettid-staging").describe() == {
        "production": False, "allow_production": False, "account_alias": "vettid-staging"}


def test_the_twin_takes_its_own_account_and_regions_unless_lists_are_given() -> None:
    """A disposable target with no lists is cleared; lists given are enforced on it too."""
    assert _clear(Clearance(), twin=True).describe() == {"production": False,
                                                         "allow_production": False}
    with pytest.raises(TargetNotAllowed, match="not in \\[allow\\] accounts"):
        _clear(Clearance((OTHER,)), twin=True)
    with pytest.raises(TargetNotAllowed, match="it is production"):
        _clear(Clearance(production_accounts=(ACCOUNT,)), twin=True)


def test_the_account_alias_is_read_from_iam(clients: Clients) -> None:
    """`iam list-account-aliases`: None without one, the alias once created."""
    iam = clients("iam")
    for alias in iam.list_account_aliases()["AccountAliases"]:
        iam.delete_account_alias(AccountAlias=alias)
    assert account_alias(iam) is None
    iam.create_account_alias(AccountAlias="vettid-prod")
    try:
        assert account_alias(iam) == "vettid-prod"
    finally:
        iam.delete_account_alias(AccountAlias="vettid-prod")


# -- end to end: an account target on the module's moto endpoint ------------------------------
def _drills(aws: AwsEndpoint, tmp_path: Path, *args: str,
            objectives: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"),
               AWS_ENDPOINT_URL=aws.url, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_MAX_ATTEMPTS="1")
    extra = []
    if objectives is not None:
        (tmp_path / "objectives.toml").write_text(objectives)
        extra = ["--objectives", str(tmp_path / "objectives.toml")]
    return drills_cli(*args, *extra, env=env, timeout=300)


@pytest.mark.parametrize(("objectives", "message"), [
    (None, "no account is allow-listed"),
    (f'[allow]\naccounts = ["{OTHER}"]\nregions = ["us-east-1", "us-west-2"]',
     f"account {ACCOUNT} is not in [allow] accounts"),
    (f'[allow]\naccounts = ["{ACCOUNT}"]\nregions = ["us-east-1", "us-west-2"]\n'
     f'production_accounts = ["{ACCOUNT}"]', "it is production"),
])
def test_a_run_on_an_account_not_allowed_exits_2_before_touching_it(
        aws: AwsEndpoint, tmp_path: Path, objectives: str | None, message: str) -> None:
    """`drills run --target aws`: exit 2 with the reason, no fault journaled, no report."""
    reports = tmp_path / "reports"
    result = _drills(aws, tmp_path, "run", "--target", "aws", "--reports", str(reports),
                     "features/monthly/single_instance_failure.feature",
                     objectives=objectives)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "journal.jsonl").exists()
    assert not reports.exists() or not any(reports.glob("*/report.json"))


def test_rollback_reads_the_objectives_file_and_its_allow_lists(
        aws: AwsEndpoint, clients: Clients, tmp_path: Path) -> None:
    """`drills rollback --target aws --objectives F`: an account F does not allow is refused
    (exit 2, the fault still pending, the group untouched); allowed, the fault is reverted
    in the region [environment] names."""
    tag = uuid.uuid4().hex[:8]
    image = clients("ec2").register_image(Name=f"enclave-{tag}")["ImageId"]
    template = clients("ec2").create_launch_template(
        LaunchTemplateName=f"lt-{tag}", LaunchTemplateData={"ImageId": image})["LaunchTemplate"]
    autoscaling = clients("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=f"asg-{tag}", MinSize=0, MaxSize=4, DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"})
    journal = Journal(tmp_path / "journal.jsonl")
    injector = FaultInjector(journal, "killed-run", f"aws:{ACCOUNT}/us-east-1",
                             AllowList({"asg": (f"asg-{tag}",)}), BlastRadius(full_outage=True))
    injector.inject(SetDesiredCapacity(FaultContext(clients), {"asg": f"asg-{tag}",
                                                               "region": "us-east-1", "to": 0}))
    [pending] = journal.pending()  # the run was killed here: nothing reverted it

    def desired() -> int:
        return int(autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[f"asg-{tag}"])["AutoScalingGroups"][0]["DesiredCapacity"])

    refused = _drills(aws, tmp_path, "rollback", "--target", "aws", objectives=(
        f'[allow]\naccounts = ["{OTHER}"]\nregions = ["us-east-1", "us-west-2"]'))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"account {ACCOUNT} is not in [allow] accounts" in refused.stderr
    assert [e.fault_id for e in journal.pending()] == [pending.fault_id]
    assert desired() == 0
    allowed = _drills(aws, tmp_path, "rollback", "--target", "aws", objectives=(
        f'[allow]\naccounts = ["{ACCOUNT}"]\nregions = ["us-east-1", "us-west-2"]\n'
        '[environment]\nprimary_region = "us-east-1"'))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert f"reverted {pending.fault_id}" in allowed.stderr
    assert journal.pending() == []
    assert [e.state for e in journal.entries()] == [FaultState.REVERTED]
    assert desired() == 1
