"""What the runbook's Nitro Enclave does for the vault, inside a twin worker process.

At boot it reads the sealing key ARN and its NATS credentials from SSM, and measures itself:
the PCRs of the enclave build its instance's AMI carries (`drills.twin.images`); a build that
crashes on start never serves. Then it serves, each operation a blocking call run in a
worker thread:

- `start`: an enrolment session for a device (DynamoDB `VettID-Vault-EnrollmentSessions`),
  answered with the enclave's attestation document;
- `enroll`, `put`: seal the vault under its own KMS data key (envelope encryption), the
  ciphertext to S3 at `vaults/<vault-id>/data.enc` (SSE-KMS), metadata to the credentials
  ledger; the answer comes only once S3 and DynamoDB have acknowledged, so an acknowledged
  write is durable;
- `get`: read, unseal, answer the content.

Every answer to a request that carries a `nonce` carries an attestation document bound to it
(`drills.attestation`), so the app can check what served it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drills import attestation, vault
from drills.clients import Clients
from drills.twin import images
from drills.twin.state import Names

FORMAT = 1


def object_key(vault_id: str) -> str:
    """Where a vault's ciphertext lives in the bucket (runbook 4.4)."""
    return f"vaults/{vault_id}/data.enc"


class EnclaveFailedToStart(Exception):
    """The enclave of this instance's image does not start (a defective build)."""


def error_text(exc: Exception) -> str:
    """An enclave failure as the caller reads it ("NoSuchKey: ...", "LookupError: ...")."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


class Enclave:
    """The vault logic; blocking boto3 calls, run in the worker's threads."""

    def __init__(self, clients: Clients, names: Names, region: str, instance_id: str,
                 pki: Path, image_id: str) -> None:
        self.names, self.region, self.instance_id = names, region, instance_id
        self.bucket = names.bucket_in(region)  # the DR region's service writes its replica
        self.kms, self.s3 = clients("kms", region), clients("s3", region)
        self.ddb = clients("dynamodb", region)
        ssm = clients("ssm", region)
        self.key_arn = ssm.get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
        creds = ssm.get_parameter(Name=names.param_nats_creds, WithDecryption=True)
        self.nats_creds = json.loads(creds["Parameter"]["Value"])
        self.measured = self._measure(clients("ec2", region), image_id)
        self.signer = attestation.instance_signer(pki, instance_id)

    @staticmethod
    def _measure(ec2: Any, image: str) -> images.Measured:
        """The PCRs this enclave measures: those of the build its AMI carries."""
        measured = images.measured(ec2, image)
        if measured.defect is images.Defect.CRASH_ON_START:
            raise EnclaveFailedToStart(f"the enclave of build {measured.version} ({image}) "
                                       "exited as it started")
        return measured

    def attest(self, req: dict[str, Any]) -> dict[str, Any]:
        """The attestation field of an answer to `req` (none when it sent no nonce)."""
        nonce = req.get("nonce")
        if not isinstance(nonce, str):
            return {}
        document = attestation.make_document(self.signer, self.instance_id,
                                             self.measured.pcrs, nonce=vault.unb64(nonce))
        return {"attestation": vault.b64(document)}

    def _context(self, vault_id: str) -> dict[str, str]:
        return {"vault_id": vault_id}

    def _seal(self, vault_id: str, data: bytes, edk: bytes | None) -> tuple[bytes, bytes]:
        if edk is None:
            key = self.kms.generate_data_key(KeyId=self.key_arn, KeySpec="AES_256",
                                             EncryptionContext=self._context(vault_id))
            plain_key, edk = key["Plaintext"], key["CiphertextBlob"]
        else:
            plain_key = self.kms.decrypt(CiphertextBlob=edk,
                                         EncryptionContext=self._context(vault_id))["Plaintext"]
        nonce = os.urandom(12)
        sealed = AESGCM(plain_key).encrypt(nonce, data, vault_id.encode())
        body = json.dumps({"v": FORMAT, "edk": vault.b64(edk), "nonce": vault.b64(nonce),
                           "ct": vault.b64(sealed)}).encode()
        return body, edk

    def _store(self, vault_id: str, data: bytes, edk: bytes | None, op: str) -> dict[str, Any]:
        body, edk = self._seal(vault_id, data, edk)
        put = self.s3.put_object(Bucket=self.bucket, Key=object_key(vault_id), Body=body,
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId=self.key_arn)
        now = datetime.now(UTC).isoformat()
        sha = vault.digest(data)
        self.ddb.put_item(TableName=self.names.credentials_table, Item={
            "vault_id": {"S": vault_id}, "version_id": {"S": put.get("VersionId", "")},
            "sha256": {"S": sha}, "edk": {"B": edk}, "updated_at": {"S": now},
            "instance_id": {"S": self.instance_id}})
        return {"version_id": put.get("VersionId", ""), "sha256": sha, "op": op}

    def start(self, req: dict[str, Any]) -> dict[str, Any]:
        """An enrolment session for a device (runbook 5.2 step 3's start-direct)."""
        vault_id = req["vault_id"]
        session = f"enroll-{vault_id}-{uuid.uuid4().hex[:8]}"
        self.ddb.put_item(TableName=self.names.sessions_table, Item={
            "session_id": {"S": session}, "vault_id": {"S": vault_id},
            "device_type": {"S": str(req.get("device_type", ""))},
            "started_at": {"S": datetime.now(UTC).isoformat()},
            "expires_at": {"N": str(int(time.time()) + 600)}})
        return {"session_id": session, "vault_id": vault_id, "expires_in": 600,
                **self.attest(req)}

    def enroll(self, req: dict[str, Any]) -> dict[str, Any]:
        """Seal a new vault; with a `session_id` (the API's flow) the session must exist."""
        vault_id = req["vault_id"]
        session = req.get("session_id")
        if session:
            item = self.ddb.get_item(TableName=self.names.sessions_table,
                                     Key={"session_id": {"S": session}}).get("Item")
            if item is None or item["vault_id"]["S"] != vault_id:
                raise LookupError(f"no enrolment session {session} for vault {vault_id}")
        else:  # the twin seeding its population: the session is made here
            self.ddb.put_item(TableName=self.names.sessions_table, Item={
                "session_id": {"S": f"enroll-{vault_id}"}, "vault_id": {"S": vault_id},
                "started_at": {"S": datetime.now(UTC).isoformat()}})
        return {**self._store(vault_id, vault.unb64(req["data"]), None, "enroll"),
                **self.attest(req)}

    def put(self, req: dict[str, Any]) -> dict[str, Any]:
        vault_id = req["vault_id"]
        item = self.ddb.get_item(TableName=self.names.credentials_table,
                                 Key={"vault_id": {"S": vault_id}}).get("Item")
        if item is None:
            raise LookupError(f"vault {vault_id} is not enrolled")
        result = self._store(vault_id, vault.unb64(req["data"]), item["edk"]["B"], "put")
        self.ddb.put_item(TableName=self.names.transactions_table, Item={
            "vault_id": {"S": vault_id}, "seq": {"N": str(time.time_ns())},
            "version_id": {"S": result["version_id"]}, "sha256": {"S": result["sha256"]}})
        return {**result, **self.attest(req)}

    def get(self, req: dict[str, Any]) -> dict[str, Any]:
        vault_id = req["vault_id"]
        obj = self.s3.get_object(Bucket=self.bucket, Key=object_key(vault_id))
        envelope = json.loads(obj["Body"].read())
        plain_key = self.kms.decrypt(CiphertextBlob=vault.unb64(envelope["edk"]),
                                     EncryptionContext=self._context(vault_id))["Plaintext"]
        data = AESGCM(plain_key).decrypt(vault.unb64(envelope["nonce"]),
                                         vault.unb64(envelope["ct"]), vault_id.encode())
        return {"data": vault.b64(data), "sha256": vault.digest(data),
                "version_id": obj.get("VersionId", ""), **self.attest(req)}
