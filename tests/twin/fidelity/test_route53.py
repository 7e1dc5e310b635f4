"""Route 53 on the twin probes its health checks and propagates its changes, as AWS documents.

References (AWS documentation):
- Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check is healthy"
  (dns-failover-determining-health-of-endpoints.html): a TCP connection within four seconds,
  then "an HTTP status code of 2xx or 3xx within two seconds"; "HTTPS health checks don't
  validate SSL/TLS certificates"; string matching in the first 5,120 bytes; "If more than 18%
  of health checkers report that an endpoint is healthy, Route 53 considers it healthy";
  "Route 53 considers a new health check to be healthy until there's enough data" ("the
  health guide" below);
- API Reference: HealthCheckConfig (FailureThreshold: "the number of consecutive health
  checks that an endpoint must pass or fail for Route 53 to change the current status",
  RequestInterval, Regions, Port, EnableSNI, Inverted, Disabled, the Host header),
  GetHealthCheckStatus ("one HealthCheckObservation element for each Amazon Route 53 health
  checker"), ChangeResourceRecordSets and GetChange (PENDING, then INSYNC);
- "Monitoring health checks using CloudWatch": HealthCheckStatus (1 healthy, 0 unhealthy) and
  HealthCheckPercentageHealthy in AWS/Route53, dimension HealthCheckId.

The twin's interval is compressed (`route53/settings` interval_scale 0.05: a 10 s check runs
every 0.5 s) so each test waits about a second; every wait is a condition with a deadline.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drills.clients import Clients
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post, request
from drills.twin.fidelity.route53 import CHECKER_REGIONS, Checker, Monitor
from drills.twin.fidelity.route53_probe import Report
from drills.twin.tls import make_api_tls
from tests.conftest import wait_for

#: Twin timing for these tests: 10 s -> 0.5 s between one checker's probes.
FAST = {"interval_scale": 0.05, "metric_period": 0.5, "propagation_delay": 1.0}
DEFAULTS = {"interval_scale": 0.1, "metric_period": 1.0, "propagation_delay": 1.0}
WAIT = 30


@dataclass
class Web:
    """A local HTTP(S) endpoint answering `GET /health` with the status the test sets, and
    what each request looked like (Host header, User-Agent, TLS server name)."""

    code: int = 200
    body: bytes = b'{"status": "ok"}'
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def serve(self, tls_dir: Path | None = None) -> http.server.ThreadingHTTPServer:
        web = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                web.requests.append({"path": self.path, "host": self.headers.get("Host", ""),
                                     "agent": self.headers.get("User-Agent", ""),
                                     "sni": getattr(self.connection, "drills_sni", "")})
                self.send_response(web.code)
                self.send_header("Content-Length", str(len(web.body)))
                self.end_headers()
                self.wfile.write(web.body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls_dir is not None:
            make_api_tls(tls_dir, ["127.0.0.1"])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_dir / "api.pem", tls_dir / "api.key")

            def remember(sock: ssl.SSLObject, name: str | None, _: Any) -> None:
                sock.drills_sni = name or ""  # type: ignore[union-attr]

            context.sni_callback = remember  # type: ignore[assignment]
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        return server


@pytest.fixture(scope="module", autouse=True)
def fast(aws: AwsEndpoint) -> Iterator[None]:
    post(aws.url, "route53/settings", FAST)
    yield
    post(aws.url, "route53/settings", DEFAULTS)


@pytest.fixture
def web() -> Iterator[Web]:
    endpoint = Web()
    server = endpoint.serve()
    yield endpoint
    server.shutdown()
    server.server_close()


def create_check(clients: Clients, **config: Any) -> str:
    check = clients("route53").create_health_check(
        CallerReference=uuid.uuid4().hex,
        HealthCheckConfig={"IPAddress": "127.0.0.1", "ResourcePath": "/health",
                           "RequestInterval": 10, **config})
    return str(check["HealthCheck"]["Id"])


def verdict(aws: AwsEndpoint, check: str) -> dict[str, Any]:
    """The twin's view of one health check: healthy, percentage_healthy, checkers."""
    return dict(post(aws.url, "route53/health-checks", {})["health_checks"][check])


def observations(clients: Clients, check: str) -> list[dict[str, Any]]:
    return list(clients("route53").get_health_check_status(
        HealthCheckId=check)["HealthCheckObservations"])


def recent_metric(clients: Clients, check: str, name: str) -> dict[str, float] | None:
    """Minimum and Maximum of the metric over the last two seconds, if it has data."""
    now = datetime.now(UTC)
    points = clients("cloudwatch").get_metric_statistics(
        Namespace="AWS/Route53", MetricName=name,
        Dimensions=[{"Name": "HealthCheckId", "Value": check}],
        StartTime=now - timedelta(seconds=2), EndTime=now + timedelta(seconds=1), Period=60,
        Statistics=["Minimum", "Maximum"])["Datapoints"]
    return {"min": points[0]["Minimum"], "max": points[0]["Maximum"]} if points else None


# ------------------------------------------------------------------ the rules, as logic


def report(ok: bool) -> Report:
    return Report(ok, "Success" if ok else "Failure", "127.0.0.1", datetime.now(UTC))


def test_a_checker_turns_after_failure_threshold_results_in_a_row() -> None:
    """FailureThreshold consecutive failures turn a checker's view unhealthy, and as many
    consecutive successes turn it back; a result the other way restarts the count."""
    checker = Checker("us-east-1", 0.0)
    for ok, healthy in [(False, True), (False, True), (True, True), (False, True),
                        (False, True), (False, False), (True, False), (True, False),
                        (False, False), (True, False), (True, False), (True, True)]:
        checker.record(report(ok), threshold=3)
        assert checker.healthy is healthy


@pytest.mark.parametrize(("checkers", "healthy_views", "healthy"),
                         [(8, 1, False), (8, 2, True), (8, 0, False), (3, 1, True)])
def test_an_endpoint_is_healthy_when_more_than_18_percent_of_checkers_say_so(
        checkers: int, healthy_views: int, healthy: bool) -> None:
    """1 of 8 (12.5 %) is unhealthy, 2 of 8 (25 %) and 1 of 3 (33 %) are healthy."""
    monitor = Monitor(("r",) * checkers, [Checker("r", 0.0, healthy=i < healthy_views)
                                          for i in range(checkers)])
    monitor.settle()
    assert monitor.healthy is healthy


# ------------------------------------------------------------------ probing endpoints


def test_each_checker_probes_the_endpoint_and_reports_success(aws: AwsEndpoint, clients: Clients,
                                                              web: Web) -> None:
    """A new check is healthy; then each of the 8 default checkers reports its observation
    ("Success: HTTP Status Code 200, OK"), having sent GET ResourcePath with Host IPAddress:Port."""
    check = create_check(clients, Type="HTTP", Port=web.port)
    assert verdict(aws, check)["healthy"] is True
    seen = wait_for(lambda: len(obs := observations(clients, check)) == 8 and obs, WAIT,
                    "an observation from each of the 8 checkers")
    assert sorted(o["Region"] for o in seen) == sorted(CHECKER_REGIONS)
    assert {o["StatusReport"]["Status"] for o in seen} == {"Success: HTTP Status Code 200, OK"}
    assert {o["IPAddress"] for o in seen} == {"127.0.0.1"}
    first = web.requests[0]
    assert first["path"] == "/health"
    assert first["host"] == f"127.0.0.1:{web.port}"
    assert first["agent"].startswith("Amazon-Route53-Health-Check-Service")
    clients("route53").delete_health_check(HealthCheckId=check)


def test_a_failing_endpoint_turns_unhealthy_after_the_threshold_and_back(
        aws: AwsEndpoint, clients: Clients, web: Web) -> None:
    """503s turn the check unhealthy once FailureThreshold of them came in a row at enough
    checkers; GetHealthCheckStatus and HealthCheckStatus say so; 200s turn it back."""
    check = create_check(clients, Type="HTTP", Port=web.port, FailureThreshold=3)
    wait_for(lambda: recent_metric(clients, check, "HealthCheckStatus") == {"min": 1, "max": 1},
             WAIT, "HealthCheckStatus 1 while the endpoint answers 200")
    web.code = 503
    down = wait_for(lambda: (v := verdict(aws, check))["healthy"] is False and v, WAIT,
                    "the check to turn unhealthy")
    assert down["percentage_healthy"] <= 18
    turned = [c for c in down["checkers"] if not c["healthy"]]
    assert all(c["failed"] >= 3 for c in turned), turned
    wait_for(lambda: {o["StatusReport"]["Status"] for o in observations(clients, check)}
             == {"Failure: HTTP Status Code 503, Service Unavailable"}, WAIT,
             "every checker to report the 503")
    wait_for(lambda: recent_metric(clients, check, "HealthCheckStatus") == {"min": 0, "max": 0},
             WAIT, "HealthCheckStatus 0")
    web.code = 200
    up = wait_for(lambda: (v := verdict(aws, check))["healthy"] is True and v, WAIT,
                  "the check to turn healthy again")
    assert up["percentage_healthy"] > 18
    was_down = {c["region"] for c in turned}
    back = [c for c in up["checkers"] if c["healthy"] and c["region"] in was_down]
    assert back
    assert all(c["passed"] >= 3 for c in back), back
    wait_for(lambda: recent_metric(clients, check, "HealthCheckStatus") == {"min": 1, "max": 1},
             WAIT, "HealthCheckStatus 1 again")
    percentage = wait_for(lambda: recent_metric(clients, check, "HealthCheckPercentageHealthy"),
                          WAIT, "HealthCheckPercentageHealthy")
    assert 0 <= percentage["min"] <= percentage["max"] <= 100
    clients("route53").delete_health_check(HealthCheckId=check)


def test_https_checks_skip_certificate_validation_and_send_the_name(
        aws: AwsEndpoint, clients: Clients, tmp_path: Path) -> None:
    """An endpoint whose certificate no public CA signed is healthy; with EnableSNI the name
    goes in client_hello, and Host is FullyQualifiedDomainName:Port."""
    web = Web()
    server = web.serve(tls_dir=tmp_path)
    try:
        check = create_check(clients, Type="HTTPS", Port=web.port, EnableSNI=True,
                             FullyQualifiedDomainName="api.vettid.dev")
        seen = wait_for(lambda: len(obs := observations(clients, check)) == 8 and obs, WAIT,
                        "every checker's observation")
        assert {o["StatusReport"]["Status"] for o in seen} == {
            "Success: HTTP Status Code 200, OK"}
        assert web.requests[0]["sni"] == "api.vettid.dev"
        assert web.requests[0]["host"] == f"api.vettid.dev:{web.port}"
        clients("route53").delete_health_check(HealthCheckId=check)
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_check_without_a_port_checks_443(clients: Clients) -> None:
    """Port defaults to 443 for HTTPS (moto says 80)."""
    check = create_check(clients, Type="HTTPS", Disabled=True)
    config = clients("route53").get_health_check(HealthCheckId=check)["HealthCheck"][
        "HealthCheckConfig"]
    assert config["Port"] == 443
    clients("route53").delete_health_check(HealthCheckId=check)


def test_string_matching_looks_in_the_body(aws: AwsEndpoint, clients: Clients, web: Web) -> None:
    """HTTP_STR_MATCH is healthy only while SearchString is in the first 5,120 bytes."""
    web.body = b'{"status": "ok", "enclave": "serving"}'
    check = create_check(clients, Type="HTTP_STR_MATCH", Port=web.port, FailureThreshold=1,
                         SearchString='"serving"')
    wait_for(lambda: len(observations(clients, check)) == 8, WAIT, "every checker's observation")
    web.body = b"x" * 6000 + b'"serving"'
    wait_for(lambda: verdict(aws, check)["healthy"] is False, WAIT, "the match to fail")
    assert any("search string was not found" in o["StatusReport"]["Status"]
               for o in observations(clients, check))
    clients("route53").delete_health_check(HealthCheckId=check)


def test_inverted_and_disabled_checks(aws: AwsEndpoint, clients: Clients, web: Web) -> None:
    """Inverted: healthy endpoint, unhealthy check. Disabled: never probed, always healthy
    (unhealthy once inverted)."""
    inverted = create_check(clients, Type="HTTP", Port=web.port, Inverted=True)
    disabled = create_check(clients, Type="HTTP", Port=web.port, ResourcePath="/disabled",
                            Disabled=True)
    assert verdict(aws, inverted)["healthy"] is False
    assert verdict(aws, disabled)["healthy"] is True
    wait_for(lambda: len(observations(clients, inverted)) == 8, WAIT, "the inverted check's probes")
    assert verdict(aws, inverted)["healthy"] is False
    assert "/disabled" not in {r["path"] for r in web.requests}
    assert observations(clients, disabled) == []
    clients("route53").update_health_check(HealthCheckId=disabled, Inverted=True)
    assert verdict(aws, disabled)["healthy"] is False
    for check in (inverted, disabled):
        clients("route53").delete_health_check(HealthCheckId=check)


# ------------------------------------------------------------------ change propagation


def served_names(aws: AwsEndpoint, zone: str) -> set[str] | None:
    for served in post(aws.url, "route53/served", {})["zones"]:
        if served["Id"].endswith(zone.split("/")[-1]):
            return {r["Name"] for r in served["ResourceRecordSets"]}
    return None


def test_a_change_is_pending_then_insync_and_served_only_then(aws: AwsEndpoint,
                                                              clients: Clients) -> None:
    """ChangeResourceRecordSets answers PENDING; the API shows the record at once, the name
    servers only once GetChange says INSYNC. A lowered delay releases a held change."""
    route53 = clients("route53")
    zone = route53.create_hosted_zone(Name=f"z{uuid.uuid4().hex[:8]}.test",
                                      CallerReference=uuid.uuid4().hex)
    assert zone["ChangeInfo"]["Status"] == "PENDING"
    zone_id = zone["HostedZone"]["Id"]
    wait_for(lambda: route53.get_change(Id=zone["ChangeInfo"]["Id"])["ChangeInfo"]["Status"]
             == "INSYNC", WAIT, "the new zone to be INSYNC")
    name = f"new.{zone['HostedZone']['Name']}"
    post(aws.url, "route53/settings", {"propagation_delay": 3600})  # held PENDING
    try:
        change = route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": "drill", "Changes": [{"Action": "CREATE", "ResourceRecordSet": {
                "Name": name, "Type": "A", "TTL": 30,
                "ResourceRecords": [{"Value": "127.0.9.9"}]}}]})["ChangeInfo"]
        assert change["Status"] == "PENDING"
        assert change["Comment"] == "drill"
        assert route53.get_change(Id=change["Id"])["ChangeInfo"]["Status"] == "PENDING"
        listed = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        assert name in {r["Name"] for r in listed}  # the API shows it at once
        assert name not in (served_names(aws, zone_id) or set())  # the name servers do not
    finally:
        post(aws.url, "route53/settings", {"propagation_delay": FAST["propagation_delay"]})
    wait_for(lambda: route53.get_change(Id=change["Id"])["ChangeInfo"]["Status"] == "INSYNC",
             WAIT, "the change to become INSYNC")
    assert name in (served_names(aws, zone_id) or set())


def test_settings_are_validated(aws: AwsEndpoint) -> None:
    """A negative or non-numeric setting is refused with a ValidationException."""
    for body in ({"interval_scale": 0}, {"propagation_delay": -1}, {"metric_period": "1"}):
        status, reply = request(aws.url, "route53/settings", body)
        assert status == 400, body
        assert reply["__type"] == "ValidationException"
