"""Runbook 7.1 item 2 on a real moto server with the twin's global tables: lags measured
from what the other region returns, a real conflict made and resolved last-writer-wins, test
items removed from both regions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from drills.clients import Clients
from drills.errors import ObjectiveBreached
from drills.measure.replication import Arrival, LagSummary
from drills.procedures import global_tables as gt
from drills.procedures.replication import Watcher
from drills.twin.aws import AwsEndpoint
from drills.twin.control import post

REGION, DR_REGION = "us-east-1", "us-west-2"
REGIONS = (REGION, DR_REGION)
LAG = 0.2


def make_table(clients: Clients, *, range_key: bool = False, replica: bool = True) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": "seq", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "seq", "AttributeType": "N"})
    ddb = clients("dynamodb", REGION)
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attrs,
                     BillingMode="PAY_PER_REQUEST")
    if replica:
        ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": DR_REGION}}])
    return name


@pytest.fixture(autouse=True)
def fixed_lag(aws: AwsEndpoint) -> Iterator[None]:
    """Every item write takes exactly LAG to reach the other region; no pause outlives a test."""
    post(aws.url, "dynamodb/global-table-settings", {"median": LAG, "sigma": 0, "max": 5})
    yield
    post(aws.url, "dynamodb/resume-replication", {"all": True})


@pytest.fixture
def schemas(clients: Clients) -> list[gt.Schema]:
    return gt.global_tables(clients, [make_table(clients), make_table(clients, range_key=True)],
                            REGIONS)


def count_in(clients: Clients, region: str, table: str) -> int:
    return int(clients("dynamodb", region).scan(TableName=table, Select="COUNT",
                                                ConsistentRead=True)["Count"])


def measure(clients: Clients, schemas: list[gt.Schema], count: int, deadline: float
            ) -> tuple[dict[str, LagSummary], list[gt.ProbeItem]]:
    token = uuid.uuid4().hex[:8]
    watchers, written = {}, []
    for region, other in (REGIONS, REGIONS[::-1]):
        ddb = clients("dynamodb", other)

        def look(keys: list[Any], ddb: Any = ddb) -> set[Any]:
            return gt.items_present(ddb, schemas, keys)

        watchers[region] = Watcher(other, look, 0.05).start()
    try:
        for region in REGIONS:
            written += gt.put_items(clients("dynamodb", region), schemas, region, token, count,
                                    watchers[region].expect)
        for watcher in watchers.values():
            watcher.wait_all(time.monotonic() + deadline)
    finally:
        for watcher in watchers.values():
            watcher.stop()
    return {r: LagSummary.of(w.lags(), 10.0) for r, w in watchers.items()}, written


def test_a_table_without_a_replica_is_a_breach(clients: Clients) -> None:
    """A table that is not global (no replica in the DR region) fails the check."""
    lone = make_table(clients, replica=False)
    with pytest.raises(ObjectiveBreached, match=f"table {lone} in us-east-1 is not a global"):
        gt.global_tables(clients, [lone], REGIONS)


def test_the_key_schema_is_read_with_its_range_key(schemas: list[gt.Schema]) -> None:
    """A test item's key fills the range key with a fixed value of its type."""
    assert schemas[0].range_key is None
    assert schemas[1].range_key == ("seq", "N")
    assert schemas[1].key("x") == {"pk": {"S": "x"}, "seq": {"N": "0"}}


def test_items_written_in_each_region_are_measured_in_the_other(
        clients: Clients, schemas: list[gt.Schema]) -> None:
    """Both directions: every item seen in the other region, no sooner than the endpoint's
    lag allows (less the put's round trip) and within a second of it."""
    summaries, written = measure(clients, schemas, 3, deadline=20)
    assert len(written) == 2 * 3 * len(schemas)
    for summary in summaries.values():
        assert summary.met
        assert len(summary.lags) == 3 * len(schemas)
        for lag in summary.lags:
            assert lag.lag is not None
            assert LAG - 0.15 <= lag.lag < LAG + 1.0
    gt.delete_items(clients, schemas, {i.value for i in written}, REGIONS)
    for region in REGIONS:
        assert [count_in(clients, region, s.table) for s in schemas] == [0, 0]


def test_paused_replication_leaves_items_missing(aws: AwsEndpoint, clients: Clients,
                                                 schemas: list[gt.Schema]) -> None:
    """FIS global-table-pause-replication out of us-east-1: its items never reach us-west-2
    (missing, the check fails), while us-west-2's still reach us-east-1."""
    post(aws.url, "dynamodb/pause-replication", {"source_region": REGION})
    summaries, written = measure(clients, schemas, 1, deadline=1.5)
    assert len(summaries[REGION].by_arrival(Arrival.MISSING)) == len(schemas)
    assert not summaries[REGION].met
    assert summaries[DR_REGION].met
    gt.delete_items(clients, schemas, {i.value for i in written}, REGIONS)


def test_a_conflict_converges_on_the_later_write_in_both_regions(
        clients: Clients, schemas: list[gt.Schema]) -> None:
    """The same item written in us-east-1, then in us-west-2 before the first write arrived
    there: after the lag both regions hold us-west-2's write, and keep holding it once
    us-east-1's copy has reached us-west-2 (last writer wins)."""
    conflict = gt.make_conflict(clients, schemas[0], uuid.uuid4().hex[:8], REGION, DR_REGION)
    assert conflict.attempts >= 1
    assert conflict.second.sent >= conflict.first.acked
    seen = gt.watch_convergence(clients, conflict, time.monotonic() + 20, hold=3 * LAG,
                                interval=0.05, progress=lambda _: None)
    assert seen.agreed_at is not None
    assert seen.held_until is not None
    assert not seen.regressed
    assert seen.seen[DR_REGION] == [DR_REGION]
    assert seen.seen[REGION][-1] == DR_REGION
    gt.delete_items(clients, [conflict.schema], conflict.tried, REGIONS)
    assert count_in(clients, REGION, conflict.schema.table) == 0


def test_a_region_that_leaves_the_later_write_is_caught(clients: Clients,
                                                         schemas: list[gt.Schema]) -> None:
    """If a region stops holding the later write after both agreed on it (here a writer puts
    the earlier value back in us-west-2 during the hold), the watch names that region."""
    conflict = gt.make_conflict(clients, schemas[0], uuid.uuid4().hex[:8], REGION, DR_REGION)
    assert gt.watch_convergence(clients, conflict, time.monotonic() + 20, hold=3 * LAG,
                                interval=0.05, progress=lambda _: None).held_until is not None
    back = threading.Timer(1.0, lambda: clients("dynamodb", DR_REGION).put_item(
        TableName=conflict.schema.table, Item={**conflict.schema.key(conflict.item),
                                               gt.MARK: {"S": "x"}, "written_in": {"S": REGION}}))
    back.start()
    try:
        seen = gt.watch_convergence(clients, conflict, time.monotonic() + 20, hold=10,
                                    interval=0.05, progress=lambda _: None)
    finally:
        back.join()
    assert seen.agreed_at is not None
    assert seen.held_until is None
    assert f"{DR_REGION} went back to {REGION}" in seen.regressed
    gt.delete_items(clients, [conflict.schema], conflict.tried, REGIONS)
