"""The package's public surface, and what importing it costs the twin's processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import drills


def loaded_by(statement: str, modules: tuple[str, ...]) -> str:
    """Which of `modules` a fresh interpreter has imported after running `statement`."""
    probe = f"import sys; {statement}; print(sorted(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip()


def test_every_public_name_resolves() -> None:
    """Each name of `drills.__all__` is importable from `drills`, and nothing else is."""
    for name in drills.__all__:
        assert getattr(drills, name) is not None, name
    assert "CanaryWriter" in dir(drills)
    with pytest.raises(AttributeError, match="NoSuchName"):
        drills.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_the_twins_light_processes_import_neither_boto3_nor_the_measuring_code() -> None:
    """The API, the DNS server and the NATS partition proxy start as their own Python
    processes with every `drills twin up`: importing the `drills` package must not import
    boto3 or `drills.measure` for them (about 0.3 s of CPU each on 2 cores)."""
    assert loaded_by("import drills.twin.api, drills.twin.dns, drills.twin.nats.netfault",
                     ("boto3", "drills.measure")) == "[]"


def test_the_command_line_builds_without_the_report_code() -> None:
    """Every `drills` command builds the whole parser, the evidence subcommands included:
    that must not import the analysis and report writers or boto3 (a quarter second of CPU
    before `drills twin up` starts anything)."""
    assert loaded_by("import drills.cli; drills.cli.build_parser()",
                     ("boto3", "drills.evidence.analysis", "drills.evidence.html_report")) == "[]"


def test_the_evidence_packages_public_names_resolve() -> None:
    """`drills.evidence` names its writers lazily: each resolves, nothing else does."""
    import drills.evidence as evidence

    for name in evidence.__all__:
        assert getattr(evidence, name) is not None, name
    with pytest.raises(AttributeError, match="NoSuchWriter"):
        evidence.NoSuchWriter  # type: ignore[attr-defined]  # noqa: B018
