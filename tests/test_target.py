"""drills.target: the enclave ASG found as runbook 4.1 finds it, by the stack's output, and
the configured name when the stack has no outputs (moto's change-set stacks)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.errors import ConfigError
from drills.target import Target


def _stack(clients: Clients, outputs: dict[str, str]) -> str:
    name = f"stack-{uuid.uuid4().hex[:8]}"
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    if not outputs:
        del template["Outputs"]
    clients("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def test_the_asg_is_named_by_the_stack_output(clients: Clients) -> None:
    stack = _stack(clients, {"EnclaveASGName": "From-The-Output"})
    assert Target(clients, Names(stack=stack)).asg_name() == "From-The-Output"


def test_a_stack_without_outputs_gives_the_configured_asg_with_a_warning(
        clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    """Once per stack, a warning says the configured name is used."""
    target = Target(clients, Names(stack=_stack(clients, {}), asg="Configured-ASG"))
    with caplog.at_level(logging.WARNING, logger="drills.target"):
        assert [target.asg_name(), target.asg_name()] == ["Configured-ASG"] * 2
    assert [r.getMessage() for r in caplog.records if "no outputs" in r.getMessage()] == [
        f"stack {target.names.stack} in us-east-1 has no outputs; using the configured ASG "
        "name Configured-ASG ([environment] asg)"]


def test_a_stack_whose_outputs_lack_the_key_is_a_config_error(clients: Clients) -> None:
    stack = _stack(clients, {"SomethingElse": "x"})
    with pytest.raises(ConfigError, match="has no output EnclaveASGName; check stack"):
        Target(clients, Names(stack=stack)).asg_name()
