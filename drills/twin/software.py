"""The vault service beside an AWS endpoint the twin did not provision, both regions of it.

To drill an environment deployed from `examples/aws/vettid-dr-stack.yaml` into the twin's AWS
endpoint alone (moto and its fidelity layer: `tests/test_examples_aws_run.py`), two kinds of
thing must run beside the endpoint, and this module runs both, without the twin's
provisioning:

The service's own software, which no CloudFormation stack makes (the template says so), for
each region of `names` (the primary, and the DR region as its standby, runbook 5.1):
- a NATS cluster (`drills.twin.nats`, nats-server processes) with the user and password the
  region's parameter `[environment] param_nats_creds` holds;
- the vault API (`drills.twin.api`, HTTPS), as API Gateway and its Lambdas, on the region's
  loopback address (`REGION_HOSTS`) and a port both regions share: the addresses and port
  the stack's Route 53 records and health checks name (`api_parameters`).

What AWS itself runs behind its APIs, played by the twin's pieces that stand for those
services, as on the twin (they alone call the endpoint's twin-only control routes):
- EC2 and EC2 Auto Scaling: the ASG controller (`drills.twin.controller`), one process for
  both regions' groups: an enclave worker boots on each InService instance (the software its
  AMI carries), ELB health checks and the replacements they cause, retries of failed
  launches, instance refreshes, the group metrics the runbook's alarms watch (it sets the
  groups' grace period and their target groups' health check to the timing profile's, as
  on the twin: the stand-in's compressed time, not the operator's settings);
- Route 53's name servers (`drills.twin.dns`): `api.vettid.dev` and `api-dr.vettid.dev` as
  the hosted zone's records and health checks answer them (`dns_address`).

Everything shares one state directory (`root/state.json`): what the instances' software
reads to find its region's NATS, as an AMI carries its configuration.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drills import attestation
from drills.clients import Clients
from drills.environment import Names
from drills.journal import utc_now
from drills.twin import api, controller, dns, nats, tls
from drills.twin.ports import free_port
from drills.twin.state import REGION_HOSTS, RegionState, TwinState
from drills.twin.timing import TimingProfile, profile


@dataclass(slots=True)
class ServiceSoftware:
    """The service for both regions of the environment at `aws_url`, by `names`, on the
    `timing` profile; its files (NATS, TLS, the enclaves' Nitro root, logs) under `root`.
    The API's addresses and port are chosen at once: the stack's records name them."""

    root: Path
    aws_url: str
    names: Names
    timing: TimingProfile = field(default_factory=lambda: profile("fast"))
    api_port: int = 0
    _state: TwinState | None = None

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.api_port = self.api_port or free_port(list(REGION_HOSTS.values()))

    # -- what the stack and the drills are pointed at -------------------------------------
    @property
    def regions(self) -> tuple[str, str]:
        return self.names.primary_region, self.names.dr_region

    @property
    def api_parameters(self) -> dict[str, str]:
        """The primary stack's parameters naming the APIs (its records and health checks)."""
        return {"PrimaryApiAddress": REGION_HOSTS[self.names.primary_region],
                "DrApiAddress": REGION_HOSTS[self.names.dr_region],
                "ApiPort": str(self.api_port), "ApiRecordTtl": str(self.timing.record_ttl)}

    @property
    def state(self) -> TwinState:
        if self._state is None:
            raise RuntimeError("the service software is not started; call start() first")
        return self._state

    @property
    def api_url(self) -> str:
        """The vault API by the service's name (`[api] url`), resolved through `dns_address`."""
        return f"https://{self.names.api_host}:{self.api_port}"

    @property
    def dns_address(self) -> str:
        """Where the name servers answer, `host:port` (`[api] dns`)."""
        endpoint = dns.DnsEndpoint(**self.state.dns)
        return f"{endpoint.host}:{endpoint.port}"

    def nats_urls(self, region: str | None = None) -> list[str]:
        """A region's NATS client URLs (the primary's: `DRILLS_NATS_URL`)."""
        region = region or self.names.primary_region
        return nats.NatsClusterSpec.from_dict(self.state.regions[region].nats).urls

    @property
    def ca_bundle(self) -> Path:
        """The CA that verifies the API's certificate (`[api] ca_bundle`)."""
        return self.root / "tls" / "ca.pem"

    @property
    def attestation_root(self) -> Path:
        """The Nitro root the enclaves attest under (`[api] attestation_root`)."""
        return self.root / "pki" / "nitro-root.pem"

    # -- life -------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> ServiceSoftware:
        """Start each region's NATS and API, then the name servers and the controller; return
        once both APIs listen and the primary's serves (an enclave answers behind it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._state = self._plan()
        try:
            for region in self.state.regions.values():
                nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats)).start(
                    timeout=timeout)
                api.spawn(self.root, api.ApiEndpoint.from_dict(region.name, region.api))
            endpoint = dns.DnsEndpoint(**self.state.dns)
            dns.start_dns(self.root / "dns", self.aws_url, endpoint.port, endpoint.host)
            controller.spawn(self.root)
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _plan(self) -> TwinState:
        """Every port and file, saved before anything starts (so `stop` finds it all)."""
        clients = Clients.for_twin(self.aws_url, self.names.primary_region)
        regions: dict[str, RegionState] = {}
        for name in self.regions:
            creds = json.loads(clients("ssm", name).get_parameter(
                Name=self.names.param_nats_creds, WithDecryption=True)["Parameter"]["Value"])
            taken = {p for r in regions.values()
                     for p in nats.NatsClusterSpec.from_dict(r.nats).ports}
            spec = nats.allocate(name, self.root / f"nats-{name}", nats.Backend.PROCESS,
                                 creds["user"], creds["password"],
                                 cluster_name=f"svc-{name}-{uuid.uuid4().hex[:6]}",
                                 ping_interval=self.timing.nats_ping_interval, avoid=taken)
            front = api.ApiEndpoint(name, REGION_HOSTS[name], self.api_port,
                                    str(self.root / f"api-{name}.pid"))
            regions[name] = RegionState(name, spec.to_dict(), self.names.asg_in(name), 0,
                                        api=front.to_dict(), host=front.host)
        attestation.new_root(self.root / "pki")
        tls.make_api_tls(self.root / "tls", list(REGION_HOSTS.values()))
        host, port = self.aws_url.rsplit("//", 1)[1].rsplit(":", 1)
        state = TwinState(str(self.root), self.timing.name,
                          {"host": host, "port": int(port), "pid_file": "", "log_file": ""},
                          regions, self.names, utc_now(),
                          dns=asdict(dns.endpoint_in(self.root / "dns", self.aws_url)))
        state.save()
        state.workers_dir.mkdir(parents=True, exist_ok=True)
        return state

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        fronts = [api.ApiEndpoint.from_dict(r.name, r.api) for r in self.state.regions.values()]
        while not (all(api.listening(f) for f in fronts) and self._serving(fronts[0])):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not start in {timeout:g}s; see the logs "
                                   f"in {self.root} (controller.log, api-*.log, workers/)")
            time.sleep(0.1)

    def _serving(self, front: api.ApiEndpoint) -> bool:
        """Whether the region's API answers /health 200 (an enclave serves behind it)."""
        import httpx

        from drills.api_client import tls_context

        try:
            return httpx.get(f"{front.url}/health", verify=tls_context(self.ca_bundle),
                             timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop every process this software started (the controller stops its workers)."""
        if self._state is None:
            return
        controller.stop(self.state.state_dir)
        dns.stop_dns(dns.DnsEndpoint(**self.state.dns))
        for region in self.state.regions.values():
            api.stop(self.root, api.ApiEndpoint.from_dict(region.name, region.api))
            nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats)).stop()

    def __enter__(self) -> ServiceSoftware:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
