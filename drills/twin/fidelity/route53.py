"""Route 53 health checks that really probe, and changes that take time to reach the name
servers, patched into the moto process.

moto 5.2.1 stores health checks but never probes them (GetHealthCheckStatus always answers one
checker reporting "Success: HTTP Status Code: 200"), and every change is INSYNC at once. What
AWS documents, and this module makes moto do:

- Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check is healthy"
  (dns-failover-determining-health-of-endpoints.html): health checkers in several locations
  each check the endpoint every RequestInterval (one probe, with AWS's time limits, is
  `drills.twin.fidelity.route53_probe`). "If more than 18% of health checkers report that an
  endpoint is healthy, Route 53 considers it healthy"; "Route 53 considers a new health check
  to be healthy until there's enough data to determine the actual status".
- API Reference, HealthCheckConfig (API_HealthCheckConfig.html): FailureThreshold (1-10,
  default 3) is "the number of consecutive health checks that an endpoint must pass or fail
  for Route 53 to change the current status of the endpoint from unhealthy to healthy or vice
  versa"; RequestInterval 10 or 30 (default 30) "can't be changed" after creation; Regions
  (default: every checker region); Port (80 for HTTP, 443 for HTTPS when omitted: moto says
  80 for both); Disabled: "Route 53 considers the status of the health check to always be
  healthy"; Inverted inverts it; a CALCULATED check is healthy when HealthThreshold children
  are.
- GetHealthCheckStatus (API_GetHealthCheckStatus.html): "one HealthCheckObservation element
  for each Amazon Route 53 health checker", with Region, IPAddress and StatusReport (Status,
  CheckedTime): each checker's last observation, not its thresholded view.
- "Monitoring health checks using CloudWatch": HealthCheckStatus (1 healthy, 0 unhealthy) and
  HealthCheckPercentageHealthy, namespace AWS/Route53, dimension HealthCheckId, us-east-1.
- ChangeResourceRecordSets / GetChange (API_ChangeResourceRecordSets.html, API_GetChange.html):
  "PENDING indicates that the changes in this request have not propagated to all Amazon Route
  53 DNS servers managing the hosted zone. This is the initial status of all change batch
  requests"; then INSYNC; "changes generally propagate to all Route 53 name servers managing
  the hosted zone within 60 seconds". CreateHostedZone and DeleteHostedZone answer a
  ChangeInfo too. The API shows a change at once; only the name servers wait for it. A
  change is INSYNC once the twin's name server (`drills.twin.dns`, polling `route53/served`)
  has fetched it, not merely once the delay has passed: then a client that saw INSYNC is
  answered the new records, as from AWS's name servers.

Twin choices:
- N checkers, probing in turn from this process: one per checker region of the health check
  (its Regions, else AWS's 8), each every RequestInterval, staggered by RequestInterval / N. N
  rather than one because the 18 % rule and the one-observation-per-checker answer depend on
  it: with 8 checkers an endpoint turns unhealthy once 7 views have turned, and healthy again
  once 2 have. AWS's checkers do not coordinate (bursts, then quiet); the twin's are evenly
  spread, so runs repeat. A checker never overlaps itself: a probe that outlasts the interval
  (a compressed interval against a frozen endpoint: the timeouts stay AWS's) delays the next.
- CLOUDWATCH_METRIC and RECOVERY_CONTROL checks are not modelled: healthy, moto's answer.
- Timing, from the timing profile through `route53/settings`: `interval_scale` multiplies every
  RequestInterval (fast 0.1: 10 s -> 1 s, 30 s -> 3 s; realistic 1: the configured values);
  `propagation_delay` is how long a change stays PENDING (fast 1 s; realistic 60 s, AWS's
  figure) and applies to changes still PENDING, so a drill can hold changes and release them;
  `metric_period` is how often each check's metrics are published (fast 1 s, realistic 60 s).
  Without a call, the fast values hold.
- Record sets made other than through this API (CloudFormation) are served at once: a stack's
  record sets are INSYNC by the time its resource completes. GetChange of an id this module
  did not hand out keeps moto's answer (INSYNC).

Twin-only control endpoints (no such thing in AWS; `POST /drills-twin/<route>`):

    route53/settings       {"interval_scale", "propagation_delay", "metric_period"} (each
                           optional) -> the values in force
    route53/health-checks  {"account"?} -> {"health_checks": {<id>: {"healthy",
                           "percentage_healthy", "changed_at", "checkers": [{"region",
                           "healthy", "passed", "failed", "status", "checked_at"}]}}}
    route53/served         {"account"?} -> what the name servers answer from: {"zones": [{"Id",
                           "Name", "PrivateZone", "ResourceRecordSets"}], "health": {<id>: bool},
                           "next_change_due": seconds or null} (record sets as of their last
                           INSYNC change; polled by drills.twin.dns, again when the oldest
                           PENDING change is due)
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.route53.models import FakeZone, HealthCheck, RecordSet, Route53Backend, route53_backends
from moto.route53.responses import Route53

from drills.twin.fidelity.route53_probe import Report, Target, probe

__all__ = ["ROUTES", "Checker", "Monitor", "Settings", "install", "settings"]

_MARK = "_drills_twin_fidelity"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_LOCK = threading.RLock()
_log = logging.getLogger(__name__)

#: HealthCheckConfig.Regions' valid values: the checker regions when a check names none.
CHECKER_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1",
                   "ap-southeast-2", "ap-northeast-1", "sa-east-1")
HEALTHY_SHARE = 18.0  # percent of checkers that must report healthy, exclusive
PROBED = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")


@dataclass(slots=True)
class Settings:
    """The twin's Route 53 timing (see the module docstring); fast values by default."""

    interval_scale: float = 0.1
    propagation_delay: float = 1.0
    metric_period: float = 1.0


settings = Settings()


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ checkers and status


@dataclass(slots=True)
class Checker:
    """One health checker's view of an endpoint, with its own consecutive counts."""

    region: str
    due: float  # monotonic time of its next probe
    healthy: bool = True  # "healthy until there's enough data"
    passed: int = 0
    failed: int = 0
    report: Report | None = None
    busy: bool = False

    def record(self, report: Report, threshold: int) -> None:
        """Count one observation; the view turns after `threshold` in a row the other way."""
        self.report = report
        if report.ok:
            self.passed, self.failed = self.passed + 1, 0
            self.healthy = self.healthy or self.passed >= threshold
        else:
            self.passed, self.failed = 0, self.failed + 1
            self.healthy = self.healthy and self.failed < threshold


@dataclass(slots=True)
class Monitor:
    """The checkers of one endpoint health check and the verdict Route 53 takes from them."""

    regions: tuple[str, ...]
    checkers: list[Checker]
    healthy: bool = True  # the endpoint, before Disabled and Inverted
    changed_at: datetime = field(default_factory=_now)
    metric_due: float = 0.0

    @property
    def percentage(self) -> float:
        return 100.0 * sum(c.healthy for c in self.checkers) / len(self.checkers)

    def settle(self) -> None:
        healthy = self.percentage > HEALTHY_SHARE
        if healthy != self.healthy:
            self.healthy, self.changed_at = healthy, _now()


def _interval(check: HealthCheck) -> float:
    return float(check.request_interval or 30) * settings.interval_scale


def _monitor(check: HealthCheck, now: float) -> Monitor:
    """The check's monitor, (re)built when its regions change; checkers staggered in turn."""
    regions = tuple(check.regions or CHECKER_REGIONS)
    monitor: Monitor | None = check.__dict__.get("_drills_monitor")
    if monitor is None or monitor.regions != regions:
        step = _interval(check) / len(regions)
        monitor = Monitor(regions, [Checker(r, now + i * step) for i, r in enumerate(regions)])
        check._drills_monitor = monitor  # type: ignore[attr-defined]
    return monitor


def status(backend: Route53Backend, check: HealthCheck, depth: int = 0) -> bool:
    """True when Route 53 considers `check` healthy (Disabled, Inverted, CALCULATED)."""
    if check.disabled:
        healthy = True
    elif check.type_ == "CALCULATED":
        children = [backend.health_checks.get(c) for c in check.children or []]
        healthy = depth < 4 and sum(
            1 for c in children if c is not None and status(backend, c, depth + 1)
        ) >= int(check.health_threshold or 0)
    elif check.type_ in PROBED:
        monitor = check.__dict__.get("_drills_monitor")
        healthy = monitor is None or monitor.healthy
    else:
        healthy = True
    return healthy != bool(check.inverted)


def _backends() -> list[tuple[str, Route53Backend]]:
    return [(account, backend) for account, parts in list(route53_backends.items())
            for backend in list(parts.values())]


def _tick(submit: Callable[..., Any]) -> float:
    """Start every due probe and publish every due metric; seconds until the next is due."""
    now = time.monotonic()
    wake = now + 1.0  # also notices new, changed and deleted checks
    with _LOCK:
        for account, backend in _backends():
            for check in list(backend.health_checks.values()):
                if check.type_ not in PROBED:
                    continue
                monitor = _monitor(check, now)
                for checker in [] if check.disabled else monitor.checkers:  # disabled: idle
                    if not checker.busy and checker.due <= now:
                        checker.busy = True
                        submit(_run_probe, check, monitor, checker, Target.of(check))
                    if not checker.busy:
                        wake = min(wake, checker.due)
                if monitor.metric_due <= now:
                    _publish(account, backend, check, monitor)
                    monitor.metric_due = now + settings.metric_period
                wake = min(wake, monitor.metric_due)
    return max(wake - time.monotonic(), 0.01)


def _run_probe(check: HealthCheck, monitor: Monitor, checker: Checker, target: Target) -> None:
    report = probe(target)
    with _LOCK:
        checker.busy = False
        checker.due = max(checker.due + _interval(check), time.monotonic())
        checker.record(report, int(check.failure_threshold or 3))
        monitor.settle()
    _Checkers.wake.set()


def _publish(account: str, backend: Route53Backend, check: HealthCheck,
             monitor: Monitor) -> None:
    dims = [{"Name": "HealthCheckId", "Value": check.id}]
    cloudwatch_backends[account]["us-east-1"].put_metric_data("AWS/Route53", [
        {"MetricName": "HealthCheckStatus", "Dimensions": dims, "Unit": "None",
         "Value": 1.0 if status(backend, check) else 0.0},
        {"MetricName": "HealthCheckPercentageHealthy", "Dimensions": dims, "Unit": "Percent",
         "Value": monitor.percentage}])


class _Checkers:
    """The scheduler thread and probe pool; one per (forked) process."""

    pid = 0
    lock = threading.Lock()
    wake = threading.Event()
    pool: ThreadPoolExecutor | None = None

    @classmethod
    def ensure(cls) -> None:
        if cls.pid == os.getpid():
            return
        with cls.lock:
            if cls.pid != os.getpid():
                # Probes wait on sockets (up to 6 s against a frozen endpoint), not on the CPU.
                cls.pool = ThreadPoolExecutor(16, thread_name_prefix="drills-route53-checker")
                threading.Thread(target=cls.run, name="drills-route53-checkers",
                                 daemon=True).start()
                cls.pid = os.getpid()

    @classmethod
    def run(cls) -> None:
        assert cls.pool is not None
        while True:
            cls.wake.clear()
            try:
                pause = _tick(cls.pool.submit)
            except Exception:  # one bad pass must not end every check; it is logged, retried
                _log.exception("Route 53 health checkers: a scheduling pass failed")
                pause = 1.0
            cls.wake.wait(pause)


# ------------------------------------------------------------------ changes and the name servers


@dataclass(frozen=True, slots=True)
class Served:
    """A hosted zone as the name servers answer for it."""

    id: str
    name: str
    private: bool
    record_sets: list[dict[str, Any]]

    def to_api(self) -> dict[str, Any]:
        return {"Id": self.id, "Name": self.name, "PrivateZone": self.private,
                "ResourceRecordSets": self.record_sets}


@dataclass(slots=True)
class Change:
    """One change batch (or zone creation/deletion) on its way to the name servers."""

    id: str
    zone: str
    before: Served | None  # what the name servers serve until it is INSYNC (None: nothing)
    submitted: datetime
    started: float
    comment: str | None = None
    insync: bool = False

    def info(self) -> dict[str, Any]:
        out = {"Id": f"/change/{self.id}", "Status": "INSYNC" if self.insync else "PENDING",
               "SubmittedAt": self.submitted}
        return {**out, "Comment": self.comment} if self.comment else out


#: A name server that fetched within this many seconds is polling: INSYNC waits for it.
POLLING_WITHIN = 5.0


@dataclass(slots=True)
class Propagation:
    """A Route 53 backend's changes, and per zone those still PENDING, oldest first.

    INSYNC means "propagated to all Route 53 DNS servers": while the twin's name server polls
    (`served`), a change turns INSYNC only once it has fetched the zone with the change in it,
    so whoever sees INSYNC and then asks the name server gets the new answer."""

    changes: dict[str, Change] = field(default_factory=dict)
    pending: dict[str, deque[Change]] = field(default_factory=dict)
    fetched: float | None = None  # when the name server last fetched (monotonic)

    def advance(self, fetching: bool = False) -> None:
        """Mark INSYNC every change whose propagation delay has passed (in order) and, while a
        name server polls, that it has fetched since; `fetching`: it is fetching now."""
        now = time.monotonic()
        if fetching:
            self.fetched = now
        polling = self.fetched is not None and now - self.fetched <= POLLING_WITHIN
        served_until = self.fetched if polling and self.fetched is not None else now
        for zone, queue in list(self.pending.items()):
            while queue and served_until >= queue[0].started + settings.propagation_delay:
                done = queue.popleft()
                done.insync, done.before = True, None  # served live now: drop the copy
            if not queue:
                del self.pending[zone]

    def next_due(self) -> float | None:
        """Seconds until the oldest PENDING change's propagation delay has passed (0 if it
        has), or None when nothing is PENDING: when a name server should fetch next."""
        due = [q[0].started + settings.propagation_delay for q in self.pending.values() if q]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def add(self, zone: str, before: Served | None, comment: str | None) -> Change:
        change_id = "C" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                  for _ in range(20))
        change = Change(change_id, zone, before, _now(), time.monotonic(), comment)
        self.changes[change_id] = change
        self.pending.setdefault(zone, deque()).append(change)
        self.advance()  # a zero delay is INSYNC at once
        return change


def _propagation(backend: Route53Backend) -> Propagation:
    return backend.__dict__.setdefault("_drills_propagation",  # type: ignore[no-any-return]
                                       Propagation())


def _value(value: Any) -> str:
    return str(value["Value"] if isinstance(value, dict) else value)


def _record(rrset: RecordSet) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": rrset.name, "Type": rrset.type}
    if rrset.ttl not in (None, ""):
        out["TTL"] = int(rrset.ttl)
    if rrset.records:
        out["ResourceRecords"] = [{"Value": _value(v)} for v in rrset.records]
    for key, value in (("SetIdentifier", rrset.set_identifier), ("Weight", rrset.weight),
                       ("Region", rrset.region), ("Failover", rrset.failover),
                       ("HealthCheckId", rrset.health_check_id),
                       ("AliasTarget", rrset.alias_target), ("GeoLocation", rrset.geo_location),
                       ("MultiValueAnswer", rrset.multi_value_answer)):
        if value is not None:
            out[key] = copy.deepcopy(value)
    return out


def _snapshot(zone: FakeZone) -> Served:
    return Served(zone.id, zone.name, bool(zone.private_zone), [_record(r) for r in zone.rrsets])


def served(backend: Route53Backend) -> list[Served]:
    """Every zone as the name servers answer for it now: live, unless a change is PENDING.
    Called for the name server's fetch: what it fetches now is INSYNC."""
    with _LOCK:
        state = _propagation(backend)
        state.advance(fetching=True)
        out = [_snapshot(z) for z in list(backend.zones.values())
               if z.resource_id not in state.pending]
        return out + [q[0].before for q in state.pending.values() if q[0].before is not None]


def _with_change(result: ActionResult, change: Change) -> ActionResult:
    assert isinstance(result.result, dict)
    result.result["ChangeInfo"] = change.info()
    return result


def _change_resource_record_sets(self: Route53) -> ActionResult:
    with _LOCK:
        zone = self.backend.get_hosted_zone(self._get_param("HostedZoneId"))
        before = _snapshot(zone)
        result = _ORIGINAL["change_resource_record_sets"](self)
        change = _propagation(self.backend).add(zone.resource_id, before,
                                                self._get_param("ChangeBatch.Comment"))
        return _with_change(result, change)


def _create_hosted_zone(self: Route53) -> ActionResult:
    with _LOCK:
        result = _ORIGINAL["create_hosted_zone"](self)
        zone = result.result["HostedZone"]  # type: ignore[index]
        change = _propagation(self.backend).add(zone.resource_id, None,
                                                self._get_param("HostedZoneConfig.Comment"))
        return _with_change(result, change)


def _delete_hosted_zone(self: Route53) -> ActionResult:
    with _LOCK:
        zone = self.backend.get_hosted_zone(self._get_param("Id"))
        before = _snapshot(zone)
        result = _ORIGINAL["delete_hosted_zone"](self)
        return _with_change(result, _propagation(self.backend).add(zone.resource_id, before,
                                                                   None))


def _get_change(self: Route53) -> ActionResult:
    change_id = str(self._get_param("Id")).removeprefix("/change/")
    with _LOCK:
        state = _propagation(self.backend)
        state.advance()
        change = state.changes.get(change_id)
        if change is None:
            return _ORIGINAL["get_change"](self)  # type: ignore[no-any-return]
        return ActionResult({"ChangeInfo": change.info()})


def _get_health_check_status(self: Route53) -> ActionResult:
    check = self.backend.get_health_check(self._get_param("HealthCheckId"))
    if check.type_ not in PROBED:
        return _ORIGINAL["get_health_check_status"](self)  # type: ignore[no-any-return]
    with _LOCK:
        reports = [(c.region, c.report) for c in _monitor(check, time.monotonic()).checkers]
    return ActionResult({"HealthCheckObservations": [
        {"Region": region, "IPAddress": r.source,
         "StatusReport": {"Status": r.status, "CheckedTime": r.checked}}
        for region, r in reports if r is not None]})


def _backend_property(self: Route53) -> Route53Backend:
    _Checkers.ensure()
    _Checkers.wake.set()  # a new or changed check gets its first probe without waiting
    return _ORIGINAL["backend"](self)  # type: ignore[no-any-return]


def _health_check_init(self: HealthCheck, health_check_id: str, caller_reference: str,
                       health_check_args: dict[str, Any]) -> None:
    _ORIGINAL["health_check_init"](self, health_check_id, caller_reference, health_check_args)
    if not health_check_args.get("port") and str(self.type_).startswith("HTTPS"):
        self.port = 443


def install() -> None:
    """Patch moto's Route 53 with probing health checks and propagating changes (idempotent)."""
    if getattr(Route53, _MARK, False):
        return
    for name in ("change_resource_record_sets", "create_hosted_zone", "delete_hosted_zone",
                 "get_change", "get_health_check_status"):
        _ORIGINAL[name] = getattr(Route53, name)
        setattr(Route53, name, globals()[f"_{name}"])
    _ORIGINAL["backend"] = Route53.backend.fget  # type: ignore[attr-defined]
    Route53.backend = property(_backend_property)  # type: ignore[assignment,method-assign]
    _ORIGINAL["health_check_init"] = HealthCheck.__init__
    HealthCheck.__init__ = _health_check_init  # type: ignore[method-assign]
    setattr(Route53, _MARK, True)


# ------------------------------------------------------------------ twin-only control


def _account_backend(request: dict[str, Any]) -> Route53Backend:
    _Checkers.ensure()
    return route53_backends[str(request.get("account") or DEFAULT_ACCOUNT_ID)]["aws"]


def _number(request: dict[str, Any], key: str, least: float, inclusive: bool) -> float | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < least or (
            value == least and not inclusive):
        raise JsonRESTError("ValidationException",
                            f'"{key}" must be a number {">=" if inclusive else ">"} {least:g}')
    return float(value)


def settings_route(request: dict[str, Any]) -> dict[str, Any]:
    """Set the twin's Route 53 timing (each key optional); answers the values in force."""
    scale = _number(request, "interval_scale", 0, inclusive=False)
    delay = _number(request, "propagation_delay", 0, inclusive=True)
    period = _number(request, "metric_period", 0.1, inclusive=True)
    with _LOCK:
        if delay is not None:
            settings.propagation_delay = delay
        if period is not None:
            settings.metric_period = period
        if scale is not None:
            settings.interval_scale = scale
            now = time.monotonic()  # a faster interval applies from now, not after a slow wait
            for _account, backend in _backends():
                for check in backend.health_checks.values():
                    monitor: Monitor | None = check.__dict__.get("_drills_monitor")
                    checkers = monitor.checkers if monitor else []
                    for i, c in enumerate(checkers):
                        c.due = min(c.due, now + i * _interval(check) / len(checkers))
    _Checkers.wake.set()
    return {"interval_scale": settings.interval_scale,
            "propagation_delay": settings.propagation_delay,
            "metric_period": settings.metric_period}


def health_checks_route(request: dict[str, Any]) -> dict[str, Any]:
    """Every endpoint health check's verdict and each checker's view."""
    backend = _account_backend(request)
    out: dict[str, Any] = {}
    with _LOCK:
        for check in list(backend.health_checks.values()):
            monitor = check.__dict__.get("_drills_monitor")
            out[check.id] = {"healthy": status(backend, check)}
            if monitor is None:
                continue
            out[check.id].update(
                percentage_healthy=monitor.percentage,
                changed_at=monitor.changed_at.isoformat(),
                checkers=[{"region": c.region, "healthy": c.healthy, "passed": c.passed,
                           "failed": c.failed, "status": c.report and c.report.status,
                           "checked_at": c.report and c.report.checked.isoformat()}
                          for c in monitor.checkers])
    return {"health_checks": out}


def served_route(request: dict[str, Any]) -> dict[str, Any]:
    """What the name servers answer from: zones as of their last INSYNC change, and health."""
    backend = _account_backend(request)
    with _LOCK:
        return {"zones": [z.to_api() for z in served(backend)],
                "health": {i: status(backend, c) for i, c in list(backend.health_checks.items())},
                "next_change_due": _propagation(backend).next_due()}


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "route53/settings": settings_route,
    "route53/health-checks": health_checks_route,
    "route53/served": served_route,
}
