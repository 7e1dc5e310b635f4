"""Capabilities: what a target declares, what faults and steps need, and that nothing asks
which kind of target it has."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from drills.capabilities import (
    ALL,
    Capability,
    needs,
    skip_reason,
    step_needs,
    tag_needs,
)
from drills.clients import Clients
from drills.environment import Names
from drills.errors import CapabilityMissing
from drills.faults import Fault, KillWorker, SetDesiredCapacity
from drills.faults.nats import KillNodes
from drills.target import TARGETS, Target

ROOT = Path(__file__).resolve().parents[1]
#: Asking which target it has: isinstance with a Target class, or probing for the twin.
ASKS_THE_KIND = re.compile(r"isinstance\([^)]*\b\w*Target\b|(?:get|has)attr\([^)]*[\"']twin[\"']")


def _sources() -> list[Path]:
    """Every module of the library and the step library that may not ask (the twin itself
    and drills/target.py, which implements both kinds, may)."""
    drills = [p for p in (ROOT / "drills").rglob("*.py")
              if "twin" not in p.relative_to(ROOT / "drills").parts[:1]
              and p != ROOT / "drills" / "target.py"]
    return drills + sorted((ROOT / "steps").glob("*.py"))


def test_no_step_or_fault_asks_which_target_it_has() -> None:
    """No module outside drills/twin/ and drills/target.py uses isinstance with a Target
    class or getattr/hasattr(..., "twin"): abilities are asked of the target."""
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in _sources()
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if ASKS_THE_KIND.search(line)]
    assert offenders == []


def test_the_grep_finds_what_it_forbids() -> None:
    """The pattern catches the forms it is there for (so the test above can fail)."""
    for line in ('twin = getattr(drill.target, "twin", None)',
                 "if isinstance(drill.target, TwinTarget):",
                 "hasattr(target, 'twin')"):
        assert ASKS_THE_KIND.search(line), line
    assert not ASKS_THE_KIND.search("isinstance(fault, ScratchKeyDeleted)")


def test_faults_that_reach_the_twin_require_a_capability() -> None:
    """A fault whose code reaches `ctx.twin` declares what it requires, so the injector
    refuses it on a target without it instead of failing with an AttributeError."""
    reaching = [kind for kind in Fault.registry.values()
                if not kind.__module__.startswith("tests")
                and "ctx.twin" in inspect.getsource(kind)]
    assert reaching, "the check looks at the faults that act on the twin"
    assert [k.kind for k in reaching if not k.requires] == []


def test_the_twin_can_do_everything_an_account_nothing_beyond_the_apis() -> None:
    """The capabilities are known from the --target choice, before a target is opened."""
    assert TARGETS["twin"].capabilities == ALL
    assert TARGETS["aws"].capabilities == frozenset()


def test_a_step_needs_what_the_faults_it_names_require_and_what_it_declares() -> None:
    """Step needs come from the fault classes its code names, nested code included, plus
    `@needs`; a step that injects an AWS-only fault needs nothing."""
    def crash(drill: object) -> object:
        return (lambda: KillNodes)()

    @needs(Capability.CONTROL)
    def crash_and_read(drill: object) -> object:
        return KillWorker

    def scale(drill: object) -> object:
        return SetDesiredCapacity

    assert step_needs(crash) == {Capability.PROCESSES}
    assert step_needs(crash_and_read) == {Capability.PROCESSES, Capability.CONTROL}
    assert step_needs(scale) == frozenset()


def test_twin_only_is_a_need_and_the_skip_reason_names_it() -> None:
    """@twin_only needs a disposable system; the reason names the tag and the target."""
    assert tag_needs(["monthly", "twin_only"]) == {Capability.DISPOSABLE}
    assert tag_needs(["monthly"]) == frozenset()
    reason = skip_reason({Capability.DISPOSABLE, Capability.PROCESSES}, "account")
    assert reason == ("needs disposable (@twin_only), processes, which the account target "
                      "lacks; runs on the local twin (--target twin)")


def test_a_target_refuses_what_it_cannot_do_with_the_reason() -> None:
    """Asked for the NATS nodes or the enclave processes, a target without `processes`
    refuses (CapabilityMissing) naming itself and what to do, never an AttributeError."""
    target = Target(Clients(), Names(account_id="123456789012"))
    with pytest.raises(CapabilityMissing, match=r"cannot read the NATS nodes' own monitors: "
                       r"it needs what the abstract target aws:123456789012/us-east-1 cannot "
                       r"do \(processes: .*--target twin"):
        target.nats_cluster()
    with pytest.raises(CapabilityMissing, match="processes"):
        target.enclave_processes()
    with pytest.raises(CapabilityMissing, match="control"):
        target.replication_backlog()
    target.prepare_nats_instances()  # an account has its own: nothing to do
