"""The twin's service capacity, and how fast it serves again after an overload.

Reads (get of a known vault, hash-checked) go through NATS to the twin's enclave workers,
as a client of the vault service would send them:

1. capacity: a fixed read rate for `--step` seconds, rate after rate (`--rates`); at each,
   the p99 latency counts a failed read (busy, error, timeout) as slower than any answer.
   `max_rps` is the highest rate whose p99 stays under `--p99-target` (250 ms).
2. overload: `--burst-rate` reads/s (200, issue 13) for `--burst` seconds, then stop, and
   read every 50 ms (0.5 s timeout, like the drills' probes): recovery is the time from the
   end of the burst to the first successful read.

    python bench/service_capacity.py [--rates 25 50 100 ...] [--step 8] [--burst 20]
                                     [--burst-rate 200] [--skip-capacity]

It uses the twin running in `--state-dir` (default `$DRILLS_STATE_DIR` or `.drills/twin`)
and leaves it running, or starts one there and stops it after. Its last line:
`service_capacity: max_rps=<x> p99_ms=<y> recovery_after_overload_s=<z>`.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drills.loop import LoopThread, Ticker
from drills.twin import manager
from drills.twin.state import default_state_dir
from drills.vault import VaultClient, VaultUnavailable, digest


class KnownVault(Protocol):
    """A vault of the twin's population: its id and content hash."""

    @property
    def vault_id(self) -> str: ...

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Read:
    """One read of the load: when it was sent, how long it took, and how it ended."""

    sent: float
    latency: float
    outcome: str  # "ok", or the VaultUnavailable kind ("busy", "timeout", ...)


@dataclass(frozen=True, slots=True)
class Step:
    """The figures of one offered rate."""

    rate: float
    sent: int
    ok_per_s: float
    p50_ms: float
    p99_ms: float  # inf when more than 1 % of the reads failed
    outcomes: dict[str, int]


class ReadLoad(Ticker):
    """Reads known vaults at a fixed rate, whether or not earlier reads have answered."""

    def __init__(self, loop: LoopThread, client: VaultClient, vaults: Sequence[KnownVault],
                 rate: float, timeout: float) -> None:
        super().__init__(loop, 1.0 / rate, timeout + 5)
        self.client, self.vaults, self.timeout = client, vaults, timeout
        self._reads: list[Read] = []
        self._lock = threading.Lock()

    @property
    def reads(self) -> list[Read]:
        """A snapshot of the reads that have ended, in the order they ended."""
        with self._lock:
            return list(self._reads)

    async def tick(self, seq: int) -> None:
        vault = self.vaults[seq % len(self.vaults)]
        sent = time.monotonic()
        try:
            data = await self.client.get(vault.vault_id, timeout=self.timeout)
            outcome = "ok" if digest(data) == vault.sha256 else "corrupt"
        except VaultUnavailable as exc:
            outcome = str(exc.kind)
        read = Read(sent, time.monotonic() - sent, outcome)
        with self._lock:
            self._reads.append(read)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run_step(loop: LoopThread, client: VaultClient, vaults: Sequence[KnownVault], rate: float,
             seconds: float, timeout: float) -> Step:
    """Offer `rate` reads/s for `seconds`; a failed read counts as infinitely slow."""
    load = ReadLoad(loop, client, vaults, rate, timeout)
    load.start()
    time.sleep(seconds)
    load.stop()
    reads = load.reads
    latencies = [r.latency if r.outcome == "ok" else math.inf for r in reads]
    outcomes: dict[str, int] = {}
    for r in reads:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return Step(rate, len(reads), outcomes.get("ok", 0) / seconds,
                percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, outcomes)


def wait_idle(probe_client: VaultClient, loop: LoopThread, vault: KnownVault,
              limit: float) -> float | None:
    """Seconds until one read succeeds (None if none within `limit`)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            loop.run(probe_client.get(vault.vault_id, timeout=0.5), timeout=5)
            return time.monotonic() - start
        except VaultUnavailable:
            time.sleep(0.05)
    return None


def measure_capacity(loop: LoopThread, client: VaultClient, probe: VaultClient,
                     vaults: Sequence[KnownVault], args: argparse.Namespace) -> Step | None:
    """Rates in increasing order until two in a row miss the p99 target; the best one."""
    best: Step | None = None
    misses = 0
    print(f"{'rate/s':>7} {'sent':>6} {'ok/s':>7} {'p50 ms':>7} {'p99 ms':>7}  outcomes")
    for rate in args.rates:
        wait_idle(probe, loop, vaults[0], 60)  # each rate starts from an idle service
        step = run_step(loop, client, vaults, rate, args.step, args.timeout)
        p99 = "fail" if math.isinf(step.p99_ms) else f"{step.p99_ms:.0f}"
        print(f"{rate:7g} {step.sent:6d} {step.ok_per_s:7.1f} {step.p50_ms:7.1f} {p99:>7}  "
              f"{step.outcomes}", flush=True)
        if step.p99_ms < args.p99_target:
            best, misses = step, 0
        else:
            misses += 1
            if misses >= 2:
                break
    return best


def measure_overload(loop: LoopThread, client: VaultClient, probe: VaultClient,
                     vaults: Sequence[KnownVault], args: argparse.Namespace) -> float | None:
    """Seconds from the end of a `--burst-rate` burst to the first successful read."""
    wait_idle(probe, loop, vaults[0], 60)
    load = ReadLoad(loop, client, vaults, args.burst_rate, args.timeout)
    probes = ReadLoad(loop, probe, vaults, 20, 0.5)  # the drills' probes: 50 ms, 0.5 s
    load.start()
    time.sleep(args.burst)
    stopped = time.monotonic()
    probes.start()  # before stopping the load: stop() waits for the reads in flight
    load.stop()
    counts: dict[str, int] = {}
    for r in load.reads:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    answered = [r.latency * 1000 for r in load.reads if r.outcome == "ok"] or [math.nan]
    print(f"\noverload: {args.burst_rate:g} reads/s for {args.burst:g} s: {counts}; "
          f"{counts.get('ok', 0) / args.burst:.1f} ok/s, successful reads p50 "
          f"{percentile(answered, 0.5):.0f} ms, p99 {percentile(answered, 0.99):.0f} ms",
          flush=True)
    try:
        while not any(r.outcome == "ok" for r in probes.reads):
            if time.monotonic() - stopped > args.recovery_limit:
                print(f"no successful read within {args.recovery_limit:g} s of the burst's end")
                return None
            time.sleep(0.05)
    finally:
        probes.stop()
    first = min(r.sent + r.latency for r in probes.reads if r.outcome == "ok")
    failed = sum(r.outcome != "ok" for r in probes.reads if r.sent < first)
    print(f"first successful read {first - stopped:.3f} s after the burst ended "
          f"({failed} probes failed before it)")
    return first - stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[20, 40, 50, 60, 70, 80, 90, 100, 110, 120, 140, 160, 200])
    parser.add_argument("--step", type=float, default=8.0, help="seconds per rate")
    parser.add_argument("--timeout", type=float, default=0.5, help="per-read timeout (s)")
    parser.add_argument("--p99-target", type=float, default=250.0, help="milliseconds")
    parser.add_argument("--burst-rate", type=float, default=200.0)
    parser.add_argument("--burst", type=float, default=20.0, help="seconds of overload")
    parser.add_argument("--recovery-limit", type=float, default=300.0)
    parser.add_argument("--skip-capacity", action="store_true",
                        help="only the overload burst and the recovery after it")
    args = parser.parse_args()

    root = (args.state_dir or default_state_dir()).resolve()
    twin = manager.running_twin(root)
    started = twin is None
    if twin is None:
        print(f"starting a twin in {root}", flush=True)
        twin = manager.up(root)
    loop = LoopThread("bench")
    try:
        vaults = twin.population()
        client = manager.harness_connection(twin, loop, name="bench-load")
        probe = manager.harness_connection(twin, loop, name="bench-probe")
        best: Step | None = None
        if not args.skip_capacity:
            best = measure_capacity(loop, client, probe, vaults, args)
        recovery = measure_overload(loop, client, probe, vaults, args)
    finally:
        loop.close()
        if started:
            manager.down(root)
    max_rps = f"{best.rate:g}" if best else "nan"
    p99 = f"{best.p99_ms:.0f}" if best else "nan"
    rec = f"{recovery:.2f}" if recovery is not None else "inf"
    print(f"service_capacity: max_rps={max_rps} p99_ms={p99} recovery_after_overload_s={rec}")


if __name__ == "__main__":
    main()
