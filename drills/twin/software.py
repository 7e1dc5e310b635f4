"""The vault service's own software beside an AWS endpoint the twin did not make.

On AWS the enclave ASG's instances boot the enclave from their AMI, NATS runs on instances of
its own, and Lambdas behind API Gateway serve the apps: none of it is a resource a
CloudFormation stack makes (`examples/aws/vettid-dr-stack.yaml` says so). To drill an
environment deployed from that template into a plain moto server (`tests/test_examples_aws_run.py`),
this module runs the twin's pieces as that software, for one region, without the twin's
provisioning, control routes or fidelity layer:

- a NATS cluster (`drills.twin.nats`, nats-server processes) with the user and password the
  parameter `[environment] param_nats_creds` holds, as the service's NATS instances are set up;
- an enclave worker (`drills.twin.worker`) for each InService instance of the ASG
  `[environment] asg` names, started once the instance has booted (the profile's boot delay;
  instances there at start count as booted long ago) and stopped once it leaves the group:
  what EC2 does when it boots an instance of the group's AMI;
- the vault API (`drills.twin.api`, HTTPS) on a loopback port, as API Gateway and its Lambdas.

What moto itself lacks (replacing an instance its ELB health check fails, evaluating alarms,
replicating between regions, restoring a table as of a past time) is not played here: drills
that need it do not pass against this environment (`tests/test_examples_aws_run.py` lists
them with the reason).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from drills import attestation
from drills.clients import Clients
from drills.environment import Names
from drills.journal import utc_now
from drills.twin import api, nats, tls
from drills.twin.controller import WORKER_MODULE
from drills.twin.procs import stop_process
from drills.twin.state import RegionState, TwinState
from drills.twin.timing import TimingProfile, profile

_RESOLVE = "resolve:ssm:"
#: Where the software listens: a loopback address (the API's certificate names it).
HOST = "127.0.0.1"


@dataclass(slots=True)
class _Instance:
    """One InService instance of the group, and the enclave worker it boots."""

    ready_at: float  # monotonic time its boot completes
    image: str  # the AMI it launched from
    worker: subprocess.Popen[bytes] | None = None


@dataclass(slots=True)
class ServiceSoftware:
    """The service's software for `region` of the environment at `aws_url`, by `names`;
    its files (NATS, TLS, the enclaves' Nitro root, logs) under `root`."""

    root: Path
    aws_url: str
    names: Names
    region: str = ""
    timing: TimingProfile = field(default_factory=lambda: profile("fast"))
    instances: dict[str, _Instance] = field(default_factory=dict)
    clients: Clients = field(init=False)
    _state: TwinState | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.region = self.region or self.names.primary_region
        self.clients = Clients.for_twin(self.aws_url, self.region)

    # -- what the drills are pointed at ---------------------------------------------------
    @property
    def state(self) -> TwinState:
        if self._state is None:
            raise RuntimeError("the service software is not started; call start() first")
        return self._state

    @property
    def api_url(self) -> str:
        """The vault API (`--api-url`)."""
        return api.ApiEndpoint.from_dict(self.region, self.state.regions[self.region].api).url

    @property
    def nats_urls(self) -> list[str]:
        """The NATS cluster's client URLs (`DRILLS_NATS_URL`)."""
        return nats.NatsClusterSpec.from_dict(self.state.regions[self.region].nats).urls

    @property
    def ca_bundle(self) -> Path:
        """The CA that verifies the API's certificate (`[api] ca_bundle`)."""
        return self.root / "tls" / "ca.pem"

    @property
    def attestation_root(self) -> Path:
        """The Nitro root the enclaves attest under (`[api] attestation_root`)."""
        return self.root / "pki" / "nitro-root.pem"

    # -- life -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> ServiceSoftware:
        """Plan, start NATS, the API and the instances' workers; return once the API listens
        and a worker serves each InService instance."""
        self.root.mkdir(parents=True, exist_ok=True)
        creds = json.loads(self.clients("ssm", self.region).get_parameter(
            Name=self.names.param_nats_creds, WithDecryption=True)["Parameter"]["Value"])
        spec = nats.allocate(self.region, self.root / "nats", nats.Backend.PROCESS,
                             creds["user"], creds["password"],
                             cluster_name=f"svc-{self.region}-{uuid.uuid4().hex[:6]}",
                             ping_interval=self.timing.nats_ping_interval)
        front = api.ApiEndpoint(self.region, HOST, api.free_port_on([HOST]),
                                str(self.root / f"api-{self.region}.pid"))
        attestation.new_root(self.root / "pki")
        tls.make_api_tls(self.root / "tls", [HOST])
        host, port = self.aws_url.rsplit("//", 1)[1].rsplit(":", 1)
        self._state = TwinState(
            str(self.root), self.timing.name,
            {"host": host, "port": int(port), "pid_file": "", "log_file": ""},
            {self.region: RegionState(self.region, spec.to_dict(), self.names.asg_in(self.region),
                                      0, api=front.to_dict(), host=HOST)},
            self.names, utc_now())
        self._state.save()
        self.state.workers_dir.mkdir(parents=True, exist_ok=True)
        try:
            nats.cluster_for(spec).start(timeout=timeout)
            api.spawn(self.root, front)
            self.reconcile(first=True)
            self._thread = threading.Thread(target=self._run, name="service-software",
                                            daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not (api.listening(front) and self._serving()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the service software did not start in {timeout:g}s; "
                                       f"see the logs in {self.root}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def _serving(self) -> bool:
        """Whether the API answers /health 200 (an enclave serves), or the group is empty."""
        if not self.instances:
            return True
        import httpx

        from drills.api_client import tls_context

        try:
            return httpx.get(f"{self.api_url}/health", verify=tls_context(self.ca_bundle),
                             timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def _run(self) -> None:
        while not self._stop.wait(self.timing.reconcile_interval):
            try:
                self.reconcile()
            except Exception as exc:  # the endpoint may blip; the next pass tries again
                print(f"{utc_now()} reconcile failed: {exc}", file=sys.stderr, flush=True)

    def reconcile(self, first: bool = False) -> None:
        """One pass: boot a worker on each InService instance once booted, stop the workers
        of instances that left the group (or are no longer running)."""
        groups = self.clients("autoscaling", self.region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.names.asg_in(self.region)])["AutoScalingGroups"]
        members = [i["InstanceId"] for g in groups for i in g["Instances"]
                   if i["LifecycleState"] == "InService"]
        running: dict[str, str] = {}
        if members:
            found = self.clients("ec2", self.region).describe_instances(InstanceIds=members)
            running = {i["InstanceId"]: i["ImageId"] for r in found["Reservations"]
                       for i in r["Instances"] if i["State"]["Name"] == "running"}
        now = time.monotonic()
        for iid in [i for i in self.instances if i not in running]:
            self._retire(iid)
        for iid, image in running.items():
            if iid not in self.instances:
                self.instances[iid] = _Instance(now if first else now + self.timing.boot_delay,
                                                self._resolve(image))
            instance = self.instances[iid]
            if instance.worker is None and now >= instance.ready_at:
                instance.worker = self._boot(iid, instance.image)

    def _resolve(self, image: str) -> str:
        """The AMI an instance launched from: EC2 resolves a launch template's
        `resolve:ssm:<parameter>` at launch; moto keeps the text, so it is resolved here."""
        if not image.startswith(_RESOLVE):
            return image
        return str(self.clients("ssm", self.region).get_parameter(
            Name=image.removeprefix(_RESOLVE))["Parameter"]["Value"])

    def _boot(self, iid: str, image: str) -> subprocess.Popen[bytes]:
        log = (self.state.workers_dir / f"{iid}.log").open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "--state-dir", str(self.root),
                 "--region", self.region, "--instance-id", iid, "--image-id", image],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()

    def _retire(self, iid: str) -> None:
        worker = self.instances.pop(iid).worker
        if worker is not None:
            stop_process(worker.pid, WORKER_MODULE, iid, timeout=5.0)
            worker.wait(timeout=5)

    def stop(self) -> None:
        """Stop every process this software started."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for iid in list(self.instances):
            self._retire(iid)
        if self._state is not None:
            region = self._state.regions[self.region]
            api.stop(self.root, api.ApiEndpoint.from_dict(self.region, region.api))
            nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats)).stop()

    def __enter__(self) -> ServiceSoftware:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
