"""The names of the system under drill: the runbook's by default, every one configurable.

Runbook section 2 and 5 name the resources (stack `VettID-Nitro`, ASG
`VettID-Nitro-EnclaveASG`, bucket `vettid-vault-data-<account-id>`, its DR replica
`vettid-vault-data-dr-<account-id>`, the DR ASG `VettID-Nitro-DR-EnclaveASG`, ...); the twin is
provisioned with them and an account is drilled by them, or by the names the objectives
file's `[environment]` table gives (`drills.config`). Accessors that take a region give the
primary's resource in the primary region and the DR region's in the DR region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from drills.errors import ConfigError

ACCOUNT_ID = "123456789012"  # moto's default account
PRIMARY_REGION = "us-east-1"
DR_REGION = "us-west-2"
#: What a bucket name may hold in place of the account id (bucket names are global).
ACCOUNT_PLACEHOLDER = "{account_id}"


@dataclass(frozen=True, slots=True)
class Names:
    """Resource names exactly as the runbook spells them (runbook sections 2, 3 and 5)."""

    account_id: str = ACCOUNT_ID
    primary_region: str = PRIMARY_REGION
    dr_region: str = DR_REGION
    stack: str = "VettID-Nitro"
    dr_stack: str = "VettID-Nitro-DR"
    asg_output_key: str = "EnclaveASGName"
    asg: str = "VettID-Nitro-EnclaveASG"
    dr_asg: str = "VettID-Nitro-DR-EnclaveASG"
    launch_template: str = "VettID-Nitro-Enclave-LT"
    vault_bucket: str = "vettid-vault-data-" + ACCOUNT_PLACEHOLDER
    dr_vault_bucket: str = "vettid-vault-data-dr-" + ACCOUNT_PLACEHOLDER
    backup_bucket: str = "vettid-dr-backups"
    sessions_table: str = "VettID-Vault-EnrollmentSessions"
    credentials_table: str = "VettID-Ledger-Credentials"
    transactions_table: str = "VettID-Ledger-TransactionKeys"
    param_path: str = "/vettid/"
    param_current_ami: str = "/vettid/nitro-enclave/current-ami"
    param_latest_ami: str = "/vettid/nitro-enclave/latest-ami"
    param_sealing_key: str = "/vettid/nitro/sealing-key-arn"
    param_nats_creds: str = "/vettid/nitro/parent-nats-creds"
    key_alias: str = "alias/vettid-nitro-sealing-key"
    enclave_alarm: str = "VettID-Enclave-NoInstances"
    nats_alarm: str = "VettID-NATS-NoHealthyInstances"
    alarm_topic: str = "VettID-Nitro-Alarms"
    hosted_zone: str = "vettid.dev"
    api_host: str = "api.vettid.dev"
    dr_api_host: str = "api-dr.vettid.dev"

    def to_dict(self) -> dict[str, str]:
        """As journaled and written to the twin's state.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Names:
        """From `to_dict` of this or another version: names it does not know are dropped,
        names it lacks take the runbook's (a journal written before a name was configurable
        still rolls back)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in known})

    @property
    def bucket(self) -> str:
        """The vault data bucket, `vettid-vault-data-<account-id>`."""
        return self.vault_bucket.replace(ACCOUNT_PLACEHOLDER, self.account_id)

    @property
    def dr_bucket(self) -> str:
        """Its replica in the DR region, `vettid-vault-data-dr-<account-id>` (runbook 5.3)."""
        return self.dr_vault_bucket.replace(ACCOUNT_PLACEHOLDER, self.account_id)

    @property
    def tables(self) -> tuple[str, str, str]:
        """Runbook 2.2's tables: enrolment sessions, credentials ledger, transaction keys."""
        return (self.sessions_table, self.credentials_table, self.transactions_table)

    @property
    def alarms(self) -> tuple[str, str]:
        """Runbook 3.2's and 3.3's alarms: no enclave instance, no healthy NATS node."""
        return (self.enclave_alarm, self.nats_alarm)

    def named(self, spelled: str) -> str:
        """The configured name of a resource a feature spells as the runbook does
        ("VettID-Ledger-Credentials" -> `credentials_table`); any other text as it is."""
        for f in _SPELLED:
            if getattr(_RUNBOOK, f) == spelled:
                return str(getattr(self, f))
        return spelled

    def is_dr(self, region: str) -> bool:
        return region == self.dr_region

    def bucket_in(self, region: str) -> str:
        """The vault data bucket the service of `region` writes."""
        return self.dr_bucket if self.is_dr(region) else self.bucket

    def asg_in(self, region: str) -> str:
        """The enclave ASG of `region`."""
        return self.dr_asg if self.is_dr(region) else self.asg

    def stack_in(self, region: str) -> str:
        """The CloudFormation stack of `region`."""
        return self.dr_stack if self.is_dr(region) else self.stack


_RUNBOOK = Names()
#: The names a feature may spell (the regions and the account are never spelled for a name).
_SPELLED = tuple(f.name for f in fields(Names)
                 if f.name not in ("account_id", "primary_region", "dr_region"))
#: What `[environment]` may set: every name but the account's, the credentials' own.
CONFIGURABLE = {f.name for f in fields(Names)} - {"account_id"}
_PARAMETERS = ("param_path", "param_current_ami", "param_latest_ami", "param_sealing_key",
               "param_nats_creds")


def configured_names(table: Mapping[str, Any], at: str) -> Names:
    """The runbook's names with those of `table` (keys of CONFIGURABLE, checked by the
    caller) over them; a ConfigError, naming `at` and the key, for a name AWS would refuse
    or the drills could not tell apart."""
    runbook = Names()
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{at} {key}: expected a non-empty string (the runbook's is "
                              f"{getattr(runbook, key)!r}), got {value!r}")
    names = replace(runbook, **table)
    for key in _PARAMETERS:
        if not getattr(names, key).startswith("/"):
            raise ConfigError(f"{at} {key}: an SSM parameter path starts with '/', got "
                              f"{getattr(names, key)!r}")
    if not names.param_path.endswith("/"):
        raise ConfigError(f"{at} param_path: the path the parameters are exported from ends "
                          f"with '/' (as the runbook's '/vettid/'), got {names.param_path!r}")
    if not names.key_alias.startswith("alias/"):
        raise ConfigError(f"{at} key_alias: a KMS alias starts with 'alias/', got "
                          f"{names.key_alias!r}")
    for key in ("vault_bucket", "dr_vault_bucket"):
        rest = getattr(names, key).replace(ACCOUNT_PLACEHOLDER, "")
        if "{" in rest or "}" in rest:
            raise ConfigError(f"{at} {key}: the only placeholder a bucket name may hold is "
                              f"{ACCOUNT_PLACEHOLDER}, got {getattr(names, key)!r}")
    if names.vault_bucket == names.dr_vault_bucket:
        raise ConfigError(f"{at}: vault_bucket and dr_vault_bucket are both "
                          f"{names.vault_bucket!r}; bucket names are global, so give the DR "
                          "replica a name of its own")
    if names.primary_region == names.dr_region:
        raise ConfigError(f"{at}: primary_region and dr_region are both "
                          f"{names.primary_region!r}; set dr_region to runbook 5's DR region")
    return names
