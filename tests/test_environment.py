"""drills.environment: the names a feature spells are acted on as configured."""

from __future__ import annotations

from dataclasses import replace

from drills.environment import Names

CONFIGURED = replace(Names(), credentials_table="Prod-Credentials", enclave_alarm="Prod-NoEnclaves",
                     param_path="/prod/", backup_bucket="prod-backups",
                     param_current_ami="/prod/ami")


def test_a_runbook_name_a_feature_spells_maps_to_the_configured_one() -> None:
    """The table, alarm, parameter path and backup bucket the features spell, as configured."""
    assert [CONFIGURED.named(n) for n in ("VettID-Ledger-Credentials",
                                          "VettID-Enclave-NoInstances", "/vettid/",
                                          "vettid-dr-backups",
                                          "/vettid/nitro-enclave/current-ami")] == [
        "Prod-Credentials", "Prod-NoEnclaves", "/prod/", "prod-backups", "/prod/ami"]


def test_other_text_and_unconfigured_names_stay_as_spelled() -> None:
    assert CONFIGURED.named("VettID-NATS-NoHealthyInstances") == "VettID-NATS-NoHealthyInstances"
    assert CONFIGURED.named("us-east-1") == "us-east-1"  # a region is never a spelled name
    assert Names().named("anything else") == "anything else"
