"""JetStream writes, measured: an R3 stream the drill creates, acknowledged publishes, read back.

The vault service itself speaks core NATS request/reply; what NATS keeps durably is
JetStream. A `JetStreamCanary` publishes to a replicated stream of its own (`VETTID_DRILL`,
3 replicas) at a steady rate, each publish carrying a `Nats-Msg-Id` (the server drops a
duplicate id within the stream's window) and waiting for its ack with a timeout of its own.
Only acknowledged publishes are promises. A publish that timed out may still be stored
later (a "ghost write"): reported, never counted as loss. After recovery every message of
the stream is read back by sequence, and every acknowledged one is checked by id and hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from drills.errors import ProbeError
from drills.journal import utc_now
from drills.loop import LoopThread, Ticker
from drills.measure.rpo import LostWrite, RpoResult
from drills.measure.timeline import Outcome, ProbeResult

STREAM = "VETTID_DRILL"
SUBJECT = "vettid.drill.jetstream"
MSG_ID = "Nats-Msg-Id"
STREAM_MISMATCH = 10060  # JetStream's "expected stream does not match"


@dataclass(frozen=True, slots=True)
class JsPublish:
    """One publish and whether JetStream acknowledged it (with the stream sequence)."""

    seq: int
    msg_id: str
    sha256: str
    sent: float  # monotonic
    done: float  # monotonic
    sent_utc: str
    acked: bool
    stream_seq: int = 0
    detail: str = ""
    done_utc: str = ""


class JetStreamCanary(Ticker):
    """Publishes at `rate` per second on `loop` into its own R3 stream until stopped."""

    def __init__(self, loop: LoopThread, nc: Any, rate: float = 10.0, timeout: float = 1.0,
                 stream: str = STREAM, replicas: int = 3) -> None:
        super().__init__(loop, 1.0 / rate, timeout + 5)
        self.nc, self.rate, self.timeout = nc, rate, timeout
        self._js = nc.jetstream()  # a context object only: no I/O until a publish
        self.stream, self.replicas = stream, replicas
        self.prefix = f"js-{uuid.uuid4().hex[:6]}"
        # A subject of the stream's own: a leftover stream of another name never overlaps it.
        self.subject = f"{SUBJECT}.{stream.lower()}"
        self._publishes: list[JsPublish] = []
        self._lock = threading.Lock()

    def create_stream(self) -> None:
        """Create the stream afresh (a leftover of an earlier drill is removed first)."""
        import nats.js.errors
        from nats.js.api import StorageType

        async def create() -> int:
            jsm = self.nc.jetstream()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await jsm.delete_stream(self.stream)
            deadline = time.monotonic() + 20
            while True:
                try:
                    info = await jsm.add_stream(
                        name=self.stream, subjects=[self.subject], num_replicas=self.replicas,
                        storage=StorageType.FILE, duplicate_window=120.0)
                    return int(info.config.num_replicas or 1)
                except nats.js.errors.APIError as exc:
                    # 10005: the meta leader has not heard from every peer yet (it lags
                    # the cluster forming by a fraction of a second); anything else is final.
                    if exc.err_code != 10005 or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
                except nats.errors.TimeoutError:
                    # A busy meta leader may create the stream after the request timed out.
                    with contextlib.suppress(nats.js.errors.NotFoundError,
                                             nats.errors.TimeoutError):
                        info = await jsm.stream_info(self.stream)
                        return int(info.config.num_replicas or 1)
                    if time.monotonic() > deadline:
                        raise

        async def led(deadline: float) -> None:
            # A new stream answers publishes only once its own raft group has a leader.
            jsm = self.nc.jetstream()
            while True:
                with contextlib.suppress(nats.errors.TimeoutError, nats.js.errors.APIError):
                    cluster = (await jsm.stream_info(self.stream)).cluster
                    if cluster is None or (cluster.leader and all(
                            r.current for r in cluster.replicas or [])):
                        return
                if time.monotonic() > deadline:
                    raise ProbeError(f"stream {self.stream} has no leader with every replica "
                                     "current 20 s after it was created")
                await asyncio.sleep(0.1)

        async def answering(deadline: float) -> None:
            # Even led, the stream is reachable from this connection's server only once the
            # leader's interest in the subject has crossed the cluster's routes; until then
            # a publish gets "no response from stream" (CI saw 0.6 s of it), which must not
            # be counted against a healthy cluster. A publish expecting another stream's
            # name is answered by the leader with 10060 before anything is stored.
            while True:
                try:
                    await self._js.publish(self.subject, b"", timeout=2.0,
                                           stream=f"{self.stream}_NOT")
                except nats.js.errors.APIError as exc:
                    if exc.err_code == STREAM_MISMATCH:
                        return
                    raise
                except (nats.js.errors.NoStreamResponseError, nats.errors.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise ProbeError(f"stream {self.stream} does not answer publishes 20 s "
                                     "after it was created")
                await asyncio.sleep(0.1)

        async def writable() -> int:
            replicas = await create()
            await led(time.monotonic() + 20)
            await answering(time.monotonic() + 20)
            return replicas

        try:
            replicas = self.loop.run(writable(), timeout=50)
        except Exception as exc:
            raise ProbeError(f"could not create JetStream stream {self.stream} with "
                             f"{self.replicas} replicas ({type(exc).__name__}: {exc}); is "
                             "JetStream enabled on every NATS node?") from exc
        if replicas != self.replicas:
            raise ProbeError(f"stream {self.stream} got {replicas} replicas, not {self.replicas}")

    def delete_stream(self) -> None:
        """Remove the drill's stream (it is the drill's own data, nobody else's)."""
        self.loop.run(self.nc.jetstream().delete_stream(self.stream), timeout=30)

    def publishes(self) -> list[JsPublish]:
        """Every completed publish, in completion order."""
        with self._lock:
            return list(self._publishes)

    def results(self) -> list[ProbeResult]:
        """The publishes as probe results, for `drills.measure.compute_recovery`."""
        return [ProbeResult(p.seq, p.sent, p.done, p.sent_utc,
                            Outcome.OK if p.acked else Outcome.TIMEOUT
                            if p.detail.startswith("TimeoutError") else Outcome.ERROR, p.detail)
                for p in self.publishes()]

    def wait(self, condition: Any, timeout: float, poll: float = 0.05) -> bool:
        """Block until `condition(publishes)` holds or `timeout` passes; True if it held."""
        deadline = time.monotonic() + timeout
        while not condition(self.publishes()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    async def tick(self, seq: int) -> None:
        """One publish with a Nats-Msg-Id, acknowledged by the stream or not."""
        js = self._js
        msg_id = f"{self.prefix}-{seq:06d}"
        data = f"{msg_id}:".encode() + os.urandom(32)
        sent_utc, sent = utc_now(), time.monotonic()
        try:
            ack = await js.publish(self.subject, data, timeout=self.timeout,
                                   stream=self.stream, headers={MSG_ID: msg_id})
            acked, stream_seq, detail = True, int(ack.seq), ""
        except Exception as exc:  # no ack of any kind: the write was never promised
            acked, stream_seq, detail = False, 0, f"{type(exc).__name__}: {exc}"
        publish = JsPublish(seq, msg_id, hashlib.sha256(data).hexdigest(), sent,
                            time.monotonic(), sent_utc, acked, stream_seq, detail, utc_now())
        with self._lock:
            self._publishes.append(publish)

    def verify(self, timeout: float = 60.0) -> RpoResult:
        """Read the whole stream back and check every acknowledged publish against it."""
        stored = self.loop.run(self._read_stream(timeout), timeout=timeout + 10)
        publishes = self.publishes()
        acked = [p for p in publishes if p.acked]
        by_id: dict[str, list[str]] = {}
        for msg_id, digest in stored["messages"]:
            by_id.setdefault(msg_id, []).append(digest)
        lost = []
        for p in acked:
            digests = by_id.get(p.msg_id)
            if not digests or p.sha256 not in digests:
                lost.append(LostWrite(p.seq, p.msg_id, "corrupted" if digests else "missing",
                                      p.done_utc))
        ghosts = sum(1 for p in publishes if not p.acked and p.msg_id in by_id)
        duplicates = sum(1 for digests in by_id.values() if len(digests) > 1)
        return RpoResult(len(acked), len(publishes) - len(acked), tuple(lost),
                         stored["unreadable"],
                         note=f"{ghosts} unacknowledged publishes were stored all the same "
                              f"(ghost writes), {duplicates} ids stored twice")

    async def _read_stream(self, timeout: float) -> dict[str, Any]:
        """(msg id, sha256) of every message of the stream, read by sequence."""
        import nats.errors
        import nats.js.errors

        jsm = self.nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:  # right after recovery the stream may still be electing its leader
            try:
                state = (await jsm.stream_info(self.stream)).state
                break
            except (TimeoutError, nats.errors.Error):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        limit = asyncio.Semaphore(16)

        async def read(seq: int) -> tuple[str, str] | bool | None:
            async with limit:
                while True:
                    try:
                        msg = await jsm.get_msg(self.stream, seq)
                    except nats.js.errors.NotFoundError:
                        return None  # deleted or never there: nothing to check
                    except (TimeoutError, nats.errors.Error):
                        if time.monotonic() > deadline:
                            return False
                        await asyncio.sleep(0.2)
                        continue
                    msg_id = (msg.headers or {}).get(MSG_ID, "")
                    return msg_id, hashlib.sha256(msg.data or b"").hexdigest()

        seqs = range(max(state.first_seq, 1), state.last_seq + 1) if state.messages else ()
        got = await asyncio.gather(*(read(s) for s in seqs))
        return {"messages": [g for g in got if isinstance(g, tuple)],
                "unreadable": sum(1 for g in got if g is False)}
