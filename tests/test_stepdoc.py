"""`drills steps` prints steps as a feature author writes them (pure logic)."""

from __future__ import annotations

import pytest

from drills.stepdoc import first_sentence, readable


@pytest.mark.parametrize(("pattern", "is_regex", "shown"), [
    (r"(?P<count>\d+) enclave instances? (?:is|are) terminated", True,
     "<count> enclave instance(s) is/are terminated"),
    (r'the operator restores the damaged items of "(?P<table>[^"]+)" '
     r"(?P<when>as of just before the fault|from the latest restorable time) \(runbook 2\.2\)",
     True, 'the operator restores the damaged items of "<table>" <when> (runbook 2.2)'),
    (r'vault writes to (?:(?P<count>\d+) enrolled vaults?|the vaults "(?P<ids>[^"]+)") are '
     r"probed", True,
     'vault writes to [<count> enrolled vault(s) | the vaults "<ids>"] are probed'),
    ("the canary has made {count:d} acknowledged writes", False,
     "the canary has made <count> acknowledged writes"),
    ('vault operations recover within the "{component}" objective', False,
     'vault operations recover within the "<component>" objective'),
])
def test_patterns_read_as_feature_text(pattern: str, is_regex: bool, shown: str) -> None:
    """Named groups become <name>, optional letters (s), alternatives a/b, escapes unescaped."""
    assert readable(pattern, is_regex) == shown


def test_the_whole_first_sentence_is_kept() -> None:
    """A first sentence that runs over several lines is joined, not cut at the first line."""
    def step() -> None:
        """Wait for `count` acknowledged canary writes, so the RPO check covers writes made
        before the fault, not only after it. A second sentence.

        A second paragraph."""

    assert first_sentence(step) == ("Wait for `count` acknowledged canary writes, so the RPO "
                                    "check covers writes made before the fault, not only after "
                                    "it.")
    assert first_sentence(lambda: None) == "(undocumented)"
