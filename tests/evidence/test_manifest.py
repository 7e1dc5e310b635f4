"""MANIFEST.sha256 seals a report directory; `drills report verify` detects any change."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drills.cli import main
from drills.evidence import index as index_mod
from drills.evidence.manifest import MANIFEST_NAME, verify, write_manifest
from tests.conftest import Runs


@pytest.fixture
def sealed(runs: Runs, tmp_path: Path) -> Path:
    """A copy of the monthly run's report directory, as a fresh reports root would hold it."""
    copy = tmp_path / "reports" / runs.dirs["monthly"].name
    shutil.copytree(runs.dirs["monthly"], copy)
    return copy


def _files(report_dir: Path) -> list[Path]:
    return sorted(p for p in report_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


@pytest.mark.twin
def test_manifest_covers_every_file_including_pytest_outputs(runs: Runs) -> None:
    """Every file of each run, junit.xml and cucumber.json included, is in its manifest."""
    for report_dir in runs.dirs.values():
        listed = {line.split("  ", 1)[1] for line in
                  (report_dir / MANIFEST_NAME).read_text().splitlines()}
        present = {str(p.relative_to(report_dir)) for p in _files(report_dir)}
        assert listed == present
        assert {"report.json", "report.html", "summary.md", "junit.xml",
                "cucumber.json"} <= listed
        assert any(name.startswith("probes/") for name in listed)
        assert verify(report_dir, index_mod.sealed_digest(report_dir)).ok


@pytest.mark.twin
def test_sha256sum_accepts_the_manifest(sealed: Path) -> None:
    """The manifest is in sha256sum's format, so `sha256sum -c` checks it without drills."""
    done = subprocess.run(["sha256sum", "--check", "--strict", MANIFEST_NAME], cwd=sealed,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.twin
def test_changing_any_byte_of_any_file_fails_verify(sealed: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """For every file in turn, flipping one byte makes verify exit 1 and name that file."""
    assert main(["report", "verify", str(sealed)]) == 0
    for path in _files(sealed):
        original = path.read_bytes()
        middle = len(original) // 2
        path.write_bytes(original[:middle] + bytes([original[middle] ^ 0x01])
                         + original[middle + 1:])
        capsys.readouterr()
        assert main(["report", "verify", str(sealed)]) == 1, path
        out = capsys.readouterr().out
        assert f"CHANGED     {path.relative_to(sealed)}" in out
        path.write_bytes(original)
    assert main(["report", "verify", str(sealed)]) == 0


@pytest.mark.twin
def test_a_removed_or_added_file_fails_verify(sealed: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A deleted file is MISSING, a new one UNEXPECTED; both exit 1."""
    (sealed / "junit.xml").unlink()
    assert main(["report", "verify", str(sealed)]) == 1
    assert "MISSING     junit.xml" in capsys.readouterr().out
    (sealed / "probes" / "extra.csv").write_text("t_seconds\n")
    assert main(["report", "verify", str(sealed)]) == 1
    assert "UNEXPECTED  probes/extra.csv" in capsys.readouterr().out


@pytest.mark.twin
def test_a_resealed_report_is_caught_by_the_index(runs: Runs, sealed: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Editing a file and rewriting the manifest still fails: the index holds the sealed digest."""
    shutil.copy(runs.root / index_mod.INDEX_NAME, sealed.parent / index_mod.INDEX_NAME)
    report = sealed / "summary.md"
    report.write_text(report.read_text().replace("PASS", "PASS!"))
    write_manifest(sealed)
    assert main(["report", "verify", str(sealed)]) == 1
    assert "MANIFEST" in capsys.readouterr().out


def test_verify_of_a_directory_without_manifest_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No manifest: exit 2 with a sentence saying what is wrong."""
    assert main(["report", "verify", str(tmp_path)]) == 2
    assert "MANIFEST.sha256 does not exist" in capsys.readouterr().err
