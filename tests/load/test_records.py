"""The request listener's file, read back as it grows, on the harness's monotonic clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

from drills.load.records import RequestLog, boot_id


def line(kind: str, **fields: object) -> str:
    base = {"kind": kind, "mono": 100.0, "wall": 1_800_000_000.0, "boot": boot_id(),
            "node": "h/1"}
    return json.dumps({**base, **fields}) + "\n"


def test_records_are_read_incrementally_and_a_torn_line_waits(tmp_path: Path) -> None:
    """A line being written is read once it is complete, never twice, never half."""
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path)
    assert log.read().requests == []  # no file yet: nothing
    whole = line("request", name="GET /vault/{id}", outcome="ok", latency=0.012)
    path.write_text(line("ready", users=3) + whole + whole[:20])
    seen = log.read()
    assert len(seen.requests) == 1
    assert seen.ready_at == 100.0
    with path.open("a") as handle:
        handle.write(whole[20:] + line("send", vault="v1", sha256="ab", op="put", mono=100.5)
                     + line("write", vault="v1", sha256="ab", op="put", acked=True,
                            mono=101.0))
    seen = log.read()
    assert [r.ok for r in seen.requests] == [True, True]
    assert seen.requests[0].latency == 0.012
    assert seen.requests[0].name == "GET /vault/{id}"
    assert [(w.vault, w.acked, w.at) for w in seen.writes] == [("v1", True, 101.0)]
    assert [(w.vault, w.acked, w.at) for w in seen.sends] == [("v1", False, 100.5)]
    assert seen.last_at == 101.0


def test_a_record_from_another_machine_is_placed_by_its_wall_time(tmp_path: Path) -> None:
    """Another boot id is another monotonic clock: its wall time says when it happened."""
    path = tmp_path / "requests.jsonl"
    wall = time.time() - 5.0
    path.write_text(line("request", boot="another-machine", mono=1.0, wall=wall,
                         name="r", outcome="busy", latency=0.1))
    (request,) = RequestLog(path).read().requests
    assert abs(request.at - (time.monotonic() - 5.0)) < 1.0
    assert not request.ok
    assert request.outcome == "busy"


def test_lines_that_are_not_records_are_skipped(tmp_path: Path) -> None:
    """A foreign or broken line counts for nothing and stops nothing."""
    path = tmp_path / "requests.jsonl"
    path.write_text("not json\n" + json.dumps({"kind": "request"}) + "\n"
                    + line("request", name="r", outcome="ok", latency=0.1))
    assert len(RequestLog(path).read().requests) == 1
