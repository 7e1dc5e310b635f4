"""Dry runs (`drills run --dry-run`): every selected drill planned, nothing done.

- `CallGuard` hooks every boto3 client of the run (botocore's `before-call` event): it counts
  each call by "service:Operation" and refuses, before it is sent, any that is not a read
  (`is_read`: an explicit rule, below). A refused call is a `DryRunViolation` and fails the
  drill being planned, and the run.
- `plan_drill` walks a drill's steps without running them. A step whose code names a fault
  class is called with a `PlanningDrill`: it reads what it needs (the ASG's name, the
  sealing key's ARN) through the guarded clients, and its `drill.inject(...)` builds the
  fault, checks the allow-list and what the target can do, runs the fault's `prepare()`
  when that only reads, and stops the step with the fault's `plan()`. A step that needs what
  only a running drill has (probes, the canary, what an earlier step made) is planned from
  the fault class alone, its target marked as resolved when the drill runs. Every other step
  is described by its docstring and the runbook procedures its code calls.

Nothing here starts a twin, journals, injects, probes or writes to the service.
"""

from __future__ import annotations

import inspect
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import pytest
from pytest_bdd.parser import Step
from pytest_bdd.scenario import parse_step_arguments
from pytest_bdd.steps import StepFunctionContext

from drills.boundary import explain
from drills.capabilities import referenced, referenced_faults
from drills.clients import Clients
from drills.errors import DryRunViolation
from drills.faults.base import AllowList, BlastRadius, Fault
from drills.plan import DrillPlan, FaultPlan, StepPlan
from drills.stepdoc import first_sentence
from drills.target import Target

#: Operations that only read, by the start of their name (botocore's operation names).
READ_PREFIXES = ("Describe", "Get", "List", "Head", "BatchGet", "Select", "Lookup", "Search",
                 "Test", "Filter")
#: Operations that only read, named whole.
READ_OPERATIONS = frozenset({"Query", "Scan"})


def is_read(operation: str) -> bool:
    """Whether an AWS operation ("DescribeAutoScalingGroups") only reads: its name starts
    with a read verb of READ_PREFIXES (a whole word: "Getaway" is no read) or is one of
    READ_OPERATIONS. Everything else counts as mutating, cryptographic calls included
    (Decrypt, GenerateDataKey): a dry run needs none of them."""
    if operation in READ_OPERATIONS:
        return True
    return any(operation.startswith(prefix) and operation[len(prefix):len(prefix) + 1].isupper()
               for prefix in READ_PREFIXES)


class CallGuard:
    """A botocore `before-call` handler: counts every call, refuses every non-read."""

    __slots__ = ("_lock", "_watched", "mutating", "reads")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: list[Clients] = []
        self.reads: dict[str, int] = {}
        self.mutating: dict[str, int] = {}

    def watch(self, clients: Clients) -> None:
        """Guard every client `clients` has built and will build (once: each call is
        counted once however often it is asked)."""
        if not any(seen is clients for seen in self._watched):
            self._watched.append(clients)
            clients.on("before-call.*.*", self)

    def __call__(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}"
        read = is_read(model.name)
        with self._lock:
            counts = self.reads if read else self.mutating
            counts[name] = counts.get(name, 0) + 1
        if not read:
            raise DryRunViolation(f"dry run: refused {name}, which is not a read, before it "
                                  f"was sent (called from {_caller()}); a dry run makes no "
                                  "mutating call: keep that code out of planning")

    @property
    def mutating_calls(self) -> int:
        with self._lock:
            return sum(self.mutating.values())


def _caller() -> str:
    """Where our code made the call being refused: the innermost frame outside botocore,
    boto3 and this module."""
    here = __file__
    for frame in reversed(traceback.extract_stack()):
        if frame.filename != here and not any(
                part in frame.filename for part in ("/botocore/", "/boto3/")):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "an unknown place"


class Unplanned(Exception):
    """A step needs what only a running drill has; its faults are planned from their class."""


class _Planned(Exception):
    """Raised by `PlanningDrill.inject` to stop the step with its fault's plan."""

    def __init__(self, plan: FaultPlan, problem: str | None = None) -> None:
        super().__init__(plan.kind)
        self.plan, self.problem = plan, problem


class _Unavailable:
    """Stands for what an earlier step would have made (a target fixture): any use of it
    means the step cannot be planned further."""

    def __init__(self, what: str) -> None:
        self._what = what

    def _missing(self, *_: Any) -> NoReturn:
        raise Unplanned(f"it uses {self._what}, made by an earlier step")

    __getattr__ = __getitem__ = __iter__ = __len__ = __bool__ = _missing


class PlanningDrill:
    """What a fault step sees of its drill in a dry run: the target (reads only, through the
    guarded clients), the settings, and an `inject` that plans instead of acting."""

    def __init__(self, target: Target, settings: Any, allow: AllowList,
                 blast: BlastRadius | None = None) -> None:
        self.target, self.settings, self._allow = target, settings, allow
        self._blast = blast if blast is not None else BlastRadius()

    def inject(self, kind: type[Fault], **params: Any) -> NoReturn:
        """Build the fault as `Drill.inject` would, check it as the injector would, and stop
        the step with its plan (and why the real run would refuse it, if it would)."""
        fault = kind(self.target.fault_context(), {"region": self.target.region, **params})
        try:
            fault.check_capabilities()
            self._allow.check(fault)
            if kind.prepare_reads_only:
                fault.prepare()  # names the instances, nodes, versions it would act on
                self._blast.check(fault)  # the share of the group it counted
        except DryRunViolation:
            raise
        except Exception as exc:  # the real run would stop here: say why, in the plan
            raise _Planned(static_plan(kind, self.target, params, "not prepared"),
                           explain(exc)) from exc
        raise _Planned(fault.plan())

    def progress(self, message: str, *, every: float = 1.0) -> None:
        """Nothing waits in a dry run."""

    def __getattr__(self, name: str) -> NoReturn:
        raise Unplanned(f"it uses the drill's {name}, which only a running drill has")


def static_plan(kind: type[Fault], target: Target, params: Mapping[str, object],
                why: str) -> FaultPlan:
    """A fault's plan from its class: its calls, and the resource its kind names in the
    environment (or the step's own argument) when the exact one is chosen at run time."""
    names = target.names
    by_kind = {"asg": names.asg, "bucket": names.bucket, "key": names.key_alias,
               "region": str(params.get("region", target.region)),
               "table": str(params.get("table", "")), "nats": f"NATS of {target.region}"}
    resource = by_kind.get(kind.target_kind) or "chosen when the drill runs"
    return FaultPlan(kind.kind, kind.target_kind, resource, target.region,
                     first_sentence(kind).rstrip("."), kind.calls, kind.revert_calls,
                     tuple(sorted(kind.requires)), resolved=False, note=why)


def plan_drill(item: pytest.Item, steps: list[tuple[Step, StepFunctionContext | None]],
               drill: PlanningDrill, feature: str, scenario: str) -> DrillPlan:
    """The plan of one drill (a scenario item) from its steps and their definitions."""
    return DrillPlan(item.nodeid, feature, scenario,
                     tuple(plan_step(step, definition, drill) for step, definition in steps))


def plan_step(step: Step, definition: StepFunctionContext | None,
              drill: PlanningDrill) -> StepPlan:
    """One step's plan; see the module docstring."""
    if definition is None:
        return StepPlan(step.keyword, step.name, "", problem="no step definition matches it")
    func = definition.step_func
    summary, procedures = first_sentence(func), tuple(referenced_procedures(func))
    kinds = referenced_faults(func)
    if not kinds:
        return StepPlan(step.keyword, step.name, summary, procedures=procedures)
    args = parse_step_arguments(step, definition)
    try:
        _call_until_inject(func, args, drill)
    except _Planned as planned:
        return StepPlan(step.keyword, step.name, summary, (planned.plan,), procedures,
                        planned.problem)
    except Unplanned as exc:
        why, problem = str(exc), None
    except Exception as exc:  # a refused call, or where the real run would fail too
        why = problem = explain(exc)
    else:
        why, problem = "the step injected nothing when planned", None
    faults = tuple(static_plan(kind, drill.target, args, why) for kind in kinds)
    return StepPlan(step.keyword, step.name, summary, faults, procedures, problem)


def _call_until_inject(func: Callable[..., Any], args: dict[str, object],
                       drill: PlanningDrill) -> None:
    """Call a step function (up to its first yield) with its parsed arguments, the planning
    drill, and stand-ins for the fixtures earlier steps would have made."""
    kwargs = {name: args[name] if name in args else drill if name == "drill"
              else _Unavailable(f"'{name}'") for name in inspect.signature(func).parameters}
    result = func(**kwargs)
    if inspect.isgenerator(result):
        try:
            next(result, None)
        finally:
            result.close()


def referenced_procedures(func: Callable[..., Any], _seen: set[int] | None = None
                          ) -> Iterator[str]:
    """'module.function: first sentence' of each runbook procedure (drills.procedures) a
    step's code calls, directly or through a helper of the steps module."""
    seen = set() if _seen is None else _seen  # ids: a module-level value may be unhashable
    names = _code_names(getattr(func, "__code__", None))
    for value in referenced(func):
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, types.ModuleType) and _is_procedure(value.__name__):
            for name in sorted(names):
                found = getattr(value, name, None)
                if inspect.isfunction(found) and found.__module__ == value.__name__ \
                        and id(found) not in seen:
                    seen.add(id(found))
                    yield _procedure(found)
        elif inspect.isfunction(value) and _is_procedure(value.__module__):
            yield _procedure(value)
        elif inspect.isfunction(value) and value.__module__ == func.__module__:
            yield from referenced_procedures(value, seen)


def _is_procedure(module: str) -> bool:
    return module.startswith("drills.procedures.")


def _procedure(func: Callable[..., Any]) -> str:
    return f"{func.__module__.removeprefix('drills.procedures.')}.{func.__name__}: " \
           f"{first_sentence(func)}"


def _code_names(code: types.CodeType | None) -> set[str]:
    """Every name a code object and its nested functions use (attributes included)."""
    if code is None:
        return set()
    nested = (c for c in code.co_consts if isinstance(c, types.CodeType))
    return set(code.co_names).union(*(_code_names(c) for c in nested))
