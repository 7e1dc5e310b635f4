"""The team's remediation file: read strictly, so a typo never silently drops a sign-off."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drills.errors import ConfigError
from drills.evidence.remediation import load


def test_a_complete_file_is_read_into_types(tmp_path: Path) -> None:
    """Participants, remediation, sign-off and attestations come back typed; dates as ISO."""
    path = tmp_path / "remediation.toml"
    path.write_text('[[participants]]\nname = "Ana"\nrole = "on-call engineer"\n\n'
                    '[findings.F-0A1B2C3D]\nowner = "Ops"\ndue = 2027-01-31\n\n'
                    '[sign_off."run-1"]\nname = "J. Smith"\ndate = 2027-02-01\n\n'
                    '[attestations."7.2.1"]\ndate = 2026-11-01\nby = "Ops lead"\n')
    team = load(path)
    assert team.participants == [{"name": "Ana", "role": "on-call engineer"}]
    assert team.findings["F-0A1B2C3D"].due == "2027-01-31"
    assert team.sign_offs["run-1"].name == "J. Smith"
    assert team.attestations[0].item_id == "7.2.1"


def test_missing_file_is_empty() -> None:
    """No file yet: nothing to apply, no error."""
    assert load(Path("/nonexistent/remediation.toml")).findings == {}


@pytest.mark.parametrize(("text", "message"), [
    ("[findngs.F-1]\nowner = 'x'\n", "unknown section"),
    ("[findings.F-1]\nowner = 'x'\nduee = 2027-01-01\n", "unknown key(s) duee"),
    ('[attestations."9.9"]\ndate = 2026-01-01\nby = "x"\n', "no programme item 9.9"),
    ('[attestations."7.2.1"]\nby = "x"\n', "needs a date"),
    ("[findings\n", "not valid TOML"),
])
def test_mistakes_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    """Unknown sections or keys, unknown items, missing dates and bad TOML say what to fix."""
    path = tmp_path / "remediation.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path)
