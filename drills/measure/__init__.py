"""Measurement: probes and canaries observe the service; figures come from what they saw.

    timeline   probe observations -> recovery (RTO, bracket, verdict, outages)
    probes     synthetic reads (and content-preserving writes) on a fixed schedule
    canary     acknowledged writes with known content: the ground truth of RPO
    rpo        every acknowledged write read back; loss counted
    jetstream  acknowledged JetStream publishes, the same for the NATS cluster's storage
    figures    the evidence records: one constructor per way of observing
"""

from drills.measure.canary import CanaryWrite, CanaryWriter
from drills.measure.probes import KnownVault, ProbeRunner, WriteProbes
from drills.measure.rpo import LostWrite, RpoResult, verify
from drills.measure.timeline import (
    Outage,
    Outcome,
    ProbeResult,
    Recovery,
    Verdict,
    compute_recovery,
)

__all__ = [
    "CanaryWrite",
    "CanaryWriter",
    "KnownVault",
    "LostWrite",
    "Outage",
    "Outcome",
    "ProbeResult",
    "ProbeRunner",
    "Recovery",
    "RpoResult",
    "Verdict",
    "WriteProbes",
    "compute_recovery",
    "verify",
]
