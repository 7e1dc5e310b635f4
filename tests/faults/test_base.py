"""The fault lifecycle: allow-list, journal before acting, revert, rollback after a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from drills.capabilities import ALL, Capability
from drills.clients import Clients
from drills.config import TARGET_KINDS
from drills.errors import CapabilityMissing, FaultError, TargetNotAllowed
from drills.faults import AllowList, Fault, FaultContext, FaultInjector, rollback
from drills.journal import FaultState, Journal

EVENTS: list[str] = []


class Switch(Fault):
    """A pure-logic fault: flips a flag in a module-level list (no system touched)."""

    kind = "test.switch"
    target_kind = "switch"
    journal_seen: ClassVar[list[int]] = []

    @property
    def target(self) -> str:
        return str(self.params["name"])

    def describe(self) -> str:
        return f"flip switch {self.target}"

    def prepare(self) -> None:
        self.params["before"] = "off"

    def inject(self) -> None:
        path = Path(self.params["journal"])
        # Journaled before acting: the injecting line must already be on disk.
        self.journal_seen.append(len(Journal(path).pending()))
        if self.params.get("explode"):
            raise RuntimeError("switch jammed")
        EVENTS.append(f"on:{self.target}")
        if self.params.get("interrupt"):  # SIGTERM lands as inject() finishes
            raise KeyboardInterrupt

    def revert(self) -> None:
        EVENTS.append(f"off:{self.target}")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Journal, FaultContext, FaultInjector]:
    EVENTS.clear()
    Switch.journal_seen.clear()
    journal = Journal(tmp_path / "journal.jsonl")
    ctx = FaultContext(Clients())
    injector = FaultInjector(journal, "run-1", "env-a", AllowList({"switch": ("s1",)}))
    return journal, ctx, injector


def switch(ctx: FaultContext, journal: Journal, name: str = "s1", **extra: Any) -> Switch:
    return Switch(ctx, {"name": name, "journal": str(journal.path), **extra})


class ProcessSwitch(Switch):
    """A switch on a process of the service: only a target with `processes` has one."""

    kind = "test.process-switch"
    requires = frozenset({Capability.PROCESSES})


def test_a_fault_the_target_cannot_carry_out_is_refused_before_anything(setup: Any) -> None:
    """A fault requiring a capability the target lacks is refused (CapabilityMissing, exit 2)
    naming what is missing, where, and what to do: not prepared, journaled or injected."""
    journal, _, injector = setup
    account = FaultContext(Clients(), target="the account target aws:123456789012/us-east-1")
    fault = ProcessSwitch(account, {"name": "s1", "journal": str(journal.path)})
    with pytest.raises(CapabilityMissing, match=r"test\.process-switch: it needs what the "
                       r"account target aws:123456789012/us-east-1 cannot do \(processes: "
                       r".*--target twin") as refused:
        injector.inject(fault)
    assert refused.value.exit_code == 2
    assert "before" not in fault.params, "refused before prepare()"
    assert EVENTS == []
    assert Switch.journal_seen == []
    assert not journal.path.exists(), "nothing journaled"
    assert injector.active == []


def test_a_fault_runs_where_its_capabilities_are(setup: Any) -> None:
    """The same fault on a target declaring `processes` is journaled and injected."""
    journal, _, injector = setup
    active = injector.inject(ProcessSwitch(FaultContext(Clients(), capabilities=ALL),
                                           {"name": "s1", "journal": str(journal.path)}))
    assert EVENTS == ["on:s1"]
    assert Switch.journal_seen == [1]
    injector.revert(active)


def test_rollback_on_a_target_without_the_capability_leaves_the_fault_pending(
        setup: Any) -> None:
    """A pending fault that needs what this target cannot do is not reverted here: the
    journal says why and keeps it for a rollback where it can be."""
    journal, _, _ = setup
    fault_id = journal.record_injecting("test.process-switch", "s1",
                                        {"name": "s1", "journal": str(journal.path)}, "r", "env-a")
    (result,) = rollback(journal, FaultContext(Clients(), target="the account target"), "env-a")
    assert not result.reverted
    assert "processes" in str(result.error)
    assert EVENTS == []
    assert [e.fault_id for e in journal.pending()] == [fault_id]


def test_fault_is_journaled_before_it_acts_and_reverted(setup: Any) -> None:
    """inject() runs only after the journal holds the fault; revert marks it done."""
    journal, ctx, injector = setup
    active = injector.inject(switch(ctx, journal))
    assert Switch.journal_seen == [1]
    assert journal.pending()[0].params["before"] == "off"
    injector.revert(active)
    assert EVENTS == ["on:s1", "off:s1"]
    assert journal.pending() == []
    assert active.reverted_utc is not None


def test_target_not_on_allow_list_is_refused_before_journaling(setup: Any) -> None:
    """A target outside the allow-list raises TargetNotAllowed and nothing is written."""
    journal, ctx, injector = setup
    with pytest.raises(TargetNotAllowed, match=r"not allowed.*\[allow\] switch"):
        injector.inject(switch(ctx, journal, name="s2"))
    assert EVENTS == []
    assert journal.entries() == []


def test_failed_injection_is_reverted_and_reported(setup: Any) -> None:
    """An inject() that raises is reverted at once and surfaces as FaultError."""
    journal, ctx, injector = setup
    with pytest.raises(FaultError, match="could not flip switch s1: switch jammed"):
        injector.inject(switch(ctx, journal, explode=True))
    assert EVENTS == ["off:s1"]
    assert journal.entries()[0].state is FaultState.REVERTED


def test_an_injection_interrupted_before_it_is_registered_is_reverted(setup: Any) -> None:
    """SIGTERM (a KeyboardInterrupt) as inject() acts: nobody else knows the fault yet, so
    the injector reverts it before the interruption goes on."""
    journal, ctx, injector = setup
    with pytest.raises(KeyboardInterrupt):
        injector.inject(switch(ctx, journal, interrupt=True))
    assert EVENTS == ["on:s1", "off:s1"]
    assert journal.entries()[0].state is FaultState.REVERTED
    assert injector.active == []


def test_rollback_reverts_what_a_killed_run_left(setup: Any) -> None:
    """Pending faults of this env are rebuilt from the journal and reverted, newest first."""
    journal, ctx, injector = setup
    injector.inject(switch(ctx, journal))
    # the run dies here: no revert. A later process rolls back.
    results = rollback(Journal(journal.path), ctx, "env-a")
    assert [r.reverted for r in results] == [True]
    assert EVENTS == ["on:s1", "off:s1"]
    assert journal.pending() == []


def test_rollback_abandons_faults_of_twins_that_are_gone(setup: Any) -> None:
    """A pending fault of another twin is marked abandoned, never reverted on this one."""
    journal, ctx, _ = setup
    fid = journal.record_injecting("test.switch", "s1", {"name": "s1"}, "old", "twin:/x@t0")
    (result,) = rollback(journal, ctx, "twin:/x@t1")
    assert result.abandoned
    assert not result.reverted
    assert journal.entries()[0].fault_id == fid
    assert journal.entries()[0].state is FaultState.ABANDONED
    assert EVENTS == []


def test_unknown_kind_in_journal_fails_clearly(setup: Any) -> None:
    """An entry whose kind this version does not know is reported, not crashed on."""
    journal, ctx, _ = setup
    journal.record_injecting("nope.kind", "x", {}, "r", "env-a")
    (result,) = rollback(journal, ctx, "env-a")
    assert not result.reverted
    assert "unknown fault kind" in (result.error or "")
    assert journal.pending()[0].state is FaultState.REVERT_FAILED


class NeedsFirst(Switch):
    """A fault whose revert needs s1 reverted first (as failback needs the region back)."""

    kind = "test.needs-first"

    def revert(self) -> None:
        if "off:s1" not in EVENTS:
            raise RuntimeError("s1 is still on")
        EVENTS.append(f"off:{self.target}")


def test_a_revert_that_needs_an_older_one_first_is_retried_after_it(setup: Any) -> None:
    """Newest first fails (it needs s1 back), the older one reverts, then the retry works:
    at the end of a run and in rollback from the journal alike."""
    journal, ctx, injector = setup
    allow = AllowList({"switch": ("s1", "s2")})
    for reverter in ("run", "rollback"):
        EVENTS.clear()
        injector = FaultInjector(journal, "run-1", "env-a", allow)
        injector.inject(switch(ctx, journal))
        injector.inject(NeedsFirst(ctx, {"name": "s2", "journal": str(journal.path)}))
        if reverter == "run":
            assert injector.revert_all() == []
        else:
            assert [r.reverted for r in rollback(journal, ctx, "env-a")] == [True, True]
        assert EVENTS == ["on:s1", "on:s2", "off:s1", "off:s2"]
        assert journal.pending() == []


def test_the_allow_list_knows_every_kind_of_target_a_fault_acts_on() -> None:
    """`[allow]` in the objectives file refuses keys that are not target kinds (a typo would
    leave its targets unlisted): its kinds are exactly those of the library's faults."""
    kinds = {cls.target_kind for cls in Fault.registry.values()
             if cls.__module__.startswith("drills.faults.")}
    assert kinds == TARGET_KINDS

