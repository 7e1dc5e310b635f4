"""One exception tree for everything `drills` raises on purpose.

    DrillError                       base: catch this to catch ours
    ├── ConfigError                  bad objectives/settings file or argument (nothing injected)
    ├── TargetNotAllowed             a destructive step aimed at a target not on the allow-list
    ├── TwinError                    the local twin cannot start, is not running, or is unhealthy
    ├── FaultError                   a fault could not be injected or reverted
    ├── JournalError                 the fault journal is unreadable or cannot be written
    ├── ProbeError                   the probe runner cannot run (not: a failed probe, that is data)
    ├── RecoveryError                a runbook recovery procedure did not complete
    ├── ReportError                  a report is invalid or fails verification (evidence)
    └── ObjectiveBreached            a measured figure is worse than its objective

Messages say what failed, where, and what to do next, in one sentence.
"""

from __future__ import annotations


class DrillError(Exception):
    """Base class of every error `drills` raises on purpose."""


class ConfigError(DrillError):
    """A configuration file or argument is invalid; nothing has been injected."""


class TargetNotAllowed(ConfigError):
    """A destructive step named a target that the allow-list does not contain."""


class TwinError(DrillError):
    """The local twin cannot start, is not running, or is unhealthy."""


class FaultError(DrillError):
    """A fault could not be injected or reverted."""


class JournalError(DrillError):
    """The fault journal cannot be read or written."""


class ProbeError(DrillError):
    """The probe runner cannot run."""


class RecoveryError(DrillError):
    """A runbook recovery procedure did not complete."""


class ReportError(DrillError):
    """A report does not follow its schema, or a report directory cannot be read."""


class ObjectiveBreached(DrillError):
    """A measured figure is worse than its objective."""


class DrillsWarning(UserWarning):
    """Warnings of our own; the test suite turns them into errors."""
