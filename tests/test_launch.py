"""`drills run`'s arguments turned into the pytest session's options (no session started)."""

from __future__ import annotations

import sys

import pytest

from drills.cli import build_parser
from drills.launch import pytest_args


def test_run_passes_the_accounts_region_and_api_url_to_the_plugin() -> None:
    """`drills run --target aws --region R --api-url U` reaches the session's options."""
    args = build_parser().parse_args(["run", "--target", "aws", "--region", "eu-west-1",
                                      "--api-url", "https://api.example.test", "monthly"])
    args.pytest_args = []
    out = pytest_args(args, "r1", "monthly")
    assert "--drills-region=eu-west-1" in out
    assert "--drills-api-url=https://api.example.test" in out
    plain = build_parser().parse_args(["run", "monthly"])
    plain.pytest_args = []
    default = pytest_args(plain, "r2", "monthly")
    assert not [a for a in default if a.startswith(("--drills-region", "--drills-api-url"))]


def test_run_is_interactive_only_with_an_operator_and_a_terminal_on_stdin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--operator` and `--soak` reach the plugin; the run prompts its operators only when
    stdin is a terminal (decided before pytest captures stdin), never without an operator."""
    def plugin_args(*argv: str, tty: bool) -> list[str]:
        monkeypatch.setattr(sys.stdin, "isatty", lambda: tty)
        args = build_parser().parse_args(["run", *argv, "annual"])
        args.pytest_args = []
        return pytest_args(args, "r1", "annual")

    named = ("--operator", "Dana:incident-commander", "--soak", "2m")
    at_terminal = plugin_args(*named, tty=True)
    assert "--drills-operator=Dana:incident-commander" in at_terminal
    assert "--drills-soak=2m" in at_terminal
    assert "--drills-interactive" in at_terminal
    assert "--drills-interactive" not in plugin_args(*named, tty=False)
    assert "--drills-interactive" not in plugin_args("--soak", "2m", tty=True)


def test_every_command_reading_the_objectives_file_defaults_to_drills_objectives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`$DRILLS_OBJECTIVES` names the file for `run`, `rollback` (the same allow-lists as the
    run it cleans up after) and `report objectives-review` alike; --objectives overrides it."""
    monkeypatch.setenv("DRILLS_OBJECTIVES", "team.toml")
    parser = build_parser()
    for argv in (["run", "monthly"], ["rollback"], ["report", "objectives-review"]):
        assert parser.parse_args(argv).objectives == "team.toml", argv
    run = parser.parse_args(["run", "monthly"])
    run.pytest_args = []
    assert "--drills-objectives=team.toml" in pytest_args(run, "r1", "monthly")
    assert parser.parse_args(["rollback", "--objectives", "x.toml"]).objectives == "x.toml"
    monkeypatch.delenv("DRILLS_OBJECTIVES")
    assert build_parser().parse_args(["rollback"]).objectives is None
