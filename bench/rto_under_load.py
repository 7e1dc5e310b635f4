"""How accurate is the measured RTO when the service is under load? The same outages measured
without load and with locust's simulated apps at half the API's capacity.

Each outage: every enclave worker of the twin (`Twin.worker_pids()`) is frozen with SIGSTOP
for T seconds and thawed with SIGCONT; probes (every `--interval`, timeout `--timeout`: the
drills' defaults; K=3, the twin's settle window) measure it through `--path` (the apps' API
by default, as a drill does) with `compute_recovery`. Ground truth, as bench/truth.py takes
it (`thaw_truth`): `time.monotonic()` read immediately before the first `os.kill(SIGSTOP)`
(the origin, as the fault injector takes it) and immediately around the `os.kill(SIGCONT)`s,
then the workers' own logs ($DRILLS_EXEC_LOG_DIR): under load a thawed worker's queue fills
with the requests sent while it was frozen, and a request it refuses then is an outage
after the SIGCONT; the service is back at the last such refusal. error = measured recovery
(origin + RTO) - the truth; a run is covered when the whole truth window lies inside the
stated bracket [origin + rto_lower, origin + rto].

The load: `drills/load/locustfile.py` (the drills' own apps: read 75 %, update 20 %, new
device 5 %), paced to `--capacity` / 2 requests per second for the whole loaded phase.
`--capacity` is `bench/load_capacity.py`'s max_rps; without it, that search runs first.

    python bench/rto_under_load.py [--capacity 30] [--durations 1 3] [--repeat 3]
                                   [--path api|nats] [--skip-baseline]

Uses the twin in `--state-dir` (default $DRILLS_STATE_DIR or .drills/twin), or starts one
there (its workers logging to a temporary directory) and stops it after; a running twin
whose workers log nothing is measured against the SIGCONTs alone, and the bench says so.
Its last line:
`rto_accuracy_under_load: p95_abs_error_ms=<x> coverage=<k>/<n>`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills.config import LoadSettings, ProbeSettings
from drills.load.run import dns_of
from drills.load.runner import LocustProcesses
from drills.loop import LoopThread
from drills.measure import Recovery, Verdict, compute_recovery
from drills.measure.probes import ProbeRunner
from drills.target import TwinTarget
from drills.twin import manager, timing
from drills.twin.state import default_state_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth import Mark, Truth, exec_log_dir, kill_marked, thaw_truth, twin_in

STEADY = 10  # probes in a row that must have succeeded before a fault


class BenchError(Exception):
    """A run could not be carried out (no steady state, no recovery)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One freeze, measured, beside its truth (monotonic times)."""

    loaded: bool
    duration: float
    origin: float  # just before the first SIGSTOP
    truth: Truth
    recovery: Recovery

    @property
    def error(self) -> float | None:
        rto = self.recovery.rto
        return None if rto is None else self.origin + rto - self.truth.at

    @property
    def covered(self) -> bool:
        rec = self.recovery
        if rec.rto is None or rec.rto_lower is None:
            return False
        return self.truth.inside(self.origin + rec.rto_lower, self.origin + rec.rto)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def freeze(pids: Sequence[int], duration: float) -> tuple[list[Mark], list[Mark]]:
    """SIGSTOP every pid for `duration`, then SIGCONT; the marks of both."""
    stops: list[Mark] = []
    conts: list[Mark] = []
    try:
        for pid in pids:
            stops.append(kill_marked(pid, signal.SIGSTOP))
        time.sleep(max(0.0, stops[0].before + duration - time.monotonic()))
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                conts.append(kill_marked(pid, signal.SIGCONT))
    return stops, conts


class Bench:
    """Freezes on one twin, measured by probes on one path."""

    def __init__(self, target: TwinTarget, loop: LoopThread, path: str, interval: float,
                 timeout: float) -> None:
        self.target, self.loop, self.path = target, loop, path
        self.client: Any = target.api() if path == "api" else target.connect(loop, "bench")
        self.settings = ProbeSettings(interval, timeout, 3)
        self.vaults = target.known_vaults()
        self.log_dir = exec_log_dir(target.twin.worker_pids().values())
        # Who sent the work the enclaves queue, and how long it waits: the API's Lambda (its
        # own timeout, whatever the app's) or, on the NATS path, the probe itself.
        self.caller_timeout = (timing.profile(target.twin.state.profile).lambda_timeout
                               if path == "api" else timeout)

    def close(self) -> None:
        closing = self.client.close() if self.path == "api" else self.client.nc.close()
        with contextlib.suppress(Exception):
            self.loop.run(closing, timeout=5)

    def run(self, duration: float, loaded: bool) -> Run:
        twin = self.target.twin
        probes = ProbeRunner(self.loop, self.client, self.vaults, self.settings)
        probes.start()
        try:
            if not probes.wait_for(lambda rs: len(rs) >= STEADY
                                   and all(r.ok for r in rs[-STEADY:]), 90):
                raise BenchError(f"no steady state: {probes.summary().last_detail}")
            workers = twin.worker_pids()
            stops, conts = freeze(list(workers.values()), duration)
            origin = stops[0].before

            def recovery() -> Recovery:
                return compute_recovery(probes.results(), origin, consecutive=3,
                                        interval=self.settings.interval,
                                        settle=self.target.settle,
                                        observed_until=time.monotonic())

            done = (Verdict.RECOVERED, Verdict.FLAPPING, Verdict.NO_OUTAGE)
            probes.wait_for(lambda _: recovery().verdict in done, 60 + self.target.settle)
            truth = thaw_truth(stops, conts, workers, self.log_dir, self.caller_timeout)
            return Run(loaded, duration, origin, truth, recovery())
        finally:
            probes.stop()


def series(bench: Bench, durations: Sequence[float], repeat: int, loaded: bool) -> list[Run]:
    runs = []
    print(f"\n{'load' if loaded else 'no load'}: {'T':>3} {'true':>6} {'measured':>8} "
          f"{'error ms':>8} {'covered':>7} {'verdict':<10} truth", flush=True)
    for duration in durations:
        for _ in range(repeat):
            try:
                run = bench.run(duration, loaded)
            except BenchError as exc:
                print(f"         {duration:3g}  {exc}", flush=True)
                continue
            rto = run.recovery.rto
            print(f"         {duration:3g} {run.truth.at - run.origin:6.3f} "
                  f"{'-' if rto is None else f'{rto:.3f}':>8} "
                  f"{'-' if run.error is None else f'{run.error * 1000:.1f}':>8} "
                  f"{'yes' if run.covered else 'NO':>7} {run.recovery.verdict:<10} "
                  f"{run.truth.source}", flush=True)
            runs.append(run)
    return runs


def summary(runs: Sequence[Run], expected: int) -> tuple[float, int, int]:
    """(p95 |error| ms, covered, runs asked for): a run that did not happen is uncovered."""
    errors = [abs(r.error) * 1000 for r in runs if r.error is not None]
    p95 = percentile(errors, 0.95) if errors else math.nan
    return p95, sum(r.covered for r in runs), expected


def measure_capacity(state_dir: Path) -> float:
    """bench/load_capacity.py's max_rps on the same twin."""
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("load_capacity.py")),
                          "--state-dir", str(state_dir)], capture_output=True, text=True,
                         check=False)
    print(out.stdout, end="", flush=True)
    last = (out.stdout.strip().splitlines() or [""])[-1]
    try:
        return float(last.split("max_rps=")[1].split()[0])
    except (IndexError, ValueError):
        raise SystemExit(f"load_capacity did not report a capacity: {last!r} "
                         f"{out.stderr[-500:]}") from None


def measure(args: argparse.Namespace, target: TwinTarget, capacity: float,
            work: Path) -> tuple[list[Run], list[Run], list[Any]]:
    """The runs without load (unless skipped) and with it, and the load's requests."""
    rate = capacity / 2
    loop = LoopThread("bench")
    bench = Bench(target, loop, args.path, args.interval, args.timeout)
    print(f"probes every {args.interval * 1000:g} ms on the {args.path} path, timeout "
          f"{args.timeout:g} s, K=3, settle {target.settle:g} s; load {rate:g} requests/s "
          f"(half of {capacity:g}); records in {work}", flush=True)
    if bench.log_dir is None:
        print("the twin's workers log nothing ($DRILLS_EXEC_LOG_DIR unset when it started): "
              "the truth is the SIGCONTs alone, blind to refusals after them", flush=True)
    procs: LocustProcesses | None = None
    try:
        baseline = [] if args.skip_baseline else series(bench, args.durations, args.repeat,
                                                        False)
        users = max(1, math.ceil(rate / 2))  # each app acts every 2 s
        procs = LocustProcesses(
            LoadSettings(users=users, spawn_rate=min(users, 20.0), request_timeout=2.0,
                         max_duration=3600), target.api_url(), target.ca_bundle(), work,
            prefix="rto-load", extra=["--drills-pace", f"{users / rate:g}"],
            dns=dns_of(target))
        procs.start()
        loaded = series(bench, args.durations, args.repeat, True)
        return baseline, loaded, procs.log.read().requests
    finally:
        if procs is not None:
            procs.stop()
        bench.close()
        loop.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--capacity", type=float, default=None,
                        help="the API's capacity in requests/s (default: measure it)")
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--interval", type=float, default=ProbeSettings().interval,
                        help="seconds between probes (default: the drills' own)")
    parser.add_argument("--timeout", type=float, default=ProbeSettings().timeout)
    parser.add_argument("--path", choices=["api", "nats"], default="api")
    parser.add_argument("--skip-baseline", action="store_true", help="only the loaded runs")
    args = parser.parse_args(argv)

    root = (args.state_dir or default_state_dir()).resolve()
    work = Path(tempfile.mkdtemp(prefix="drills-rto-under-load-"))
    with contextlib.ExitStack() as stack:
        twin = manager.running_twin(root)
        if twin is None:
            print(f"starting a twin in {root}", flush=True)
            (work / "exec").mkdir()
            twin = stack.enter_context(twin_in(root, DRILLS_EXEC_LOG_DIR=str(work / "exec")))
        capacity = args.capacity if args.capacity is not None else measure_capacity(root)
        baseline, loaded, seen = measure(args, TwinTarget(twin), capacity, work)
    expected = len(args.durations) * args.repeat
    span = (seen[-1].at - seen[0].at) if len(seen) > 1 else math.nan
    print(f"\nload: {len(seen)} requests, {len(seen) / span:.1f}/s, "
          f"{sum(not r.ok for r in seen)} failed (the outages included)")
    if baseline:
        p95, covered, n = summary(baseline, expected)
        print(f"without load: p95 |error| {p95:.1f} ms, coverage {covered}/{n}, median error "
              f"{statistics.median(r.error or 0 for r in baseline) * 1000:.1f} ms")
    p95, covered, n = summary(loaded, expected)
    print(f"under load:   p95 |error| {p95:.1f} ms, coverage {covered}/{n}")
    print(f"rto_accuracy_under_load: p95_abs_error_ms={p95:.1f} coverage={covered}/{n}")


if __name__ == "__main__":
    main()
