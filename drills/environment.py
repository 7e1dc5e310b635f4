"""The names of the system under drill: the runbook's by default, every one configurable.

Runbook section 2 and 5 name the resources (stack `VettID-Nitro`, ASG
`VettID-Nitro-EnclaveASG`, bucket `vettid-vault-data-<account-id>`, its DR replica
`vettid-vault-data-dr-<account-id>`, the DR ASG `VettID-Nitro-DR-EnclaveASG`, ...); the twin is
provisioned with them and an account is drilled by them. Accessors that take a region give
the primary's resource in us-east-1 and the DR region's in us-west-2.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCOUNT_ID = "123456789012"  # moto's default account
PRIMARY_REGION = "us-east-1"
DR_REGION = "us-west-2"


@dataclass(frozen=True, slots=True)
class Names:
    """Resource names exactly as the runbook spells them."""

    account_id: str = ACCOUNT_ID
    primary_region: str = PRIMARY_REGION
    dr_region: str = DR_REGION
    stack: str = "VettID-Nitro"
    dr_stack: str = "VettID-Nitro-DR"
    asg_output_key: str = "EnclaveASGName"
    asg: str = "VettID-Nitro-EnclaveASG"
    dr_asg: str = "VettID-Nitro-DR-EnclaveASG"
    hosted_zone: str = "vettid.dev"
    api_host: str = "api.vettid.dev"
    dr_api_host: str = "api-dr.vettid.dev"
    launch_template: str = "VettID-Nitro-Enclave-LT"
    key_alias: str = "alias/vettid-nitro-sealing-key"
    tables: tuple[str, ...] = (
        "VettID-Vault-EnrollmentSessions",
        "VettID-Ledger-Credentials",
        "VettID-Ledger-TransactionKeys",
    )
    param_current_ami: str = "/vettid/nitro-enclave/current-ami"
    param_latest_ami: str = "/vettid/nitro-enclave/latest-ami"
    param_sealing_key: str = "/vettid/nitro/sealing-key-arn"
    param_nats_creds: str = "/vettid/nitro/parent-nats-creds"

    @property
    def bucket(self) -> str:
        """The vault data bucket, `vettid-vault-data-<account-id>`."""
        return f"vettid-vault-data-{self.account_id}"

    @property
    def dr_bucket(self) -> str:
        """Its replica in the DR region, `vettid-vault-data-dr-<account-id>` (runbook 5.3)."""
        return f"vettid-vault-data-dr-{self.account_id}"

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

    @property
    def sessions_table(self) -> str:
        return self.tables[0]

    @property
    def credentials_table(self) -> str:
        return self.tables[1]

    @property
    def transactions_table(self) -> str:
        return self.tables[2]
