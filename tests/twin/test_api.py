"""The twin's front door: the API (what API Gateway and the Lambdas answer) over TLS, the
runbook's own `curl`, bad input, Lambda errors, and attestation verified as the apps do."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drills.api_client import ApiClient, Cohort, Population, tls_context
from drills.attestation import ExpectedPcrs, PcrSet, build_pcrs, load_roots
from drills.clients import Clients
from drills.errors import TwinError
from drills.loop import LoopThread
from drills.target import TwinTarget
from drills.twin import manager
from drills.twin.api import MAX_BODY, Lambda, build_app, nats_credentials
from drills.twin.manager import Twin
from drills.twin.nats import NatsCluster
from drills.twin.provision import FIRST_VERSION
from drills.twin.state import DR_REGION
from drills.vault import Unavailability, VaultClient, VaultUnavailable, connect

pytestmark = pytest.mark.twin

RUNBOOK_BODY = '{"device_id":"dr-test","device_type":"android","invitation_code":"DR-TEST"}'


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-api")
    yield thread
    thread.close()


def _population(twin: Twin, *versions: str) -> Population:
    expected = ExpectedPcrs(tuple(PcrSet(v, build_pcrs(v)) for v in versions))
    return Population(load_roots(twin.attestation_root), [Cohort("apps", 1.0, expected)])


def _client(twin: Twin, *versions: str) -> ApiClient:
    return ApiClient(twin.api_url(), twin.ca_bundle, _population(twin, *versions))


def test_the_runbooks_curl_enrols_with_the_host_replaced(healthy_twin: Twin) -> None:
    """Runbook 5.2 step 3's command, run by the real curl binary with `drills twin env`
    exported (DRILLS_API_URL for the host, CURL_CA_BUNDLE for the twin's TLS root)."""
    env = {**os.environ, **manager.env(Path(healthy_twin.state.state_dir))}
    done = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-X", "POST",
         f"{env['DRILLS_API_URL']}/vault/enroll/start-direct",
         "-H", "Content-Type: application/json", "-d", RUNBOOK_BODY],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    reply = json.loads(done.stdout)
    assert reply["vault_id"] == "dr-test"
    assert reply["session_id"].startswith("enroll-dr-test")


def test_a_vault_is_enrolled_read_and_updated_through_the_api_with_attestation(
        healthy_twin: Twin, loop: LoopThread) -> None:
    """start-direct + complete, GET, PUT, GET: every answer's attestation verified against
    the twin's root and the first build's PCR set."""
    client = _client(healthy_twin, FIRST_VERSION)
    vault_id = f"api-{uuid.uuid4().hex[:8]}"
    try:
        enrolled = loop.run(client.enroll(vault_id, b"first", timeout=10), 20)
        assert enrolled.fields["sha256"]
        assert loop.run(client.get(vault_id, timeout=10), 20) == b"first"
        loop.run(client.put(vault_id, b"second", timeout=10), 20)
        assert loop.run(client.get(vault_id, timeout=10), 20) == b"second"
        outcomes = {o.result for o in client.population.outcomes()}  # type: ignore[union-attr]
        assert outcomes == {"ok"}
    finally:
        loop.run(client.close(), 10)


def test_apps_resolve_the_api_name_through_the_twins_dns(healthy_twin: Twin,
                                                         loop: LoopThread) -> None:
    """The target's client calls https://api.vettid.dev:<port>: the name is asked of the
    twin's DNS server once per TTL, TLS is verified for the name; api-dr.vettid.dev reaches
    the standby region, whose API answers 503 until it has enclaves."""
    target = TwinTarget(healthy_twin)
    client, dr = target.api(), target.api(region=DR_REGION)
    vault = healthy_twin.population()[0]
    try:
        assert client.url.host == "api.vettid.dev"
        data = loop.run(client.get(vault.vault_id, timeout=10), 20)
        assert hashlib.sha256(data).hexdigest() == vault.sha256
        assert client.addresses == [healthy_twin.state.primary.host]
        assert client.resolver is not None
        asked = client.resolver.queries
        loop.run(client.get(vault.vault_id, timeout=10), 20)
        assert client.resolver.queries == asked  # the answer is kept for its TTL
        with pytest.raises(VaultUnavailable, match="503"):
            loop.run(dr.health(timeout=10), 20)
        assert dr.addresses == [healthy_twin.state.regions[DR_REGION].host]
    finally:
        loop.run(client.close(), 10)
        loop.run(dr.close(), 10)


def test_an_app_that_does_not_carry_the_builds_pcrs_refuses_it(healthy_twin: Twin,
                                                                 loop: LoopThread) -> None:
    """A cohort expecting another build's PCRs: every answer is a failed request of kind
    attestation with the reason, never an exception of another type; the cohort's outcome
    records it."""
    client = _client(healthy_twin, "9.9.9")
    vault = healthy_twin.population()[0]
    try:
        with pytest.raises(VaultUnavailable) as caught:
            loop.run(client.get(vault.vault_id, timeout=10), 20)
        assert caught.value.kind is Unavailability.ATTESTATION
        assert "pcrs" in str(caught.value)
        (outcome,) = client.population.outcomes()  # type: ignore[union-attr]
        assert (outcome.result, outcome.reason) == ("attestation", "pcrs")
    finally:
        loop.run(client.close(), 10)


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), [
    ("POST", "/vault/enroll/start-direct", "{not json", 400, "not JSON"),
    ("POST", "/vault/enroll/start-direct", '["a list"]', 400, "JSON object"),
    ("POST", "/vault/enroll/start-direct",
     '{"device_id":"d","device_type":"toaster","invitation_code":"X"}', 400, "device_type"),
    ("POST", "/vault/enroll/start-direct", '{"device_type":"ios","invitation_code":"X"}', 400,
     "device_id"),
    ("POST", "/vault/enroll/complete", '{"session_id":"s","vault_id":"v","data":"%%%"}', 400,
     "base64"),
    ("GET", "/vault/no-such-vault-at-all", None, 404, "NoSuchKey"),
    ("PUT", "/vault/no-such-vault-at-all", '{"data":"aGk="}', 404, "not enrolled"),
    ("PUT", "/vault/x", '{"data":"' + "A" * (MAX_BODY + 10) + '"}', 413, "limit"),
])
def test_bad_requests_get_the_apis_http_error_and_the_workers_keep_serving(
        healthy_twin: Twin, method: str, path: str, body: str | None, status: int,
        says: str) -> None:
    """Malformed bodies, unknown vaults and oversize payloads get 400/404/413 with a
    message; the enclaves behind keep serving (health still 200 after)."""
    with httpx.Client(base_url=healthy_twin.api_url(), verify=tls_context(healthy_twin.ca_bundle),
                      trust_env=False, timeout=20) as http:
        answer = http.request(method, path, content=body,
                              headers={"Content-Type": "application/json"})
        assert answer.status_code == status, answer.text
        assert says in answer.text
        assert http.get("/health").status_code == 200


@pytest.fixture
def asgi(cluster: NatsCluster, loop: LoopThread) -> Iterator[tuple[httpx.AsyncClient, str]]:
    """The API app in process, with a Lambda NATS client on the module's own cluster (where
    no enclave listens unless the test answers itself)."""
    async def make() -> Lambda:
        nc = await connect(cluster.spec.urls, cluster.spec.user, cluster.spec.password, "t")
        # Long enough for a busy answer on a loaded machine to arrive before it (else 504).
        return Lambda([VaultClient(nc)], timeout=3.0)

    app = build_app(make)
    ctx = app.router.lifespan_context(app)
    loop.run(ctx.__aenter__(), 15)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    yield client, cluster.spec.urls[0]
    loop.run(client.aclose(), 10)
    loop.run(ctx.__aexit__(None, None, None), 15)


def test_no_enclave_listening_is_the_lambdas_500_no_responders(
        asgi: tuple[httpx.AsyncClient, str], loop: LoopThread) -> None:
    """Runbook 3.2: all vault operations return 500, 'No Responders' from NATS."""
    client, _ = asgi
    answer = loop.run(client.get("/vault/anything"), 10)
    assert answer.status_code == 500
    assert answer.json()["error"] == "no responders"
    assert loop.run(client.get("/health"), 10).status_code == 503


def test_a_busy_enclave_is_503_with_retry_after_and_silence_is_504(
        asgi: tuple[httpx.AsyncClient, str], cluster: NatsCluster, loop: LoopThread) -> None:
    """An enclave that refuses as busy: 503 with Retry-After; one that never answers within
    the Lambda's timeout: 504 'Endpoint request timed out'."""
    client, _ = asgi

    async def responder() -> object:
        nc = await connect(cluster.spec.urls, cluster.spec.user, cluster.spec.password, "r")

        async def busy(msg: object) -> None:
            await msg.respond(json.dumps({  # type: ignore[attr-defined]
                "ok": False, "busy": True, "retry_after": 2.4, "instance_id": "i-x",
                "error": "busy: 2 requests running and 6 queued; retry later"}).encode())

        async def silent(msg: object) -> None:
            return None  # takes the request, never answers

        await nc.subscribe("vettid.vault.get", queue="enclave", cb=busy)
        await nc.subscribe("vettid.vault.put", queue="enclave", cb=silent)
        await nc.flush()
        return nc

    nc = loop.run(responder(), 15)
    try:
        # The responder's node tells the Lambda's node of its subscriptions a moment later
        # (cluster routes): until then the API answers 500 "no responders".
        deadline = time.monotonic() + 15
        while True:
            answer = loop.run(client.get("/vault/v1"), 10)
            if answer.status_code != 500 or time.monotonic() > deadline:
                break
            assert answer.json()["error"] == "no responders"
            time.sleep(0.05)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "2"
        answer = loop.run(client.put("/vault/v1", json={"data": "aGk="}), 10)
        assert answer.status_code == 504
        assert "timed out" in answer.json()["message"]
    finally:
        loop.run(nc.close(), 10)  # type: ignore[attr-defined]


def test_twin_status_and_env_name_the_api(healthy_twin: Twin) -> None:
    """`drills twin status` has a healthy api row; `drills twin env` exports its URL, the TLS
    root for curl and the attestation root."""
    rows = {r.name: r for r in manager.status(Path(healthy_twin.state.state_dir))}
    assert rows["api/us-east-1"].healthy
    env = manager.env(Path(healthy_twin.state.state_dir))
    assert env["DRILLS_API_URL"] == f"https://{healthy_twin.state.primary.host}:" \
        f"{healthy_twin.api_port}"
    assert rows["api/us-west-2"].healthy  # a standby: 503 until failover, as expected
    assert Path(env["CURL_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE")
    assert Path(env["DRILLS_ATTESTATION_ROOT"]).exists()


def test_a_starting_api_waits_for_its_nats_credentials_in_ssm(clients: Clients) -> None:
    """`drills twin up` starts the API while the region's stack is still being made: its
    Lambdas read the parameter (SSM GetParameter, ParameterNotFound until it exists) until
    it is put, then use it."""
    name = f"/test/{uuid.uuid4().hex[:8]}/nats-creds"
    asked = threading.Event()
    clients.on("after-call.ssm.GetParameter", lambda **_: asked.set())
    found: list[dict[str, str]] = []
    reader = threading.Thread(target=lambda: found.append(nats_credentials(clients("ssm"), name)))
    reader.start()
    assert asked.wait(30), "the API never asked SSM for its credentials"
    clients("ssm").put_parameter(Name=name, Type="String",
                                 Value=json.dumps({"user": "u", "password": "p"}))
    reader.join(timeout=30)
    assert found == [{"user": "u", "password": "p"}]


def test_an_api_whose_credentials_never_come_says_which_parameter(clients: Clients) -> None:
    """No parameter within the wait: a TwinError naming the parameter, not a traceback of
    ParameterNotFound."""
    name = f"/test/{uuid.uuid4().hex[:8]}/never"
    with pytest.raises(TwinError, match=f"SSM parameter {name} within 0.3 s"):
        nats_credentials(clients("ssm"), name, timeout=0.3)
