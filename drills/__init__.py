"""drills: executable disaster-recovery drills with measured RTO and RPO."""

__version__ = "0.1.0"

from drills.config import Objective, Objectives, ProbeSettings, Settings, load_settings
from drills.errors import (
    ConfigError,
    DrillError,
    FaultError,
    JournalError,
    ObjectiveBreached,
    ProbeError,
    RecoveryError,
    TargetNotAllowed,
    TwinError,
)
from drills.journal import Journal
from drills.measure import Outcome, ProbeResult, Recovery, Verdict, compute_recovery
from drills.rpo import CanaryWriter, RpoResult

__all__ = [
    "CanaryWriter",
    "ConfigError",
    "DrillError",
    "FaultError",
    "Journal",
    "JournalError",
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
    "TargetNotAllowed",
    "TwinError",
    "Verdict",
    "__version__",
    "compute_recovery",
    "load_settings",
]
