"""How accurate is the measured RTO? Ground truth from outages of known length.

Every enclave worker is frozen with SIGSTOP (a journaled FreezeWorkers fault) for exactly
T seconds and thawed; the probes measure the outage as a drill would. The error is
measured RTO minus the true outage (thaw time - freeze time). Also prints the twin's
start-up time and the wall time of `drills run monthly`.

    python bench/rto_accuracy.py [--durations 1 2 3 5] [--repeat 5] [--interval 0.05]

Target (issue 2): |error| <= 100 ms at p95 with a 50 ms probe interval; start-up <= 5 s
with the process backend; `drills run monthly` <= 60 s with the fast profile.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drills.config import ProbeSettings
from drills.faults import AllowList, FaultInjector, FreezeWorkers
from drills.journal import Journal
from drills.loop import LoopThread
from drills.measure import Verdict, compute_recovery
from drills.measure.probes import ProbeRunner
from drills.target import TwinTarget
from drills.twin import manager

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_startups(work: Path, count: int) -> list[float]:
    times = []
    for i in range(count):
        start = time.monotonic()
        manager.up(work / f"startup-{i}", vaults=24)
        times.append(time.monotonic() - start)
        manager.down(work / f"startup-{i}")
    return times


def one_outage(target: TwinTarget, injector: FaultInjector, probes: ProbeRunner,
               duration: float, settings: ProbeSettings) -> tuple[float, float, float]:
    """Freeze all workers for `duration`; return (true outage, measured RTO, uncertainty)."""
    steady_from = time.monotonic()
    assert probes.wait_for(
        lambda rs: sum(r.ok for r in rs if r.done >= steady_from) >= 5, 30), "not steady"
    active = injector.inject(FreezeWorkers(target.fault_context(), {
        "asg": target.twin.state.primary.asg, "region": "us-east-1", "count": 2}))
    frozen_at = active.injected_at
    time.sleep(max(0.0, frozen_at + duration - time.monotonic()))  # ground truth: exact T
    injector.revert(active)
    thawed_at = time.monotonic()

    def done(results: list) -> bool:  # type: ignore[type-arg]
        rec = compute_recovery(results, frozen_at, consecutive=settings.consecutive,
                               interval=settings.interval)
        return rec.verdict is Verdict.RECOVERED

    assert probes.wait_for(done, 60), "did not recover"
    rec = compute_recovery(probes.results(), frozen_at, consecutive=settings.consecutive,
                           interval=settings.interval)
    assert rec.rto is not None
    assert rec.uncertainty is not None
    return thawed_at - frozen_at, rec.rto, rec.uncertainty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--startups", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drills-bench-"))

    startups = measure_startups(work, args.startups)
    print(f"twin start-up (process backend, 24 vaults), {len(startups)} runs: "
          f"median {statistics.median(startups):.2f} s, min {min(startups):.2f} s, "
          f"max {max(startups):.2f} s")

    twin = manager.up(work / "twin")
    target = TwinTarget(twin)
    settings = ProbeSettings(interval=args.interval, timeout=args.timeout, consecutive=3)
    loop = LoopThread()
    probes = ProbeRunner(loop, target.connect(loop), target.known_vaults(), settings)
    injector = FaultInjector(Journal(work / "journal.jsonl"), "bench", target.env_id,
                             AllowList({"asg": (twin.state.primary.asg,)}))
    probes.start()
    errors: list[float] = []
    print(f"\nprobe interval {args.interval * 1000:g} ms, timeout {args.timeout:g} s, K=3")
    print(f"{'true T (s)':>10} {'measured (s)':>12} {'error (ms)':>10} {'± (ms)':>7}")
    try:
        for duration in args.durations:
            for _ in range(args.repeat):
                true, measured, unc = one_outage(target, injector, probes, duration, settings)
                errors.append(measured - true)
                print(f"{true:10.3f} {measured:12.3f} {(measured - true) * 1000:10.1f} "
                      f"{unc * 1000:7.1f}")
    finally:
        probes.stop()
        loop.close()
        manager.down(work / "twin")
    abs_ms = [abs(e) * 1000 for e in errors]
    print(f"\nerror over {len(errors)} outages: mean {statistics.mean(errors) * 1000:.1f} ms, "
          f"median {statistics.median(errors) * 1000:.1f} ms, p95 |error| "
          f"{percentile(abs_ms, 0.95):.1f} ms, max |error| {max(abs_ms):.1f} ms "
          f"(target p95 <= 100 ms)")

    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "drills.cli", "run", "monthly", "--reports",
                             str(work / "reports"), "--state-dir", str(work / "monthly")],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    print(f"\n`drills run monthly` (twin started and stopped by the run): "
          f"{time.monotonic() - start:.1f} s wall, exit {result.returncode} (target <= 60 s)")


if __name__ == "__main__":
    main()
