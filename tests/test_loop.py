"""The background loop and `Ticker`, the fixed-rate scheduler every prober is built on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from drills.loop import LoopThread, Ticker
from tests.conftest import wait_for


class SlowTicks(Ticker):
    """Each tick takes `duration` seconds: far longer than the interval."""

    def __init__(self, loop: LoopThread, duration: float) -> None:
        super().__init__(loop, interval=0.01, grace=10)
        self.duration = duration
        self.started: list[int] = []
        self.finished: list[int] = []

    async def tick(self, seq: int) -> None:
        self.started.append(seq)
        await asyncio.sleep(self.duration)
        self.finished.append(seq)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    yield thread
    thread.close()


def test_ticks_keep_their_rate_while_earlier_ones_are_in_flight(loop: LoopThread) -> None:
    ticker = SlowTicks(loop, duration=1.0)
    ticker.start()
    wait_for(lambda: len(ticker.started) >= 5, 5, "five ticks to start")
    assert ticker.finished == [], "no tick waited for the one before it"
    ticker.stop()
    assert not ticker.running
    assert ticker.started == list(range(len(ticker.started)))
    assert sorted(ticker.finished) == ticker.started, "stop() waits for the ticks in flight"


def test_start_and_stop_are_idempotent(loop: LoopThread) -> None:
    ticker = SlowTicks(loop, duration=0.0)
    ticker.stop()  # never started: nothing to do
    ticker.start()
    ticker.start()
    wait_for(lambda: ticker.finished, 5, "a tick")
    ticker.stop()
    ticker.stop()
    count = len(ticker.started)
    assert count == len(ticker.finished)
