"""Fault kinds; importing this package registers every kind for rollback.

Every module of this package is imported here, so a new fault module only has to exist
for `drills rollback` to know how to revert its faults.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
