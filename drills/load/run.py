"""One run's load: started before the first drill, concluded after each, stopped at the end.

The load runs once for the whole run (locust's start-up and spawn are paid once, and the
service is under load between drills as it is in life); each drill takes the slice of the
records between its start and its end and cuts it at its fault and its recovery. If locust
dies, the drills go on without load and each drill's record says from when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drills.config import SERVICE_COMPONENT, LoadSettings, Objective
from drills.drill import Drill
from drills.errors import ObjectiveBreached
from drills.evidence.fmt import parse_utc, secs
from drills.evidence.model import DrillRecord, LoadRecord, LoadWindow, Status
from drills.load.analysis import AFTER, BEFORE, DURING, Marks, judge, series, windows
from drills.load.records import Write
from drills.load.runner import Ended, LocustProcesses
from drills.load.verify import Held, VaultReader, ledger_store, verify_writes
from drills.measure.figures import rpo_measurement
from drills.measure.rpo import LedgerReader
from drills.measure.timeline import Verdict
from drills.target import Target

Say = Callable[[str], None]
#: Figures that mark a recovery (an alarm's or a page's time does not).
RECOVERY = {Verdict.RECOVERED.value, Verdict.FLAPPING.value, Verdict.NO_OUTAGE.value}
#: How long a drill's conclusion waits for records of its last moments to arrive.
CATCH_UP = 3.0
REQUESTS_FILE = "load/requests.jsonl"


def monotonic_of(utc: str) -> float:
    """A UTC timestamp of this run as a moment of the monotonic clock."""
    return time.monotonic() - (time.time() - parse_utc(utc).timestamp())


def marks_of(drill: Drill, end: float) -> Marks:
    """A drill's windows: its start, its first fault, the last of its recovery figures."""
    start = monotonic_of(drill.record.started_utc)
    active = drill.injector.active
    if not active:
        return Marks(start, end)
    injected = {a.fault_id: a.injected_at for a in active}
    recoveries = [injected[m.fault_id] + m.rto for m in drill.record.measurements
                  if str(m.verdict) in RECOVERY and m.rto is not None
                  and m.fault_id in injected]
    return Marks(min(start, active[0].injected_at), end, active[0].injected_at,
                 max(recoveries) if recoveries else None)


def dns_of(target: Target) -> str | None:
    """HOST:PORT of the DNS server the target's API name resolves through (None: the
    system's), for the load users to resolve it as the apps and the probes do."""
    resolver = target.resolver()
    return None if resolver is None else f"{resolver.server}:{resolver.port}"


@dataclass(frozen=True, slots=True)
class Verifier:
    """How a drill's load writes are read back: through the API, and the target's ledger."""

    reader: VaultReader
    ledger: LedgerReader | None = None


class LoadRun:
    """The load of one run of drills, in `report_dir`/load/."""

    def __init__(self, settings: LoadSettings, target: Target, report_dir: Path, say: Say,
                 prefix: str = "load") -> None:
        self.settings, self.target, self.report_dir, self.say = settings, target, report_dir, say
        resolver = target.resolver()
        self.processes = LocustProcesses(settings, target.api_url(), target.ca_bundle(),
                                         report_dir / "load", prefix=prefix,
                                         on_end=self._ended, dns=dns_of(target))
        self.resolve = resolver.resolve if resolver is not None else None

    @property
    def method(self) -> str:
        """How the load behaves, in one sentence, for the evidence."""
        s = self.settings
        shape = ("one locust process" if not (s.workers or s.remote_workers) else
                 f"a locust master with {s.workers} local and {s.remote_workers} remote "
                 "worker processes")
        return (f"{s.users} simulated apps ({shape}, started {s.rate:g}/s), each enrolling "
                f"its own vault, then reading it (75 %), updating it (20 %) or enrolling a new "
                f"device (5 %), {s.think_time[0]:g}-{s.think_time[1]:g} s think time, "
                f"{s.request_timeout:g} s request timeout, through the vault API (HTTPS; an "
                "attestation document required in every answer, verified by the probes, not "
                "here); every request recorded by a request-event listener at its completion "
                "on the harness's monotonic clock")

    def start(self) -> None:
        """Start locust and wait for every user; ConfigError (exit 2) if it cannot."""
        s = self.settings
        self.say(f"drills: load: starting {s.users} simulated apps on {self.target.api_url()}"
                 + (f" (a master and {s.workers} local workers)" if s.workers else ""))
        self.processes.start()
        self.say(f"drills: load: {s.users} apps running; records in "
                 f"{self.processes.records}")

    def stop(self) -> None:
        """Stop locust (idempotent)."""
        self.processes.stop()

    def _ended(self, ended: Ended) -> None:
        what = ("the drills go on without load" if ended.fatal else
                "its users go to the other workers")
        self.say(f"drills: load: locust {ended.which} exited (code {ended.code}) at "
                 f"{ended.utc}: {what}")

    # -- per drill --------------------------------------------------------------------------
    def conclude(self, drill: Drill) -> ObjectiveBreached | None:
        """Figure the load of a drill that just ended into its record; the breach of a load
        objective (set on the record as its failure) if a passing drill missed one."""
        marks = marks_of(drill, time.monotonic())
        component = drill.record.rpo[0].component if drill.record.rpo else SERVICE_COMPONENT
        verifier = Verifier(VaultReader(self.target.api_url(), self.target.ca_bundle(),
                                        timeout=self.settings.request_timeout,
                                        resolve=self.resolve),
                            self.target.ledger())
        try:
            return self.figure(drill.record, marks,
                               drill.settings.objectives.for_component(component), verifier)
        except (OSError, ValueError) as exc:  # the evidence of the load, not the drill, failed
            drill.record.deviations.append(f"the load during this drill could not be figured "
                                           f"({type(exc).__name__}: {exc}); its raw records "
                                           f"are in {REQUESTS_FILE}")
            return None

    def figure(self, record: DrillRecord, marks: Marks, objective: Objective,
               verifier: Verifier | None) -> ObjectiveBreached | None:
        """The load record of a drill with these marks (see `conclude`)."""
        self._catch_up(marks.end)
        seen = self.processes.log.read()
        requests = [r for r in seen.requests if marks.start <= r.at <= marks.end]
        cut = windows(requests, marks)
        s = self.settings
        load = LoadRecord(
            users=s.users, spawn_rate=s.rate, workers=s.workers + s.remote_workers,
            method=self.method, windows=cut, series=series(requests, marks),
            objectives=judge(s, cut), requests_file=REQUESTS_FILE,
            recovered_at=None if marks.recovered is None
            else round(max(marks.recovered - marks.origin, 0.0), 3))
        self._note_ends(load, marks)
        if verifier is not None:
            self._verify(load, marks, objective, verifier)
        record.load = load
        self.say(f"drills: load: {_summary(cut)}")
        missed = [o for o in load.objectives if not o.met]
        if not missed or record.status is not Status.PASSED:
            return None
        text = "; ".join(
            f"{o.name.replace('_', ' ')}: measured "
            f"{_show(o.name, o.measured)} against {_show(o.name, o.objective)}"
            + (f" ({o.note})" if o.note else "") for o in missed)
        record.status, record.error = Status.FAILED, f"ObjectiveBreached: load objective {text}"
        return ObjectiveBreached(f"load objective {text}")

    def _catch_up(self, end: float) -> None:
        """Wait (briefly) until records of the drill's last moments have been written."""
        deadline = time.monotonic() + CATCH_UP
        while (self.processes.log.read().last_at < end and self.processes.alive()
               and time.monotonic() < deadline):
            time.sleep(0.1)

    def _writes_so_far(self) -> list[Write]:
        """Every write sent or ended so far: once the records of the last moment are in (a
        write that may have reached a store by now was sent before now)."""
        self._catch_up(time.monotonic())
        seen = self.processes.log.read()
        return [*seen.sends, *seen.writes]

    def _note_ends(self, load: LoadRecord, marks: Marks) -> None:
        for ended in list(self.processes.ended):
            if ended.at > marks.end:
                continue
            t = ended.at - marks.origin
            if not ended.fatal:
                if ended.at >= marks.start:
                    load.notes.append(f"locust {ended.which} exited (code {ended.code}) at "
                                      f"{ended.utc} (t = {t:.2f} s); its users went on, on "
                                      "the other workers")
            elif ended.at >= marks.start:
                load.stopped_at = round(t, 3)
                load.notes.append(f"locust {ended.which} exited (code {ended.code}) at "
                                  f"{ended.utc} (t = {t:.2f} s): the drill went on without "
                                  f"load from then ({ended.tail[-300:] or 'no output'})")
            else:
                load.stopped_at = round(marks.start - marks.origin, 3)
                load.notes.append(f"no load during this drill: locust {ended.which} exited "
                                  f"(code {ended.code}) at {ended.utc}, before it began")

    def _verify(self, load: LoadRecord, marks: Marks, objective: Objective,
                verifier: Verifier) -> None:
        if marks.fault is not None and marks.recovered is None:
            load.notes.append("the load users' writes were not read back: no recovery was "
                              "measured in this drill")
            return
        writes = [w for w in self.processes.log.read().writes
                  if marks.start <= w.at <= marks.end]
        if not any(w.acked for w in writes):
            load.notes.append("the load users made no acknowledged write in this drill")
            return
        stores: dict[str, Held] = {"service": verifier.reader}
        if verifier.ledger is not None:
            stores["ledger"] = ledger_store(verifier.ledger)
        result = verify_writes(writes, marks.start, marks.end, stores, self._writes_so_far)
        load.rpo = rpo_measurement(
            objective, result,
            "the load users' own acknowledged writes (enrolments and updates of their "
            "vaults), each vault read back after the drill through the vault API with a "
            "client of its own, and its item in the credentials ledger; the content must be "
            "the vault's last acknowledged write or one sent after it (the load runs on)")


def _pct(w: LoadWindow) -> str:
    return "-" if w.error_rate is None else f"{100 * w.error_rate:.1f}%"


def _summary(cut: list[LoadWindow]) -> str:
    by = {w.name: w for w in cut}
    parts = []
    for name, short in ((BEFORE, "before"), (DURING, "fault->recovery"), (AFTER, "after")):
        w = by[name]
        if w.start is None:
            continue
        p95 = "-" if w.p95 is None else f"{w.p95 * 1000:.0f} ms"
        parts.append(f"{short} {w.requests} req, {w.throughput:.1f}/s, errors {_pct(w)}, "
                     f"p95 {p95}")
    return "; ".join(parts)


def _show(name: str, value: float | None) -> str:
    if value is None:
        return "nothing"
    return f"{100 * value:.1f}%" if "error_rate" in name else secs(value)
