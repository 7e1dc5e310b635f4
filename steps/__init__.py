"""The step library: runbook sentences bound to `drills` calls."""
