"""The NATS nodes as the EC2 instances runbook 4.2 addresses (tag Application=vettid-nats).

The runbook finds its NATS instances with `describe-instances` by tag and restarts
nats-server on each through SSM Run Command. On the twin every node gets an EC2 instance
in the AWS endpoint, tagged like the real ones, and an SSM agent there (fidelity module
`ssm_run_command`) that acts on the node when `systemctl ... nats-server` is sent to it.
`ensure_instances` is idempotent: it creates what is missing and (re)registers the agents,
which live in the AWS endpoint's memory.
"""

from __future__ import annotations

from typing import Any

from drills.errors import TwinError
from drills.twin.control import post
from drills.twin.nats.spec import NatsClusterSpec

APPLICATION_TAG = {"Key": "Application", "Value": "vettid-nats"}  # as runbook 4.2 filters
#: The Amazon Linux 2 images NATS instances run (the name pattern AWS's documentation
#: filters them by).
AMAZON_LINUX_NAME = "amzn2-ami-hvm-*-x86_64-gp2"
NODE_TAG = "drills:nats-node"
CLUSTER_TAG = "drills:nats-cluster"
_ROUTE = "ssm/register-nats-agent"


def ensure_instances(clients: Any, aws_url: str, spec: NatsClusterSpec) -> dict[str, str]:
    """Node name -> instance id of the cluster's NATS instances, created if missing."""
    ec2 = clients("ec2", spec.region)
    found = nats_instances(clients, spec)
    missing = [n.name for n in spec.nodes if n.name not in found]
    if missing:
        image = _image(ec2)
        for name in missing:
            tags = [APPLICATION_TAG, {"Key": "Name", "Value": name},
                    {"Key": NODE_TAG, "Value": name}, {"Key": CLUSTER_TAG,
                                                        "Value": spec.cluster_name}]
            made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                     InstanceType="t3.medium",
                                     TagSpecifications=[{"ResourceType": "instance",
                                                         "Tags": tags}])
            found[name] = made["Instances"][0]["InstanceId"]
    for name, instance_id in found.items():
        post(aws_url, _ROUTE, {"region": spec.region, "instance_id": instance_id,
                                  "node": name, "cluster": spec.to_dict()})
    return found


def nats_instances(clients: Any, spec: NatsClusterSpec) -> dict[str, str]:
    """Node name -> id of the running instances that carry the cluster's nodes."""
    pages = clients("ec2", spec.region).get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{APPLICATION_TAG['Key']}", "Values": [APPLICATION_TAG["Value"]]},
        {"Name": f"tag:{CLUSTER_TAG}", "Values": [spec.cluster_name]},
        {"Name": "instance-state-name", "Values": ["running"]}])
    out = {}
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if tags.get(NODE_TAG):
                    out[tags[NODE_TAG]] = instance["InstanceId"]
    return out


def _image(ec2: Any) -> str:
    """An Amazon Linux image of the endpoint (NATS instances run a stock Linux)."""
    # The x86_64 gp2 HVM images only: `amzn2-ami-*` matches some 800 of the endpoint's images,
    # whose listing took a second of its CPU per region at start-up.
    images = ec2.describe_images(Owners=["amazon"], Filters=[
        {"Name": "name", "Values": [AMAZON_LINUX_NAME]}])["Images"] or ec2.describe_images(
        Owners=["amazon"])["Images"]
    if not images:
        raise TwinError("the twin's AWS endpoint offers no Amazon image to run NATS "
                        "instances from; restart the twin")
    return str(sorted(i["ImageId"] for i in images)[0])
