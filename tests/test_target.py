"""drills.target: the enclave ASG found as runbook 4.1 finds it, by the stack's output, and
the configured name when the stack has no outputs (moto's change-set stacks)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from drills.clients import Clients
from drills.config import ApiSettings
from drills.environment import Names
from drills.errors import ConfigError
from drills.target import AccountTarget, Target


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


def test_an_account_resolves_the_api_through_the_configured_name_server(
        clients: Clients) -> None:
    """`[api] dns` names the server the apps' names are resolved through (a run against the
    examples/aws environment asks its Route 53 name servers); without it, the system's."""
    names = Names(account_id="123456789012")
    target = AccountTarget(names=names, clients=clients, account_id=names.account_id,
                           api=ApiSettings(url="https://api.vettid.dev:8443",
                                           dns="127.0.0.1:5354"))
    resolver = target.resolver()
    assert resolver is not None
    assert (resolver.server, resolver.port) == ("127.0.0.1", 5354)
    assert AccountTarget(names=names, clients=clients, account_id=names.account_id,
                         api=ApiSettings(url="https://api.vettid.dev")).resolver() is None


@pytest.mark.parametrize(("url", "dr_url"), [
    ("https://api.vettid.dev:8443", "https://api-dr.vettid.dev:8443"),
    ("https://api.vettid.dev", "https://api-dr.vettid.dev"),
    (None, "https://api-dr.vettid.dev"),
])
def test_the_dr_api_is_its_own_name_at_the_services_port(
        clients: Clients, url: str | None, dr_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runbook 5.2 step 3 calls api-dr.vettid.dev: at the port of the configured URL (both
    regions' APIs answer on one port), the default HTTPS port without one."""
    monkeypatch.delenv("DRILLS_API_URL", raising=False)
    names = Names(account_id="123456789012")
    target = AccountTarget(names=names, clients=clients, account_id=names.account_id,
                           api=ApiSettings(url=url))
    assert target.api_url(names.dr_region) == dr_url
