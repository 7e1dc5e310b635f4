"""An enclave worker: one OS process per InService instance of the enclave ASG.

It does what the runbook's Nitro Enclave does for the vault: at boot it reads the sealing
key ARN and its NATS credentials from SSM; then it serves enroll/put/get/health over NATS
request/reply, sealing each vault under its own KMS data key (envelope encryption), the
ciphertext in S3 at `vaults/<vault-id>/data.enc` (SSE-KMS) and metadata in DynamoDB. It
replies only once S3 and DynamoDB have acknowledged, so an acknowledged write is durable.

Run: python -m drills.twin.worker --state-dir DIR --region us-east-1 --instance-id i-...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drills import vault
from drills.clients import Clients
from drills.twin.nats import NatsClusterSpec
from drills.twin.state import Names, TwinState

FORMAT = 1


def object_key(vault_id: str) -> str:
    """Where a vault's ciphertext lives in the bucket (runbook 4.4)."""
    return f"vaults/{vault_id}/data.enc"


class Enclave:
    """The vault logic; blocking boto3 calls, run in worker threads by the server loop."""

    def __init__(self, clients: Clients, names: Names, region: str, instance_id: str) -> None:
        self.names, self.region, self.instance_id = names, region, instance_id
        self.kms, self.s3 = clients("kms", region), clients("s3", region)
        self.ddb = clients("dynamodb", region)
        ssm = clients("ssm", region)
        self.key_arn = ssm.get_parameter(Name=names.param_sealing_key)["Parameter"]["Value"]
        creds = ssm.get_parameter(Name=names.param_nats_creds, WithDecryption=True)
        self.nats_creds = json.loads(creds["Parameter"]["Value"])

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
        put = self.s3.put_object(Bucket=self.names.bucket, Key=object_key(vault_id), Body=body,
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId=self.key_arn)
        now = datetime.now(UTC).isoformat()
        sha = vault.digest(data)
        self.ddb.put_item(TableName=self.names.credentials_table, Item={
            "vault_id": {"S": vault_id}, "version_id": {"S": put.get("VersionId", "")},
            "sha256": {"S": sha}, "edk": {"B": edk}, "updated_at": {"S": now},
            "instance_id": {"S": self.instance_id}})
        return {"version_id": put.get("VersionId", ""), "sha256": sha, "op": op}

    def enroll(self, req: dict[str, Any]) -> dict[str, Any]:
        vault_id = req["vault_id"]
        self.ddb.put_item(TableName=self.names.sessions_table, Item={
            "session_id": {"S": f"enroll-{vault_id}"}, "vault_id": {"S": vault_id},
            "started_at": {"S": datetime.now(UTC).isoformat()}})
        return self._store(vault_id, vault.unb64(req["data"]), None, "enroll")

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
        return result

    def get(self, req: dict[str, Any]) -> dict[str, Any]:
        vault_id = req["vault_id"]
        obj = self.s3.get_object(Bucket=self.names.bucket, Key=object_key(vault_id))
        envelope = json.loads(obj["Body"].read())
        plain_key = self.kms.decrypt(CiphertextBlob=vault.unb64(envelope["edk"]),
                                     EncryptionContext=self._context(vault_id))["Plaintext"]
        data = AESGCM(plain_key).decrypt(vault.unb64(envelope["nonce"]),
                                         vault.unb64(envelope["ct"]), vault_id.encode())
        return {"data": vault.b64(data), "sha256": vault.digest(data),
                "version_id": obj.get("VersionId", "")}

    def health(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": "serving"}


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


async def serve(enclave: Enclave, urls: list[str]) -> None:
    """Serve vault requests until SIGTERM/SIGINT, then drain."""
    import nats

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(servers=urls, user=enclave.nats_creds["user"],
                            password=enclave.nats_creds["password"],
                            name=f"enclave-{enclave.instance_id}", max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5, ping_interval=2, max_outstanding_pings=2)

    async def handle(msg: Any) -> None:
        req = json.loads(msg.data)
        if req.get("deadline", float("inf")) < time.time():
            return  # the caller gave up; answering would only delay live requests
        op = msg.subject.rsplit(".", 2)[-2] if ".health." in msg.subject else msg.subject.rsplit(
            ".", 1)[-1]
        try:
            result = await asyncio.to_thread(getattr(enclave, op), req)
            reply = {"ok": True, "instance_id": enclave.instance_id, **result}
        except Exception as exc:  # any failure is the caller's answer, never a crash
            reply = {"ok": False, "instance_id": enclave.instance_id, "error": _error_text(exc)}
        await msg.respond(json.dumps(reply).encode())

    pending: set[asyncio.Task[None]] = set()  # strong references: tasks are weakly held

    async def dispatch(msg: Any) -> None:
        task = asyncio.ensure_future(handle(msg))
        pending.add(task)
        task.add_done_callback(pending.discard)

    for op in vault.OPS:
        await nc.subscribe(vault.subject(op), queue=vault.QUEUE, cb=dispatch)
    await nc.subscribe(vault.instance_health_subject(enclave.instance_id), cb=dispatch)
    await nc.flush()
    await stop.wait()
    await nc.drain()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An enclave worker of the drills local twin.")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--instance-id", required=True)
    args = parser.parse_args(argv)
    state = TwinState.load(args.state_dir)
    clients = Clients.for_twin(state.aws_url, args.region)
    enclave = Enclave(clients, state.names, args.region, args.instance_id)
    spec = NatsClusterSpec.from_dict(state.regions[args.region].nats)
    asyncio.run(serve(enclave, spec.urls))


if __name__ == "__main__":
    main()
