"""Runbook 7.1 items 1 and 3: the DR region's copy of the vault data and of the sealing key,
checked with test data of our own, through the public APIs of both regions.

    7.1.1  get-bucket-replication of vettid-vault-data-<account>: an enabled rule to
           vettid-vault-data-dr-<account>, in the DR region, both buckets versioned; marker
           objects put under the rule's prefix + `drills-probe/<token>/`, each watched in
           the replica bucket with list-object-versions (same key and version ID, as S3
           replication keeps them) until it is there; then head-object of each source
           version reports ReplicationStatus COMPLETED.
    7.1.3  describe-key of the sealing key (the ARN /vettid/nitro/sealing-key-arn names): a
           multi-Region key with a replica in the DR region, whose own state is read there;
           a ciphertext made in the primary region decrypts in the DR region with the
           replica's ARN.

Every marker is removed from both buckets afterwards, every version of it; markers left by an
interrupted run (older than `STALE_AFTER`) are swept then too. A `Watcher` polls the replica
in a thread while markers are written, so each marker's lag runs from its own
acknowledgement (`drills.measure.replication`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from drills.boundary import explain
from drills.clients import Clients
from drills.environment import Names
from drills.errors import ObjectiveBreached, ProbeError
from drills.journal import utc_now
from drills.measure.replication import Lag, Tracker
from drills.procedures.kms import sealing_key_arn

#: Test data of these drills starts with this, under the replication rule's own prefix.
PROBE_PREFIX = "drills-probe/"
#: Markers older than this are an earlier run's leftovers, swept by the next cleanup.
STALE_AFTER = timedelta(hours=1)
Progress = Callable[[str], None]
#: Given the keys a poll looks for, the ones it found.
Look = Callable[[list[Hashable]], Collection[Hashable]]


def _quiet(_: str) -> None:
    pass


class Watcher:
    """Polls `look` every `interval` seconds in a thread for the copies of acknowledged
    writes (`expect`), recording what each poll saw in a `Tracker`."""

    def __init__(self, name: str, look: Look, interval: float) -> None:
        self.name, self.interval = name, interval
        self._look = look
        self._tracker = Tracker()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"drills-watch-{name}",
                                        daemon=True)
        self.polls = 0
        self.failed_polls = 0
        self.last_error = ""
        self._crash: BaseException | None = None

    def expect(self, key: Hashable, acked: float) -> None:
        """A write was acknowledged at `acked` (monotonic): look for its copy from now on."""
        with self._lock:
            self._tracker.expect(key, acked)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def pending(self) -> list[Hashable]:
        with self._lock:
            return self._tracker.pending()

    def lags(self) -> list[Lag]:
        with self._lock:
            return self._tracker.lags()

    def wait_all(self, deadline: float, progress: Progress = _quiet) -> bool:
        """Block until every expected copy was seen (True) or `deadline` (monotonic) passed."""
        while True:
            if self._crash is not None:
                raise ProbeError(f"watching {self.name} stopped: {self._crash}; the lags "
                                 "measured so far are incomplete") from self._crash
            pending = self.pending()
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            progress(f"{len(pending)} not seen yet in {self.name} after {self.polls} polls"
                     + (f" ({self.failed_polls} failed: {self.last_error})"
                        if self.failed_polls else ""))
            time.sleep(min(self.interval, max(0.0, deadline - time.monotonic())))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    looked = self._tracker.pending()
                if not looked:
                    self._stop.wait(self.interval)
                    continue
                started = time.monotonic()
                try:
                    present = self._look(looked)
                except (ClientError, BotoCoreError) as exc:  # a failed poll proves nothing
                    self.failed_polls += 1
                    self.last_error = explain(exc)[:160]
                else:
                    ended = time.monotonic()
                    with self._lock:
                        self._tracker.observe(started, ended, looked, present)
                    self.polls += 1
                self._stop.wait(max(0.0, started + self.interval - time.monotonic()))
        except BaseException as exc:  # a bug: wait_all raises it in the drill's thread
            self._crash = exc


# ------------------------------------------------------------------ 7.1.1 S3 replication


@dataclass(frozen=True, slots=True)
class ReplicationRule:
    """The vault bucket's enabled replication rule to its DR replica, as configured."""

    source: str
    destination: str
    destination_region: str
    rule_id: str
    prefix: str  # objects the rule replicates start with this
    tags: tuple[tuple[str, str], ...]  # ... and carry these tags
    rtc_minutes: int | None  # S3 Replication Time Control's threshold, when enabled

    def marker_prefix(self, token: str) -> str:
        """Where this run's markers go: inside what the rule replicates."""
        return f"{self.prefix}{PROBE_PREFIX}{token}/"

    def describe(self) -> str:
        rtc = f", RTC {self.rtc_minutes} min" if self.rtc_minutes else ", no RTC"
        scope = f"prefix {self.prefix!r}" + (f", tags {dict(self.tags)}" if self.tags else "")
        return (f"rule {self.rule_id!r} replicates {self.source} ({scope}) to "
                f"{self.destination} in {self.destination_region}{rtc}")


def replication_rule(clients: Clients, names: Names) -> ReplicationRule:
    """get-bucket-replication of the vault bucket: its enabled rule to the DR replica, whose
    bucket is in the DR region; both versioned (ObjectiveBreached naming what is missing)."""
    s3, dr_s3 = clients("s3", names.primary_region), clients("s3", names.dr_region)
    fix = "configure replication as runbook 5.2's prerequisites say, then run the drill again"
    try:
        config = s3.get_bucket_replication(Bucket=names.bucket)["ReplicationConfiguration"]
    except ClientError as exc:
        raise ObjectiveBreached(f"bucket {names.bucket} has no replication configuration "
                                f"({explain(exc)}); {fix}") from None
    arn = f"arn:aws:s3:::{names.dr_bucket}"
    rules = sorted((r for r in config.get("Rules", []) if r.get("Status") == "Enabled"
                    and r.get("Destination", {}).get("Bucket") == arn),
                   key=lambda r: -int(r.get("Priority", 0)))
    if not rules:
        raise ObjectiveBreached(f"bucket {names.bucket} has no enabled replication rule to "
                                f"{names.dr_bucket}; {fix}")
    rule = rules[0]
    location = dr_s3.get_bucket_location(Bucket=names.dr_bucket).get("LocationConstraint")
    if (location or "us-east-1") != names.dr_region:
        raise ObjectiveBreached(f"replica bucket {names.dr_bucket} is in {location or 'us-east-1'}"
                                f", not the DR region {names.dr_region}; {fix}")
    for client, bucket in ((s3, names.bucket), (dr_s3, names.dr_bucket)):
        status = client.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
        if status != "Enabled":
            raise ObjectiveBreached(f"versioning of bucket {bucket} is {status}; replication "
                                    f"needs it on both buckets; {fix}")
    found = rule.get("Filter", {})
    both = found.get("And", {})
    tags = [found["Tag"]] if "Tag" in found else both.get("Tags", [])
    rtc = rule["Destination"].get("ReplicationTime", {})
    return ReplicationRule(
        names.bucket, names.dr_bucket, names.dr_region, str(rule.get("ID", "")),
        str(found.get("Prefix", both.get("Prefix", rule.get("Prefix", "")))),
        tuple((t["Key"], t["Value"]) for t in tags),
        int(rtc["Time"]["Minutes"]) if rtc.get("Status") == "Enabled" else None)


def versions_present(s3: Any, bucket: str, prefix: str) -> set[Hashable]:
    """list-object-versions under `prefix`: every (key, version id) the bucket holds."""
    out: set[Hashable] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        out |= {(v["Key"], v["VersionId"]) for v in page.get("Versions", [])}
    return out


def put_markers(s3: Any, rule: ReplicationRule, token: str, count: int,
                on_acked: Callable[[Hashable, float], None]) -> list[tuple[str, str]]:
    """Put `count` marker objects in the source bucket, one after the other; each one's
    (key, version id) goes to `on_acked` with its acknowledgement (monotonic)."""
    prefix, out = rule.marker_prefix(token), []
    extra = {"Tagging": urlencode(rule.tags)} if rule.tags else {}
    for n in range(count):
        key = f"{prefix}{n:04d}"
        body = json.dumps({"what": "runbook 7.1 replication marker (drills)", "token": token,
                           "n": n, "written_utc": utc_now()}).encode()
        put = s3.put_object(Bucket=rule.source, Key=key, Body=body,
                            Metadata={"drills-probe": token}, **extra)
        acked = time.monotonic()
        version = put.get("VersionId")
        if not version:
            raise ObjectiveBreached(f"put-object of {key} in {rule.source} returned no version "
                                    "id: the bucket does not keep versions, so it cannot "
                                    "replicate")
        on_acked((key, version), acked)
        out.append((key, str(version)))
    return out


def replication_statuses(s3: Any, bucket: str, written: Iterable[tuple[str, str]]
                         ) -> dict[tuple[str, str], str]:
    """head-object of each version: its ReplicationStatus ("" when S3 reports none)."""
    return {(key, version): str(s3.head_object(Bucket=bucket, Key=key, VersionId=version)
                                .get("ReplicationStatus", ""))
            for key, version in written}


def remove_test_objects(s3: Any, bucket: str, prefix: str,
                        older_than: datetime | None = None) -> int:
    """Delete every version and delete marker under `prefix` (only those last modified before
    `older_than`, when given); how many were deleted."""
    doomed = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if older_than is None or entry["LastModified"] < older_than:
                doomed.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
    for start in range(0, len(doomed), 1000):
        reply = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start:start + 1000],
                                                         "Quiet": True})
        if reply.get("Errors"):
            first = reply["Errors"][0]
            raise ProbeError(f"could not delete {len(reply['Errors'])} test object(s) under "
                             f"{prefix} in {bucket} (first: {first.get('Key')}: "
                             f"{first.get('Code')}); remove them by hand")
    return len(doomed)


def remove_markers(clients: Clients, rule: ReplicationRule, token: str,
                   source_region: str) -> tuple[int, int]:
    """Remove this run's markers from both buckets (the source first: a version deleted
    before it was copied is not copied), and earlier runs' leftovers; (source, replica)."""
    stale = datetime.now(UTC) - STALE_AFTER
    counts = []
    for region, bucket in ((source_region, rule.source),
                           (rule.destination_region, rule.destination)):
        s3 = clients("s3", region)
        counts.append(remove_test_objects(s3, bucket, rule.marker_prefix(token))
                      + remove_test_objects(s3, bucket, rule.prefix + PROBE_PREFIX, stale))
    return counts[0], counts[1]


# ------------------------------------------------------------------ 7.1.3 KMS replica


@dataclass(frozen=True, slots=True)
class KeyReplica:
    """The sealing key (a multi-Region primary) and its replica in the DR region."""

    primary_arn: str
    replica_arn: str
    replica_region: str
    replica_state: str


def sealing_key_replica(clients: Clients, names: Names) -> KeyReplica:
    """describe-key of the key /vettid/nitro/sealing-key-arn names, in the primary region and
    in the DR region (its own state, read there); ObjectiveBreached when it has no replica."""
    primary, dr = names.primary_region, names.dr_region
    arn = sealing_key_arn(clients, names, primary)
    meta = clients("kms", primary).describe_key(KeyId=arn)["KeyMetadata"]
    config = meta.get("MultiRegionConfiguration", {})
    if not meta.get("MultiRegion") or config.get("MultiRegionKeyType") != "PRIMARY":
        raise ObjectiveBreached(f"the sealing key {arn} is not the primary of a multi-Region "
                                "key, so no replica can decrypt its data in the DR region; "
                                "runbook 5.2 needs a multi-Region key (aws kms replicate-key)")
    replica = next((r["Arn"] for r in config.get("ReplicaKeys", []) if r["Region"] == dr), None)
    if replica is None:
        regions = [r["Region"] for r in config.get("ReplicaKeys", [])]
        raise ObjectiveBreached(f"the sealing key {arn} has no replica in {dr} (replicas: "
                                f"{regions or 'none'}); aws kms replicate-key --key-id "
                                f"{meta['KeyId']} --replica-region {dr}")
    state = clients("kms", dr).describe_key(KeyId=replica)["KeyMetadata"]["KeyState"]
    return KeyReplica(arn, str(replica), dr, str(state))


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A decrypt in one region: the key ARN that answered, whether the plaintext matched."""

    region: str
    key_arn: str
    matches: bool
    seconds: float


def decrypt_in(kms: Any, region: str, key_arn: str, ciphertext: bytes,
               plaintext: bytes) -> Decrypted:
    """aws kms decrypt --key-id <key_arn> in `region`; compares the plaintext."""
    started = time.monotonic()
    answer = kms.decrypt(CiphertextBlob=ciphertext, KeyId=key_arn)
    return Decrypted(region, str(answer["KeyId"]), answer["Plaintext"] == plaintext,
                     time.monotonic() - started)


class Unanswered:
    """A call made in a thread of its own, to show that a region does not answer it: `held`
    while no answer came. `close()` waits (bounded) for it to end once the region is back."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.sent_utc = utc_now()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drills-unanswered")
        self._future: Future[Any] = self._pool.submit(call)

    def held_for(self, seconds: float) -> bool:
        """True when no answer (nor error) came within `seconds` from now."""
        try:
            self._future.exception(timeout=seconds)
        except TimeoutError:
            return True
        return False

    @property
    def held(self) -> bool:
        return not self._future.done()

    def outcome(self) -> str:
        """What came back, for messages: 'no answer', 'answered', or the error."""
        if not self._future.done():
            return "no answer"
        failure = self._future.exception()
        return "answered" if failure is None else f"failed: {explain(failure)[:120]}"

    def close(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):  # still held: its thread ends with the call
            self._future.exception(timeout=timeout)
        self._pool.shutdown(wait=False)
