"""`drills twin up | down | status | env`: bring the whole local twin up, check it, take it down.

Start order: every port and file planned and saved first (so `down` finds whatever started);
while the AWS endpoint (moto + fidelity layer) imports, the NATS clusters form, the ASG
controller imports (then waits for each region's group) and the boto3 clients are built; the
regions' APIs import while the stacks are made (the primary's key and AMI, then its stack
while the DR region's is made) and serve once their region's NATS credentials are in SSM;
the alarms, the DNS server and records, the regions' links and the NATS nodes' instances
while the enclave workers boot; a population of enrolled vaults, written through the real
service path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from drills import attestation
from drills.clients import Clients
from drills.errors import DrillError, TwinError
from drills.journal import utc_now
from drills.loop import LoopThread
from drills.measure.probes import KnownVault
from drills.resolve import ResolveError, Resolver
from drills.twin import api, aws, controller, dns, monitor, nats, tls
from drills.twin.controller import WORKER_MODULE
from drills.twin.images import build_enclave
from drills.twin.nats import NatsCluster, NatsClusterSpec
from drills.twin.ports import free_port
from drills.twin.procs import still_running, stop_process
from drills.twin.provision import (
    FIRST_VERSION,
    Provisioned,
    copy_image,
    create_sealing_key,
    link_regions,
    nats_credentials,
    provision_aws,
    provision_dns,
    replicate_key,
)
from drills.twin.state import (
    DR_REGION,
    PRIMARY_REGION,
    REGION_HOSTS,
    Names,
    RegionState,
    TwinState,
    default_state_dir,
)
from drills.twin.timing import profile as timing_profile
from drills.vault import VaultClient, VaultUnavailable, connect

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Component:
    """One line of `drills twin status`."""

    name: str
    healthy: bool
    detail: str


class Twin:
    """A handle on a running twin, rebuilt from its state directory in any process."""

    def __init__(self, state: TwinState, clients: Clients | None = None) -> None:
        self.state = state
        self.clients = clients or Clients.for_twin(state.aws_url)

    @classmethod
    def load(cls, state_dir: Path | None = None) -> Twin:
        return cls(TwinState.load(state_dir))

    @property
    def names(self) -> Names:
        return self.state.names

    @property
    def endpoint(self) -> aws.AwsEndpoint:
        return aws.AwsEndpoint(**self.state.aws)

    def nats(self, region: str = PRIMARY_REGION) -> NatsCluster:
        """The NATS cluster of `region`, controllable from this process."""
        return nats.cluster_for(nats.NatsClusterSpec.from_dict(self.state.regions[region].nats))

    def nats_spec(self, region: str = PRIMARY_REGION) -> NatsClusterSpec:
        return nats.NatsClusterSpec.from_dict(self.state.regions[region].nats)

    def api_url(self, region: str = PRIMARY_REGION) -> str:
        """The region's API (https://...), what DRILLS_API_URL names."""
        return api.ApiEndpoint.from_dict(region, self.state.regions[region].api).url

    @property
    def api_port(self) -> int:
        """The port the regions' APIs share (DNS answers an address; the port is the URL's)."""
        return int(self.state.primary.api["port"])

    def resolver(self) -> Resolver:
        """A resolver asking the twin's DNS server (Route 53's name servers)."""
        if not self.state.dns:
            raise TwinError(f"the twin in {self.state.state_dir} has no DNS server; restart "
                            "it with `drills twin down && drills twin up`")
        endpoint = dns.DnsEndpoint(**self.state.dns)
        return Resolver(endpoint.host, endpoint.port)

    @property
    def ca_bundle(self) -> Path:
        """The twin's TLS root: what verifies its API's certificate."""
        return Path(self.state.state_dir) / "tls" / "ca.pem"

    @property
    def attestation_root(self) -> Path:
        """The twin's Nitro root: the root of trust apps pin for attestation documents."""
        return Path(self.state.state_dir) / "pki" / "nitro-root.pem"

    def population(self) -> list[KnownVault]:
        """The vaults enrolled at start-up, with their content hashes."""
        path = Path(self.state.state_dir) / "population.json"
        if not path.exists():
            return []
        return [KnownVault(**v) for v in json.loads(path.read_text(encoding="utf-8"))]

    def worker_pids(self, region: str = PRIMARY_REGION) -> dict[str, int]:
        """Instance id -> pid of the live enclave worker processes of `region`."""
        out = {}
        for record in sorted(self.state.workers_dir.glob("*.json")):
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, FileNotFoundError):
                continue  # being written or removed by the controller right now
            if data["region"] == region and still_running(data["pid"], WORKER_MODULE,
                                                          data["instance_id"]):
                out[data["instance_id"]] = data["pid"]
        return out

    def in_service(self, region: str = PRIMARY_REGION) -> tuple[int, list[str]]:
        """(desired capacity, ids of InService+Healthy instances) of the region's ASG."""
        asg = self.clients("autoscaling", region)
        group = asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.state.regions[region].asg])["AutoScalingGroups"][0]
        ids = [i["InstanceId"] for i in group["Instances"]
               if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"]
        return group["DesiredCapacity"], ids


def _wait(condition: Callable[[], bool], timeout: float, what: str, progress: Progress,
          step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    announced = time.monotonic()
    while not condition():
        now = time.monotonic()
        if now > deadline:
            raise TwinError(f"timed out after {timeout:g}s waiting for {what}; see the logs "
                            "in the twin's state directory, then `drills twin down`")
        if now - announced > 5:
            progress(f"  still waiting for {what} ({now - deadline + timeout:.0f}s)")
            announced = now
        time.sleep(step)


def running_twin(state_dir: Path) -> Twin | None:
    """The twin in `state_dir` if its processes are alive, else None."""
    try:
        twin = Twin.load(state_dir)
    except TwinError:
        return None
    if not (aws.is_running(twin.endpoint) and controller.running_pid(twin.state.state_dir)):
        return None
    return twin


def up(state_dir: Path | None = None, *, timing: str = "fast", backend: str = "process",
       vaults: int = 24, desired: int = 2, timeout: float = 120.0,
       progress: Progress = _quiet) -> Twin:
    """Start a twin in `state_dir` and return when every component is healthy."""
    root = Path(state_dir or default_state_dir()).resolve()
    timing_profile(timing)  # validate before starting anything
    nats_backend = nats.Backend(backend) if backend in {b.value for b in nats.Backend} else None
    if nats_backend is None:
        raise TwinError(f"unknown NATS backend {backend!r}; choose 'process' or 'container'")
    existing = running_twin(root)
    if existing is not None:
        progress(f"a twin is already running in {root}")
        return existing
    others = [d for d in controller.running_state_dirs() if d.resolve() != root]
    if others:
        progress(f"note: {len(others)} other twin(s) run on this machine, in "
                 f"{', '.join(map(str, others))}: an idle twin takes about a sixth of a core "
                 "on 2 cores, and start-up and drill timings share the machine with it "
                 "(`drills twin down --state-dir DIR` stops one)")
    if (root / "state.json").exists():
        progress(f"cleaning up a stale twin in {root}")
        down(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        return _start(root, timing, nats_backend, vaults, desired, timeout, progress, started)
    except BaseException:
        progress("start-up failed; stopping what was started")
        down(root, keep_logs=True)
        raise


@dataclass(frozen=True, slots=True)
class _Plan:
    """One region as start-up plans it before anything runs: its NATS credentials, cluster
    and API."""

    creds: tuple[str, str]
    spec: NatsClusterSpec
    front: api.ApiEndpoint


def _plan(root: Path, timing: str, backend: nats.Backend, desired: int
          ) -> tuple[TwinState, dict[str, _Plan]]:
    """Ports, credentials and files of every component, saved before any starts: from then
    on `down` finds and stops whatever did start."""
    profile = timing_profile(timing)
    names = Names()
    endpoint = aws.endpoint_in(root / "aws")
    port = free_port(list(REGION_HOSTS.values()))  # DNS answers addresses, not ports
    plans: dict[str, _Plan] = {}
    regions: dict[str, RegionState] = {}
    for name, host in REGION_HOSTS.items():
        creds = nats_credentials()
        # A unique cluster name keeps two twins' containers and networks apart.
        spec = nats.allocate(name, root / f"nats-{name}", backend, *creds,
                             cluster_name=f"twin-{name}-{uuid.uuid4().hex[:6]}",
                             ping_interval=profile.nats_ping_interval,
                             avoid={p for other in plans.values() for p in other.spec.ports})
        plans[name] = _Plan(creds, spec, api.ApiEndpoint(name, host, port,
                                                         str(root / f"api-{name}.pid")))
        regions[name] = RegionState(name, spec.to_dict(), names.asg_in(name),
                                    desired if name == PRIMARY_REGION else 0,
                                    api=plans[name].front.to_dict(), host=host)
    attestation.new_root(root / "pki")  # the twin's Nitro root: enclaves attest under it
    tls.make_api_tls(root / "tls", list(REGION_HOSTS.values()))
    resolver = dns.endpoint_in(root / "dns", endpoint.url)
    state = TwinState(str(root), timing, asdict(endpoint), regions, names, utc_now(),
                      dns=asdict(resolver))
    state.save()
    return state, plans


#: The boto3 clients start-up uses, built (their service models parsed: 0.1-0.3 s of CPU
#: each) while the moto server imports.
_START_CLIENTS = (*((service, region) for region in REGION_HOSTS
                    for service in ("kms", "ssm", "ec2", "cloudformation", "s3", "dynamodb")),
                  *((service, PRIMARY_REGION) for service in ("route53", "sns", "sqs",
                                                              "autoscaling", "cloudwatch")))


def _start(root: Path, timing: str, backend: nats.Backend, vaults: int, desired: int,
           timeout: float, progress: Progress, started: float) -> Twin:
    state, plans = _plan(root, timing, backend, desired)
    endpoint = aws.AwsEndpoint(**state.aws)
    clients = Clients.for_twin(endpoint.url)
    # Per region its cluster and NATS instances; the clients; the DNS server, records,
    # alarms, links; the primary's stack while the DR region's is made.
    with ThreadPoolExecutor(max_workers=2 * len(plans) + 5) as pool:
        progress(f"starting AWS endpoint (moto server + fidelity layer), NATS clusters "
                 f"({backend.value} backend) and ASG controller")
        # Nothing here needs AWS yet, and the moto server keeps one core busy importing for a
        # second or two: the clusters form (JetStream elects its meta leaders), the
        # controller imports (then waits for the stacks' groups), and this process builds
        # its clients. The APIs start after: their imports would only slow moto's (the
        # start's critical path), and they serve once the stacks are made.
        formed = {name: pool.submit(nats.cluster_for(plan.spec).start,
                                    timeout=min(60.0, timeout)) for name, plan in plans.items()}
        controller.spawn(root)
        built = [pool.submit(clients, service, region) for service, region in _START_CLIENTS]
        aws.start_aws(root / "aws", endpoint.port)
        progress(f"starting the APIs ({len(plans)} regions)")
        for plan in plans.values():
            api.spawn(root, plan.front)
        for future in built:
            future.result()
        state, pending = _provision(clients, state, plans, desired, pool, formed, progress)
        twin = Twin(state, clients)
        for plan in plans.values():
            _wait(partial(api.listening, plan.front), timeout, f"the API on {plan.front.url}",
                  progress)
        progress(f"waiting for {desired} enclave workers to boot")
        health = _Health(twin)  # one connection for every poll: they come every 0.1 s
        try:
            _wait(lambda: len(health.serving()) >= desired, timeout,
                  f"{desired} serving workers", progress)
        finally:
            health.close()
        pending.linked.result()
        if vaults:  # once the regions are linked: the population replicates to DR
            progress(f"enrolling {vaults} vaults")
            _enroll(twin, vaults)
        state = replace(state, hosted_zone=pending.zone.result(), population=vaults)
        for future in pending.rest:
            future.result()
    if timing_profile(timing).route53_propagation_delay <= _DNS_WAIT_LIMIT:
        _wait(partial(_dns_serves, twin), timeout, f"the DNS server to answer "
              f"{state.names.api_host} with {state.primary.host}", progress)
    state.save()
    progress(f"twin up in {time.monotonic() - started:.1f}s")
    return Twin(state, clients)


@dataclass(frozen=True, slots=True)
class _Pending:
    """What `_provision` leaves running in the pool while the enclaves boot."""

    linked: Future[None]  # the regions' links: the population must replicate to DR
    zone: Future[str]  # the hosted zone and its records: the zone's id
    rest: list[Future[Any]]  # the clusters, the DNS server, the alarms, the NATS instances


def _provision(clients: Clients, state: TwinState, plans: dict[str, _Plan], desired: int,
               pool: ThreadPoolExecutor, formed: dict[str, Future[None]], progress: Progress
               ) -> tuple[TwinState, _Pending]:
    """Each region's stack; what the enclave workers do not need to boot is left running in
    `pool`."""
    names, profile = state.names, timing_profile(state.profile)
    progress(f"provisioning stacks {names.stack} ({PRIMARY_REGION}) and {names.dr_stack} "
             f"({DR_REGION})")
    # The primary's sealing key and first enclave build first: the DR region gets their
    # replica and copy while the primary's stack is made.
    key = pool.submit(create_sealing_key, clients, PRIMARY_REGION)
    ami = build_enclave(clients("ec2", PRIMARY_REGION), FIRST_VERSION).ami_id
    primary = pool.submit(provision_aws, clients, names, PRIMARY_REGION, desired,
                          *plans[PRIMARY_REGION].creds, key_arn=key.result(), ami_id=ami)
    replica = replicate_key(clients, key.result(), PRIMARY_REGION, DR_REGION)
    dr = provision_aws(clients, names, DR_REGION, 0, *plans[DR_REGION].creds, key_arn=replica,
                       ami_id=copy_image(clients, DR_REGION, (PRIMARY_REGION, ami)),
                       tables=False)
    state = _record(_record(state, PRIMARY_REGION, primary.result()), DR_REGION, dr)
    progress("starting the DNS server; making the alarms, the DNS records and the regions' "
             "links while the enclaves boot")
    resolver = dns.DnsEndpoint(**state.dns)
    rest: list[Future[Any]] = [
        *formed.values(),
        pool.submit(dns.start_dns, Path(state.state_dir) / "dns", resolver.aws_url,
                    resolver.port, resolver.host),
        pool.submit(monitor.provision, clients, names, PRIMARY_REGION, state.profile),
        # Runbook 4.2 finds NATS as EC2 instances tagged Application=vettid-nats and restarts
        # it through SSM Run Command: each node gets its instance and SSM agent.
        *(pool.submit(nats.ensure_instances, clients, resolver.aws_url, plan.spec)
          for plan in plans.values())]
    linked = pool.submit(link_regions, clients, names, PRIMARY_REGION, DR_REGION, replica)
    zone = pool.submit(provision_dns, clients, names,
                       {r: (p.front.host, p.front.port) for r, p in plans.items()},
                       profile.record_ttl)
    return state, _Pending(linked, zone, rest)


#: Route 53 serves a change once it is INSYNC, after the profile's propagation delay: `up`
#: waits for the twin's records when that is short (fast: 1 s). With AWS's 60 s (realistic)
#: they are still PENDING when `up` returns, as a zone made a moment ago is on AWS.
_DNS_WAIT_LIMIT = 10.0


def _dns_serves(twin: Twin) -> bool:
    """Whether the twin's DNS answers the failover name with the primary region's address."""
    try:
        return twin.resolver().resolve(twin.names.api_host) == twin.state.primary.host
    except ResolveError:
        return False


def _record(state: TwinState, region: str, made: Provisioned) -> TwinState:
    """`state` with the key and AMI provisioning made in `region`, saved."""
    regions = dict(state.regions)
    regions[region] = replace(regions[region], key_arn=made.key_arn, ami_id=made.ami_id)
    state = replace(state, regions=regions)
    state.save()
    return state


def harness_connection(twin: Twin, loop: LoopThread, region: str = PRIMARY_REGION,
                       name: str = "drills-harness") -> VaultClient:
    """A NATS connection for the harness, with credentials read from SSM like a client's."""
    param = twin.clients("ssm", region).get_parameter(Name=twin.names.param_nats_creds,
                                                      WithDecryption=True)
    creds = json.loads(param["Parameter"]["Value"])
    nc = loop.run(connect(twin.nats_spec(region).urls, creds["user"], creds["password"], name),
                  timeout=15)
    return VaultClient(nc)


class _Health:
    """A harness connection that asks each of a region's InService workers for its health."""

    def __init__(self, twin: Twin, region: str = PRIMARY_REGION) -> None:
        self.twin, self.region = twin, region
        self.loop = LoopThread("drills-health")
        try:
            self.client = harness_connection(twin, self.loop, region, "drills-health")
        except BaseException:
            self.loop.close()
            raise

    def serving(self) -> list[str]:
        """Ids of InService instances whose worker answers its own health subject."""
        _, ids = self.twin.in_service(self.region)

        async def check() -> list[str]:
            ok = []
            for iid in ids:
                try:
                    await self.client.health(0.5, instance_id=iid)
                    ok.append(iid)
                except VaultUnavailable:
                    pass
            return ok

        return self.loop.run(check(), timeout=10 + len(ids))

    def close(self) -> None:
        try:
            self.loop.run(self.client.nc.close(), timeout=5)
        finally:
            self.loop.close()


def _serving(twin: Twin, region: str = PRIMARY_REGION) -> list[str]:
    """Ids of InService instances whose worker answers its own health subject."""
    health = _Health(twin, region)
    try:
        return health.serving()
    finally:
        health.close()


def _enroll(twin: Twin, count: int) -> None:
    loop = LoopThread("drills-enroll")
    try:
        client = harness_connection(twin, loop, name="drills-enroll")

        async def enroll_all() -> list[dict[str, str]]:
            limit = asyncio.Semaphore(8)  # a handful in flight: moto is the bottleneck

            async def one(i: int) -> dict[str, str]:
                vault_id = f"pop-{i:04d}-{uuid.uuid4().hex[:8]}"
                async with limit:
                    reply = await client.enroll(vault_id, os.urandom(256), timeout=10)
                return {"vault_id": vault_id, "sha256": reply.fields["sha256"]}

            try:
                return list(await asyncio.gather(*(one(i) for i in range(count))))
            finally:
                await client.nc.close()

        population = loop.run(enroll_all(), timeout=60 + count)
    except VaultUnavailable as exc:
        raise TwinError(f"enrolling the vault population failed ({exc}); see the worker logs "
                        f"in {twin.state.workers_dir}") from None
    finally:
        loop.close()
    (Path(twin.state.state_dir) / "population.json").write_text(json.dumps(population, indent=1))


def down(state_dir: Path | None = None, *, keep_logs: bool = False,
         progress: Progress = _quiet) -> bool:
    """Stop every process of the twin in `state_dir`; True if there was one to stop."""
    root = Path(state_dir or default_state_dir()).resolve()
    try:
        state = TwinState.load(root)
    except TwinError:
        return False
    if controller.running_pid(state.state_dir):
        progress("stopping ASG controller and enclave workers")
        controller.stop(state.state_dir)
    for record in state.workers_dir.glob("*.json"):
        with contextlib.suppress(json.JSONDecodeError, KeyError, FileNotFoundError):
            data = json.loads(record.read_text())
            stop_process(data["pid"], WORKER_MODULE, data["instance_id"], timeout=5)
    for region in state.regions.values():
        if region.api:
            api.stop(root, api.ApiEndpoint.from_dict(region.name, region.api))
        progress(f"stopping NATS cluster in {region.name}")
        try:
            nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats)).stop()
        except DrillError as exc:
            progress(f"  {exc}")
    if state.dns:
        dns.stop_dns(dns.DnsEndpoint(**state.dns))
    progress("stopping AWS endpoint")
    aws.stop_aws(aws.AwsEndpoint(**state.aws))
    if keep_logs:
        (root / "state.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return True


def status(state_dir: Path | None = None) -> list[Component]:
    """The health of every component of the twin in `state_dir`."""
    twin = Twin.load(state_dir)
    endpoint = twin.endpoint
    rows = [Component("aws", aws.is_running(endpoint), endpoint.url)]
    ctl_pid = controller.running_pid(twin.state.state_dir)
    rows.append(Component("asg-controller", ctl_pid is not None,
                          f"pid {ctl_pid}" if ctl_pid else "not running"))
    for name, region in twin.state.regions.items():
        cluster = twin.nats(name)
        for node in cluster.spec.nodes:
            rows.append(Component(f"nats/{node.name}", cluster.healthy(node.name),
                                  f"{cluster.node_state(node.name).value} {node.url}"))
        if not rows[0].healthy:
            if region.api:
                rows.append(_api_row(twin, api.ApiEndpoint.from_dict(name, region.api)))
            continue
        desired, ids = twin.in_service(name)
        if region.api:
            rows.append(_api_row(twin, api.ApiEndpoint.from_dict(name, region.api),
                                 standby=desired == 0))
        serving = _serving(twin, name) if ids else []
        rows.append(Component(f"asg/{region.asg}", len(serving) >= desired,
                              f"desired {desired}, in service {len(ids)}, "
                              f"serving {len(serving)}"))
        pids = twin.worker_pids(name)
        for iid in ids:
            rows.append(Component(f"enclave/{iid}", iid in serving,
                                  f"pid {pids[iid]}" if iid in pids else "booting"))
    if twin.state.dns:
        resolver = dns.DnsEndpoint(**twin.state.dns)
        rows.append(Component("dns", dns.is_running(resolver),
                              f"{resolver.host}:{resolver.port} (zone {twin.names.hosted_zone})"))
    return rows


def _api_row(twin: Twin, front: api.ApiEndpoint, standby: bool = False) -> Component:
    """The API answers GET /health over TLS (200: an enclave behind it serves). A standby
    region's (its ASG at 0, runbook 5.1) answers 503 until failover scales it up."""
    import httpx

    from drills.api_client import tls_context

    if api.pid(Path(twin.state.state_dir), front) is None:
        return Component(f"api/{front.region}", False, f"{front.url} not running")
    try:
        answer = httpx.get(f"{front.url}/health", verify=tls_context(twin.ca_bundle), timeout=3,
                           trust_env=False)
    except httpx.HTTPError as exc:
        return Component(f"api/{front.region}", False, f"{front.url} {type(exc).__name__}")
    if standby and answer.status_code == 503:
        return Component(f"api/{front.region}", True,
                         f"{front.url} /health 503 (standby: no enclaves until failover)")
    return Component(f"api/{front.region}", answer.status_code == 200,
                     f"{front.url} /health {answer.status_code}")


def env(state_dir: Path | None = None, region: str = PRIMARY_REGION) -> dict[str, str]:
    """Environment that points the `aws` CLI, boto3, NATS tools and `curl` at the twin."""
    twin = Twin.load(state_dir)
    out = aws.client_env(twin.endpoint, region)
    out["DRILLS_STATE_DIR"] = twin.state.state_dir
    out["NATS_URL"] = ",".join(twin.nats_spec(region).urls)
    out["ASG_NAME"] = twin.state.regions[region].asg
    out["DRILLS_API_URL"] = twin.api_url(region)
    out["DRILLS_CA_BUNDLE"] = out["CURL_CA_BUNDLE"] = str(twin.ca_bundle)
    out["DRILLS_ATTESTATION_ROOT"] = str(twin.attestation_root)
    if twin.state.dns:
        resolver = dns.DnsEndpoint(**twin.state.dns)
        # `dig @$DRILLS_DNS_HOST -p $DRILLS_DNS_PORT api.vettid.dev`
        out["DRILLS_DNS_HOST"], out["DRILLS_DNS_PORT"] = resolver.host, str(resolver.port)
    return out
