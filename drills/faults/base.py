"""Faults: small objects with `inject()` and `revert()`, journaled before they act.

A fault's `prepare()` reads what it will need to undo itself (the capacity before, the
instance ids chosen) into `params`; the injector first refuses a fault whose `requires` the
target lacks (before `prepare()`), then checks the target against the
allow-list, then (after `prepare()`, which counts the group) the share of a group it acts
on against the blast radius, writes `params` to the journal with fsync, and only then calls
`inject()`. A run stopped by a stop condition (`halt`) reverts every fault at once and
injects no more.
Any process can rebuild a fault from its journal entry (`from_params`) and revert it, which
is how `drills rollback` and the next run finish what a killed run left behind.

Each kind also names the calls its `inject()` and `revert()` make (`calls`,
`revert_calls`), so that `plan()` says what a drill would do without doing it
(`drills run --dry-run`).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from drills.boundary import explain
from drills.capabilities import Capability, missing_reason
from drills.clients import Clients
from drills.config import DEFAULT_MAX_SHARE
from drills.environment import Names
from drills.errors import (
    BlastRadiusExceeded,
    CapabilityMissing,
    DrillStopped,
    FaultError,
    TargetNotAllowed,
)
from drills.journal import FaultEntry, FaultState, Journal, utc_now
from drills.plan import FaultPlan


@dataclass(frozen=True, slots=True)
class FaultContext:
    """What a fault needs to act: AWS clients, what the target can do beyond the AWS APIs
    (`capabilities`), and the twin's handle behind them when on the twin (only faults that
    require a capability reach it: the injector refuses them anywhere else)."""

    clients: Clients
    twin: Any = None  # drills.twin.manager.Twin; Any keeps faults importable without it
    capabilities: frozenset[Capability] = frozenset()
    target: str = "this target"  # how messages name it: "the account target aws:1234/..."

    def lacks(self, fault: type[Fault]) -> frozenset[Capability]:
        """What `fault` requires that this target cannot do."""
        return fault.requires - self.capabilities


class Fault(ABC):
    """One injectable failure; subclasses set `kind` and `target_kind`, and `requires` when
    they need more than the AWS APIs."""

    kind: ClassVar[str]
    target_kind: ClassVar[str]
    #: What the fault needs beyond the AWS APIs: a target without it refuses the fault, and
    #: drills whose steps inject it are skipped there (`drills.capabilities`).
    requires: ClassVar[frozenset[Capability]] = frozenset()
    #: The alarms this fault is expected to raise, as `Names` fields ("enclave_alarm"): one
    #: of them going to ALARM during its drill is the drill's own doing, not a stop condition.
    raises_alarms: ClassVar[frozenset[str]] = frozenset()
    registry: ClassVar[dict[str, type[Fault]]] = {}
    #: The calls `inject()` makes, in order: "service:Operation" for AWS (as botocore names
    #: it), "process:..." for the twin's processes, "twin:..." for its control routes.
    calls: ClassVar[tuple[str, ...]] = ()
    #: The calls `revert()` may make (reads left out), named as `calls`.
    revert_calls: ClassVar[tuple[str, ...]] = ()
    #: Whether `prepare()` only reads, so a dry run may call it to name the exact resources
    #: (the instances, the nodes) the fault would act on; a dry run fails on any write.
    prepare_reads_only: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Fault.registry[cls.kind] = cls

    def __init__(self, ctx: FaultContext, params: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.params: dict[str, Any] = dict(params)
        self._on_acting: Callable[[], None] | None = None

    @property
    @abstractmethod
    def target(self) -> str:
        """The name of what this fault acts on, checked against the allow-list."""

    @property
    def region(self) -> str:
        """The AWS region the fault acts in (`params["region"]`, us-east-1 by default)."""
        return str(self.params.get("region", "us-east-1"))

    @abstractmethod
    def describe(self) -> str:
        """One line for humans: what this fault does."""

    def plan(self) -> FaultPlan:
        """What this fault would do, on what, with which calls, without doing it (after
        `prepare()`, the resources it chose are in `describe()`)."""
        return FaultPlan(self.kind, self.target_kind, self.target, self.region,
                         self.describe(), self.calls, self.revert_calls,
                         tuple(sorted(self.requires)))

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Read into `params` what `revert()` will need; runs before journaling."""

    def share(self) -> Share | None:
        """The part of a group this fault acts on, once prepared (None: it acts on no group
        of like members, e.g. one key or a few items)."""
        return None

    def expected_alarms(self, names: Names) -> frozenset[str]:
        """The names of the alarms this fault is expected to raise (`raises_alarms`)."""
        return frozenset(str(getattr(names, field)) for field in self.raises_alarms)

    def acting(self) -> None:
        """Called by `inject()` just before its first mutating call, when it must read or
        build something first: the fault's figures are measured from that instant. A fault
        whose `inject()` only mutates need not call it (the call itself marks the instant)."""
        if self._on_acting is not None:
            self._on_acting()

    @abstractmethod
    def inject(self) -> None:
        """Make the failure happen."""

    @abstractmethod
    def revert(self) -> None:
        """Undo the failure (idempotent: it may run again after a crash)."""

    @classmethod
    def from_entry(cls, entry: FaultEntry, ctx: FaultContext) -> Fault:
        """Rebuild the fault a journal entry describes."""
        try:
            kind = Fault.registry[entry.kind]
        except KeyError:
            raise FaultError(f"journal entry {entry.fault_id} has unknown fault kind "
                             f"{entry.kind!r}; upgrade drills or revert it by hand") from None
        missing = ctx.lacks(kind)
        if missing:
            raise FaultError(f"journal entry {entry.fault_id} ({entry.kind}) cannot be reverted "
                             f"on {ctx.target}: {missing_reason(missing, ctx.target)}")
        return kind(ctx, entry.params)

    def check_capabilities(self) -> None:
        """Refuse (CapabilityMissing) a fault that needs what the target cannot do."""
        missing = self.ctx.lacks(type(self))
        if missing:
            raise CapabilityMissing(f"refusing fault {self.kind}: "
                                    f"{missing_reason(missing, self.ctx.target)}")


@dataclass(frozen=True, slots=True)
class AllowList:
    """Targets destructive steps may act on, by kind ('asg', 'bucket', 'key', ...)."""

    allowed: Mapping[str, tuple[str, ...]]

    def check(self, fault: Fault) -> None:
        names = self.allowed.get(fault.target_kind, ())
        if fault.target not in names and "*" not in names:
            raise TargetNotAllowed(
                f"refusing to {fault.describe()}: {fault.target_kind} {fault.target!r} is not "
                f"allowed; add it to [allow] {fault.target_kind} = [...] in your drills config")


@dataclass(frozen=True, slots=True)
class Share:
    """The part of a group a fault acts on: `acted` of the `of` members of `group`."""

    group: str  # "InService instances of Auto Scaling group VettID-Nitro-EnclaveASG"
    acted: int
    of: int

    @property
    def fraction(self) -> float:
        return self.acted / self.of if self.of else 0.0

    @classmethod
    def whole(cls, group: str) -> Share:
        """All of `group` at once (a region, an endpoint): a full outage of it."""
        return cls(group, 1, 1)


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """How much of a group a fault may act on (`[blast] max_share`); a drill tagged
    `@full_outage` may act on all of it."""

    max_share: float = DEFAULT_MAX_SHARE
    full_outage: bool = False

    def check(self, fault: Fault) -> None:
        """Refuse (BlastRadiusExceeded) a prepared fault acting on more than the cap."""
        share = fault.share()
        if share is None or self.full_outage or share.fraction <= self.max_share + 1e-9:
            return
        raise BlastRadiusExceeded(
            f"refusing to {fault.describe()}: it acts on {share.acted} of {share.of} "
            f"{share.group} ({share.fraction:.0%}), more than the blast radius allows "
            f"({self.max_share:.0%}, [blast] max_share in your drills config); tag the drill "
            "@full_outage if a full outage is what it drills, or raise max_share")


@dataclass(frozen=True, slots=True)
class Instant:
    """One moment on both clocks: monotonic for durations, UTC for people (read together)."""

    at: float
    utc: str

    @classmethod
    def now(cls) -> Instant:
        at = time.monotonic()
        return cls(at, utc_now())


@dataclass(slots=True)
class ActiveFault:
    """A fault this run injected, with the moments it acted."""

    fault_id: str
    fault: Fault
    injected_utc: str  # the same instant as injected_at
    injected_at: float  # time.monotonic() just before the fault's first mutating call
    inject_span: float = 0.0  # seconds from then until inject() returned
    reverted_utc: str | None = None
    revert_error: str | None = None

    @property
    def kind(self) -> str:
        return self.fault.kind


@dataclass(slots=True)
class FaultInjector:
    """Injects and reverts faults for one run, journaling every step."""

    journal: Journal
    run_id: str
    env: str
    allow: AllowList
    blast: BlastRadius = BlastRadius()
    on_change: list[Callable[[ActiveFault], None]] = field(default_factory=list)
    active: list[ActiveFault] = field(default_factory=list)
    #: Why the run was stopped (`halt`); from then on nothing is injected.
    stopped: str | None = None
    #: Held while a fault is injected or reverted: a stop condition's revert (another
    #: thread) waits for an injection under way, then reverts it too.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def inject(self, fault: Fault) -> ActiveFault:
        """Check, prepare, journal, then inject `fault`."""
        fault.check_capabilities()  # first: prepare() of such a fault reads what it needs
        self.allow.check(fault)
        fault.prepare()
        self.blast.check(fault)
        with self._lock:
            if self.stopped is not None:
                raise DrillStopped(self.stopped)
            return self._inject(fault)

    def _inject(self, fault: Fault) -> ActiveFault:
        fault_id = self.journal.record_injecting(fault.kind, fault.target, fault.params,
                                                 self.run_id, self.env)
        marks: list[Instant] = []
        fault._on_acting = lambda: marks.append(Instant.now())
        active: ActiveFault | None = None
        try:
            fault.acting()  # the call below may mutate at once: mark the instant before it
            fault.inject()
            returned = time.monotonic()
            start = marks[-1]  # the last mark: the one just before the first mutating call
            active = ActiveFault(fault_id, fault, start.utc, start.at, returned - start.at)
            self.active.append(active)  # from here on, revert_all() reverts it
        except Exception as exc:
            # It may have half-acted: revert what can be, and say so in the journal.
            undone = self._revert_after_failed_inject(fault_id, fault)
            raise FaultError(f"could not {fault.describe()}: {explain(exc)}; {undone}") \
                from exc
        except BaseException:
            # Interrupted (SIGTERM, Ctrl-C) before the fault was registered: nobody else
            # knows to revert it, so revert it here before the interruption goes on.
            if active is None or active not in self.active:
                self._revert_after_failed_inject(fault_id, fault)
            raise
        finally:
            fault._on_acting = None
        self.journal.record(fault_id, FaultState.INJECTED)
        for callback in self.on_change:
            callback(active)
        return active

    def halt(self, reason: str) -> list[str]:
        """Stop: revert every active fault now and refuse any further one (a stop condition,
        from the thread that watches it); returns the revert errors."""
        with self._lock:
            self.stopped = reason
            return self.revert_all()

    def expected_alarms(self, names: Names) -> frozenset[str]:
        """The alarms the faults injected so far are expected to raise."""
        return frozenset().union(*(a.fault.expected_alarms(names) for a in list(self.active)))

    def revert(self, active: ActiveFault) -> None:
        """Revert one fault; errors are journaled and raised as FaultError."""
        with self._lock:
            self._revert(active)

    def _revert(self, active: ActiveFault) -> None:
        if active.reverted_utc is not None:
            return
        try:
            active.fault.revert()
        except Exception as exc:
            active.revert_error = str(exc)
            self.journal.record(active.fault_id, FaultState.REVERT_FAILED, str(exc))
            raise FaultError(f"could not revert ({active.fault.describe()}): {exc}; run "
                             "`drills rollback` once the cause is fixed") from exc
        active.reverted_utc = utc_now()
        self.journal.record(active.fault_id, FaultState.REVERTED)
        for callback in self.on_change:
            callback(active)

    def revert_all(self) -> list[str]:
        """Revert every active fault, newest first, then once more those that failed: a
        revert may need an older fault reverted first (failback needs the region back);
        returns the errors that remain (never raises)."""
        failed = []
        for active in reversed(self.active):
            try:
                self.revert(active)
            except FaultError:
                failed.append(active)
        errors = []
        for active in failed:
            active.revert_error = None
            try:
                self.revert(active)
            except FaultError as exc:
                errors.append(str(exc))
        return errors

    def _revert_after_failed_inject(self, fault_id: str, fault: Fault) -> str:
        """Undo whatever a failed inject did; says how that went, for the error message."""
        try:
            fault.revert()
        except Exception as exc:
            self.journal.record(fault_id, FaultState.REVERT_FAILED, str(exc))
            return (f"reverting what it did also failed ({explain(exc)}): run `drills "
                    "rollback` once the cause is fixed")
        self.journal.record(fault_id, FaultState.REVERTED)
        return "whatever it had done was reverted"


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """What `rollback` did with one pending journal entry."""

    entry: FaultEntry
    reverted: bool
    error: str | None
    abandoned: bool = False


def rollback(journal: Journal, ctx: FaultContext | None, env: str) -> list[RollbackResult]:
    """Revert every pending fault that acted on `env`, newest first.

    Faults of a twin other than `env` (a twin since taken down) died with it: they are
    journaled as abandoned. Faults of other accounts are left for a rollback aimed there.
    """
    results: list[RollbackResult] = []
    retry: list[FaultEntry] = []
    for entry in journal.pending():
        if entry.env != env:
            if entry.env.startswith("twin:") or not entry.env:
                why = f"the twin it acted on ({entry.env or 'unknown'}) is no longer running"
                journal.record(entry.fault_id, FaultState.ABANDONED, why)
                results.append(RollbackResult(entry, False, why, abandoned=True))
            continue
        if ctx is None:
            continue
        retry.append(entry)
    # Newest first, then once more those that failed: a revert may need an older fault
    # reverted first (failback needs the region back).
    if ctx is None:
        return results
    for last in (False, True):
        entries, retry = retry, []
        for entry in entries:
            try:
                Fault.from_entry(entry, ctx).revert()
            except Exception as exc:  # report every failure; one bad entry must not stop
                if not last:
                    retry.append(entry)
                    continue
                journal.record(entry.fault_id, FaultState.REVERT_FAILED, str(exc))
                results.append(RollbackResult(entry, False, str(exc)))
                continue
            journal.record(entry.fault_id, FaultState.REVERTED)
            results.append(RollbackResult(entry, True, None))
    return results
