"""Fixtures the fault tests share."""

from __future__ import annotations

import uuid

import pytest

from drills.clients import Clients


@pytest.fixture
def bucket(clients: Clients) -> str:
    """A fresh versioned bucket on the module's AWS endpoint (the vault bucket's shape)."""
    name = f"vault-{uuid.uuid4().hex[:10]}"
    clients("s3").create_bucket(Bucket=name)
    clients("s3").put_bucket_versioning(Bucket=name,
                                        VersioningConfiguration={"Status": "Enabled"})
    return name
