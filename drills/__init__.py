"""drills: executable disaster-recovery drills with measured RTO and RPO.

The public names below are imported on first use (PEP 562): the twin's own processes
(`python -m drills.twin.worker`, `...api`, `...dns`, the NATS partition proxy) import
`drills` as a package and must not pay for boto3 and the measuring code they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drills.lazy import exports as _exports

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_HOMES = {
    "Capability": "drills.capabilities",
    **dict.fromkeys(("Objective", "Objectives", "ProbeSettings", "Settings", "load_settings"),
                    "drills.config"),
    **dict.fromkeys(("BlastRadiusExceeded", "CapabilityMissing", "CommsError", "ConfigError",
                     "DrillError", "DrillStopped", "FaultError", "JournalError", "NotSteady",
                     "ObjectiveBreached", "ProbeError", "RecoveryError", "TargetError",
                     "TargetNotAllowed", "TwinError"), "drills.errors"),
    "Journal": "drills.journal",
    **dict.fromkeys(("CanaryWriter", "Outcome", "ProbeResult", "Recovery", "RpoResult",
                     "Verdict", "compute_recovery"), "drills.measure"),
}

if TYPE_CHECKING:
    from drills.capabilities import Capability
    from drills.config import Objective, Objectives, ProbeSettings, Settings, load_settings
    from drills.errors import (
        BlastRadiusExceeded,
        CapabilityMissing,
        CommsError,
        ConfigError,
        DrillError,
        DrillStopped,
        FaultError,
        JournalError,
        NotSteady,
        ObjectiveBreached,
        ProbeError,
        RecoveryError,
        TargetError,
        TargetNotAllowed,
        TwinError,
    )
    from drills.journal import Journal
    from drills.measure import (
        CanaryWriter,
        Outcome,
        ProbeResult,
        Recovery,
        RpoResult,
        Verdict,
        compute_recovery,
    )

__all__ = [
    "BlastRadiusExceeded",
    "CanaryWriter",
    "Capability",
    "CapabilityMissing",
    "CommsError",
    "ConfigError",
    "DrillError",
    "DrillStopped",
    "FaultError",
    "Journal",
    "JournalError",
    "NotSteady",
    "Objective",
    "ObjectiveBreached",
    "Objectives",
    "Outcome",
    "ProbeError",
    "ProbeResult",
    "ProbeSettings",
    "Recovery",
    "RecoveryError",
    "RpoResult",
    "Settings",
    "TargetError",
    "TargetNotAllowed",
    "TwinError",
    "Verdict",
    "__version__",
    "compute_recovery",
    "load_settings",
]


__getattr__, __dir__ = _exports(__name__, _HOMES)
