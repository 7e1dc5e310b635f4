"""The environment of examples/aws, made as an operator makes it: `aws cloudformation deploy`
of the shipped template (primary, then DR) into a plain moto server (`python -m moto.server`:
no fidelity layer, no twin provisioning), then the completing script beside it. Shared by
the tests of the example and of drilling it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from drills.clients import Clients
from drills.environment import Names
from drills.twin import control
from drills.twin.ports import free_ports
from tests.conftest import ROOT, wait_for

EXAMPLES = ROOT / "examples" / "aws"
NATS_USER, NATS_PASSWORD = "vettid-parent", "example-password"


@contextmanager
def plain_moto(directory: Path) -> Iterator[str]:
    """A plain moto server on a free loopback port, its log in `directory`; yields its URL."""
    port = free_ports(1)[0]
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "moto.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: control.answers(url), 30, f"moto server on {url}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def aws_env(endpoint: str, names: Names) -> dict[str, str]:
    """The environment the `aws` CLI and boto3 reach the server with (fake credentials)."""
    return {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": names.primary_region,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PRIMARY_REGION": names.primary_region, "DR_REGION": names.dr_region,
            "NATS_USER": NATS_USER, "NATS_PASSWORD": NATS_PASSWORD}


def run(command: list[str], env: dict[str, str]) -> str:
    """Run `command`; its stdout, or a failed assertion with its output."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n" \
                                 f"{done.stdout}\n{done.stderr}"
    return done.stdout


def deploy(endpoint: str, env: dict[str, str], names: Names,
           parameters: Mapping[str, str] | None = None) -> Clients:
    """Deploy the template as both stacks (primary, then DR) with `parameters` beside the
    network's, run the completing script, and answer boto3 clients on the result."""
    clients = Clients.for_twin(endpoint, names.primary_region)
    for role, region in (("primary", names.primary_region), ("dr", names.dr_region)):
        ec2 = clients("ec2", region)
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])[
            "Vpcs"][0]["VpcId"]
        subnets = [s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][:2]]
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        run(["aws", "cloudformation", "deploy", "--region", region,
             "--template-file", str(EXAMPLES / "vettid-dr-stack.yaml"),
             "--stack-name", names.stack_in(region), "--capabilities", "CAPABILITY_NAMED_IAM",
             "--parameter-overrides", f"RegionRole={role}", f"EnclaveAmiId={ami}",
             f"VpcId={vpc}", f"SubnetIds={','.join(subnets)}",
             *(f"{k}={v}" for k, v in (parameters or {}).items())], env)
    run([str(EXAMPLES / "complete-dr-stack.sh")], env)
    return clients


@contextmanager
def moto_with_fidelity(directory: Path) -> Iterator[str]:
    """The twin's AWS endpoint alone (`python -m drills.twin.aws`: moto and the fidelity
    layer, the AWS behaviours moto lacks, on the `fast` timing profile), nothing provisioned
    in it; yields its URL. Plain moto cannot serve the vault: it writes a 36-byte key id
    into a ciphertext and a multi-Region key's id has 40, so nothing sealed under the
    runbook's sealing key decrypts."""
    from drills.twin import aws
    from drills.twin.controller import apply_settings
    from drills.twin.timing import profile

    endpoint = aws.start_aws(directory)
    try:
        apply_settings(endpoint.url, profile("fast"))
        yield endpoint.url
    finally:
        aws.stop_aws(endpoint)
