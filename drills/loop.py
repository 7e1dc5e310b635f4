"""One asyncio event loop in a background thread, for synchronous callers.

pytest-bdd steps must be synchronous (an `async def` step silently never runs), and the
probes must keep running while a step blocks; so NATS work lives on this loop and steps
submit coroutines to it with a timeout. `Ticker` is the fixed-rate background work every
prober (probes, canary writes, JetStream publishes) is built on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop until `close()`."""

    __slots__ = ("loop", "thread")

    def __init__(self, name: str = "drills-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for its result (TimeoutError after `timeout`)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def submit(self, coro: Coroutine[Any, Any, T]) -> Any:
        """Start `coro` on the loop without waiting; returns its concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @staticmethod
    def wait_stopped(future: Any, timeout: float) -> None:
        """Wait for a background coroutine started with `submit` to end after being told to;
        past `timeout` it is cancelled instead (a teardown must never hang or raise on it).

        When the run is interrupted the loop cancels it on shutdown: nothing to wait for.
        """
        try:
            future.result(timeout=timeout)
        except concurrent.futures.CancelledError:
            pass
        except TimeoutError:
            future.cancel()

    def close(self) -> None:
        """Cancel what is left, stop the loop and join the thread."""
        if not self.thread.is_alive():
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(_cancel_all(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            self.loop.close()


class Ticker:
    """Starts `tick(seq)` on `loop` every `interval` seconds until stopped, whether or not
    earlier ticks have finished (a slow service must not slow the sampling). A tick the
    loop fell behind on is skipped, not burst. `stop()` waits up to `grace` seconds for the
    ticks in flight."""

    def __init__(self, loop: LoopThread, interval: float, grace: float) -> None:
        self.loop, self.interval, self.grace = loop, interval, grace
        self._running = False
        self._task: concurrent.futures.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start ticking in the background (idempotent)."""
        if not self._running:
            self._running = True
            self._task = self.loop.submit(self._schedule())

    def stop(self) -> None:
        """Stop ticking and wait for the ticks in flight (idempotent)."""
        if self._running:
            self._running = False
            self.loop.wait_stopped(self._task, self.grace)

    async def tick(self, seq: int) -> None:
        """One unit of work: a probe, a write, a publish."""
        raise NotImplementedError

    async def _schedule(self) -> None:
        next_at = time.monotonic()
        inflight: set[asyncio.Task[None]] = set()
        for seq in itertools.count():
            if not self._running:
                break
            task = asyncio.ensure_future(self.tick(seq))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            next_at = max(next_at + self.interval, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
