"""Objectives and settings: runbook defaults, overrides, and clear errors."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from drills.config import SERVICE_COMPONENT, Clearance, Objective, StopSettings, load_settings
from drills.environment import Names
from drills.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "objectives.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_runbook_table() -> None:
    """Without a file, objectives are runbook section 1: service and per-component RTOs."""
    settings = load_settings(None)
    o = settings.objectives
    assert (o.rto, o.rpo_writes, o.mttr) == (900, 0, 1800)
    rtos = {name: c.rto for name, c in o.components.items()}
    assert rtos == {"Nitro Enclave ASG": 300, "NATS Cluster": 300, "KMS Sealing Key": 900,
                    "S3 Vault Data": 900, "CloudWatch Monitoring": 1800,
                    SERVICE_COMPONENT: 900, "S3 Replication": 900,
                    "DynamoDB Global Tables": 900}
    assert o.for_component("NATS Cluster").priority == "P1"


def test_replication_lag_objectives_are_configured_like_the_others(tmp_path: Path) -> None:
    """Runbook 7.1's 15-minute replication lag is a component objective a file overrides."""
    path = write(tmp_path, '[components."S3 Replication"]\nrto = "2m"\n')
    o = load_settings(path).objectives
    assert o.for_component("S3 Replication").rto == 120
    assert o.for_component("DynamoDB Global Tables").rto == 900


def test_file_overrides_components_and_probes(tmp_path: Path) -> None:
    """A TOML file overrides objectives (durations in s/m/h) and probe settings."""
    path = write(tmp_path, """
[service]
rto = "10m"
[components."Nitro Enclave ASG"]
rto = "90s"
[components."Payments API"]
rto = 120
priority = "P1"
[probes]
interval = 0.1
consecutive = 5
[allow]
asg = ["VettID-Nitro-EnclaveASG"]
""")
    settings = load_settings(path)
    assert settings.objectives.rto == 600
    assert settings.objectives.for_component("Nitro Enclave ASG").rto == 90
    assert settings.objectives.for_component("Nitro Enclave ASG").priority == "P1"
    assert settings.objectives.for_component("Payments API").rto == 120
    assert settings.probes.interval == 0.1
    assert settings.probes.consecutive == 5
    assert settings.allow["asg"] == ("VettID-Nitro-EnclaveASG",)
    assert settings.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("[service]\nrtoo = 5", "unknown key"),
    ('[components."X"]\nrpo_writes = 0', "needs an rto"),
    ('[components."NATS Cluster"]\nrto = "five minutes"', "cannot read duration"),
    ('[components."NATS Cluster"]\nrto = -3', "must be positive"),
    ("[probes]\nconsecutive = 0", "whole number >= 1"),
    ("[allow]\nasg = 'one'", "list of names"),
    ("[allow]\naccounts = ['1234']", "not an AWS account id"),
    ("[allow]\nproduction_accounts = ['prod-account']", "not an AWS account id"),
    ("[allow]\nasgs = ['VettID-Nitro-EnclaveASG']",  # a typo must not leave asg unlisted
     r"\[allow\]: unknown key\(s\) asgs; allowed: accounts, asg, bucket"),
    ("[stop]\nalarms = 'VettID-API-5xx'", "list of CloudWatch alarm names"),
    ("[stop]\nalarm = ['VettID-API-5xx']", "unknown key"),
    ("[stop]\npoll = 0", "must be positive"),
    ("[blast]\nmax_share = 1.5", "fraction from 0 to 1"),
    ("[blast]\nmax = 0.5", "unknown key"),
    ('[api]\ndns = "10.0.0.2"', "host:port of the name server"),
    ("not toml ===", "not valid TOML"),
])
def test_bad_files_give_errors_that_say_where(tmp_path: Path, text: str, message: str) -> None:
    """Every mistake names the file, the key and what to write instead."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing objectives file says so and how to fall back to the defaults."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_component_lists_the_known_ones() -> None:
    """Asking for an unknown component lists the names features may use."""
    with pytest.raises(ConfigError, match='"NATS Cluster"'):
        load_settings(None).objectives.for_component("NATS cluster")


@pytest.mark.parametrize(("rto", "window"), [(0.2, 60.2), (30, 90), (60, 120), (300, 600),
                                             (900, 1800)])
def test_measurement_window_runs_past_the_objective(rto: float, window: float) -> None:
    """Drills keep measuring past an objective (2x, at least a minute more), so a breach is
    reported with its actual RTO; for the runbook's 15 min that is its 30 min MTTR."""
    assert Objective("x", rto).window == pytest.approx(window)


def test_remaining_counts_down_from_the_fault_and_stops_at_zero() -> None:
    objective = Objective("x", 10)  # window 70 s
    now = time.monotonic()
    assert 69 < objective.remaining(now - 0.5) <= 69.5
    assert objective.remaining(now - 1000) == 0.0


def test_service_table_sets_the_vault_service_objective(tmp_path: Path) -> None:
    """[service] rto and rpo_writes are the "Vault Service" objective drills measure against
    (a component table of that name, if given, still wins)."""
    path = tmp_path / "o.toml"
    path.write_text('[service]\nrto = "5m"\nrpo_writes = 2\n', encoding="utf-8")
    service = load_settings(path).objectives.for_component("Vault Service")
    assert (service.rto, service.rpo_writes) == (300, 2)
    path.write_text('[service]\nrto = "5m"\n[components."Vault Service"]\nrto = "7m"\n',
                    encoding="utf-8")
    assert load_settings(path).objectives.for_component("Vault Service").rto == 420


def test_settle_window_is_read_from_the_probes_table(tmp_path: Path) -> None:
    """[probes] settle overrides the target's default; absent, it stays None."""
    path = tmp_path / "o.toml"
    path.write_text('[probes]\nsettle = "30s"\n', encoding="utf-8")
    assert load_settings(path).probes.settle == 30
    assert load_settings(None).probes.settle is None


def test_environment_defaults_are_the_runbooks_names() -> None:
    """Without [environment], drills act on runbook sections 2 and 5's names."""
    names = load_settings(None).names
    assert names == Names()
    assert (names.stack, names.asg, names.dr_asg) == (
        "VettID-Nitro", "VettID-Nitro-EnclaveASG", "VettID-Nitro-DR-EnclaveASG")
    assert replace(names, account_id="210987654321").bucket == "vettid-vault-data-210987654321"
    assert names.tables == ("VettID-Vault-EnrollmentSessions", "VettID-Ledger-Credentials",
                            "VettID-Ledger-TransactionKeys")
    assert (names.primary_region, names.dr_region) == ("us-east-1", "us-west-2")


def test_environment_table_sets_the_names(tmp_path: Path) -> None:
    """Each key of [environment] replaces the runbook's name; the others stay; a bucket's
    {account_id} becomes the account's id."""
    path = write(tmp_path, """
[environment]
stack = "Acme-Vault"
dr_stack = "Acme-Vault-DR"
asg = "Acme-Vault-ASG"
dr_region = "eu-west-1"
vault_bucket = "acme-vault-{account_id}"
dr_vault_bucket = "acme-vault-replica"
credentials_table = "Acme-Credentials"
param_path = "/acme/"
param_nats_creds = "/acme/nats-creds"
key_alias = "alias/acme-sealing"
enclave_alarm = "Acme-NoEnclave"
alarm_topic = "Acme-Pager"
api_host = "vault.acme.example"
hosted_zone = "acme.example"
""")
    names = replace(load_settings(path).names, account_id="111122223333")
    assert names.stack_in("eu-west-1") == "Acme-Vault-DR"
    assert names.asg_in("us-east-1") == "Acme-Vault-ASG"
    assert names.asg_in("eu-west-1") == "VettID-Nitro-DR-EnclaveASG"
    assert (names.bucket, names.dr_bucket) == ("acme-vault-111122223333", "acme-vault-replica")
    assert names.tables[1] == "Acme-Credentials"
    assert names.alarms == ("Acme-NoEnclave", "VettID-NATS-NoHealthyInstances")
    assert (names.param_path, names.param_nats_creds, names.key_alias) == (
        "/acme/", "/acme/nats-creds", "alias/acme-sealing")
    assert (names.alarm_topic, names.api_host, names.hosted_zone) == (
        "Acme-Pager", "vault.acme.example", "acme.example")


@pytest.mark.parametrize(("text", "message"), [
    ("[environment]\nasg_name = 'x'", r"\[environment\]: unknown key\(s\) asg_name; allowed:"),
    ("[environment]\naccount_id = '1'", r"unknown key\(s\) account_id"),
    ("[environment]\nasg = 3", r"\[environment\] asg: expected a non-empty string \(the "
                               r"runbook's is 'VettID-Nitro-EnclaveASG'\), got 3"),
    ("[environment]\nstack = ''", "stack: expected a non-empty string"),
    ("[environment]\ndr_asg = ['a', 'b']", "dr_asg: expected a non-empty string"),
    ("environment = 'prod'", r"\[environment\] must be a table"),
    ("[environment]\nparam_current_ami = 'vettid/ami'", "param_current_ami: an SSM parameter"),
    ("[environment]\nparam_path = '/vettid'", "param_path: .* ends with '/'"),
    ("[environment]\nkey_alias = 'sealing'", "key_alias: a KMS alias starts with 'alias/'"),
    ("[environment]\nvault_bucket = 'data-{account}'", "only placeholder"),
    ("[environment]\ndr_vault_bucket = 'vettid-vault-data-{account_id}'",
     "give the DR replica a name of its own"),
    ("[environment]\ndr_region = 'us-east-1'", "set dr_region"),
])
def test_bad_environment_tables_say_which_key_and_what_to_write(
        tmp_path: Path, text: str, message: str) -> None:
    """A wrong [environment] is refused before anything is touched, naming the file and the
    key: a typo must not silently drill the runbook's resource instead of the team's."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_names_round_trip_through_the_journal_and_ignore_unknown_fields() -> None:
    """Names journaled with a fault come back equal; a journal from a version with other
    names still rolls back (unknown names dropped, missing ones the runbook's)."""
    names = Names(account_id="111122223333", asg="Acme-ASG", dr_region="eu-west-1")
    assert Names.from_dict(names.to_dict()) == names
    old = {"asg": "Acme-ASG", "tables": ["a", "b", "c"]}
    assert Names.from_dict(old) == Names(asg="Acme-ASG")


def test_comms_defaults_to_an_sns_topic_without_a_promised_cadence() -> None:
    """Without [comms]: SNS (the twin's own topic), the webhook URL read from
    $DRILLS_SLACK_WEBHOOK if asked for, no cadence promised (the appendix states none)."""
    comms = load_settings(None).comms
    assert (comms.channel, comms.topic_arn, comms.webhook_env, comms.update_every,
            comms.impact) == ("sns", None, "DRILLS_SLACK_WEBHOOK", None, None)


def test_comms_reads_channel_topic_cadence_and_impact(tmp_path: Path) -> None:
    """Every [comms] key is read, durations as elsewhere in the file."""
    path = write(tmp_path, '[comms]\nchannel = "slack"\nwebhook_env = "TEAM_HOOK"\n'
                 'update_every = "30m"\nimpact = "enrolment is slow"\n'
                 'topic_arn = "arn:aws:sns:us-east-1:123456789012:team"\n')
    comms = load_settings(path).comms
    assert (comms.channel, comms.webhook_env, comms.update_every, comms.impact,
            comms.topic_arn) == ("slack", "TEAM_HOOK", 1800.0, "enrolment is slow",
                                 "arn:aws:sns:us-east-1:123456789012:team")


@pytest.mark.parametrize(("text", "message"), [
    ('[comms]\nchannel = "pager"', r"\[comms\] channel: 'pager' is not one of sns, slack"),
    ('[comms]\ntopic_arn = "VettID-Team"', r"topic_arn: 'VettID-Team' is not an SNS topic ARN"),
    ('[comms]\nupdate_every = "often"', r"\[comms\] update_every: cannot read duration"),
    ('[comms]\nimpact = ""', r"\[comms\] impact must be a non-empty string"),
    ('[comms]\nwebhook_url = "https://hooks.slack.com/x"', r"unknown key\(s\) webhook_url"),
])
def test_bad_comms_settings_say_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    """A wrong [comms] names the file, the key and what is allowed; the webhook URL itself is
    not a key (it is a credential: read from the environment)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_guardrails_default_to_no_allow_list_no_stop_alarm_and_half_a_group() -> None:
    """Without a file: no account or region allow-listed (an account target is then
    refused), no stop alarm, and a fault may act on at most half of a group."""
    settings = load_settings(None)
    assert settings.clearance == Clearance(None, None, ())
    assert settings.stop == StopSettings((), 2.0)
    assert settings.max_share == 0.5


def test_guardrail_tables_are_read(tmp_path: Path) -> None:
    """[allow] accounts, regions and production_accounts are taken apart from the fault
    allow-list by kind; [stop] names alarms and the poll; [blast] max_share takes a
    fraction or a percentage."""
    settings = load_settings(write(tmp_path, """
[allow]
accounts = ["123456789012", "210987654321"]
regions = ["us-east-1", "us-west-2"]
production_accounts = ["210987654321"]
asg = ["VettID-Nitro-EnclaveASG"]
[stop]
alarms = ["VettID-API-5xx", "Payments-Errors"]
poll = "5s"
[blast]
max_share = "34%"
"""))
    assert settings.clearance == Clearance(("123456789012", "210987654321"),
                                           ("us-east-1", "us-west-2"), ("210987654321",))
    assert dict(settings.allow) == {"asg": ("VettID-Nitro-EnclaveASG",)}
    assert settings.stop == StopSettings(("VettID-API-5xx", "Payments-Errors"), 5.0)
    assert settings.max_share == 0.34
