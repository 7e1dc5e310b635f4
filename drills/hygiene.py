"""Probe hygiene: a run against an account leaves nothing behind but its evidence.

Every vault the drills make (the canary's, the probes' own enrolments, the simulated apps'
of `--load`) has an id that starts with `VAULT_PREFIX`, which no app's vault id does. At the
end of a run against an account, and in `drills rollback --target aws`, `sweep` deletes them
from where the service keeps a vault (runbook 2.1, 2.2): every version and delete marker
under `vaults/<id>/` in the vault bucket and its DR replica, and their items in the three
tables, in both regions (a replica's copies are deleted too, not left to replication).
A bucket or table that does not exist in a region is skipped: a DR region not deployed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from drills.clients import Clients
from drills.environment import Names
from drills.errors import SweepError

#: What every vault id the drills make starts with.
VAULT_PREFIX = "drills-"
#: The codes of a bucket or table that is not there (a region without the DR stack).
_ABSENT = {"NoSuchBucket", "ResourceNotFoundException"}


def drill_vault_prefix(kind: str) -> str:
    """The id prefix of vaults a drill makes for `kind` ("canary", "probe-smoke", "load")."""
    return f"{VAULT_PREFIX}{kind}"


@dataclass(frozen=True, slots=True)
class Swept:
    """What a sweep deleted: object versions and delete markers, table items."""

    objects: int = 0
    items: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.objects + other.objects, self.items + other.items)

    def __str__(self) -> str:
        return (f"{self.objects} object versions and {self.items} table items of vaults "
                f"named {VAULT_PREFIX}*")


def sweep(clients: Clients, names: Names) -> Swept:
    """Delete every trace of the drills' own vaults in both regions of `names`."""
    swept = Swept()
    for region in (names.primary_region, names.dr_region):
        swept += _sweep_bucket(clients("s3", region), names.bucket_in(region))
        ddb = clients("dynamodb", region)
        for table in names.tables:
            swept += _sweep_table(ddb, table)
    return swept


def _absent(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _ABSENT


def _sweep_bucket(s3: Any, bucket: str) -> Swept:
    """Every version is listed before any is deleted: a listing's next page starts at a
    version a deletion would have removed (moto then ends the listing early)."""
    try:
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for page in s3.get_paginator("list_object_versions").paginate(
                      Bucket=bucket, Prefix=f"vaults/{VAULT_PREFIX}")
                  for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes 1000 at most
            failed = s3.delete_objects(Bucket=bucket, Delete={
                "Objects": doomed[start:start + 1000], "Quiet": True}).get("Errors", [])
            if failed:
                raise SweepError(f"S3 refused to delete {len(failed)} object version(s) in "
                                 f"{bucket}, e.g. {failed[0].get('Key')}: "
                                 f"{failed[0].get('Code')} {failed[0].get('Message')}; "
                                 "grant s3:DeleteObjectVersion and run `drills rollback "
                                 "--target aws`")
    except ClientError as exc:
        if not _absent(exc):
            raise
        doomed = []
    return Swept(objects=len(doomed))


def _sweep_table(ddb: Any, table: str) -> Swept:
    """Items whose vault_id (every table of runbook 2.2 carries it) starts with the prefix,
    all found before any is deleted (as the bucket's versions)."""
    try:
        keys = [k["AttributeName"] for k in
                ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
        doomed = list(_scan(ddb, table, keys))
        for item in doomed:
            ddb.delete_item(TableName=table, Key={k: item[k] for k in keys})
    except ClientError as exc:
        if not _absent(exc):
            raise
        doomed = []
    return Swept(items=len(doomed))


def _scan(ddb: Any, table: str, keys: list[str]) -> Iterator[dict[str, Any]]:
    names = {f"#k{i}": k for i, k in enumerate(keys)} | {"#v": "vault_id"}
    for page in ddb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="begins_with(#v, :p)",
            ProjectionExpression=", ".join(n for n in names if n != "#v"),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":p": {"S": VAULT_PREFIX}}):
        yield from page.get("Items", [])
