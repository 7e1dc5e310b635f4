"""MANIFEST.sha256: the digest of every file of a report, and `verify` to detect any change.

The format is `sha256sum`'s (`<hex>  <relative path>`), so `sha256sum -c MANIFEST.sha256`
checks it too. `verify` also finds files removed from or added to the directory, and, when
the reports root holds an index line for the run, a manifest re-written after the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from drills.errors import ReportError
from drills.evidence.model import RunRecord
from drills.evidence.observer import RunObserver

MANIFEST_NAME = "MANIFEST.sha256"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(report_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(report_dir)) for p in report_dir.rglob("*")
                  if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(report_dir: Path) -> str:
    """Write MANIFEST.sha256 over every other file under `report_dir`; return its own digest."""
    lines = [f"{file_sha256(report_dir / name)}  {name}\n" for name in _files(report_dir)]
    path = report_dir / MANIFEST_NAME
    path.write_text("".join(lines), encoding="utf-8")
    return file_sha256(path)


@dataclass(slots=True)
class Verification:
    """What `verify` found; `ok` only when nothing changed."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    manifest_mismatch: str | None = None  # why the manifest itself is not the sealed one

    @property
    def ok(self) -> bool:
        """True when every file matches and none is missing or added."""
        return not (self.changed or self.missing or self.added or self.manifest_mismatch)

    def lines(self) -> list[str]:
        """One line per problem, or one line saying all is well."""
        out = [f"CHANGED     {n}" for n in self.changed]
        out += [f"MISSING     {n}" for n in self.missing]
        out += [f"UNEXPECTED  {n}" for n in self.added]
        if self.manifest_mismatch:
            out.append(f"MANIFEST    {self.manifest_mismatch}")
        return out or [f"ok: {self.checked} files match {MANIFEST_NAME}"]


def verify(report_dir: Path, sealed_digest: str | None = None) -> Verification:
    """Compare every file under `report_dir` with its manifest (and the manifest with the
    digest recorded at sealing time, when given)."""
    manifest = report_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise ReportError(f"{manifest} does not exist; is {report_dir} a report directory "
                         "written by `drills run`?")
    expected: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return Verification(manifest_mismatch=f"line {number} is malformed")
        expected[name] = digest
    result = Verification()
    present = set(_files(report_dir))
    for name, digest in sorted(expected.items()):
        if name not in present:
            result.missing.append(name)
            continue
        result.checked += 1
        if file_sha256(report_dir / name) != digest:
            result.changed.append(name)
    result.added = sorted(present - set(expected))
    if sealed_digest and file_sha256(manifest) != sealed_digest:
        result.manifest_mismatch = ("differs from the digest recorded in the run index when "
                                    "the report was sealed")
    return result


class ManifestWriter(RunObserver):
    """Seals the report directory; must be the last writer into it."""

    __slots__ = ("digest",)

    def __init__(self) -> None:
        self.digest: str | None = None

    def run_finished(self, run: RunRecord, report_dir: Path) -> None:
        self.digest = write_manifest(report_dir)
