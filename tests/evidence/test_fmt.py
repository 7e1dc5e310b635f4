"""How figures are named in the console, the reports and the findings."""

from __future__ import annotations

import pytest

from drills.evidence.fmt import measure_label


@pytest.mark.parametrize(("name", "label"), [
    ("service", "Service RTO"),
    ("capacity", "Capacity RTO"),
    ("mttr", "MTTR (incident to recovery)"),
    ("time-to-alarm", "Time to alarm"),
    ("primary_check", "Primary check"),
    # the quarterly exercise's phases keep their acronyms (were 'Dr capacity', 'Dns insync')
    ("dr-capacity", "DR capacity"),
    ("dns-insync", "DNS INSYNC"),
    ("first-dr-enrolment", "First DR enrolment"),
])
def test_a_figure_is_labelled_by_its_name_with_acronyms_in_capitals(name: str,
                                                                     label: str) -> None:
    assert measure_label(name) == label
