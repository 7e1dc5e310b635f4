"""The runbook 7.1 item 1 drill, black-box through `drills run`: an objective tighter than
the lag the twin really has is breached with the measured p50/p99/max in the report, and the
markers are gone from both buckets afterwards although the drill failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drills.procedures.replication import PROBE_PREFIX, versions_present
from drills.twin.manager import Twin
from tests.conftest import drills_cli

FEATURE = "features/monthly/cross_region_replication.feature"


@pytest.mark.twin
def test_a_lag_over_the_objective_fails_the_drill_and_leaves_no_marker(
        twin: Twin, tmp_path: Path) -> None:
    """`[components."S3 Replication"] rto = 0.001`: no copy arrives within a millisecond of
    its put's acknowledgement, so the max breaches it (exit 1, a finding) while every figure
    is a measured lag; the markers were removed from both buckets in the step's teardown."""
    tight = tmp_path / "tight.toml"
    tight.write_text('[components."S3 Replication"]\nrto = 0.001\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(DRILLS_STATE_DIR=twin.state.state_dir,
               DRILLS_JOURNAL=str(tmp_path / "journal.jsonl"))
    result = drills_cli("run", "--objectives", str(tight), "--reports", str(tmp_path / "r"),
                        FEATURE, "--", "-k", "marker", env=env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    (report_file,) = (tmp_path / "r").glob("*/report.json")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    (drill,) = report["drills"]
    assert drill["status"] == "failed"
    assert "S3 replication of" in drill["error"]
    figures = {m["name"]: m for m in drill["measurements"]}
    assert set(figures) == {"replication lag p50", "replication lag p99", "replication lag max"}
    worst = figures["replication lag max"]
    assert worst["component"] == "S3 Replication"
    assert worst["objective_rto"] == 0.001
    assert not worst["met"]
    assert 0.001 < worst["rto"] < 60  # a real lag, measured
    assert worst["rto_lower"] <= worst["rto"]
    assert any(f["component"] == "S3 Replication" for f in report["findings"])
    names, clients = twin.names, twin.clients
    assert versions_present(clients("s3", names.primary_region), names.bucket,
                            PROBE_PREFIX) == set()
    assert versions_present(clients("s3", names.dr_region), names.dr_bucket,
                            PROBE_PREFIX) == set()
