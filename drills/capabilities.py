"""What a target can do beyond the public AWS APIs, and what faults, steps and drills need.

Every target answers the AWS APIs and the vault service's own paths (its API, NATS). Some
drills need more: the local twin can signal the service's processes and answer control routes
of its AWS endpoint, and it may be damaged beyond repair. So:

- a target declares its abilities (`Target.capabilities`, a class attribute: known before the
  target is opened);
- a fault declares what it needs (`Fault.requires`); the injector refuses it, before anything
  is journaled, on a target that lacks it;
- a step needs what the faults its code names need, plus what it declares with `@needs`;
- a drill needs what its steps need, plus what its tags say (`@twin_only`). The plugin skips a
  drill whose needs the target lacks, with the reason, before anything is touched.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from drills.faults.base import Fault

F = TypeVar("F", bound=Callable[..., Any])


class Capability(StrEnum):
    """An ability beyond the public AWS APIs; the value is how messages and `--list` name it."""

    #: Signal the service's own processes (enclave workers, nats-server, the API endpoint)
    #: and read what only they expose (NATS node monitors, which process serves which
    #: instance).
    PROCESSES = "processes"
    #: Control routes of the AWS endpoint itself: end a KMS key's waiting period, hold a
    #: region's AWS APIs, pause replication, read the replication backlog.
    CONTROL = "control"
    #: The system may be damaged beyond repair: a rehearsal environment (`@twin_only`).
    DISPOSABLE = "disposable"

    @property
    def meaning(self) -> str:
        """What the capability lets a drill do, in a few words."""
        return _MEANING[self]

    @property
    def label(self) -> str:
        """Its name in a skip reason: the value, and the tag that asks for it, if one does."""
        tags = [f"@{tag}" for tag, needed in TAG_NEEDS.items() if self in needed]
        return f"{self.value} ({', '.join(tags)})" if tags else self.value


_MEANING = {
    Capability.PROCESSES: "signal the service's own processes (enclave workers, nats-server, "
                          "the API endpoint) and read their monitors",
    Capability.CONTROL: "the AWS endpoint's control routes (end a key's waiting period, hold a "
                        "region's AWS APIs, pause replication, read its backlog)",
    Capability.DISPOSABLE: "damage the system beyond repair (@twin_only)",
}

#: Everything: what the local twin can do.
ALL = frozenset(Capability)

#: Tags that are needs: `@twin_only` drills run only where damage beyond repair is allowed.
TAG_NEEDS: dict[str, frozenset[Capability]] = {"twin_only": frozenset({Capability.DISPOSABLE})}

_NEEDS = "__drills_needs__"


def needs(*capabilities: Capability) -> Callable[[F], F]:
    """Declare what a step needs beyond what the faults it injects need (e.g. a step that
    reads the NATS nodes' monitors); returns the step function itself."""
    def mark(func: F) -> F:
        setattr(func, _NEEDS, getattr(func, _NEEDS, frozenset()) | frozenset(capabilities))
        return func

    return mark


def step_needs(func: Callable[..., Any]) -> frozenset[Capability]:
    """What a step function needs: its `@needs`, and the `requires` of every fault class its
    code names (directly or in a nested function: `drill.inject(KillNodes, ...)`)."""
    found: frozenset[Capability] = getattr(func, _NEEDS, frozenset())
    for fault in referenced_faults(func):
        found |= fault.requires
    return found


def tag_needs(tags: Iterable[str]) -> frozenset[Capability]:
    """What a drill's tags need."""
    return frozenset().union(*(TAG_NEEDS.get(tag, frozenset()) for tag in tags))


def missing_reason(missing: Iterable[Capability], target: str) -> str:
    """Why a fault or step cannot act on `target` ("the account target aws:1234/...") and
    where it can, each capability explained: to follow "refusing ...: "."""
    what = "; ".join(f"{c.value}: {c.meaning}" for c in sorted(missing))
    return (f"it needs what {target} cannot do ({what}); run it on the local twin "
            "(--target twin), or leave out the drills that need it")


def skip_reason(missing: Iterable[Capability], target_kind: str) -> str:
    """Why a drill is skipped on a target of `target_kind` ("account"), in one short line
    (`--list` explains the capabilities once)."""
    names = sorted(missing)
    return (f"needs {', '.join(c.label for c in names)}, which the {target_kind} target "
            f"lacks; runs on the local twin (--target twin)")


def referenced_faults(func: Callable[..., Any]) -> list[type[Fault]]:
    """The fault classes a step function's code names (a step that injects a fault)."""
    from drills.faults.base import Fault

    return [value for value in referenced(func)
            if isinstance(value, type) and issubclass(value, Fault)]


def referenced(func: Callable[..., Any]) -> list[Any]:
    """The module-level values a function's code names, directly or in a nested function,
    each once, in the order the code names them."""
    scope: dict[str, Any] = getattr(func, "__globals__", {})
    found: list[Any] = []

    def walk(code: types.CodeType) -> None:
        for name in code.co_names:
            value = scope.get(name)
            if value is not None and not any(value is seen for seen in found):
                found.append(value)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    code = getattr(func, "__code__", None)
    if code is not None:
        walk(code)
    return found
