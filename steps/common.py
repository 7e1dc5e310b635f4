"""Steps every drill uses: steady state, probes, failure expectations, measured recovery."""

from __future__ import annotations

from pytest_bdd import given, parsers, then

from drills.drill import Drill

STEADY_TIMEOUT = 60.0
DETECT_TIMEOUT = 60.0


@given("vault probes are running")
def probes_running(drill: Drill) -> None:
    """Start synthetic vault reads (interval, timeout and K from the objectives file)."""
    drill.start_probes()


@given("the vault service is healthy")
def service_healthy(drill: Drill) -> None:
    """Steady-state hypothesis: the ASG serves at desired capacity and K probes in a row pass."""
    drill.start_probes()
    drill.wait_until_serving(STEADY_TIMEOUT)


@given("a canary writer makes acknowledged vault writes")
def canary_running(drill: Drill) -> None:
    """Start acknowledged canary writes; every acknowledged one must survive (RPO)."""
    drill.start_canary()


@given(parsers.parse("the canary has made {count:d} acknowledged writes"))
def canary_has_written(drill: Drill, count: int) -> None:
    """Wait for `count` acknowledged canary writes, so the RPO check covers writes made
    before the fault, not only after it."""
    drill.wait_for_canary(count, STEADY_TIMEOUT)


@then(parsers.parse('no acknowledged vault write is lost (the "{component}" RPO objective)'))
def no_write_lost(drill: Drill, component: str) -> None:
    """Read every acknowledged canary write back; lost or corrupted ones breach the RPO."""
    drill.measure_rpo(component)


@then(parsers.parse('vault operations fail with "{kind}"'))
def operations_fail(drill: Drill, kind: str) -> None:
    """The fault is visible to clients: a probe fails with `kind` (e.g. "no-responders")."""
    drill.wait_for_failure(kind, DETECT_TIMEOUT)


@then(parsers.parse('vault operations recover within the "{component}" objective'))
def operations_recover(drill: Drill, component: str) -> None:
    """Measured service RTO (from probes) is within the component's objective."""
    drill.assert_met(drill.measure_service(component))
