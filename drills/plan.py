"""The plan of a dry run (`drills run --dry-run`): per drill, the faults its steps would
inject with the calls they make and what they act on, and the procedures its recovery would
run; per run, the AWS calls the planning made (reads only, or the run fails).

Types only, with their JSON and text forms; `drills.dryrun` makes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Where a call goes, besides an AWS service ("autoscaling:SetDesiredCapacity"): the twin's
#: processes ("process:SIGKILL enclave worker") and its AWS endpoint's control routes
#: ("twin:regions/isolate").
NOT_AWS = ("process", "twin")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """One fault a step would inject: what, on what, and the calls inject() and revert()
    make (`resolved`: False when the target is only known once the drill runs)."""

    kind: str
    target_kind: str
    target: str
    region: str
    action: str
    calls: tuple[str, ...]
    revert_calls: tuple[str, ...]
    requires: tuple[str, ...] = ()
    resolved: bool = True
    note: str = ""

    def lines(self) -> Iterator[str]:
        """The fault in words, then each call on its target."""
        where = "" if self.resolved else f" (resolved when the drill runs: {self.note})"
        yield f"fault {self.kind}: {self.action}{where}"
        for call in self.calls:
            yield f"  inject  {call} on {self.target_kind} {self.target} in {self.region}"
        for call in self.revert_calls:
            yield f"  revert  {call} on {self.target_kind} {self.target} in {self.region}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step of a drill: what it does in a sentence, the faults it injects and the
    runbook procedures it runs; `problem`: why the real run would fail at it."""

    keyword: str
    text: str
    summary: str
    faults: tuple[FaultPlan, ...] = ()
    procedures: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class DrillPlan:
    """A drill's plan, or why it would be skipped (`skipped`)."""

    drill_id: str
    feature: str
    scenario: str
    steps: tuple[StepPlan, ...] = ()
    skipped: str | None = None

    @property
    def faults(self) -> list[FaultPlan]:
        return [fault for step in self.steps for fault in step.faults]

    @property
    def problems(self) -> list[str]:
        return [f"'{s.keyword} {s.text}': {s.problem}" for s in self.steps if s.problem]

    def lines(self) -> Iterator[str]:
        """The drill as the terminal and plan.txt show it."""
        if self.skipped is not None:
            yield f"skip  {self.feature} :: {self.scenario}: {self.skipped}"
            return
        yield f"plan  {self.feature} :: {self.scenario}"
        for step in self.steps:
            yield f"  {step.keyword} {step.text}"
            yield f"      {step.summary}" if step.summary else "      (no docstring)"
            for fault in step.faults:
                yield from (f"      {line}" for line in fault.lines())
            for procedure in step.procedures:
                yield f"      procedure {procedure}"
            if step.problem:
                yield f"      WOULD FAIL: {step.problem}"


@dataclass(slots=True)
class RunPlan:
    """Every drill's plan and the AWS calls planning made, by "service:Operation"."""

    run_id: str
    target: dict[str, Any]
    drills: list[DrillPlan] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)
    mutating: dict[str, int] = field(default_factory=dict)

    @property
    def mutating_calls(self) -> int:
        return sum(self.mutating.values())

    @property
    def problems(self) -> list[str]:
        return [f"{d.feature} :: {d.scenario}: {p}" for d in self.drills for p in d.problems]

    def summary(self) -> str:
        """One line: what was planned and the calls it took."""
        planned = [d for d in self.drills if d.skipped is None]
        return (f"dry run: {len(planned)} drills planned, {len(self.drills) - len(planned)} "
                f"skipped, {sum(len(d.faults) for d in planned)} faults; "
                f"{sum(self.reads.values())} read calls, {self.mutating_calls} mutating calls; "
                "nothing was injected")

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dry_run": True, "target": self.target,
                "calls": {"read": dict(sorted(self.reads.items())),
                          "mutating": dict(sorted(self.mutating.items()))},
                "drills": [asdict(d) for d in self.drills]}

    def write(self, folder: Path) -> Path:
        """plan.json and plan.txt into `folder`; returns plan.json's path."""
        folder.mkdir(parents=True, exist_ok=True)
        text = [line for d in self.drills for line in d.lines()]
        text += [f"mutating call {name}: {n}" for name, n in sorted(self.mutating.items())]
        (folder / "plan.txt").write_text("\n".join([*text, self.summary(), ""]),
                                         encoding="utf-8")
        path = folder / "plan.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path
