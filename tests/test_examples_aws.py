"""examples/aws: the shipped CloudFormation template, deployed with `aws cloudformation deploy`
into a plain moto server (not the twin's: no fidelity layer, no provisioning code), and its
completing script make every resource the drills name, by the runbook's names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.procedures import region as region_procedure
from drills.target import AccountTarget
from tests import example_stack
from tests.example_stack import EXAMPLES, NATS_PASSWORD, NATS_USER, deploy, plain_moto, run

#: A long check: deploying both stacks through the aws CLI takes minutes of the 2-core
#: machine, beside the drills run against the same environment (test_examples_aws_run.py).
pytestmark = pytest.mark.long

NAMES = Names()
REGIONS = (NAMES.primary_region, NAMES.dr_region)
#: Which test checks each name of `Names` (test_every_name_is_checked keeps this complete).
CHECKED_BY = {
    "account_id": "test_buckets_are_versioned_encrypted_and_replicated",
    "primary_region": "test_both_stacks_are_deployed",
    "dr_region": "test_both_stacks_are_deployed",
    "stack": "test_both_stacks_are_deployed",
    "dr_stack": "test_both_stacks_are_deployed",
    "asg_output_key": "test_without_stack_outputs_the_asg_is_the_configured_one",
    "asg": "test_enclave_asgs_and_their_launch_template",
    "dr_asg": "test_enclave_asgs_and_their_launch_template",
    "launch_template": "test_enclave_asgs_and_their_launch_template",
    "vault_bucket": "test_buckets_are_versioned_encrypted_and_replicated",
    "dr_vault_bucket": "test_buckets_are_versioned_encrypted_and_replicated",
    "backup_bucket": "test_buckets_are_versioned_encrypted_and_replicated",
    "sessions_table": "test_tables_exist_in_both_regions_with_pitr",
    "credentials_table": "test_tables_exist_in_both_regions_with_pitr",
    "transactions_table": "test_tables_exist_in_both_regions_with_pitr",
    "param_path": "test_parameters_and_the_sealing_key",
    "param_current_ami": "test_parameters_and_the_sealing_key",
    "param_latest_ami": "test_parameters_and_the_sealing_key",
    "param_sealing_key": "test_parameters_and_the_sealing_key",
    "param_nats_creds": "test_parameters_and_the_sealing_key",
    "key_alias": "test_parameters_and_the_sealing_key",
    "enclave_alarm": "test_alarms_page_through_the_topic",
    "nats_alarm": "test_alarms_page_through_the_topic",
    "alarm_topic": "test_alarms_page_through_the_topic",
    "hosted_zone": "test_api_names_fail_over_in_the_hosted_zone",
    "api_host": "test_api_names_fail_over_in_the_hosted_zone",
    "dr_api_host": "test_api_names_fail_over_in_the_hosted_zone",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain moto server (`python -m moto.server`) on a free loopback port."""
    with plain_moto(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="module")
def aws_env(endpoint: str) -> dict[str, str]:
    """The environment the `aws` CLI and boto3 reach the server with (fake credentials)."""
    return example_stack.aws_env(endpoint, NAMES)


@pytest.fixture(scope="module")
def clients(endpoint: str, aws_env: dict[str, str]) -> Clients:
    """Deploys the template as both stacks (primary, then DR), runs the completing script,
    and answers boto3 clients on the result."""
    return deploy(endpoint, aws_env, NAMES)


def test_every_name_is_checked() -> None:
    """A name added to `Names` must be made by the example and checked here."""
    assert set(CHECKED_BY) == {f.name for f in fields(Names)}
    assert set(CHECKED_BY.values()) <= set(globals())


def test_the_script_changes_nothing_when_run_again(clients: Clients,
                                                   aws_env: dict[str, str]) -> None:
    """Every step checks before it acts: a second run (as on an account whose CloudFormation
    made everything) makes nothing."""
    out = run([str(EXAMPLES / "complete-dr-stack.sh")], aws_env)
    assert out.splitlines() == [line for line in out.splitlines() if ": done:" in line]


@pytest.mark.parametrize("region", REGIONS)
def test_both_stacks_are_deployed(clients: Clients, region: str) -> None:
    stack = clients("cloudformation", region).describe_stacks(
        StackName=NAMES.stack_in(region))["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_without_stack_outputs_the_asg_is_the_configured_one(
        clients: Clients, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5 never fills a stack's outputs when a change set creates it (ChangeSet.apply
    updates resources only), and `aws cloudformation deploy` creates stacks by change set:
    AccountTarget then drills the configured ASGs, and notes so for the report (on AWS it
    reads the output EnclaveASGName, as runbook 4.1 does: tests/test_target.py)."""
    for region in REGIONS:
        stack = clients("cloudformation", region).describe_stacks(
            StackName=NAMES.stack_in(region))["Stacks"][0]
        assert not stack.get("Outputs")  # when moto fills them, the output is read instead
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, aws_env[key])
    target = AccountTarget(names=NAMES)
    assert [target.asg_name(r) for r in REGIONS] == [NAMES.asg, NAMES.dr_asg]
    assert [n.split(";")[0] for n in target.notes] == [
        f"stack {NAMES.stack_in(r)} in {r} has no outputs" for r in REGIONS]


@pytest.mark.parametrize("region", REGIONS)
def test_enclave_asgs_and_their_launch_template(clients: Clients, region: str) -> None:
    """Each region's ASG (desired 2 in the primary, the standby at 0) on ELB health checks
    with group metrics, launching from the template that resolves the current AMI."""
    group = clients("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[NAMES.asg_in(region)])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == (0 if NAMES.is_dr(region) else 2)
    assert group["HealthCheckType"] == "ELB"
    assert "GroupInServiceInstances" in [m["Metric"] for m in group["EnabledMetrics"]]
    template = clients("ec2", region).describe_launch_templates(
        LaunchTemplateNames=[NAMES.launch_template])["LaunchTemplates"][0]
    assert group["LaunchTemplate"]["LaunchTemplateId"] == template["LaunchTemplateId"]
    data = clients("ec2", region).describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"][0][
        "LaunchTemplateData"]
    assert data["ImageId"] == f"resolve:ssm:{NAMES.param_current_ami}"


def test_buckets_are_versioned_encrypted_and_replicated(clients: Clients) -> None:
    """Runbook 2.1: the vault bucket (named by the account's id) and its DR replica, and 2.3's
    backup bucket, all versioned and SSE-KMS; the vault bucket replicates to the replica."""
    account = clients("sts").get_caller_identity()["Account"]
    names = Names(account_id=account)
    assert names == NAMES  # moto's account: the default names are this account's
    for region, bucket in ((names.primary_region, names.bucket),
                           (names.dr_region, names.dr_bucket),
                           (names.primary_region, names.backup_bucket)):
        s3 = clients("s3", region)
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled", bucket
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"][0]["ApplyServerSideEncryptionByDefault"]
        assert rule["SSEAlgorithm"] == "aws:kms", bucket
    rules = clients("s3").get_bucket_replication(Bucket=names.bucket)[
        "ReplicationConfiguration"]["Rules"]
    assert [r["Destination"]["Bucket"] for r in rules if r["Status"] == "Enabled"] == [
        f"arn:aws:s3:::{names.dr_bucket}"]


@pytest.mark.parametrize("region", REGIONS)
def test_tables_exist_in_both_regions_with_pitr(clients: Clients, region: str) -> None:
    ddb = clients("dynamodb", region)
    for table in NAMES.tables:
        assert ddb.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"
        pitr = ddb.describe_continuous_backups(TableName=table)[
            "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED", (table, region)


@pytest.mark.parametrize("region", REGIONS)
def test_parameters_and_the_sealing_key(clients: Clients, region: str) -> None:
    """Runbook 2.3's parameters under /vettid/ in each region; sealing-key-arn names the
    (multi-Region) key the alias names there; the NATS credentials decrypt."""
    ssm, kms = clients("ssm", region), clients("kms", region)
    found = {p["Name"]: p for p in ssm.get_parameters_by_path(
        Path=NAMES.param_path, Recursive=True, WithDecryption=True)["Parameters"]}
    assert {NAMES.param_current_ami, NAMES.param_latest_ami, NAMES.param_sealing_key,
            NAMES.param_nats_creds} <= set(found)
    assert found[NAMES.param_nats_creds]["Type"] == "SecureString"
    assert json.loads(found[NAMES.param_nats_creds]["Value"]) == {
        "user": NATS_USER, "password": NATS_PASSWORD}
    key = kms.describe_key(KeyId=NAMES.key_alias)["KeyMetadata"]
    assert key["Arn"] == found[NAMES.param_sealing_key]["Value"]
    assert key["MultiRegion"]
    assert key["Enabled"]


def test_alarms_page_through_the_topic(clients: Clients) -> None:
    """Runbook 3.2 and 3.3's alarms, on the primary ASG and the NATS metric, act on the
    alarm topic."""
    topics = [t["TopicArn"] for t in clients("sns").list_topics()["Topics"]
              if t["TopicArn"].endswith(f":{NAMES.alarm_topic}")]
    assert len(topics) == 1
    alarms = {a["AlarmName"]: a for a in clients("cloudwatch").describe_alarms(
        AlarmNames=list(NAMES.alarms))["MetricAlarms"]}
    assert set(alarms) == set(NAMES.alarms)
    assert all(a["AlarmActions"] == topics for a in alarms.values())
    assert alarms[NAMES.enclave_alarm]["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": NAMES.asg}]


def test_api_names_fail_over_in_the_hosted_zone(clients: Clients) -> None:
    """Runbook 5.2: the API's name fails over PRIMARY -> SECONDARY on health checks of each
    region's API, and the DR region's own name answers; read as 5.2 reads them (the names
    fully qualified, as Route 53 lists them)."""
    zone = region_procedure.hosted_zone_id(clients, NAMES)
    api = {r.get("Failover"): r
           for r in region_procedure.record_sets(clients, zone, NAMES.api_host)}
    assert set(api) == {"PRIMARY", "SECONDARY"}
    checks = {r["Failover"]: clients("route53").get_health_check(
        HealthCheckId=r["HealthCheckId"])["HealthCheck"]["HealthCheckConfig"]
        for r in api.values()}
    # the template's defaults: AWS's HTTPS port
    assert {role: (c["Type"], c["Port"], c["ResourcePath"]) for role, c in checks.items()} == \
        dict.fromkeys(api, ("HTTPS", 443, "/health"))
    assert [r["Type"] for r in region_procedure.record_sets(
        clients, zone, NAMES.dr_api_host)] == ["A"]


def test_an_account_target_reads_the_environment_by_its_names(
        clients: Clients, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """AccountTarget, through boto3's usual chain and AWS_ENDPOINT_URL, finds the account,
    the parent's NATS credentials and the credentials ledger by the configured names."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, aws_env[key])
    target = AccountTarget(names=NAMES)
    assert target.env_id == f"aws:{NAMES.account_id}/{NAMES.primary_region}"
    assert target.nats_credentials() == {"user": NATS_USER, "password": NATS_PASSWORD}
    assert target.nats_credentials(NAMES.dr_region)["user"] == NATS_USER
    assert target.ledger()(["no-such-vault"]) == {"no-such-vault": None}
