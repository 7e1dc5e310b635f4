"""Replication between regions of the twin, shared by `s3_replication` and `dynamodb_global`:
links (source region and resource to destination region and resource), per-write lags drawn
from a profile, pauses that hold writes and drain them in order, a delay queue served by one
thread per process, and the metrics each service publishes about its backlog.

No `install()`: it patches nothing; the two modules that replicate use it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import random
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import JsonRESTError

__all__ = ["Lag", "Link", "LinkStats", "Replicator", "Selector", "put_metrics"]

_log = logging.getLogger(__name__)




@dataclass(frozen=True, slots=True)
class Lag:
    """How long one replicated write takes: a log-normal draw with median `median` s and
    shape `sigma`, capped at `max` s (sigma 0: always `median`)."""

    median: float
    sigma: float
    max: float

    def draw(self, rng: random.Random) -> float:
        if self.median <= 0 or self.sigma == 0:
            return min(self.median, self.max)
        return min(self.max, rng.lognormvariate(math.log(self.median), self.sigma))

    def quantile(self, q: float) -> float:
        if self.median <= 0:
            return 0.0
        spread = math.exp(self.sigma * statistics.NormalDist().inv_cdf(q))
        return min(self.max, self.median * spread)


@dataclass(frozen=True, slots=True)
class Link:
    """One direction of replication: from `source` in `source_region` to `destination`
    (bucket or table names) in `destination_region`, under `rule`."""

    account: str
    source_region: str
    destination_region: str
    source: str
    destination: str
    rule: str = ""
    metrics: bool = True  # publish its metrics (S3: the rule enables Metrics or RTC)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which links a pause holds: every field given must match (none given: all)."""

    source_region: str | None = None
    destination_region: str | None = None
    source: str | None = None
    destination: str | None = None

    def matches(self, link: Link) -> bool:
        return all(getattr(self, f.name) in (None, getattr(link, f.name))
                   for f in fields(self))

    def as_dict(self, names: dict[str, str]) -> dict[str, str]:
        """The selector in a route's own field names (`names`: ours -> the route's)."""
        return {names.get(f.name, f.name): getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


@dataclass(slots=True)
class _Write:
    """A write waiting to be replicated over `link`."""

    seq: int
    link: Link
    key: Hashable  # writes with the same key on a link are delivered in order
    payload: Any
    size: int
    written_at: float  # epoch seconds
    due: float  # monotonic

    def __lt__(self, other: _Write) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


@dataclass(frozen=True, slots=True)
class LinkStats:
    """What a link's metrics publish for one period."""

    pending: int
    pending_bytes: int
    oldest_pending_age: float | None  # seconds
    replicated: int  # in the period
    max_latency: float | None  # seconds, in the period
    mean_latency: float | None


@dataclass(slots=True)
class _LinkState:
    pending: OrderedDict[int, tuple[float, int]] = field(default_factory=OrderedDict)
    pending_bytes: int = 0
    completed: int = 0
    failed: int = 0
    last_failure: str | None = None
    period_count: int = 0
    period_sum: float = 0.0
    period_max: float = 0.0
    published_pending: int = 0
    max_latency: float | None = None


Deliver = Callable[[Link, Any], str | None]  # None: done; a string: why it failed
Publish = Callable[[Link, LinkStats], None]


class Replicator:
    """Delivers writes over links, each after its own lag, in one daemon thread per
    process that sleeps on a condition until the next write is due (no polling).

    Writes of a paused link are held (their status stays pending) and drain in write order
    when the pause is lifted. `deliver(link, payload)` runs outside the lock and answers
    None or the reason it failed; `publish(link, stats)` runs every `metric_period` for
    each link that has something to say.
    """

    def __init__(self, name: str, deliver: Deliver, publish: Publish,
                 profiles: dict[str, tuple[Lag, float]], profile: str = "fast") -> None:
        self.name = name
        self._deliver = deliver
        self._publish = publish
        self.profiles = profiles
        self.profile = profile
        self.lag, self.metric_period = profiles[profile]
        self._rng = random.Random()
        self._cond = threading.Condition()
        self._heap: list[_Write] = []
        self._held: dict[Link, list[_Write]] = {}
        self._pauses: list[Selector] = []
        self._links: dict[Link, _LinkState] = {}
        self._per_key: dict[tuple[Link, Hashable], list[float]] = {}  # [count, last due]
        self._seq = itertools.count()
        self._next_publish = 0.0
        self._pid = 0

    # -------------------------------------------------------------- for the modules

    def submit(self, link: Link, key: Hashable, payload: Any, size: int = 0,
               written_at: float | None = None) -> None:
        """Replicate `payload` over `link` after a lag drawn now."""
        written_at = time.time() if written_at is None else written_at
        with self._cond:
            self._ensure_thread()
            slot = self._per_key.setdefault((link, key), [0, 0.0])
            due = max(time.monotonic() + self.lag.draw(self._rng), slot[1])
            slot[0] += 1
            slot[1] = due
            write = _Write(next(self._seq), link, key, payload, size, written_at, due)
            state = self._links.setdefault(link, _LinkState())
            state.pending[write.seq] = (written_at, size)
            state.pending_bytes += size
            heapq.heappush(self._heap, write)
            self._cond.notify()

    def pause(self, selector: Selector) -> None:
        with self._cond:
            if selector not in self._pauses:
                self._pauses.append(selector)

    def resume(self, selector: Selector | None) -> None:
        """Lift the pause `selector` (None: every pause); held writes drain in order."""
        with self._cond:
            self._pauses = [] if selector is None else [p for p in self._pauses
                                                        if p != selector]
            now = time.monotonic()
            for link in [link for link in self._held if not self._paused(link)]:
                for write in self._held.pop(link):
                    write.due = now  # overdue: the heap now orders them by seq
                    heapq.heappush(self._heap, write)
            self._cond.notify()

    def configure(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply a settings route's body (see the module docstrings); answer the settings."""
        profile = request.get("profile")
        if profile is not None and profile not in self.profiles:
            raise JsonRESTError("ValidationException",
                                f'"profile" must be one of {", ".join(sorted(self.profiles))}')
        numbers = {name: request.get(name) for name in ("median", "sigma", "max",
                                                         "metric_period")}
        for name, value in numbers.items():
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float) or value < 0):
                raise JsonRESTError("ValidationException", f'"{name}" must be a number >= 0')
        seed = request.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise JsonRESTError("ValidationException", '"seed" must be a whole number')
        with self._cond:
            if profile is not None:
                self.profile = profile
                self.lag, self.metric_period = self.profiles[profile]
            overrides = {k: float(v) for k, v in numbers.items()
                         if v is not None and k != "metric_period"}
            if overrides:
                self.lag = replace(self.lag, **overrides)
                self.profile = "custom"
            if numbers["metric_period"] is not None:
                self.metric_period = max(0.1, float(numbers["metric_period"]))
            if seed is not None:
                self._rng.seed(seed)
            return self.settings()

    def settings(self) -> dict[str, Any]:
        lag = self.lag
        return {"profile": self.profile, "median": lag.median, "sigma": lag.sigma,
                "max": lag.max, "metric_period": self.metric_period,
                "p50": lag.quantile(0.5), "p99": lag.quantile(0.99),
                "p99_99": lag.quantile(0.9999)}

    def status(self, names: dict[str, str]) -> dict[str, Any]:
        """Settings, pauses and every link's backlog, in a route's field names."""
        now = time.time()
        with self._cond:
            links = []
            for link, state in self._links.items():
                oldest = next(iter(state.pending.values()), None)
                links.append({
                    **Selector(link.source_region, link.destination_region, link.source,
                               link.destination).as_dict(names),
                    "rule": link.rule, "paused": self._paused(link),
                    "pending": len(state.pending), "pending_bytes": state.pending_bytes,
                    "oldest_pending_seconds": None if oldest is None else now - oldest[0],
                    "completed": state.completed, "failed": state.failed,
                    "last_failure": state.last_failure,
                    "max_latency_seconds": state.max_latency})
            return {"settings": self.settings(),
                    "pauses": [p.as_dict(names) for p in self._pauses], "links": links}

    # -------------------------------------------------------------- the thread

    def _paused(self, link: Link) -> bool:
        return any(p.matches(link) for p in self._pauses)

    def _ensure_thread(self) -> None:
        # The server forks after installing the fidelity layer; threads do not survive it.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name=f"drills-{self.name}", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # a bug here must not end replication for the process
                _log.exception("%s: the replication thread failed a step", self.name)
                with self._cond:
                    self._cond.wait(1.0)

    def _step(self) -> None:
        with self._cond:
            ready = self._take_ready()
            if not ready:
                self._cond.wait(self._timeout())
                ready = self._take_ready()
        for write in ready:
            self._deliver_one(write)
        self._publish_due()

    def _take_ready(self) -> list[_Write]:
        now = time.monotonic()
        ready: list[_Write] = []
        while self._heap and self._heap[0].due <= now:
            write = heapq.heappop(self._heap)
            if self._paused(write.link):
                self._held.setdefault(write.link, []).append(write)
            else:
                ready.append(write)
        ready.sort(key=lambda w: w.seq)
        return ready

    def _timeout(self) -> float | None:
        waits = []
        if self._heap:
            waits.append(self._heap[0].due - time.monotonic())
        if any(s.pending or s.period_count or s.published_pending
               for s in self._links.values()):
            waits.append(self._next_publish - time.monotonic())
        return max(0.0, min(waits)) if waits else None

    def _deliver_one(self, write: _Write) -> None:
        try:
            failure = self._deliver(write.link, write.payload)
        except Exception as exc:  # one bad write must not stop the others: logged, counted
            _log.exception("%s: delivering a write over %s failed", self.name, write.link)
            failure = f"InternalError: {exc}"
        latency = max(0.0, time.time() - write.written_at)
        with self._cond:
            slot = self._per_key[(write.link, write.key)]
            slot[0] -= 1
            if slot[0] <= 0:
                del self._per_key[(write.link, write.key)]
            state = self._links[write.link]
            _, size = state.pending.pop(write.seq)
            state.pending_bytes -= size
            if failure is None:
                state.completed += 1
                state.period_count += 1
                state.period_sum += latency
                state.period_max = max(state.period_max, latency)
                state.max_latency = max(state.max_latency or 0.0, latency)
            else:
                state.failed += 1
                state.last_failure = failure

    def _publish_due(self) -> None:
        now = time.monotonic()
        if now < self._next_publish:
            return
        wall = time.time()
        snapshots: list[tuple[Link, LinkStats]] = []
        with self._cond:
            self._next_publish = now + self.metric_period
            for link, state in self._links.items():
                pending = len(state.pending)
                if not (pending or state.period_count or state.published_pending):
                    continue
                oldest = next(iter(state.pending.values()), None)
                snapshots.append((link, LinkStats(
                    pending, state.pending_bytes,
                    None if oldest is None else max(0.0, wall - oldest[0]),
                    state.period_count,
                    state.period_max if state.period_count else None,
                    state.period_sum / state.period_count if state.period_count else None)))
                state.period_count, state.period_sum, state.period_max = 0, 0.0, 0.0
                state.published_pending = pending
        for link, stats in snapshots:
            try:
                self._publish(link, stats)
            except Exception:  # metrics are best effort, as in AWS: logged
                _log.exception("%s: publishing the metrics of %s failed", self.name, link)


def put_metrics(link: Link, region: str, namespace: str,
                data: list[tuple[str, float, str]], dimensions: dict[str, str]) -> None:
    """Publish (metric name, value, unit) datapoints to the twin's CloudWatch in `region`."""
    dims = [{"Name": name, "Value": value} for name, value in dimensions.items()]
    cloudwatch_backends[link.account][region].put_metric_data(namespace, [
        {"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dims}
        for name, value, unit in data])
