"""A NATS JetStream cluster for the local twin, run as processes or as containers.

A cluster is controlled through its `NatsClusterSpec` alone: pid files in the workdir
(process backend) or deterministic container names (container backend) say where each
node is, never the memory of the process that started it. The twin is started by one
process, faults are injected by another and `drills twin down` runs in a third, so any
of them can do `cluster_for(NatsClusterSpec.from_dict(saved)).kill_node(name)`.

    spec = allocate("eu-west-1", workdir, Backend.PROCESS, "drills", "secret")
    cluster_for(spec).start()    # returns once the cluster formed and JetStream has a leader

Modules, in the order a cluster lives: `spec` (what it is), `cluster` (the controller
every backend shares), `process` and `container` (the two backends; `procs` finds their
processes again), `netfault` (the proxy that partitions process nodes), `instances` (the
nodes as the EC2 instances the runbook addresses, with their SSM agents).
"""

from __future__ import annotations

import os

# testcontainers reads these when imported. Ryuk's image cannot be pulled here, and this
# machine looks like a container to testcontainers, which would then look for a gateway
# instead of the loopback ports we publish. Settings made by the user win.
for _key, _value in (
    ("TESTCONTAINERS_RYUK_DISABLED", "true"),
    ("TESTCONTAINERS_CONNECTION_MODE", "docker_host"),
    ("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1"),
):
    if not os.environ.get(_key):  # an empty value would count as "false" for Ryuk
        os.environ[_key] = _value

from drills.twin.nats.cluster import NatsCluster  # noqa: E402 - after the env above
from drills.twin.nats.container import (  # noqa: E402
    IMAGE_REPOSITORY,
    ContainerCluster,
    docker_available,
    ensure_image,
)
from drills.twin.nats.instances import ensure_instances  # noqa: E402
from drills.twin.nats.process import ProcessCluster, nats_server_binary  # noqa: E402
from drills.twin.nats.spec import (  # noqa: E402
    Backend,
    NatsClusterSpec,
    NatsNode,
    NodeState,
    NodeStatus,
    allocate,
)

__all__ = [
    "IMAGE_REPOSITORY",
    "Backend",
    "ContainerCluster",
    "NatsCluster",
    "NatsClusterSpec",
    "NatsNode",
    "NodeState",
    "NodeStatus",
    "ProcessCluster",
    "allocate",
    "cluster_for",
    "docker_available",
    "ensure_image",
    "ensure_instances",
    "nats_server_binary",
]


def cluster_for(spec: NatsClusterSpec) -> NatsCluster:
    """The controller for `spec`'s backend; cheap, and holds no state of its own."""
    return ProcessCluster(spec) if spec.backend is Backend.PROCESS else ContainerCluster(spec)
