"""Fault kinds; importing this package registers every kind for rollback."""

from drills.faults.base import (
    ActiveFault,
    AllowList,
    Fault,
    FaultContext,
    FaultInjector,
    RollbackResult,
    rollback,
)
from drills.faults.enclave import FreezeWorkers, KillWorker, SetDesiredCapacity, TerminateInstances

__all__ = [
    "ActiveFault",
    "AllowList",
    "Fault",
    "FaultContext",
    "FaultInjector",
    "FreezeWorkers",
    "KillWorker",
    "RollbackResult",
    "SetDesiredCapacity",
    "TerminateInstances",
    "rollback",
]
