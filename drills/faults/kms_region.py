"""The sealing key's home region stops answering (twin only), for runbook 7.1 item 3.

"A ciphertext from one region decrypts in another without calling the first" ("How
multi-Region keys work", KMS Developer Guide): the drill shows it by decrypting in the DR
region while the primary region's AWS endpoint answers nothing. The twin's endpoint holds
every request signed for an isolated region (`fidelity/regions.py`, control route
`regions/isolate`); only the AWS APIs go dark, not the region's NATS, enclaves or API, so the
service keeps its steady state for the few seconds this lasts. On an account the same cut
is an FIS network experiment; this fault refuses accounts.

The allow-listed target is the key whose region is cut (the twin's own sealing key).
"""

from __future__ import annotations

from drills.capabilities import Capability
from drills.faults.base import Fault
from drills.twin import control


class KeyRegionUnreachable(Fault):
    """Every AWS API request signed for the key's region is held unanswered; revert lets
    them through again (held requests are then answered, and retried by their callers)."""

    kind = "kms.key-region-unreachable"
    calls = ("twin:regions/isolate",)
    revert_calls = ("twin:regions/isolate",)
    target_kind = "key"
    requires = frozenset({Capability.CONTROL})

    @property
    def target(self) -> str:
        return str(self.params["key_arn"])

    def describe(self) -> str:
        return (f"make {self.region}, the region of key {self.target.rsplit('/', 1)[-1]}, stop "
                "answering AWS API requests")

    def _isolate(self, isolated: bool) -> None:
        control.post(self.ctx.twin.state.aws_url, "regions/isolate",
                     {"region": self.region, "isolated": isolated})

    def inject(self) -> None:
        self._isolate(True)

    def revert(self) -> None:
        self._isolate(False)
