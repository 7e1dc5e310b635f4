"""Fault kinds; importing this package registers every kind for rollback.

Every module of this package is imported here, so a new fault module only has to exist
for `drills rollback` to know how to revert its faults.
"""

import importlib
import pkgutil

from drills.faults.base import (
    ActiveFault,
    AllowList,
    BlastRadius,
    Fault,
    FaultContext,
    FaultInjector,
    RollbackResult,
    Share,
    rollback,
)
from drills.faults.enclave import FreezeWorkers, KillWorker, SetDesiredCapacity, TerminateInstances

__all__ = [
    "ActiveFault",
    "AllowList",
    "BlastRadius",
    "Fault",
    "FaultContext",
    "FaultInjector",
    "FreezeWorkers",
    "KillWorker",
    "RollbackResult",
    "SetDesiredCapacity",
    "Share",
    "TerminateInstances",
    "rollback",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
