"""Polling a condition in the background (`Watch`): from the moment it starts, until it
holds, its deadline passes, or it is stopped."""

from __future__ import annotations

import threading
import time

import pytest

from drills.measure.figures import Watch


def test_a_watch_sees_its_condition_come_true_while_the_caller_waits_elsewhere() -> None:
    """Started before the event, the watch brackets it between its last two polls."""
    happened = threading.Event()
    started = time.monotonic()
    watch = Watch("flag", lambda: None if happened.is_set() else "not set", since=started,
                  deadline=started + 30, poll=0.01)
    time.sleep(0.05)  # the event happens while the caller is busy with something else
    at = time.monotonic()
    happened.set()
    seen: list[str] = []
    polled = watch.result(seen.append)
    assert polled.held
    assert polled.lower <= at <= polled.at
    assert polled.problem == "not set"


def test_a_watch_past_its_deadline_reports_what_it_last_saw() -> None:
    started = time.monotonic()
    watch = Watch("never", lambda: "still down", since=started, deadline=started + 0.1,
                  poll=0.01)
    polled = watch.result(lambda _: None)
    assert not polled.held
    assert polled.problem == "still down"


def test_a_stopped_watch_ends_and_a_failing_check_raises_to_the_waiter() -> None:
    started = time.monotonic()
    watch = Watch("stopped", lambda: "no", since=started, deadline=started + 300, poll=0.01)
    watch.stop()
    assert not watch.result(lambda _: None).held

    def broken() -> str | None:
        raise RuntimeError("endpoint gone")

    failing = Watch("broken", broken, since=started, deadline=started + 300, poll=0.01)
    with pytest.raises(RuntimeError, match="endpoint gone"):
        failing.result(lambda _: None)
