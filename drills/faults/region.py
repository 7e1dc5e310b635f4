"""Faults of a whole region and of what crosses regions (runbook 3.6, 5): named after the
AWS FIS actions where one exists.

- `region.isolate`: a region-wide outage, stronger than FIS's
  `aws:network:route-table-disrupt-cross-region-connectivity`: every AWS API of the region
  stops answering (requests signed for it are held, then refused: `fidelity/regions.py`),
  its NATS nodes, enclave workers and API endpoint freeze, and replication out of it and
  into it stops. Route 53's control plane lives in us-east-1 ("Route 53 ... control plane
  in us-east-1", AWS Fault Isolation Boundaries), so isolating us-east-1 also holds
  `ChangeResourceRecordSets`; its data plane (the health checkers and the name servers)
  keeps running. Reverted, everything thaws and the held replication drains in order.
- `s3.pause-replication` (`aws:s3:bucket-pause-replication`) and
  `dynamodb.pause-replication` (`aws:dynamodb:global-table-pause-replication`): writes stay
  PENDING until the revert, then drain.
- `region.failover`: runbook 5.2 steps 1-2 (DR capacity up, the API name to DR), journaled
  so that failback (5.3, its revert) happens even after a crash.
- `api.down`: a region's API endpoint stops answering (its process frozen: connections hang
  as at a dead endpoint); its Route 53 health check fails, the data stores and enclaves are
  untouched.

All but `region.failover` act on the twin's processes or control routes (they `require` them); on an
account the same failures are FIS experiments. `region.failover` runs the runbook's own
commands (the `aws` CLI), on the twin and on an account alike.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from drills.capabilities import Capability
from drills.environment import Names
from drills.errors import FaultError
from drills.faults.base import Fault, FaultContext, Share
from drills.procedures import region as region_procedure
from drills.procedures.s3_replica import cli_env
from drills.twin import api, control

#: Runs 5.2 step 2 while the drill goes on (`Failover.inject`).
_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="drills-failover")
#: What pauses replication out of and into a region (the replication modules' selectors).
_SELECTORS = ("source_region", "destination_region")


class _TwinFault(Fault):
    """A fault on the twin's processes or control routes (each sets what it `requires`)."""

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        return control.post(self.ctx.twin.state.aws_url, route, body)

    def _api(self) -> api.ApiEndpoint:
        return api.ApiEndpoint.from_dict(self.region, self.ctx.twin.state.regions[self.region].api)

    def _api_pid(self) -> int | None:
        return api.pid(Path(self.ctx.twin.state.state_dir), self._api())

    def _signal_api(self, sig: signal.Signals) -> None:
        # The pid is looked up again (argv checked): a restarted twin's API is never mistaken.
        pid = self._api_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class IsolateRegion(_TwinFault):
    """Every AWS API, NATS node, enclave and the API endpoint of a region stop answering,
    and replication out of and into it stops; revert brings it all back."""

    kind = "region.isolate"
    calls = ("twin:regions/isolate", "twin:s3/pause-replication",
             "twin:dynamodb/pause-replication", "process:SIGSTOP vault API",
             "process:SIGSTOP enclave worker", "process:SIGSTOP nats-server")
    revert_calls = ("process:SIGCONT nats-server", "process:SIGCONT enclave worker",
                    "process:SIGCONT vault API", "twin:regions/isolate",
                    "twin:s3/resume-replication", "twin:dynamodb/resume-replication")
    target_kind = "region"
    requires = frozenset({Capability.PROCESSES, Capability.CONTROL})
    raises_alarms = frozenset({"enclave_alarm", "nats_alarm"})

    @property
    def target(self) -> str:
        return self.region

    def describe(self) -> str:
        return (f"isolate region {self.region} (its AWS APIs, NATS, enclaves and API endpoint "
                "stop answering; replication out of and into it stops)")

    def share(self) -> Share:
        return Share.whole(f"the service's components in region {self.region}")

    def prepare(self) -> None:
        twin = self.ctx.twin
        self.params["workers"] = twin.worker_pids(self.region)
        self.params["nats_nodes"] = [n.name for n in twin.nats_spec(self.region).nodes]

    def inject(self) -> None:
        # AWS first: from this instant nothing of the region answers a caller or replicates.
        self._post("regions/isolate", {"region": self.region, "isolated": True})
        for service in ("s3", "dynamodb"):
            for selector in _SELECTORS:
                self._post(f"{service}/pause-replication", {selector: self.region})
        self._signal_api(signal.SIGSTOP)
        for pid in self.params["workers"].values():
            with contextlib.suppress(ProcessLookupError):  # a worker that just ended
                os.kill(pid, signal.SIGSTOP)
        cluster = self.ctx.twin.nats(self.region)
        for node in self.params["nats_nodes"]:
            cluster.freeze_node(node)

    def revert(self) -> None:
        cluster = self.ctx.twin.nats(self.region)
        for node in self.params.get("nats_nodes", []):
            cluster.start_node(node)  # thaws a frozen node, starts one that died meanwhile
        live = self.ctx.twin.worker_pids(self.region)  # thaw only what is still a worker
        for iid, pid in self.params.get("workers", {}).items():
            if live.get(iid) == pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        self._signal_api(signal.SIGCONT)
        self._post("regions/isolate", {"region": self.region, "isolated": False})
        for service in ("s3", "dynamodb"):
            for selector in _SELECTORS:
                self._post(f"{service}/resume-replication", {selector: self.region})
        cluster.wait_formed(timeout=60.0)


class _PauseReplication(_TwinFault):
    """Replication from one region's resource stops; writes stay PENDING, then drain."""

    requires = frozenset({Capability.CONTROL})
    service = ""
    fis_action = ""

    def _selector(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        return f"pause replication of {self.target_kind} {self.target} ({self.fis_action})"

    def inject(self) -> None:
        self._post(f"{self.service}/pause-replication", self._selector())

    def revert(self) -> None:
        self._post(f"{self.service}/resume-replication", self._selector())


class PauseBucketReplication(_PauseReplication):
    """`aws:s3:bucket-pause-replication`: the bucket's replication stops (objects PENDING)."""

    kind = "s3.pause-replication"
    calls = ("twin:s3/pause-replication",)
    revert_calls = ("twin:s3/resume-replication",)
    target_kind = "bucket"
    service, fis_action = "s3", "aws:s3:bucket-pause-replication"

    @property
    def target(self) -> str:
        return str(self.params["bucket"])

    def _selector(self) -> dict[str, Any]:
        return {"source_bucket": self.target}


class PauseTableReplication(_PauseReplication):
    """`aws:dynamodb:global-table-pause-replication`: the table's replication out of the
    region stops; its items reach the replicas once reverted."""

    kind = "dynamodb.pause-replication"
    calls = ("twin:dynamodb/pause-replication",)
    revert_calls = ("twin:dynamodb/resume-replication",)
    target_kind = "table"
    service, fis_action = "dynamodb", "aws:dynamodb:global-table-pause-replication"

    @property
    def target(self) -> str:
        return str(self.params["table"])

    def _selector(self) -> dict[str, Any]:
        return {"table": self.target, "source_region": self.region}


class ApiDown(_TwinFault):
    """A region's API endpoint stops answering (frozen: connections hang); its Route 53
    health check fails while the data stores and enclaves are untouched."""

    kind = "api.down"
    calls = ("process:SIGSTOP vault API",)
    revert_calls = ("process:SIGCONT vault API",)
    target_kind = "region"
    requires = frozenset({Capability.PROCESSES})

    @property
    def target(self) -> str:
        return self.region

    def describe(self) -> str:
        return f"take the API endpoint of {self.region} down (it stops answering)"

    def share(self) -> Share:
        return Share.whole(f"API endpoints of region {self.region}")

    def inject(self) -> None:
        self._signal_api(signal.SIGSTOP)

    def revert(self) -> None:
        self._signal_api(signal.SIGCONT)


class Failover(Fault):
    """Runbook 5.2 steps 1-2 as an operation that must be undone: the DR ASG scaled up and
    the API name moved to the DR region; revert is runbook 5.3 (failback), in the order
    `params["failback"]` names (`dr-stopped-first`, the default, or `as-written`).

    Journaled like any fault, so a run killed while failed over is failed back by
    `drills rollback`. The step 2 change is given `params["dns_timeout"]` seconds: during a
    us-east-1 outage Route 53's control plane may not answer, which is recorded
    (`self.dns`), not raised: the health-checked failover records still move clients."""

    kind = "region.failover"
    calls = ("autoscaling:SetDesiredCapacity", "route53:ChangeResourceRecordSets")
    revert_calls = ("autoscaling:SetDesiredCapacity", "s3:CopyObject",
                    "route53:ChangeResourceRecordSets")
    target_kind = "region"

    def __init__(self, ctx: FaultContext, params: Mapping[str, Any]) -> None:
        super().__init__(ctx, params)
        self._dns: Future[region_procedure.DnsChange] | None = None  # step 2, running
        self.failback: region_procedure.Failback | None = None  # 5.3 as run (revert)
        # Called between 5.3's steps (an operator's pace; not journaled: a rollback after a
        # crash runs the steps back to back).
        self.pace: Callable[[region_procedure.FailbackStep], None] | None = None

    @property
    def dns_ready(self) -> bool:
        """Step 2 has finished (accepted or not)."""
        return self._dns is None or self._dns.done()

    @property
    def dns(self) -> region_procedure.DnsChange | None:
        """Step 2 as run (it runs in the background from inject: waits for it)."""
        return self._dns.result() if self._dns is not None else None

    @property
    def region(self) -> str:
        return self.names.dr_region

    @property
    def names(self) -> Names:
        """The target's names (journaled with the fault: rollback needs no configuration)."""
        return Names.from_dict(dict(self.params.get("names") or {}))

    @property
    def target(self) -> str:
        return self.region

    def describe(self) -> str:
        return (f"fail over to {self.region} (runbook 5.2: {self.names.dr_asg} to "
                f"{self.params.get('capacity', 2)}, {self.names.api_host} to the DR region)")

    def _env(self) -> dict[str, str]:
        return region_procedure.env_in(cli_env(self.ctx.clients, self.names.primary_region),
                                       self.names.primary_region)

    def _batch_dir(self) -> Path:
        return Path(tempfile.gettempdir()) / f"drills-failover-{self.params['zone_id']}"

    def prepare(self) -> None:
        if "zone_id" not in self.params:  # not read ahead (see procedures.region.read_plan)
            self.params.update(region_procedure.read_plan(self.ctx.clients, self.names))
        self.params.setdefault("capacity", 2)
        self.params.setdefault("failback",
                               region_procedure.FailbackOrder.DR_STOPPED_FIRST.value)
        self.params.setdefault("dns_timeout", region_procedure.COMMAND_TIMEOUT)

    def inject(self) -> None:
        names, env = self.names, self._env()
        step1 = region_procedure.set_desired(env, names.dr_region, names.dr_asg,
                                             int(self.params["capacity"]))
        if not step1.ok:
            raise FaultError(f"runbook 5.2 step 1 failed: {step1.line}: {step1.why()}")
        batch = region_procedure.failover_batch(self.params["api_sets"], self.params["dr_sets"])
        # Step 2 runs while the DR region boots (an operator does not wait between them);
        # inject returns once both are under way, so what follows is watched from now.
        self._dns = _BACKGROUND.submit(
            region_procedure.change_records, env, self.params["zone_id"], batch,
            self._batch_dir() / "dr-failover-records.json",
            timeout=float(self.params["dns_timeout"]))

    def revert(self) -> None:
        names = self.names
        if self._dns is not None:
            self._dns.result()  # never fail back under a change still being made
        plan = region_procedure.FailbackPlan(
            names, self.params["zone_id"], tuple(self.params["api_sets"]),
            self.params["primary_check"], int(self.params["primary_desired"]),
            int(self.params["dr_desired"]), int(self.params["ttl"]), self._batch_dir())
        self.failback = region_procedure.failback(
            plan, self.ctx.clients, self._env(),
            region_procedure.FailbackOrder(self.params["failback"]), pace=self.pace)
        if not self.failback.ok:
            failed = [f"{s.step} ({s.detail})" for s in self.failback.steps if not s.ok]
            raise FaultError(f"failback did not complete: {', '.join(failed)}")
