"""Faults of the SSM parameters (runbook 2.3): a parameter deleted, or its value corrupted.

Both need a runbook 2.3 backup taken first: `prepare()` refuses a parameter the backup does not
hold, since a drill never destroys data it cannot restore. The journal holds the parameter's
name and where the backup is (bucket, key, version), never a value: `revert()` reads the value
back from the SSE-KMS backup object, in memory. It restores only a parameter still as the
fault left it (missing, or still holding this fault's junk), so it never undoes a recovery or
a newer change, and can run any number of times.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from drills.errors import FaultError
from drills.faults.base import Fault
from drills.procedures.ssm import (
    BackupRef,
    Parameter,
    load_backup,
    read_parameter,
    write_parameter,
)


class _ParameterFault(Fault):
    """Acts on the parameter `params["name"]`, backed up at `params["backup"]`."""

    target_kind = "ssm-parameter"

    @property
    def target(self) -> str:
        return str(self.params["name"])


    @property
    def backup(self) -> BackupRef:
        return BackupRef.from_params(self.params["backup"])

    def _backed_up(self) -> Parameter:
        found = [p for p in load_backup(self.ctx.clients, self.region, self.backup)
                 if p.name == self.target]
        if not found:
            raise FaultError(f"backup {self.backup} holds no copy of {self.target}; take a "
                             "runbook 2.3 backup that includes it first")
        return found[0]

    def prepare(self) -> None:
        if not isinstance(self.params.get("backup"), dict):
            raise FaultError(f"refusing to damage {self.target} without a backup; take a "
                             "runbook 2.3 backup first")
        self._backed_up()
        if read_parameter(self.ctx.clients, self.region, self.target) is None:
            raise FaultError(f"SSM parameter {self.target} does not exist in {self.region}")

    def _still_damaged(self, now: Parameter | None) -> bool:
        raise NotImplementedError

    def revert(self) -> None:
        if self._still_damaged(read_parameter(self.ctx.clients, self.region, self.target)):
            write_parameter(self.ctx.clients, self.region, self._backed_up())


class DeleteParameter(_ParameterFault):
    """`aws ssm delete-parameter`: the parameter and its history are gone."""

    kind = "ssm.delete-parameter"
    calls = ("ssm:DeleteParameter",)
    revert_calls = ("ssm:PutParameter",)

    def describe(self) -> str:
        return f"delete SSM parameter {self.target} (backup {self.backup})"

    def inject(self) -> None:
        self.ctx.clients("ssm", self.region).delete_parameter(Name=self.target)

    def _still_damaged(self, now: Parameter | None) -> bool:
        return now is None


class CorruptParameter(_ParameterFault):
    """Overwrite the value with junk of the same type (and KMS key, for a SecureString).

    The junk is a random marker, not a secret, so it may sit in the journal for revert.
    """

    kind = "ssm.corrupt-parameter"
    calls = ("ssm:PutParameter",)
    revert_calls = ("ssm:PutParameter",)

    def describe(self) -> str:
        return f"corrupt the value of SSM parameter {self.target} (backup {self.backup})"

    def prepare(self) -> None:
        super().prepare()
        self.params["corrupt_value"] = f"drill-corrupted-{secrets.token_hex(8)}"

    def inject(self) -> None:
        now = read_parameter(self.ctx.clients, self.region, self.target)
        if now is None:
            raise FaultError(f"SSM parameter {self.target} vanished before it was corrupted")
        self.acting()
        write_parameter(self.ctx.clients, self.region, now, self.params["corrupt_value"])

    def _still_damaged(self, now: Parameter | None) -> bool:
        junk: Any = self.params.get("corrupt_value")
        return now is not None and isinstance(junk, str) and hmac.compare_digest(
            now.value.encode(), junk.encode())
