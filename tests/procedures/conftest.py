"""What the DR-region procedure tests share: the vault bucket and its replica bucket in
us-west-2, replicating as the twin provisions them, on the module's own AWS endpoint."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from drills.clients import Clients
from drills.environment import DR_REGION, PRIMARY_REGION, Names


def fresh_names() -> Names:
    """Resource names of their own (bucket names are global in the endpoint)."""
    return Names(account_id=f"{uuid.uuid4().int % 10**12:012d}")


def replicating_buckets(clients: Clients, names: Names, *,
                        rule: dict[str, Any] | None = None) -> Names:
    """The vault bucket and its replica in the DR region, versioned, replicating everything
    with RTC (or under `rule`)."""
    s3, dr = clients("s3", PRIMARY_REGION), clients("s3", DR_REGION)
    s3.create_bucket(Bucket=names.bucket)
    dr.create_bucket(Bucket=names.dr_bucket,
                     CreateBucketConfiguration={"LocationConstraint": DR_REGION})
    for client, name in ((s3, names.bucket), (dr, names.dr_bucket)):
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_replication(Bucket=names.bucket, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/r", "Rules": [rule or {
            "ID": "to-dr", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": f"arn:aws:s3:::{names.dr_bucket}",
                            "ReplicationTime": {"Status": "Enabled",
                                                "Time": {"Minutes": 15}},
                            "Metrics": {"Status": "Enabled",
                                        "EventThreshold": {"Minutes": 15}}}}]})
    return names


@pytest.fixture
def names(clients: Clients) -> Names:
    """Fresh resource names whose vault bucket replicates to its replica bucket."""
    return replicating_buckets(clients, fresh_names())
