"""RTO computation from probe observations, including the edge cases."""

from __future__ import annotations

import pytest

from drills.errors import ConfigError
from drills.measure.timeline import Outcome, ProbeResult, Verdict, compute_recovery

INTERVAL = 0.1


def timeline(spec: str, start: float = 0.0, latency: float = 0.01,
             fail: Outcome = Outcome.ERROR) -> list[ProbeResult]:
    """Probes sent every INTERVAL from `start`: '.' success, 'x' failure (error), 't' timeout."""
    out = []
    for i, ch in enumerate(spec):
        sent = start + i * INTERVAL
        outcome = {".": Outcome.OK, "x": fail, "t": Outcome.TIMEOUT}[ch]
        done = sent + (0.5 if outcome is Outcome.TIMEOUT else latency)
        out.append(ProbeResult(i, sent, done, "", outcome, "" if ch == "." else ch))
    return out


def test_recovery_measured_from_injection_to_first_success_of_k_run() -> None:
    """RTO ends at the first success of K consecutive successes after the last failure."""
    probes = timeline("...xxxxx....", start=-0.3)
    rec = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL)
    assert rec.verdict is Verdict.RECOVERED
    # first success after the failures is probe 8, sent at 0.5, answered at 0.51
    assert rec.rto == pytest.approx(0.51)
    # last error sent at 0.40 (answered at 0.41): recovery lies between 0.40 and 0.51
    assert rec.rto_lower == pytest.approx(0.40)
    assert rec.uncertainty == pytest.approx(0.11)
    assert rec.time_to_detect == pytest.approx(0.01)
    assert rec.failures == 5


def test_an_error_reply_proves_the_service_down_only_at_its_send_time() -> None:
    """An error reply is made somewhere between its request's send and its arrival (then
    travels back), so the service may have recovered while it travelled: the bracket's
    lower end is the last failure's send time, never its arrival."""
    slow = timeline("xxx...", latency=0.08)  # each error takes 80 ms to come back
    rec = compute_recovery(slow, injected_at=0.0, consecutive=3, interval=INTERVAL)
    assert rec.rto_lower == pytest.approx(0.20)  # the last error was sent at 0.2
    assert rec.rto == pytest.approx(0.38)  # the first success came back at 0.3 + 0.08


def test_successes_in_flight_when_a_failure_was_sent_do_not_end_the_outage() -> None:
    """Slow successes sent before a fast failure complete after it; ordered by completion
    they look like K successes after it, but they prove nothing of the service after the
    failure was sent: one outage, not a recovery and a second outage (flapping)."""
    def probe(seq: int, sent: float, done: float, ok: bool) -> ProbeResult:
        return ProbeResult(seq, sent, done, "", Outcome.OK if ok else Outcome.ERROR,
                           "" if ok else "no-responders")

    probes = [probe(0, 0.00, 0.02, True), probe(1, 0.10, 0.40, True),
              probe(2, 0.20, 0.42, True), probe(3, 0.30, 0.44, True),
              probe(4, 0.35, 0.36, False),  # the first failure, answered at once
              probe(5, 0.45, 0.46, False), probe(6, 0.55, 0.56, False),
              probe(7, 0.65, 0.67, True), probe(8, 0.75, 0.77, True),
              probe(9, 0.85, 0.87, True)]
    rec = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL)
    assert rec.verdict is Verdict.RECOVERED
    assert len(rec.outages) == 1
    assert rec.rto == pytest.approx(0.67)
    assert rec.rto_lower == pytest.approx(0.55)


def test_timeouts_only_prove_the_service_down_at_their_send_time() -> None:
    """A timed-out probe is evidence of failure at its send time, not at its timeout."""
    probes = timeline("tt...", fail=Outcome.TIMEOUT)
    # the timeouts complete at 0.5 and 0.6, after the successes sent at 0.2..0.4
    rec = compute_recovery(probes, injected_at=0.0, consecutive=2, interval=INTERVAL)
    ordered = sorted(probes, key=lambda p: p.done)
    assert [p.outcome for p in ordered][-2:] == [Outcome.TIMEOUT, Outcome.TIMEOUT]
    # ordered by completion the last observations are failures: not recovered yet
    assert rec.verdict is Verdict.NOT_RECOVERED


def test_no_failure_means_no_outage_with_interval_uncertainty() -> None:
    """With every probe successful the verdict is no-outage and the uncertainty one interval."""
    rec = compute_recovery(timeline("......"), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.verdict is Verdict.NO_OUTAGE
    assert rec.rto == 0.0
    assert rec.uncertainty == INTERVAL
    assert rec.time_to_detect is None


def test_never_recovered_before_the_end_of_observation() -> None:
    """Failures with fewer than K successes after them give not-recovered and no RTO."""
    rec = compute_recovery(timeline("xxxx..x.."), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.verdict is Verdict.NOT_RECOVERED
    assert rec.rto is None
    assert rec.uncertainty is None
    assert rec.time_to_detect == pytest.approx(0.01)


def test_flapping_is_flagged_and_rto_taken_after_the_last_failure() -> None:
    """A service that comes back and fails again recovers only after the last outage."""
    rec = compute_recovery(timeline("xx...xx...."), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.flapping
    assert len(rec.outages) == 2
    assert rec.rto == pytest.approx(0.71)


def test_probes_completed_before_injection_are_ignored() -> None:
    """Failures before the fault are not the fault's outage."""
    rec = compute_recovery(timeline("xx......", start=-0.5), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.verdict is Verdict.NO_OUTAGE


def test_no_data_after_injection() -> None:
    """No probe completed after the fault gives an explicit no-data verdict."""
    rec = compute_recovery(timeline("..."), injected_at=10.0, consecutive=3, interval=INTERVAL)
    assert rec.verdict is Verdict.NO_DATA
    assert rec.rto is None


def test_consecutive_must_be_positive() -> None:
    """K < 1 is a configuration error, not a crash."""
    with pytest.raises(ConfigError, match="consecutive"):
        compute_recovery([], injected_at=0.0, consecutive=0, interval=INTERVAL)


def test_outage_timeline_is_relative_to_injection() -> None:
    """Outages are reported in seconds after the fault, with their first error."""
    rec = compute_recovery(timeline("..xxx...", start=1.0), injected_at=1.0, consecutive=3,
                           interval=INTERVAL)
    (outage,) = rec.outages
    assert outage.start == pytest.approx(0.21)
    assert outage.end == pytest.approx(0.41)
    assert outage.failures == 3
    assert outage.first_detail == "x"


def test_failures_after_k_successes_are_flapping_and_rto_runs_to_the_last_stable_run() -> None:
    """Failures that come back after K successes make the verdict flapping, list both
    outages, and the RTO ends at the first success of the last stable run."""
    rec = compute_recovery(timeline("xx....xx......"), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.verdict is Verdict.FLAPPING
    assert [(o.failures, round(o.start, 2)) for o in rec.outages] == [(2, 0.01), (2, 0.61)]
    assert rec.rto == pytest.approx(0.81)


def test_fewer_than_k_successes_between_failures_are_one_outage() -> None:
    """A success or two inside an outage does not end it: not a recovery, not flapping."""
    rec = compute_recovery(timeline("xx..xx....."), injected_at=0.0, consecutive=3,
                           interval=INTERVAL)
    assert rec.verdict is Verdict.RECOVERED
    (outage,) = rec.outages
    assert outage.failures == 4


def test_a_recovery_counts_only_once_the_settle_window_has_passed() -> None:
    """K successes are not yet a recovery while the settle window has not passed since the
    first of them; once it has, the RTO is that first success."""
    probes = timeline("xxx......")  # first success answered at 0.31, last at 0.81
    early = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL,
                             settle=1.0)
    assert early.verdict is Verdict.NOT_RECOVERED
    assert not early.settled
    later = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL,
                             settle=1.0, observed_until=1.4)
    assert later.verdict is Verdict.RECOVERED
    assert later.rto == pytest.approx(0.31)


def test_the_time_the_fault_took_to_act_widens_the_bracket_at_the_start() -> None:
    """The outage may begin anywhere while the fault acts: the lower end of the bracket moves
    down by that span; the RTO itself still counts from the fault's first action."""
    probes = timeline("xxx...")
    plain = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL)
    spanned = compute_recovery(probes, injected_at=0.0, consecutive=3, interval=INTERVAL,
                               inject_span=0.05)
    assert spanned.rto == plain.rto
    assert spanned.rto_lower == pytest.approx(plain.rto_lower - 0.05)
    assert spanned.uncertainty == pytest.approx(plain.uncertainty + 0.05)


def test_with_no_outage_the_uncertainty_includes_the_time_the_fault_took() -> None:
    """No failure seen: an outage shorter than one interval, plus the acting time, may hide."""
    rec = compute_recovery(timeline("....."), injected_at=0.0, consecutive=3,
                           interval=INTERVAL, inject_span=0.02)
    assert rec.verdict is Verdict.NO_OUTAGE
    assert rec.uncertainty == pytest.approx(INTERVAL + 0.02)
