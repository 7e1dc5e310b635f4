"""The twin's DNS answers as Route 53's name servers do, and clients cache for the TTL.

References (AWS documentation, Route 53 Developer Guide): "Failover routing", "How Amazon Route
53 chooses records when health checking is configured" ("If a record in a group of records
that have the same name and type doesn't have an associated health check, Route 53 always
considers it to be healthy"; when all are unhealthy Route 53 "considers all the records in the
group to be healthy"), "Weighted routing" and "Multivalue answer routing"; API Reference,
ChangeResourceRecordSets and GetChange (PENDING: "the changes in this request have not
propagated to all Amazon Route 53 DNS servers"). RFC 1034/2308 for NXDOMAIN, NODATA and the
SOA in negative answers.

Queries go through the real `dig`, over UDP and TCP, to a real `python -m drills.twin.dns`.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnslib import RCODE, DNSRecord

from drills.clients import Clients
from drills.resolve import ResolveError, Resolver
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post
from drills.twin.dns import (
    DnsEndpoint,
    Snapshot,
    answer,
    is_running,
    refresh_dns,
    start_dns,
    stop_dns,
)
from tests.conftest import wait_for
from tests.twin.fidelity.test_route53 import FAST, Web

PRIMARY, SECONDARY = "127.0.1.10", "127.0.2.10"
WAIT = 30


@dataclass
class Dig:
    """One `dig` reply: status, flags, and the answer and authority records."""

    status: str
    flags: set[str]
    answer: list[tuple[str, int, str, str]] = field(default_factory=list)
    authority: list[tuple[str, int, str, str]] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [value for _, _, kind, value in self.answer if kind == "A"]


def dig(dns: DnsEndpoint, name: str, kind: str = "A", tcp: bool = False) -> Dig:
    """Ask the twin's DNS with the real `dig` binary."""
    done = subprocess.run(["dig", f"@{dns.host}", "-p", str(dns.port), name, kind, "+noall",
                           "+comments", "+answer", "+authority", "+tries=3", "+time=2",
                           *(["+tcp"] if tcp else [])],
                          capture_output=True, text=True, timeout=30, check=True)
    reply, section = Dig("", set()), None
    for line in done.stdout.splitlines():
        if "status:" in line:
            reply.status = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; flags:"):
            reply.flags = set(line.split(":")[1].split(";")[0].split())
        elif line.startswith(";; ") and "SECTION" in line:
            section = line.split()[1]
        elif line.strip() and not line.startswith(";"):
            owner, ttl, _, rtype, value = line.split(None, 4)
            record = (owner, int(ttl), rtype, value)
            (reply.answer if section == "ANSWER" else reply.authority).append(record)
    assert reply.status, done.stdout
    return reply


@pytest.fixture(scope="module")
def dns(aws: AwsEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsEndpoint]:
    """A DNS server process of this module's own, serving the module's AWS endpoint."""
    post(aws.url, "route53/settings", FAST)
    endpoint = start_dns(tmp_path_factory.mktemp("dns"), aws.url)
    yield endpoint
    stop_dns(endpoint)


@dataclass
class Stack:
    """The runbook's DNS: zone vettid.dev, api failover (PRIMARY checked), api-dr simple."""

    zone: str
    check: str
    web: Web


@pytest.fixture(scope="module")
def stack(aws: AwsEndpoint, clients: Clients, dns: DnsEndpoint) -> Iterator[Stack]:
    web = Web()
    server = web.serve()
    route53 = clients("route53")
    check = route53.create_health_check(CallerReference=uuid.uuid4().hex, HealthCheckConfig={
        "Type": "HTTP", "IPAddress": "127.0.0.1", "Port": web.port, "ResourcePath": "/health",
        "RequestInterval": 10, "FailureThreshold": 2})["HealthCheck"]["Id"]
    zone = route53.create_hosted_zone(Name="vettid.dev", CallerReference=uuid.uuid4().hex)
    zone_id = zone["HostedZone"]["Id"]

    def a(name: str, address: str, ttl: int, **extra: Any) -> dict[str, Any]:
        return {"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": address}],
            **extra}}

    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        a("api.vettid.dev", PRIMARY, 60, SetIdentifier="primary", Failover="PRIMARY",
          HealthCheckId=check),
        a("api.vettid.dev", SECONDARY, 60, SetIdentifier="secondary", Failover="SECONDARY"),
        a("api-dr.vettid.dev", SECONDARY, 30),
    ]})
    wait_for(lambda: dig(dns, "api-dr.vettid.dev").addresses == [SECONDARY], WAIT,
             "the records to be INSYNC and served")
    yield Stack(zone_id, check, web)
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------ answers, through dig


def test_failover_answer_follows_the_primarys_health_check(stack: Stack,
                                                           dns: DnsEndpoint) -> None:
    """api.vettid.dev answers the PRIMARY while its check is healthy, the SECONDARY once the
    check fails, and the PRIMARY again once it recovers; with the record's TTL, over UDP and
    TCP, authoritatively."""
    first = wait_for(lambda: (r := dig(dns, "api.vettid.dev")).addresses == [PRIMARY] and r,
                     WAIT, "the PRIMARY")
    assert first.status == "NOERROR"
    assert "aa" in first.flags
    assert first.answer == [("api.vettid.dev.", 60, "A", PRIMARY)]
    assert dig(dns, "api.vettid.dev", tcp=True).addresses == [PRIMARY]
    stack.web.code = 503
    try:
        wait_for(lambda: dig(dns, "api.vettid.dev").addresses == [SECONDARY], WAIT,
                 "the SECONDARY once the primary's health check fails")
        assert dig(dns, "api.vettid.dev", tcp=True).answer == [
            ("api.vettid.dev.", 60, "A", SECONDARY)]
    finally:
        stack.web.code = 200
    wait_for(lambda: dig(dns, "api.vettid.dev").addresses == [PRIMARY], WAIT,
             "the PRIMARY again once its health check recovers")


def test_a_simple_record_answers_with_its_own_ttl(stack: Stack, dns: DnsEndpoint) -> None:
    """api-dr.vettid.dev -> us-west-2's address, TTL 30."""
    assert dig(dns, "api-dr.vettid.dev").answer == [("api-dr.vettid.dev.", 30, "A", SECONDARY)]


def test_negative_answers_and_other_zones(stack: Stack, dns: DnsEndpoint) -> None:
    """A missing name: NXDOMAIN with the SOA; a name without that type: NOERROR and no
    answer; a name outside the twin's zones: REFUSED."""
    missing = dig(dns, "nope.vettid.dev")
    assert missing.status == "NXDOMAIN"
    assert [(owner, kind) for owner, _, kind, _ in missing.authority] == [("vettid.dev.", "SOA")]
    assert missing.authority[0][1] == 900  # min(SOA TTL 900, SOA minimum 86400)
    nodata = dig(dns, "api.vettid.dev", "AAAA")
    assert (nodata.status, nodata.answer) == ("NOERROR", [])
    assert dig(dns, "example.com").status == "REFUSED"


def test_a_change_is_answered_only_once_insync(aws: AwsEndpoint, clients: Clients, stack: Stack,
                                               dns: DnsEndpoint) -> None:
    """While a change is PENDING the name servers answer what they had (here, for a new name,
    NXDOMAIN; for an UPSERT, the old value); once INSYNC, the new records."""
    route53 = clients("route53")
    post(aws.url, "route53/settings", {"propagation_delay": 3600})  # held PENDING
    try:
        created = route53.change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={
            "Changes": [{"Action": "CREATE", "ResourceRecordSet": {
                "Name": "canary.vettid.dev", "Type": "A", "TTL": 5,
                "ResourceRecords": [{"Value": "127.0.3.3"}]}},
                        {"Action": "UPSERT", "ResourceRecordSet": {
                "Name": "api-dr.vettid.dev", "Type": "A", "TTL": 30,
                "ResourceRecords": [{"Value": "127.0.3.4"}]}}]})["ChangeInfo"]
        assert created["Status"] == "PENDING"
        refresh_dns(dns)
        for _ in range(3):  # whatever the server last fetched, the change was PENDING then
            assert dig(dns, "canary.vettid.dev").status == "NXDOMAIN"
            assert dig(dns, "api-dr.vettid.dev").addresses == [SECONDARY]
        assert route53.get_change(Id=created["Id"])["ChangeInfo"]["Status"] == "PENDING"
    finally:
        post(aws.url, "route53/settings", {"propagation_delay": FAST["propagation_delay"]})
    wait_for(lambda: dig(dns, "canary.vettid.dev").addresses == ["127.0.3.3"], WAIT,
             "the new record once INSYNC")
    assert route53.get_change(Id=created["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    assert dig(dns, "api-dr.vettid.dev").addresses == ["127.0.3.4"]
    route53.change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {"Name": "api-dr.vettid.dev", "Type": "A",
                                                   "TTL": 30,
                                                   "ResourceRecords": [{"Value": SECONDARY}]}}]})
    wait_for(lambda: dig(dns, "api-dr.vettid.dev").addresses == [SECONDARY], WAIT,
             "api-dr back on us-west-2")


def test_a_change_seen_insync_is_answered_at_once(clients: Clients, stack: Stack,
                                                  dns: DnsEndpoint) -> None:
    """INSYNC means every name server has the change: asked right after GetChange says
    INSYNC (no waiting, no refresh), the name server answers the new records, every time."""
    route53 = clients("route53")
    for value in ("127.0.3.5", "127.0.3.6", SECONDARY):
        change = route53.change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": "api-dr.vettid.dev", "Type": "A", "TTL": 30,
                "ResourceRecords": [{"Value": value}]}}]})["ChangeInfo"]
        wait_for(lambda c=change: route53.get_change(Id=c["Id"])["ChangeInfo"]["Status"]
                 == "INSYNC", WAIT, f"the change to {value} to be INSYNC", step=0.01)
        assert dig(dns, "api-dr.vettid.dev").addresses == [value]


def test_a_pending_change_is_fetched_when_due_not_a_poll_later(aws: AwsEndpoint,
                                                                 clients: Clients, stack: Stack,
                                                                 tmp_path: Path) -> None:
    """A name server that saw a change PENDING fetches again once it is due: with an hour
    between polls, the change is still answered once its propagation delay has passed."""
    slow = start_dns(tmp_path / "dns", aws.url, refresh=3600)
    route53 = clients("route53")
    post(aws.url, "route53/settings", {"propagation_delay": 4})
    try:
        change = route53.change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": "due.vettid.dev", "Type": "A", "TTL": 5,
                "ResourceRecords": [{"Value": "127.0.3.7"}]}}]})["ChangeInfo"]
        refresh_dns(slow)  # its one fetch before the hour is up: the change is PENDING then
        wait_for(lambda: dig(slow, "due.vettid.dev").addresses == ["127.0.3.7"], WAIT,
                 "the change answered once due")
        assert route53.get_change(Id=change["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    finally:
        post(aws.url, "route53/settings", {"propagation_delay": FAST["propagation_delay"]})
        stop_dns(slow)


# ------------------------------------------------------------------ routing rules, as logic


def rrset(name: str, value: str, ttl: int = 60, kind: str = "A", **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "TTL": ttl, "ResourceRecords": [{"Value": value}],
            **extra}


def ask(snapshot: Snapshot, name: str, kind: str = "A", seed: int = 0) -> DNSRecord:
    return answer(DNSRecord.question(name, kind), snapshot, random.Random(seed))


def zone(records: list[dict[str, Any]], health: dict[str, bool]) -> Snapshot:
    soa = rrset("t.test.", "ns.t.test. hostmaster.t.test. 1 7200 900 1209600 60", 900, "SOA")
    return Snapshot.from_api({"zones": [{"Id": "/hostedzone/Z", "Name": "t.test.",
                                         "PrivateZone": False,
                                         "ResourceRecordSets": [soa, *records]}],
                              "health": health})


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == 1]


def test_failover_when_both_are_unhealthy_answers_the_primary() -> None:
    """All records of the group unhealthy: Route 53 considers them all healthy."""
    records = [rrset("w.t.test.", "10.0.0.1", Failover="PRIMARY", SetIdentifier="p",
                     HealthCheckId="hp"),
               rrset("w.t.test.", "10.0.0.2", Failover="SECONDARY", SetIdentifier="s",
                     HealthCheckId="hs")]
    assert addresses(ask(zone(records, {"hp": False, "hs": False}), "w.t.test")) == ["10.0.0.1"]
    assert addresses(ask(zone(records, {"hp": False, "hs": True}), "w.t.test")) == ["10.0.0.2"]


def test_weighted_and_multivalue_answers_skip_unhealthy_records() -> None:
    """Weighted: drawn by weight among the healthy (weight 0 only as a last resort);
    multivalue: every healthy record."""
    weighted = [rrset("w.t.test.", "10.0.0.1", Weight=1, SetIdentifier="a", HealthCheckId="a"),
                rrset("w.t.test.", "10.0.0.2", Weight=0, SetIdentifier="b")]
    assert {addresses(ask(zone(weighted, {"a": True}), "w.t.test", seed=s))[0]
            for s in range(20)} == {"10.0.0.1"}
    assert addresses(ask(zone(weighted, {"a": False}), "w.t.test")) == ["10.0.0.2"]
    multi = [rrset("m.t.test.", f"10.0.1.{i}", MultiValueAnswer=True, SetIdentifier=str(i),
                   HealthCheckId=str(i)) for i in range(3)]
    got = addresses(ask(zone(multi, {"0": True, "1": False, "2": True}), "m.t.test"))
    assert sorted(got) == ["10.0.1.0", "10.0.1.2"]


def test_a_cname_is_followed_inside_the_zone_and_empty_names_exist() -> None:
    """A CNAME to a name of the zone brings that name's records; a name with only names
    below it answers NOERROR without records, not NXDOMAIN."""
    snap = zone([rrset("www.t.test.", "app.t.test", 300, "CNAME"),
                 rrset("app.t.test.", "10.0.0.7", 20),
                 rrset("a.b.t.test.", "10.0.0.8")], {})
    reply = ask(snap, "www.t.test")
    assert [(str(rr.rname), rr.ttl) for rr in reply.rr] == [("www.t.test.", 300),
                                                            ("app.t.test.", 20)]
    assert addresses(reply) == ["10.0.0.7"]
    empty = ask(snap, "b.t.test")
    assert (empty.header.rcode, empty.rr) == (RCODE.NOERROR, [])
    assert ask(snap, "c.t.test").header.rcode == RCODE.NXDOMAIN


# ------------------------------------------------------------------ the client's resolver


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_resolver_keeps_an_answer_for_its_ttl(aws: AwsEndpoint, clients: Clients,
                                                  stack: Stack, dns: DnsEndpoint) -> None:
    """An answer is reused until its TTL (30 s for api-dr) has passed, even after the name
    server has changed its answer; then the new answer is fetched."""
    clock = Clock()
    resolver = Resolver(dns.host, dns.port, clock=clock)
    assert resolver.resolve("api-dr.vettid.dev") == SECONDARY
    assert resolver.lookup("API-DR.vettid.dev.").ttl == 30
    assert resolver.queries == 1
    clients("route53").change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": "api-dr.vettid.dev", "Type": "A", "TTL": 30,
            "ResourceRecords": [{"Value": "127.0.2.11"}]}}]})
    try:
        wait_for(lambda: dig(dns, "api-dr.vettid.dev").addresses == ["127.0.2.11"], WAIT,
                 "the name server's new answer")
        clock.now += 29.5
        assert resolver.resolve("api-dr.vettid.dev") == SECONDARY  # still cached
        assert resolver.queries == 1
        clock.now += 1.0
        assert resolver.resolve("api-dr.vettid.dev") == "127.0.2.11"
        assert resolver.queries == 2
    finally:
        clients("route53").change_resource_record_sets(HostedZoneId=stack.zone, ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": "api-dr.vettid.dev", "Type": "A", "TTL": 30,
                "ResourceRecords": [{"Value": SECONDARY}]}}]})
        wait_for(lambda: dig(dns, "api-dr.vettid.dev").addresses == [SECONDARY], WAIT,
                 "api-dr back on us-west-2")


def test_the_resolver_raises_for_missing_names_and_silent_servers(stack: Stack,
                                                                  dns: DnsEndpoint) -> None:
    """NXDOMAIN, REFUSED and no answer at all are ResolveErrors (never cached)."""
    resolver = Resolver(dns.host, dns.port)
    for name in ("nope.vettid.dev", "example.com"):
        with pytest.raises(ResolveError, match="did not resolve"):
            resolver.resolve(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: queries go unanswered
        mute = Resolver("127.0.0.1", silent.getsockname()[1], timeout=0.2, attempts=2)
        with pytest.raises(ResolveError, match="did not answer"):
            mute.resolve("api.vettid.dev")
        assert mute.queries == 2


# ------------------------------------------------------------------ the process


def test_the_server_is_found_and_stopped_through_its_pid_file(
        aws: AwsEndpoint, tmp_path: Path) -> None:
    """start_dns answers once serving; stop_dns stops it from its pid file, is idempotent,
    and never signals a process whose argv is not the server's."""
    endpoint = start_dns(tmp_path / "own", aws.url)
    assert is_running(endpoint)
    assert dig(endpoint, "example.com").status == "REFUSED"
    stop_dns(endpoint)
    assert not is_running(endpoint)
    assert not Path(endpoint.pid_file).exists()
    stop_dns(endpoint)  # again: nothing to do
    Path(endpoint.pid_file).write_text(f"{os.getpid()}\n")  # a stranger (this test process)
    assert not is_running(endpoint)
    stop_dns(endpoint)  # must not signal us
    assert not Path(endpoint.pid_file).exists()
