"""The highest request rate the twin's vault API sustains on this machine, under locust.

Rate after rate (`--rates`), a fresh locust (`drills/load/locustfile.py`, the drills' own load)
offers the rate for `--step` seconds: `--users-per-rps` users per request per second, each
paced to act at a fixed rate (the app mix by default: read 75 %, update 20 %, new device 5 %;
`--mix read` for reads only). Every request is recorded by the request listener, as in a drill,
and only those of the measured step count (after the spawn and its enrolments, and
`--warmup` seconds). A rate is sustained when none failed, the p99 latency of all of them is
under `--p99-target` (250 ms), and at least 90 % of the offered rate was achieved (a closed
loop that fell behind did not offer it). `max_rps` is the highest sustained rate, found by
stepping up until two rates in a row are not sustained.

    python bench/load_capacity.py [--rates 10 20 30 ...] [--step 10] [--mix app|read]

It uses the twin running in `--state-dir` (default `$DRILLS_STATE_DIR` or `.drills/twin`)
and leaves it running, or starts one there and stops it after. Locust runs on this machine
too, as it does in `drills run --load`. Its last line:
`load_capacity: max_rps=<x> p99_ms=<y>`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from drills.config import LoadSettings
from drills.load.analysis import percentile
from drills.load.run import dns_of
from drills.load.runner import LocustProcesses
from drills.loop import LoopThread
from drills.target import TwinTarget
from drills.twin import manager
from drills.twin.state import default_state_dir


@dataclass(frozen=True, slots=True)
class Step:
    """What one offered rate achieved."""

    rate: float
    requests: int
    achieved: float  # requests completed per second
    failures: int
    p50_ms: float
    p99_ms: float  # of every request; a failure counts as slower than any answer
    outcomes: dict[str, int]

    def sustained(self, target_ms: float) -> bool:
        return (self.failures == 0 and self.p99_ms < target_ms
                and self.achieved >= 0.9 * self.rate)


def offer(target: TwinTarget, rate: float, args: argparse.Namespace, work: Path) -> Step:
    """Run locust at `rate` requests/s for `args.step` seconds; the figures of that window."""
    users = max(1, math.ceil(rate * args.users_per_rps))
    pace = users / rate  # seconds between one user's actions
    settings = LoadSettings(users=users, spawn_rate=min(users, 20.0), request_timeout=2.0,
                            max_duration=args.step + 300)
    procs = LocustProcesses(settings, target.api_url(), target.ca_bundle(),
                            work / f"rate-{rate:g}", prefix=f"cap-{rate:g}",
                            extra=["--drills-pace", f"{pace:g}", "--drills-mix", args.mix],
                            dns=dns_of(target))
    try:
        procs.start()
        time.sleep(args.warmup)
        start = time.monotonic()
        time.sleep(args.step)
        end = time.monotonic()
        time.sleep(0.8)  # the last records of the window reach the file
        seen = [r for r in procs.log.read().requests if start <= r.at < end]
    finally:
        procs.stop()
    failed = [r for r in seen if not r.ok]
    latencies = [r.latency * 1000 if r.ok else math.inf for r in seen] or [math.inf]
    outcomes: dict[str, int] = {}
    for r in seen:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return Step(rate, len(seen), len(seen) / (end - start), len(failed),
                percentile(latencies, 0.50) or math.inf, percentile(latencies, 0.99) or math.inf,
                outcomes)


def wait_serving(target: TwinTarget, limit: float = 120.0) -> None:
    """Each rate starts from a service that answers its health check again (through the
    apps' own client: the API's name resolved through the twin's DNS)."""
    from drills.vault import VaultUnavailable

    loop = LoopThread("bench-health")
    client = target.api()
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            try:
                loop.run(client.health(2.0), timeout=5)
                time.sleep(2.0)
                return
            except VaultUnavailable:
                time.sleep(0.5)
    finally:
        with contextlib.suppress(Exception):
            loop.run(client.close(), timeout=5)
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[10, 20, 30, 40, 50, 60, 70, 80, 100, 120])
    parser.add_argument("--step", type=float, default=10.0, help="seconds measured per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--users-per-rps", type=float, default=0.5,
                        help="users per request/s (0.5: each user acts every 2 s)")
    parser.add_argument("--mix", choices=["app", "read"], default="app")
    parser.add_argument("--p99-target", type=float, default=250.0, help="milliseconds")
    args = parser.parse_args()

    root = (args.state_dir or default_state_dir()).resolve()
    twin = manager.running_twin(root)
    started = twin is None
    if twin is None:
        print(f"starting a twin in {root}", flush=True)
        twin = manager.up(root)
    target = TwinTarget(twin)
    work = Path(tempfile.mkdtemp(prefix="drills-load-capacity-"))
    best: Step | None = None
    misses = 0
    print(f"mix {args.mix}, {args.step:g} s per rate, records in {work}")
    print(f"{'rate/s':>7} {'reqs':>6} {'done/s':>7} {'p50 ms':>7} {'p99 ms':>7}  outcomes")
    try:
        for rate in args.rates:
            wait_serving(target)
            step = offer(target, rate, args, work)
            p99 = "fail" if math.isinf(step.p99_ms) else f"{step.p99_ms:.0f}"
            print(f"{rate:7g} {step.requests:6d} {step.achieved:7.1f} {step.p50_ms:7.1f} "
                  f"{p99:>7}  {step.outcomes}", flush=True)
            if step.sustained(args.p99_target):
                best, misses = step, 0
            else:
                misses += 1
                if misses >= 2:
                    break
    finally:
        if started:
            manager.down(root)
    max_rps = f"{best.rate:g}" if best else "nan"
    p99_ms = f"{best.p99_ms:.0f}" if best else "nan"
    print(f"load_capacity: max_rps={max_rps} p99_ms={p99_ms}")


if __name__ == "__main__":
    main()
