"""The system a drill acts on: the local twin, or a real AWS account through boto3.

Both give the same things to steps: AWS clients, the enclave ASG's name (read from the
CloudFormation stack output, as the runbook does), a NATS connection to the vault service,
the vaults probes may read, and what counts as "back at desired capacity". What only the
twin can do (signal the service's processes, its control routes) is a capability it declares
(`drills.capabilities`): steps ask the target for it, and a target without it refuses with
CapabilityMissing, never an AttributeError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from drills.api_client import ApiClient, Cohort, Population
from drills.capabilities import ALL, Capability, missing_reason
from drills.clients import Clients
from drills.config import ApiSettings
from drills.environment import PRIMARY_REGION, Names
from drills.errors import CapabilityMissing, ConfigError, TargetError
from drills.faults import AllowList, FaultContext
from drills.guard import Identity, account_alias
from drills.hygiene import Swept, drill_vault_prefix, sweep
from drills.loop import LoopThread
from drills.measure.probes import KnownVault
from drills.measure.rpo import LedgerReader, ledger_reader
from drills.resolve import Resolver
from drills.vault import VaultClient, VaultUnavailable, connect, digest

log = logging.getLogger(__name__)
#: Vaults of its own a run against an account enrols for the probes (no DRILLS_PROBE_VAULTS).
PROBE_VAULTS = 8


@dataclass(frozen=True, slots=True)
class Capacity:
    """The enclave ASG as observed: desired, InService+Healthy, and actually serving."""

    desired: int
    in_service: int
    serving: int

    @property
    def restored(self) -> bool:
        return self.desired > 0 and self.serving >= self.desired


class Target:
    """Common behaviour of the twin and an account."""

    kind = "abstract"
    #: What this target can do beyond the public AWS APIs (`drills.capabilities`).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Seconds without a failure after K successes before a drill calls a service recovered.
    settle = 60.0
    #: The NATS ping interval of the service's clients: a frozen server is noticed after two.
    nats_ping_interval = 120.0  # NATS's default: what the service's own clients use
    #: How often EC2 runs status checks (AWS: every minute); the ASG acts on the next one.
    status_check_interval = 60.0
    #: Whether drills may create the runbook's backup bucket (the twin: yes; an account
    #: has its own, and a drill never creates buckets there).
    owns_backups = False

    def __init__(self, clients: Clients, names: Names, region: str = PRIMARY_REGION) -> None:
        self.clients, self.names, self.region = clients, names, region
        self.notes: list[str] = []  # how the target was read, for the report

    def asg_name(self, region: str | None = None) -> str:
        """The enclave ASG of `region`, from its stack's output EnclaveASGName (runbook 4.1
        diagnosis); the configured name (`[environment] asg`, `dr_asg`) when the stack has
        no outputs at all (moto's stacks made by change set), said in a warning."""
        region = region or self.region
        stack = self.names.stack_in(region)
        stacks = self.clients("cloudformation", region).describe_stacks(
            StackName=stack)["Stacks"]
        for output in stacks[0].get("Outputs", []):
            if output["OutputKey"] == self.names.asg_output_key:
                return str(output["OutputValue"])
        # A stack made by change set on moto has no outputs at all (moto never fills them):
        # the configured name is the ASG. A stack with other outputs but not this one is
        # misconfigured.
        if stacks[0].get("Outputs"):
            raise ConfigError(f"stack {stack} in {region} has no output "
                              f"{self.names.asg_output_key}; check stack, dr_stack and "
                              "asg_output_key under [environment] in the objectives file")
        asg = self.names.asg_in(region)
        note = (f"stack {stack} in {region} has no outputs; using the configured ASG name "
                f"{asg} ([environment] {'dr_asg' if self.names.is_dr(region) else 'asg'})")
        if note not in self.notes:
            self.notes.append(note)
            log.warning(note)
        return asg

    def fault_context(self) -> FaultContext:
        return FaultContext(self.clients, None, self.capabilities, self.named)

    def identity(self) -> Identity:
        """Its account id, IAM account alias and the regions a run acts in (the run's and
        the DR region), for the allow-lists (`drills.guard`)."""
        return Identity(self.names.account_id, account_alias(self.clients("iam")),
                        tuple(dict.fromkeys((self.region, self.names.dr_region))))

    @property
    def named(self) -> str:
        """How messages name this target: "the account target aws:1234/us-east-1"."""
        return f"the {self.kind} target {self.env_id}"

    def require(self, capability: Capability, what: str) -> None:
        """Refuse (CapabilityMissing) to `what` on a target without `capability`."""
        if capability not in self.capabilities:
            raise CapabilityMissing(f"cannot {what}: "
                                    f"{missing_reason({capability}, self.named)}")

    def nats_cluster(self, region: str | None = None) -> Any:  # drills.twin.nats.NatsCluster
        """The NATS cluster's nodes themselves: their monitors and processes (`processes`)."""
        self.require(Capability.PROCESSES, "read the NATS nodes' own monitors")
        raise NotImplementedError

    def enclave_processes(self, region: str | None = None) -> dict[str, int]:
        """Instance id -> pid of each enclave process now (`processes`)."""
        self.require(Capability.PROCESSES, "see the enclave processes of the instances")
        raise NotImplementedError

    def prepare_nats_instances(self, region: str | None = None) -> None:
        """Make sure runbook 4.2 finds the NATS nodes as running EC2 instances tagged
        Application=vettid-nats with an SSM agent: an account has its own."""

    @property
    def env_id(self) -> str:
        """Identifies this system in the fault journal."""
        return f"aws:{self.names.account_id}/{self.region}"

    def describe(self) -> dict[str, Any]:
        """What the report says about the target (never credentials)."""
        return {"kind": self.kind, "region": self.region}

    def _group(self, region: str | None) -> dict[str, Any]:
        return self.clients("autoscaling", region or self.region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.asg_name(region)])["AutoScalingGroups"][0]

    def _healthy_ids(self, group: dict[str, Any]) -> list[str]:
        return [i["InstanceId"] for i in group["Instances"]
                if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"]

    def capacity(self, loop: LoopThread, client: VaultClient,
                 region: str | None = None) -> Capacity:
        group = self._group(region)
        ids = self._healthy_ids(group)
        return Capacity(group["DesiredCapacity"], len(ids), len(ids))

    def nats_credentials(self, region: str | None = None) -> dict[str, str]:
        """The parent's NATS credentials, read from SSM like the service reads them."""
        param = self.clients("ssm", region or self.region).get_parameter(
            Name=self.names.param_nats_creds, WithDecryption=True)
        return dict(json.loads(param["Parameter"]["Value"]))

    def nats_urls(self, region: str | None = None) -> list[str]:
        raise NotImplementedError

    def connect(self, loop: LoopThread, name: str = "drills-probe") -> VaultClient:
        """A NATS connection to the vault service (as the Lambdas have), for NATS-level probes
        and the harness's own checks."""
        creds = self.nats_credentials()
        nc = loop.run(connect(self.nats_urls(), creds["user"], creds["password"], name,
                              ping_interval=self.nats_ping_interval), timeout=15)
        return VaultClient(nc)

    def api(self, population: Population | None = None, region: str | None = None) -> ApiClient:
        """The vault API as the apps call it (HTTPS, its name resolved as they resolve it),
        verifying attestation as `population` does (default: the target's app population).
        `region`: that region's own API name (api-dr.vettid.dev) instead of the service's."""
        return ApiClient(self.api_url(region), self.ca_bundle(),
                         population if population is not None else self.population(),
                         resolver=self.resolver())

    def api_url(self, region: str | None = None) -> str:
        """The URL apps call: the service's name (failover), or `region`'s own."""
        raise NotImplementedError

    def resolver(self) -> Resolver | None:
        """The DNS the API's name is resolved through (None: the system's)."""
        return None

    def health_check_healthy(self, check_id: str) -> bool:
        """Route 53's verdict on a health check (GetHealthCheckStatus: more than 18 % of its
        checkers report healthy)."""
        from drills.procedures.region import health_check_healthy

        return health_check_healthy(self.clients, check_id)

    def replication_backlog(self) -> int:
        """Writes waiting to replicate between the regions (S3 and the global tables;
        `control`: on an account, watch OperationsPendingReplication and
        ReplicationLatency)."""
        self.require(Capability.CONTROL, "read the replication backlog")
        raise NotImplementedError

    def ca_bundle(self) -> Path | None:
        """The CA that verifies the API's certificate (None: the system's)."""
        return None

    def population(self) -> Population | None:
        """The app population probes act as (None: attestation is not verified)."""
        return None

    def prepare_alarms(self) -> None:
        """Make sure the runbook's alarms, their topic and pager exist: the twin provisions
        them (idempotent); an account must already have them."""

    def communications_topic(self) -> str | None:
        """The SNS topic user notifications go to when `[comms]` names none: the twin makes
        one of its own; an account has the team's, which the team must name (None)."""
        return None

    def ledger(self) -> LedgerReader:
        """Reads the credentials ledger (DynamoDB): each vault's last acknowledged content."""
        return ledger_reader(self.clients("dynamodb", self.region),
                             self.names.credentials_table)

    def known_vaults(self) -> list[KnownVault]:
        raise NotImplementedError

    def allow_list(self, configured: dict[str, tuple[str, ...]]) -> AllowList:
        return AllowList(dict(configured))

    def sweep_drill_vaults(self) -> Swept | None:
        """Delete every vault the drills made (`drills.hygiene`), in both regions; what was
        deleted (None: this target keeps no data beyond its own life)."""
        return sweep(self.clients, self.names)


#: The twin's topic for user notifications (the team's own on an account: `[comms]`).
COMMS_TOPIC = "VettID-DR-Communications"


class TwinTarget(Target):
    """The local twin: its own resources are always allowed targets."""

    kind = "twin"
    owns_backups = True
    capabilities = ALL

    def __init__(self, twin: Any) -> None:  # drills.twin.manager.Twin
        from drills.twin.timing import profile

        super().__init__(twin.clients, twin.names)
        self.twin = twin
        timing = profile(twin.state.profile)
        self.settle, self.nats_ping_interval = timing.settle, timing.nats_ping_interval
        self.status_check_interval = timing.status_check_interval

    def fault_context(self) -> FaultContext:
        return FaultContext(self.clients, self.twin, self.capabilities, self.named)

    def nats_cluster(self, region: str | None = None) -> Any:
        return self.twin.nats(region or self.region)

    def enclave_processes(self, region: str | None = None) -> dict[str, int]:
        return dict(self.twin.worker_pids(region or self.region))

    def prepare_nats_instances(self, region: str | None = None) -> None:
        """The twin's NATS nodes get their EC2 instances and SSM agents
        (`drills.twin.nats.instances`)."""
        from drills.twin.nats.instances import ensure_instances

        ensure_instances(self.twin.clients, self.twin.state.aws_url,
                         self.twin.nats_spec(region or self.region))

    @property
    def env_id(self) -> str:
        """A twin is identified by its directory and start time: a new twin is a new system."""
        return f"twin:{self.twin.state.state_dir}@{self.twin.state.started_utc}"

    def describe(self) -> dict[str, Any]:
        state = self.twin.state
        nats = self.twin.nats_spec(self.region)
        return {"kind": "twin", "region": self.region, "account_id": self.names.account_id,
                "timing_profile": state.profile, "nats_backend": nats.backend.value,
                "state_dir": state.state_dir, "aws_endpoint": state.aws_url}

    def nats_urls(self, region: str | None = None) -> list[str]:
        return self.twin.nats_spec(region or self.region).urls

    def api_url(self, region: str | None = None) -> str:
        """`https://api.vettid.dev:<port>` (the failover records), or for the DR region
        `https://api-dr.vettid.dev:<port>`: names the twin's DNS server answers."""
        port = self.twin.api_port
        host = self.names.dr_api_host if region and self.names.is_dr(region) else \
            self.names.api_host
        return f"https://{host}:{port}"

    def resolver(self) -> Resolver | None:
        return self.twin.resolver()

    def health_check_healthy(self, check_id: str) -> bool:
        """Read from Route 53's data plane (its checkers, as the name servers use them): the
        API, GetHealthCheckStatus, is signed for us-east-1 and goes dark with it."""
        from drills.twin import control

        checks = control.post(self.twin.state.aws_url, "route53/health-checks", {})
        return bool(checks["health_checks"][check_id]["healthy"])

    def replication_backlog(self) -> int:
        from drills.twin import control

        return sum(link["pending"]
                   for route in ("s3/replication-status", "dynamodb/replication-status")
                   for link in control.post(self.twin.state.aws_url, route, {})["links"])

    def ca_bundle(self) -> Path | None:
        return Path(self.twin.ca_bundle)

    def population(self) -> Population | None:
        """Every app carries the PCR set of the twin's first enclave build."""
        from drills.attestation import ExpectedPcrs, PcrSet, build_pcrs, load_roots
        from drills.twin.provision import FIRST_VERSION

        expected = ExpectedPcrs((PcrSet(FIRST_VERSION, build_pcrs(FIRST_VERSION)),))
        return Population(load_roots(self.twin.attestation_root),
                          [Cohort("all apps", 1.0, expected)])

    def prepare_alarms(self) -> None:
        from drills.twin import monitor

        monitor.provision(self.clients, self.names, self.region, self.twin.state.profile)

    def communications_topic(self) -> str | None:
        # create_topic returns the existing topic's ARN when it already exists
        return str(self.clients("sns", self.region).create_topic(
            Name=COMMS_TOPIC)["TopicArn"])

    def known_vaults(self) -> list[KnownVault]:
        return list(self.twin.population())

    def capacity(self, loop: LoopThread, client: VaultClient,
                 region: str | None = None) -> Capacity:
        """On the twin, "serving" means the instance's own worker answers its health check."""
        group = self._group(region)
        ids = self._healthy_ids(group)

        async def serving() -> int:
            count = 0
            for iid in ids:
                try:
                    await client.health(0.5, instance_id=iid)
                    count += 1
                except VaultUnavailable:
                    pass
            return count

        return Capacity(group["DesiredCapacity"], len(ids),
                        loop.run(serving(), timeout=5 + len(ids)))

    def sweep_drill_vaults(self) -> Swept | None:
        """Nothing: the twin's data goes with the twin."""
        return None

    def allow_list(self, configured: dict[str, tuple[str, ...]]) -> AllowList:
        names = self.twin.names
        own = {"asg": (names.asg,), "bucket": (names.bucket,),
               "region": (names.primary_region, names.dr_region),
               "key": (self.twin.state.primary.key_arn,), "table": names.tables,
               "nats": ("*",),
               # runbook 2.3's critical parameters: the SSM faults restore them from a backup
               "ssm-parameter": (names.param_nats_creds, names.param_current_ami,
                                 names.param_latest_ami, names.param_sealing_key)}
        merged = {k: tuple(configured.get(k, ())) + own.get(k, ()) for k in {*own, *configured}}
        return AllowList(merged)


class AccountTarget(Target):
    """A real AWS account reached through boto3's usual credential chain (and
    `AWS_ENDPOINT_URL`, as botocore reads it), drilled by the configured `names`."""

    kind = "account"

    def __init__(self, region: str | None = None, account_id: str | None = None,
                 api: ApiSettings | None = None, names: Names | None = None,
                 clients: Clients | None = None) -> None:
        names = names or Names()
        region = region or names.primary_region
        # Given: a dry run's, guarded before the first call (the account id's).
        clients = clients or Clients(endpoint_url=None, default_region=region)
        if account_id is None:
            account_id = clients("sts").get_caller_identity()["Account"]
        super().__init__(clients, replace(names, account_id=account_id), region)
        self.api_settings = api or ApiSettings()
        self._probe_vaults: list[KnownVault] | None = None  # enrolled by known_vaults()

    def api_url(self, region: str | None = None) -> str:
        """The configured URL of the service; for the DR region, its own name
        (`https://api-dr.vettid.dev`, runbook 5.2 step 3) at the configured URL's port."""
        url = self.api_settings.url or os.environ.get("DRILLS_API_URL")
        if region and self.names.is_dr(region):
            port = urlsplit(url).port if url else None
            return f"https://{self.names.dr_api_host}" + (f":{port}" if port else "")
        if not url:
            raise ConfigError("no vault API URL for the account: pass --api-url, set [api] url "
                              "in the objectives file, or DRILLS_API_URL")
        return url

    def resolver(self) -> Resolver | None:
        """The name server of `[api] dns` (None: the system's resolver)."""
        where = self.api_settings.dns
        if not where:
            return None
        host, port = where.rsplit(":", 1)
        return Resolver(host, int(port))

    def ca_bundle(self) -> Path | None:
        bundle = self.api_settings.ca_bundle
        return Path(bundle) if bundle else None

    def population(self) -> Population | None:
        """One cohort: the apps of the configured expected_pcrs.json, verifying against the
        pinned root; without both, probes do not verify attestation (said in the report)."""
        from drills.attestation import ExpectedPcrs, load_roots

        root, expected = self.api_settings.attestation_root, self.api_settings.expected_pcrs
        if not (root and expected):
            return None
        return Population(load_roots(Path(root)),
                          [Cohort("configured apps", 1.0, ExpectedPcrs.load(Path(expected)))])

    def describe(self) -> dict[str, Any]:
        return {"kind": "account", "region": self.region, "account_id": self.names.account_id}

    def nats_urls(self, region: str | None = None) -> list[str]:
        urls = os.environ.get("DRILLS_NATS_URL", "")
        if not urls:
            raise ConfigError("DRILLS_NATS_URL is not set; on an account, set it to the vault "
                              "service's NATS URLs (comma-separated) for the probes")
        return urls.split(",")

    def known_vaults(self) -> list[KnownVault]:
        """The vaults of DRILLS_PROBE_VAULTS (`vault_id:sha256,...`, the operator's); without
        it, PROBE_VAULTS vaults of the drills' own (`drills-probe-<hex>-<n>`), enrolled
        through the vault API at first use and deleted at the end of the run (hygiene)."""
        raw = os.environ.get("DRILLS_PROBE_VAULTS", "")
        if raw:
            pairs = [p.split(":", 1) for p in raw.split(",")]
            if any(len(p) != 2 or not all(p) for p in pairs):
                raise ConfigError(f"DRILLS_PROBE_VAULTS={raw!r}: expected vault_id:sha256 "
                                  "pairs, comma-separated; unset it to let the drills enrol "
                                  "probe vaults of their own")
            return [KnownVault(v, h) for v, h in pairs]
        if self._probe_vaults is None:
            self._probe_vaults = self._enrol_probe_vaults()
        return list(self._probe_vaults)

    def _enrol_probe_vaults(self) -> list[KnownVault]:
        prefix = f"{drill_vault_prefix('probe')}-{uuid.uuid4().hex[:6]}"
        contents = {f"{prefix}-{n:02d}": os.urandom(256) for n in range(PROBE_VAULTS)}
        loop = LoopThread("drills-probe-enrol")
        client = self.api()

        async def enrol() -> None:
            try:
                await asyncio.gather(*(client.enroll(v, data, timeout=10)
                                       for v, data in contents.items()))
            finally:
                await client.close()

        try:
            loop.run(enrol(), timeout=60)
        except VaultUnavailable as exc:
            raise TargetError(f"enrolling the drills' probe vaults through {self.api_url()} "
                              f"failed ({exc}); check the vault API, or set "
                              "DRILLS_PROBE_VAULTS to vaults the probes may read") from None
        finally:
            loop.close()
        return [KnownVault(v, digest(data)) for v, data in contents.items()]


def target_for_rollback(target: str, region: str | None, state_dir: str | None,
                        names: Names | None = None) -> Target | None:
    """The target `drills rollback` reverts on, drilled by `names` (`[environment]`); None
    when no twin is running (its faults died)."""
    if target == "aws":
        return AccountTarget(region=region, names=names)
    from drills.twin import manager

    twin = manager.running_twin(Path(state_dir) if state_dir else manager.default_state_dir())
    return TwinTarget(twin) if twin is not None else None


#: The `--target` choices and the Target each opens: what one can do is known before it opens.
TARGETS: dict[str, type[Target]] = {"twin": TwinTarget, "aws": AccountTarget}
