"""drills: executable disaster-recovery drills with measured RTO and RPO."""

__version__ = "0.1.0"

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
