"""How accurate is the measured RTO? Outages whose end is known independently of the probes.

Each outage is measured as a drill measures it: probes with the drills' interval, timeout
and K consecutive successes (`ProbeSettings()`, or `--interval`/`--timeout`), the twin's
settle window, `compute_recovery` from the origin the fault injector journals, through
either path:

- `nats`: the Lambdas' NATS subjects (`VaultClient`, as `TwinTarget.connect` gives it);
- `api`: the apps' HTTPS API (`ApiClient`, attestation verified), through the twin's API
  process and its Lambda's own NATS connection (Lambda timeout 3 s, the profile's pings).

Kinds of outage, and where their truth comes from (never from the figures being checked):

- `full`: every enclave worker SIGSTOPped for T seconds, then SIGCONTed. Truth: the
  monotonic clock read immediately around each `os.kill` (bench/truth.py), nothing in
  between; then the workers' own logs: a request a thawed worker refused as busy while the
  work sent during the freeze held its queue is an outage after the SIGCONT, and the truth
  moves to the last such refusal.
- `partial`: one of the two workers frozen the same way (its requests time out, the other
  serves). Truth: the same.
- `capacity`: desired capacity 0 through the AWS API, wait until the group is empty and
  its workers gone, then back to 2 (the drill's `SetDesiredCapacity` fault and its revert).
  Truth: the workers' own logs of executed requests ($DRILLS_EXEC_LOG_DIR): the first
  request any new worker executed.

The instants compared, all on CLOCK_MONOTONIC:
- origin `injected_at`: the injector's mark just before the fault's first mutating call
  (the first `os.kill(SIGSTOP)`, or `set_desired_capacity(0)`), as a drill takes it;
- measured recovery `injected_at + rto`: completion of the first success of the last run
  of K; the bracket is [injected_at + rto_lower, injected_at + rto];
- true recovery: freezes, just after the last `os.kill(SIGCONT)` returned (the truth
  window runs from just before the first), or the last refusal owed to the freeze's
  backlog; capacity, the first execution by a new worker.
error = measured RTO - true RTO = (injected_at + rto) - true recovery. A run is covered
when the whole truth window lies inside the bracket.

Before each fault the probes must go a settle window without a failure (else the run is
skipped: a baseline that already flaps measures nothing). For every run not covered the
bench prints the probe that set the bracket's end and why; beside each freeze, the
workers' logs give the backlog: requests sent before the thaw that the thawed workers
executed after it (the queue a freeze leaves, served before new work).

Also prints the twin's start-up time (median of `--startups`) and the wall time of
`drills run monthly` (skip it with `--skip-monthly`). Twins live next to
$DRILLS_STATE_DIR (the bench's own twin, refused if one already runs there), the journal
is $DRILLS_JOURNAL. Its last line:
`rto_accuracy: p95_abs_error_ms=<x> max_abs_error_ms=<y> coverage=<k>/<n>`.

    python bench/rto_accuracy.py [--durations 1 3] [--repeat 3] [--interval S]
        [--kinds full partial capacity] [--paths nats api] [--startups 3] [--skip-monthly]
    python bench/rto_accuracy.py --load [bench/rto_under_load.py's options]
        the same freezes with and without locust load at half the API's capacity; its
        last line is `rto_accuracy_under_load: p95_abs_error_ms=<x> coverage=<k>/<n>`

Targets (issue 7): coverage n/n; |error| p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from truth import (
    KINDS,
    PATHS,
    MarkedFreeze,
    Run,
    Truth,
    TruthError,
    backlog,
    last_line,
    replacement_truth,
    summary,
    thaw_truth,
    twin_in,
)

from drills.api_client import ApiClient, Cohort, Population
from drills.attestation import ExpectedPcrs, PcrSet, build_pcrs, load_roots
from drills.config import ProbeSettings
from drills.faults import BlastRadius, FaultInjector, SetDesiredCapacity
from drills.journal import Journal
from drills.loop import LoopThread
from drills.measure import Recovery, Verdict, compute_recovery
from drills.measure.probes import ProbeRunner
from drills.measure.timeline import ProbeResult
from drills.target import TwinTarget
from drills.twin import manager
from drills.twin.timing import profile

ROOT = Path(__file__).resolve().parents[1]
K = ProbeSettings().consecutive  # successes in a row that mean recovered, as in a drill
STEADY = 10  # probes at least in the failure-free window before a fault is injected


class BenchError(Exception):
    """The bench could not carry out a run (no steady state, no recovery, no truth)."""


class NotSteady(BenchError):
    """The service was not steady before the fault: nothing was injected, nothing measured."""


def wait(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


def api_client(twin: Any) -> ApiClient:
    """The apps' HTTPS client for the twin's API; every app carries the PCR set of the
    twin's first enclave build and pins the twin's Nitro root."""
    expected = ExpectedPcrs((PcrSet("v1", build_pcrs("1.0.0")),))
    population = Population(load_roots(twin.attestation_root),
                            [Cohort("all apps", 1.0, expected)])
    return ApiClient(twin.api_url(), twin.ca_bundle, population)


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault as injected: its origin and acting span, how to read its truth once it is
    over, and the workers it froze."""

    at: float
    span: float
    truth: Callable[[float], Truth]  # given the timeout of whoever sent the enclaves' work
    frozen: tuple[str, ...] = ()


class Bench:
    """Runs outages on one twin and measures each through the path asked for."""

    def __init__(self, target: TwinTarget, loop: LoopThread, journal: Path, log_dir: Path,
                 interval: float, timeout: float) -> None:
        self.target, self.twin, self.loop, self.log_dir = target, target.twin, loop, log_dir
        self.nats = target.connect(loop, "bench-probe")
        self.clients: dict[str, Any] = {"nats": self.nats, "api": api_client(self.twin)}
        self.vaults = target.known_vaults()
        self.asg, self.region = self.twin.state.primary.asg, target.region
        # Full outages on purpose (every worker frozen, capacity 0): as a @full_outage drill.
        self.injector = FaultInjector(Journal(journal), "bench-rto-accuracy", target.env_id,
                                      target.allow_list({}), BlastRadius(full_outage=True))
        self.interval, self.timeout, self.settle = interval, timeout, target.settle
        self.lambda_timeout = profile(self.twin.state.profile).lambda_timeout

    def close(self) -> None:
        self.injector.revert_all()
        with contextlib.suppress(Exception):
            self.loop.run(self.clients["api"].close(), timeout=5)
            self.loop.run(self.nats.nc.close(), timeout=5)

    # -- one run --------------------------------------------------------------------------
    def run(self, kind: str, path: str, duration: float | None) -> Run:
        self._capacity_restored()
        settings = ProbeSettings(self.interval, self.timeout, K)
        probes = ProbeRunner(self.loop, self.clients[path], self.vaults, settings)
        probes.start()
        try:
            latency = self._steady(probes)
            if kind == "capacity":
                fault = self._capacity_outage()
            else:
                fault = self._freeze(2 if kind == "full" else 1, duration or 0.0)
            rec = self._recovered(probes, fault.at, fault.span)
        finally:
            probes.stop()
        # Who sent the requests the enclaves saw, and how long it waited: the probe itself
        # (NATS path) or the API's Lambda (its own timeout, whatever the app's).
        caller_timeout = self.timeout if path == "nats" else self.lambda_timeout
        try:
            truth = fault.truth(caller_timeout)
        except TruthError as exc:
            raise BenchError(str(exc)) from None
        late = (backlog(self.log_dir, fault.frozen, truth.latest, caller_timeout)
                if fault.frozen else None)
        return Run(kind, path, duration, fault.at, truth, rec,
                   _lower_probe(_failures_before(probes.results(), rec, fault.at)), late,
                   latency, os.getloadavg()[0])

    def _freeze(self, count: int, duration: float) -> Injected:
        fault = MarkedFreeze(self.target.fault_context(),
                             {"asg": self.asg, "region": self.region, "count": count})
        active = self.injector.inject(fault)
        try:
            time.sleep(max(0.0, fault.stops[0].before + duration - time.monotonic()))
        finally:
            self.injector.revert(active)
        return Injected(active.injected_at, active.inject_span,
                        lambda timeout: thaw_truth(fault.stops, fault.conts,
                                                   fault.params["workers"], self.log_dir,
                                                   timeout),
                        tuple(fault.params["workers"]))

    def _capacity_outage(self) -> Injected:
        old = set(self.twin.worker_pids(self.region))
        fault = SetDesiredCapacity(self.target.fault_context(),
                                   {"asg": self.asg, "region": self.region, "to": 0})
        active = self.injector.inject(fault)
        try:
            wait(lambda: not self._instances() and not self.twin.worker_pids(self.region), 60,
                 f"{self.asg} to be empty and its workers gone")
        finally:
            self.injector.revert(active)  # desired capacity back to what it was (2)
        return Injected(active.injected_at, active.inject_span,
                        lambda _: replacement_truth(self.log_dir, old, active.injected_at))

    def _instances(self) -> list[dict[str, Any]]:
        group = self.target.clients("autoscaling", self.region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.asg])["AutoScalingGroups"][0]
        return list(group["Instances"])

    def _capacity_restored(self) -> None:
        wait(lambda: self.target.capacity(self.loop, self.nats).restored, 90,
             "every desired enclave instance to serve", step=0.5)

    def _steady(self, probes: ProbeRunner) -> float:
        """Wait until no probe has failed for a settle window (the criterion recovery is held
        to afterwards, so a baseline that already flaps is never measured); returns the
        median latency of the probes in it."""
        def quiet(results: list[ProbeResult]) -> list[ProbeResult] | None:
            since = time.monotonic() - self.settle
            window = [r for r in results if r.done >= since]
            started = bool(results) and results[0].done <= since
            ok = started and len(window) >= STEADY and all(r.ok for r in window)
            return window if ok else None

        if not probes.wait_for(lambda rs: quiet(rs) is not None, 60 + self.settle):
            last = probes.summary()
            raise NotSteady(f"no steady state: the probes never went {self.settle:g}s without "
                            f"a failure in {60 + self.settle:g}s (last: {last.last} "
                            f"{last.last_detail}); is the machine overloaded?")
        window = quiet(probes.results()) or []
        return statistics.median(r.latency for r in window) if window else float("nan")

    def _recovered(self, probes: ProbeRunner, injected_at: float, span: float) -> Recovery:
        def recovery() -> Recovery:
            return compute_recovery(probes.results(), injected_at, consecutive=K,
                                    interval=self.interval, inject_span=span,
                                    settle=self.settle, observed_until=time.monotonic())

        done = (Verdict.RECOVERED, Verdict.FLAPPING, Verdict.NO_OUTAGE)
        probes.wait_for(lambda _: recovery().verdict in done, 60 + self.settle)
        return recovery()


def _failures_before(results: list[ProbeResult], rec: Recovery,
                     injected_at: float) -> list[ProbeResult]:
    """The failed probes completed between the injection and the measured recovery."""
    if rec.rto is None:
        return []
    end = injected_at + rec.rto
    return [r for r in results if not r.ok and injected_at <= r.done < end]


def _lower_probe(failed: list[ProbeResult]) -> ProbeResult | None:
    """The failed probe whose evidence set the bracket's lower end, as timeline.py takes it:
    the last one sent (an error reply or a timeout proves the service down when it was sent,
    not when it came back)."""
    return max(failed, key=lambda r: r.sent, default=None)


# -- reporting ----------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def print_header(settings: str) -> None:
    print(f"\n{settings}")
    print(f"{'kind':<8} {'path':<4} {'T':>3} {'outage':>6} {'true RTO':>8} {'measured':>8} "
          f"{'error':>7} {'bracket vs truth':>17} {'covered':>7} {'verdict':<10} "
          f"{'p50':>4} {'load':>4}  backlog")


def print_run(run: Run) -> None:
    bracket = run.bracket
    span = ("-" if bracket is None else
            f"[{_ms(bracket[0] - run.truth.earliest)}, {_ms(bracket[1] - run.truth.latest)}]")
    late = run.backlog
    served_late = ("" if late is None else f"{late.count}" if late.last is None else
                   f"{late.count} until {_ms(late.last - run.truth.latest)}")
    print(f"{run.kind:<8} {run.path:<4} "
          f"{'-' if run.duration is None else f'{run.duration:g}':>3} "
          f"{run.truth.at - run.truth.down_at:6.2f} {run.true_rto:8.3f} "
          f"{'-' if run.rto is None else f'{run.rto:.3f}':>8} {_ms(run.error):>7} "
          f"{span:>17} {'yes' if run.covered else 'NO':>7} {run.recovery.verdict:<10} "
          f"{run.latency * 1000:4.0f} {run.load:4.1f}  {served_late}", flush=True)
    if run.covered:
        return
    print(f"    not covered: {run.miss}", flush=True)
    if run.lower_probe is not None:
        p = run.lower_probe
        print(f"    lower end set by probe #{p.seq} ({p.outcome}), sent "
              f"{_ms(p.sent - run.truth.latest)} ms and done {_ms(p.done - run.truth.latest)} "
              f"ms after the truth: {p.detail}", flush=True)


# -- the bench ----------------------------------------------------------------------------
def measure_startups(work: Path, count: int) -> str:
    """`count` twins started and stopped one after the other: their start-up times."""
    times, failures = [], []
    for i in range(count):
        start = time.monotonic()
        try:
            with twin_in(work / f"startup-{i}"):
                times.append(time.monotonic() - start)
        except Exception as exc:  # a failed start-up is a figure too: reported, not fatal
            failures.append(f"{time.monotonic() - start:.1f} s, {type(exc).__name__}: {exc}")
    line = f"twin start-up (process backend, 24 vaults), {len(times)} of {count} runs"
    if times:
        line += (f": median {statistics.median(times):.2f} s, min {min(times):.2f} s, max "
                 f"{max(times):.2f} s (target <= 5 s)")
    return "\n".join([line, *(f"  start-up failed after {why}" for why in failures)])


def plan(args: argparse.Namespace) -> list[tuple[str, str, float | None]]:
    """Every run, interleaved so that drift of the shared machine touches every kind alike."""
    runs: list[tuple[str, str, float | None]] = []
    for rep in range(args.repeat):
        for duration in args.durations:
            runs += [(k, p, duration) for k in args.kinds if k != "capacity" for p in args.paths]
        if "capacity" in args.kinds:
            runs += [("capacity", p, None) for p in args.paths[rep % 2:] + args.paths[:rep % 2]]
    return runs


def measure_accuracy(args: argparse.Namespace, state_dir: Path,
                     journal: Path) -> tuple[list[Run], list[str], list[str]]:
    """Every planned run: the measured ones, and why any other could not be carried out."""
    log_dir = state_dir.parent / "exec-log"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    runs: list[Run] = []
    failed: list[str] = []  # injected, but no measurement or no truth: counted, not covered
    skipped: list[str] = []  # not steady: nothing injected
    with twin_in(state_dir, DRILLS_EXEC_LOG_DIR=str(log_dir)) as twin:
        target = TwinTarget(twin)
        loop = LoopThread("bench-probes")
        bench = Bench(target, loop, journal, log_dir, args.interval, args.timeout)
        try:
            print_header(f"probe interval {args.interval * 1000:g} ms, timeout "
                         f"{args.timeout:g} s, K={K}, settle {bench.settle:g} s. Seconds: T "
                         "(freeze asked), outage (true), RTOs. Milliseconds: error, bracket "
                         "ends vs the true recovery, p50 (probe latency before the fault), "
                         "backlog (requests sent before the thaw that thawed workers executed "
                         "after it: count, until when)")
            for kind, path, duration in plan(args):
                try:
                    run = bench.run(kind, path, duration)
                except NotSteady as exc:
                    skipped.append(f"{kind} via {path}: {exc}")
                    print(f"{kind:<8} {path:<4} SKIPPED: {exc}", flush=True)
                    continue
                except BenchError as exc:  # counted against coverage, never dropped
                    failed.append(f"{kind} via {path}: {exc}")
                    print(f"{kind:<8} {path:<4} NOT CARRIED OUT: {exc}", flush=True)
                    continue
                print_run(run)
                runs.append(run)
        finally:
            bench.close()
            loop.close()
    return runs, failed, skipped


MONTHLY_TIMEOUT = 900.0  # about 2 minutes on a quiet machine; a hung run must not hang us


def monthly_wall_time(work: Path) -> tuple[float, str]:
    """Wall time of `drills run monthly` on a twin of its own, and how it ended. Stopped with
    SIGTERM (it reverts its faults and stops its twin) when it overruns or we are stopped."""
    env = {k: v for k, v in os.environ.items() if k != "DRILLS_EXEC_LOG_DIR"}
    log = work / "monthly.log"
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "drills.cli", "run", "monthly",
                                 "--reports", str(work / "reports"),
                                 "--state-dir", str(work / "monthly")],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout=MONTHLY_TIMEOUT)
            ended = f"exit {code}"
        except subprocess.TimeoutExpired:
            ended = f"stopped after {MONTHLY_TIMEOUT:g} s"
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            manager.down(work / "monthly")  # a no-op unless the run left its twin behind
    return time.monotonic() - start, f"{ended}, output in {log}"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 3.0],
                        help="freeze lengths T in seconds (keep them under two NATS ping "
                             "intervals, 10 s on `fast`, or the server drops the frozen "
                             "workers and the outage changes nature)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per T, kind and path")
    drills = ProbeSettings()  # what a drill probes with, unless told otherwise
    parser.add_argument("--interval", type=float, default=drills.interval,
                        help=f"probe interval in seconds (default: the drills', "
                             f"{drills.interval:g})")
    parser.add_argument("--timeout", type=float, default=drills.timeout,
                        help=f"probe timeout in seconds (default: the drills', "
                             f"{drills.timeout:g})")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--startups", type=int, default=3,
                        help="twin start-ups timed (0: skip)")
    parser.add_argument("--skip-monthly", action="store_true",
                        help="do not time `drills run monthly` (about 2 minutes)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or any(d <= 0 for d in args.durations):
        parser.error("--repeat must be >= 1 and every duration > 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--load" in argv:  # the same outages under load: bench/rto_under_load.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import rto_under_load
        rto_under_load.main([a for a in argv if a != "--load"])
        return
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run every finally: thaw, down
    env_dir = os.environ.get("DRILLS_STATE_DIR")
    state_dir = (Path(env_dir) if env_dir
                 else Path(tempfile.mkdtemp(prefix="drills-bench-")) / "twin").resolve()
    work = state_dir.parent
    journal = Path(os.environ.get("DRILLS_JOURNAL") or work / "journal.jsonl")
    if manager.running_twin(state_dir) is not None:
        raise SystemExit(f"a twin already runs in {state_dir}; the bench starts and stops its "
                         "own: point DRILLS_STATE_DIR elsewhere")

    if args.startups:
        print(measure_startups(work, args.startups), flush=True)

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "(other processes share it: see the load column)", flush=True)
    runs, failed, skipped = measure_accuracy(args, state_dir, journal)
    print(summary(runs), flush=True)
    for why in failed:
        print(f"fault injected but not measured (counted as not covered): {why}")
    for why in skipped:
        print(f"skipped, nothing injected (not counted): {why}")

    if not args.skip_monthly:
        wall, ended = monthly_wall_time(work)
        print(f"\n`drills run monthly` (twin started and stopped by the run): {wall:.1f} s "
              f"wall, {ended}")
    print(last_line(runs, len(failed)))


if __name__ == "__main__":
    main()
