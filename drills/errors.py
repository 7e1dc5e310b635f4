"""One exception tree for everything `drills` raises on purpose.

    DrillError                       base: catch this to catch ours               exit 1
    ├── ConfigError                  bad objectives/settings file or argument      exit 2
    │   └── TargetNotAllowed         an account, region or target the allow-lists do not name
    │       ├── CapabilityMissing    a fault or step needs what the target cannot do
    │       └── BlastRadiusExceeded  a fault would act on more of a group than [blast] allows
    ├── TargetError                  the target is unreachable or misconfigured   exit 3
    │   ├── TwinError                the local twin cannot start, is not running, or is unhealthy
    │   ├── ResolveError             a name does not resolve (drills.resolve)
    │   └── NotSteady                the service was not steady before any fault
    ├── FaultError                   a fault could not be injected or reverted
    ├── JournalError                 the fault journal is unreadable or cannot be written
    ├── ProbeError                   the probe runner cannot run (not: a failed probe, that is data)
    ├── RecoveryError                a runbook recovery procedure did not complete
    │   └── HumanDeclined            a person refused a human step, or it never took effect
    ├── MeasurementError             a measurement disagrees with its independent ground truth
    ├── DryRunViolation              a dry run was about to make a mutating call (refused)
    ├── CommsError                   a notification could not be sent or did not arrive
    ├── ReportError                  a report is invalid or cannot be read           exit 2
    ├── SweepError                   the drills' own vaults could not all be deleted
    └── ObjectiveBreached            a measured figure is worse than its objective

    KeyboardInterrupt                (not ours: like Ctrl-C, these end the whole run)
    └── DrillStopped                 a stop condition (`[stop] alarms`) fired      exit 4

`exit_code` is what `drills` exits with when the error ends a command: 2 means bad input and
nothing injected, 3 that the system under drill could not be reached, was misconfigured or was
not healthy to begin with (nothing was drilled), 4 that a stop condition ended the run (every
fault reverted at once), 1 everything else (a drill failed).
Messages say what failed, where, and what to do next, in one sentence.
"""

from __future__ import annotations

from typing import ClassVar

#: Exit codes of `drills` (documented in `drills run --help` and the README).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_TARGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_STOPPED = 4


class DrillError(Exception):
    """Base class of every error `drills` raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED


class ConfigError(DrillError):
    """A configuration file or argument is invalid; nothing has been injected."""

    exit_code = EXIT_BAD_INPUT


class TargetNotAllowed(ConfigError):
    """A destructive step named a target that the allow-list does not contain."""


class CapabilityMissing(TargetNotAllowed):
    """A fault or step needs a capability the target does not declare (`drills.capabilities`);
    refused before anything is journaled or injected."""


class BlastRadiusExceeded(TargetNotAllowed):
    """A fault would act on more of a group (instances, nodes) than `[blast] max_share`
    allows, in a drill not tagged `@full_outage`; refused before it is journaled."""


class TargetError(DrillError):
    """The system under drill cannot be reached or is misconfigured (credentials, endpoint,
    missing resources, permissions)."""

    exit_code = EXIT_TARGET


class TwinError(TargetError):
    """The local twin cannot start, is not running, or is unhealthy."""


class NotSteady(TargetError):
    """The steady-state hypothesis did not hold before any fault: nothing was drilled."""


class FaultError(DrillError):
    """A fault could not be injected or reverted."""


class JournalError(DrillError):
    """The fault journal cannot be read or written."""


class ProbeError(DrillError):
    """The probe runner cannot run."""


class RecoveryError(DrillError):
    """A runbook recovery procedure did not complete."""


class HumanDeclined(RecoveryError):
    """A human step of an exercise was refused at the terminal ('abort'), its terminal
    closed, or the command a person was asked to run showed no effect in time."""


class MeasurementError(DrillError):
    """A measurement disagrees with the ground truth it is checked against (e.g. the RPO
    detector with the canary's own record): its figure cannot be trusted."""


class DryRunViolation(DrillError):
    """A dry run (`drills run --dry-run`) was about to make a call that is not a read; it was
    refused before it was sent."""


class CommsError(DrillError):
    """A notification of the communication procedures (runbook appendix) could not be sent,
    or did not arrive on its channel as sent."""


class ReportError(DrillError):
    """A report does not follow its schema, or a report directory cannot be read (bad input
    to the report commands)."""

    exit_code = EXIT_BAD_INPUT


class ObjectiveBreached(DrillError):
    """A measured figure is worse than its objective."""


class DrillStopped(KeyboardInterrupt):
    """A stop condition fired (a `[stop]` alarm went to ALARM for another reason than the
    drill's own faults): every fault was reverted at once and the run ends. Raised in the
    main thread like Ctrl-C, so that no step or `except Exception` can swallow it."""


class DrillsWarning(UserWarning):
    """Warnings of our own; the test suite turns them into errors."""


class SweepError(DrillError):
    """The target refused to delete some of the vaults the drills made (probe hygiene)."""
