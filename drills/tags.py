"""The tags a feature may carry, in one place: pytest markers, `drills run` selections and the
hint for a selection that matches nothing all read this table."""

from __future__ import annotations

import re

from drills.errors import ConfigError

#: Cadences of runbook section 7: a selection of exactly one of these names the exercise.
CADENCES = ("monthly", "quarterly", "annual")

TAGS: dict[str, str] = {
    "monthly": "runbook 7.1 monthly DR test",
    "quarterly": "runbook 7.2 quarterly failover test",
    "annual": "runbook 7.3 annual full DR exercise",
    "scenario": "a runbook section 3 failure scenario",
    "enclave": "Nitro Enclave ASG component",
    "nats": "NATS cluster component",
    "kms": "KMS sealing key component",
    "s3": "S3 vault data component",
    "monitoring": "CloudWatch monitoring component",
    "dynamodb": "DynamoDB metadata tables",
    "ssm": "SSM parameters",
    "pcr": "runbook 6 PCR rotation: enclave builds, app PCR sets, rollouts and rollbacks",
    "region": "the DR region (runbook 5, 3.6): failover, failback and region outage",
    "preflight": "runbook 2.1-2.4 backup verification, a pre-flight any run can include",
    "twin_only": "destructive beyond repair: runs only on the local twin",
    "full_outage": "acts on more of a group (instances, nodes, a region) than [blast] "
                   "max_share allows (default 50 %): a full outage, on purpose",
    "expected_breach": "shows a runbook procedure's flaw: its breach is expected, reported as "
                       "a finding against the procedure, and a drill that does not breach fails",
}

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*)\s*")
_OPERATORS = {"and", "or", "not"}


def check_expression(expression: str) -> None:
    """Raise ConfigError naming the first unknown tag (or bad syntax) in a tag expression
    such as "enclave and not monthly"; pytest would only say "Unknown marker"."""
    position, depth, expect_operand = 0, 0, True
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ConfigError(f"cannot read tag expression {expression!r} at "
                              f"{expression[position:]!r}; use tags joined by and/or/not")
        token, position = match.group(1), match.end()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ')' in tag expression {expression!r}")
        elif token == "not":
            expect_operand = True
        elif token in _OPERATORS:
            if expect_operand:
                raise ConfigError(f"{token!r} needs a tag before it in {expression!r}")
            expect_operand = True
        else:
            if token not in TAGS:
                raise ConfigError(f"unknown tag {token!r} in {expression!r}; tags: "
                                  f"{', '.join(sorted(TAGS))}")
            expect_operand = False
    if depth:
        raise ConfigError(f"unbalanced '(' in tag expression {expression!r}")
    if expect_operand:
        raise ConfigError(f"tag expression {expression!r} ends without a tag")
