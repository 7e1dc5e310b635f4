"""Tag expressions are checked by drills itself, before pytest runs (pure logic)."""

from __future__ import annotations

import re

import pytest

from drills.errors import ConfigError
from drills.tags import TAGS, check_expression


@pytest.mark.parametrize("expression", ["monthly", "enclave and not monthly",
                                        "(nats or kms) and not twin_only", "not preflight",
                                        "scenario and (s3)"])
def test_expressions_of_known_tags_pass(expression: str) -> None:
    """Known tags joined by and/or/not, with parentheses, are accepted."""
    check_expression(expression)


@pytest.mark.parametrize(("expression", "says"), [
    ("nosuchtag", "unknown tag 'nosuchtag'"),
    ("monthly and enclve", "unknown tag 'enclve'"),
    ("monthly and", "ends without a tag"),
    ("and monthly", "needs a tag before it"),
    ("(monthly", "unbalanced '('"),
    ("monthly)", "unbalanced ')'"),
    ("monthly, nats", "cannot read"),
])
def test_bad_expressions_name_what_is_wrong(expression: str, says: str) -> None:
    """An unknown tag or bad syntax is a ConfigError naming it (and the tags that exist)."""
    with pytest.raises(ConfigError, match=re.escape(says)):
        check_expression(expression)


def test_every_tag_used_by_a_feature_is_declared() -> None:
    """The one tag table covers every tag the features carry (else --strict-markers fails)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "features"
    used = {word[1:] for path in root.rglob("*.feature")
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("@") for word in line.split()}
    assert used <= set(TAGS), used - set(TAGS)
