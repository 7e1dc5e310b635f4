"""`drills run --load`, black-box: bad load input exits 2 before anything is injected, and
a drill run under load carries the three windows, the chart and the raw records, sealed."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from drills.journal import Journal
from drills.twin.manager import Twin
from tests.conftest import drills_cli


def env_for(tmp_path: Path, twin: Twin | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["DRILLS_JOURNAL"] = str(tmp_path / "journal.jsonl")
    if twin is not None:
        env["DRILLS_STATE_DIR"] = twin.state.state_dir
    return env


@pytest.mark.parametrize(("args", "message"), [
    (["--load", "lots"], "expected USERS[/SPAWN_RATE]"),
    (["--load", "0"], "at least one user"),
    (["--load", "5", "--load-workers", "-1"], "--load-workers -1"),
    (["--load", "5", "--load-remote-workers", "2"], "--master-host"),
])
def test_bad_load_input_exits_2_before_anything(tmp_path: Path, args: list[str],
                                                message: str) -> None:
    """Checked before pytest (and any twin) starts: exit 2, the message, no journal."""
    result = drills_cli("run", "monthly", "--reports", str(tmp_path / "reports"), *args,
                        env=env_for(tmp_path), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not (tmp_path / "journal.jsonl").exists()


@pytest.mark.twin
def test_a_locust_that_cannot_start_exits_2_before_any_fault(twin: Twin,
                                                            tmp_path: Path) -> None:
    """The master cannot listen where it is told: a clear error, exit 2, no fault injected,
    no drill started."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reports = tmp_path / "reports"
    result = drills_cli("run", "features/monthly/single_instance_failure.feature",
                        "--reports", str(reports), "--load", "2", "--load-workers", "1",
                        "--master-host", "203.0.113.7", "--master-port", str(port),
                        env=env_for(tmp_path, twin), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "the load could not start" in output
    assert "> drill:" not in output
    assert Journal(tmp_path / "journal.jsonl").entries() == []
    assert not list(reports.glob("*/report.json"))


@pytest.mark.twin
def test_a_drill_under_load_has_three_windows_a_chart_and_sealed_records(
        twin: Twin, tmp_path: Path) -> None:
    """One drill under load: report.json carries the windows and the series (schema-valid),
    the HTML the chart with the fault and the recovery, and the raw records are in the
    manifest. The drill's own verdict is not what this test is about."""
    objectives = tmp_path / "objectives.toml"
    objectives.write_text('[components."Nitro Enclave ASG"]\nrto = "20s"\n'
                          '[load]\nthink_time = [0.5, 1.5]\n', encoding="utf-8")
    reports = tmp_path / "reports"
    result = drills_cli("run", "features/monthly/single_instance_failure.feature",
                        "--reports", str(reports), "--objectives", str(objectives),
                        "--load", "3/3", "--", "-k", "terminated",
                        env=env_for(tmp_path, twin), timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    (report,) = reports.glob("*/report.json")
    data = json.loads(report.read_text(encoding="utf-8"))
    (drill,) = data["drills"]
    load = drill["load"]
    assert [w["name"] for w in load["windows"]] == [
        "before the fault", "fault to recovery", "after recovery"]
    assert load["windows"][0]["requests"] > 0
    assert load["series"]
    assert load["users"] == 3
    html = (report.parent / "report.html").read_text(encoding="utf-8")
    assert 'class="chart load"' in html
    assert "fault injected" in html
    manifest = (report.parent / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert "load/requests.jsonl" in manifest
    assert "drills: load:" in output
    verify = drills_cli("report", "verify", str(report.parent), env=env_for(tmp_path),
                        timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
