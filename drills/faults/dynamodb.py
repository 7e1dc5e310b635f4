"""Faults of the DynamoDB vault metadata (runbook 2.2): items deleted, items corrupted.

Before acting, `prepare()` refuses a table without point-in-time recovery (a drill never
destroys data it cannot restore), takes the runbook's on-demand backup
(`create-backup --backup-name pre-change-<ts>`, "On-demand backups before major changes"),
and captures the images of the items it is about to damage into `params`, so the journal
holds what `revert()` needs even if this process dies. Those images are vault metadata: a
content hash, an S3 version id and the vault's data key *encrypted under KMS* (the EDK), so
the journal holds no secret; a plaintext data key never leaves the enclave.

`revert()` puts an image back only where the item is still as the fault left it (missing,
or still holding this fault's corrupt values), with a condition, so it never overwrites a
recovery or a newer write; it can run any number of times.
"""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import ClientError

from drills.errors import FaultError
from drills.faults.base import Fault
from drills.procedures.dynamodb import (
    create_on_demand_backup,
    decode_item,
    encode_item,
    key_schema,
    pitr_window,
)


class _ItemsFault(Fault):
    """Damages the items of `params["keys"]` (partition key values) in `params["table"]`."""

    target_kind = "table"
    prepare_reads_only = False  # it takes an on-demand backup

    @property
    def target(self) -> str:
        return str(self.params["table"])


    @property
    def _ddb(self) -> Any:
        return self.ctx.clients("dynamodb", self.region)

    def prepare(self) -> None:
        keys = [str(k) for k in self.params.get("keys") or []]
        if not keys or len(set(keys)) != len(keys):
            raise FaultError(f"name the items to damage in {self.target} by distinct partition "
                             f"key values (got {keys!r})")
        try:
            hash_key, range_key = key_schema(self.ctx.clients, self.target, self.region)
        except ClientError as exc:
            raise FaultError(f"cannot read table {self.target!r} in {self.region}: "
                             f"{exc.response['Error']['Code']}; check the table name") from None
        if range_key is not None:
            raise FaultError(f"{self.target} has a sort key ({range_key}); item faults support "
                             "tables keyed by a partition key only")
        if not pitr_window(self.ctx.clients, self.target, self.region).enabled:
            raise FaultError(f"refusing to damage {self.target}: point-in-time recovery is not "
                             "enabled, so the items could not be restored; enable it (runbook "
                             "2.2) and drill again")
        images = []
        for key in keys:
            found = self._ddb.get_item(TableName=self.target, Key={hash_key: {"S": key}},
                                       ConsistentRead=True).get("Item")
            if found is None:
                raise FaultError(f"{self.target} has no item {hash_key}={key!r}; name items "
                                 "that exist")
            images.append(encode_item(found))
        backup = create_on_demand_backup(self.ctx.clients, self.target, self.region)
        self.params.update(keys=keys, key_attr=hash_key, items=images,
                           backup_arn=backup.arn, backup_name=backup.name)

    def _images(self) -> list[dict[str, Any]]:
        return [decode_item(image) for image in self.params.get("items", [])]

    def _put_back(self, image: dict[str, Any], condition: str,
                  values: dict[str, Any] | None = None) -> None:
        names = {"#k": self.params["key_attr"]}
        extra: dict[str, Any] = {}
        if values:
            names.update({f"#a{i}": attr for i, attr in enumerate(values)})
            extra["ExpressionAttributeValues"] = {f":v{i}": v for i, v in
                                                  enumerate(values.values())}
        try:
            self._ddb.put_item(TableName=self.target, Item=image, ConditionExpression=condition,
                               ExpressionAttributeNames=names, **extra)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # The item was restored (or rewritten) since the fault: that is newer, keep it.


class DeleteItems(_ItemsFault):
    """Delete the named items, as a faulty cleanup job or a mistaken script would."""

    kind = "dynamodb.delete-items"
    calls = ("dynamodb:CreateBackup", "dynamodb:DeleteItem")
    revert_calls = ("dynamodb:PutItem",)

    def describe(self) -> str:
        return (f"delete {len(self.params.get('keys') or [])} item(s) from {self.target} "
                f"(on-demand backup {self.params.get('backup_name', 'not yet taken')})")

    def inject(self) -> None:
        for image in self._images():
            key = {self.params["key_attr"]: image[self.params["key_attr"]]}
            self._ddb.delete_item(TableName=self.target, Key=key)

    def revert(self) -> None:
        for image in self._images():
            self._put_back(image, "attribute_not_exists(#k)")


class CorruptItems(_ItemsFault):
    """Overwrite every non-key attribute of the named items with junk of the same type.

    Revert recognises an item that still holds exactly this fault's junk (journaled).
    """

    kind = "dynamodb.corrupt-items"
    calls = ("dynamodb:CreateBackup", "dynamodb:PutItem")
    revert_calls = ("dynamodb:PutItem",)

    def describe(self) -> str:
        return (f"corrupt {len(self.params.get('keys') or [])} item(s) of {self.target} "
                f"(on-demand backup {self.params.get('backup_name', 'not yet taken')})")

    def prepare(self) -> None:
        super().prepare()
        token = secrets.token_hex(8)
        self.params["corrupt"] = [
            encode_item({attr: (value if attr == self.params["key_attr"] else _junk(value, token))
                         for attr, value in decode_item(image).items()})
            for image in self.params["items"]]

    def inject(self) -> None:
        for junk in self.params["corrupt"]:
            self._ddb.put_item(TableName=self.target, Item=decode_item(junk))

    def revert(self) -> None:
        key_attr = self.params["key_attr"]
        for image, junk in zip(self._images(), self.params.get("corrupt", []), strict=False):
            values = {a: v for a, v in decode_item(junk).items() if a != key_attr}
            held = " AND ".join(f"#a{i} = :v{i}" for i in range(len(values)))
            self._put_back(image, f"attribute_not_exists(#k) OR ({held})", values)


def _junk(value: dict[str, Any], token: str) -> dict[str, Any]:
    """A value of the same DynamoDB type that no real item holds."""
    kind = next(iter(value))
    if kind == "B":
        # Bit rot in the second half: a KMS ciphertext keeps the header naming its key, and
        # fails its integrity check (InvalidCiphertextException) as corrupted ones do.
        data, half = value["B"], len(value["B"]) // 2
        return {"B": data[:half] + bytes(b ^ 0xFF for b in data[half:])}
    if kind == "N":
        return {"N": str(int(token[:8], 16))}
    if kind == "BOOL":
        return {"BOOL": not value["BOOL"]}
    return {"S": f"corrupt-{token}"}
