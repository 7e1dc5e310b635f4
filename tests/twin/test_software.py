"""drills.twin.software: the service of both regions, and what AWS runs behind its APIs, beside
an AWS endpoint the twin did not provision (the whole of it is drilled in
tests/test_examples_aws_run.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drills.clients import Clients
from drills.environment import Names
from drills.twin import api, controller, dns, nats
from drills.twin.aws import AwsEndpoint
from drills.twin.software import ServiceSoftware
from drills.twin.state import REGION_HOSTS
from tests.example_stack import EXAMPLES

NAMES = Names()


def test_the_stack_is_given_each_regions_api_address_and_their_one_port(
        aws: AwsEndpoint, tmp_path: Path) -> None:
    """Route 53's records and health checks name the APIs (the template's parameters): each
    region's loopback address, the port both share, the profile's record TTL."""
    software = ServiceSoftware(tmp_path, aws.url, NAMES)
    assert software.api_parameters == {
        "PrimaryApiAddress": REGION_HOSTS[NAMES.primary_region],
        "DrApiAddress": REGION_HOSTS[NAMES.dr_region], "ApiPort": str(software.api_port),
        "ApiRecordTtl": str(software.timing.record_ttl)}
    template = (EXAMPLES / "vettid-dr-stack.yaml").read_text(encoding="utf-8")
    declared = re.search(r"^Parameters:\n(.*?)^\S", template, re.M | re.S)
    assert declared is not None
    for name in software.api_parameters:
        assert re.search(rf"^  {name}:$", declared.group(1), re.M), name
    assert software.api_url == f"https://{NAMES.api_host}:{software.api_port}"


def test_a_start_that_fails_stops_everything_it_started(aws: AwsEndpoint,
                                                        tmp_path: Path) -> None:
    """With no enclave group to serve, start() gives up at its deadline and leaves nothing
    running: both regions' NATS nodes and APIs, the name servers, the controller."""
    clients = Clients.for_twin(aws.url, NAMES.primary_region)
    for region in (NAMES.primary_region, NAMES.dr_region):
        clients("ssm", region).put_parameter(
            Name=NAMES.param_nats_creds, Type="SecureString", Overwrite=True,
            Value=json.dumps({"user": "parent", "password": "secret"}))
    software = ServiceSoftware(tmp_path / "service", aws.url, NAMES)
    with pytest.raises(TimeoutError, match="did not start in 15s"):
        software.start(timeout=15)
    state = software.state
    assert set(state.regions) == {NAMES.primary_region, NAMES.dr_region}
    for region in state.regions.values():
        cluster = nats.cluster_for(nats.NatsClusterSpec.from_dict(region.nats))
        assert not any(cluster.healthy(node.name) for node in cluster.spec.nodes)
        front = api.ApiEndpoint.from_dict(region.name, region.api)
        assert api.pid(software.root, front) is None
        assert not api.listening(front)
    assert not dns.is_running(dns.DnsEndpoint(**state.dns))
    assert controller.running_pid(state.state_dir) is None
