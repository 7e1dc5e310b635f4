"""S3 Cross-Region Replication as AWS documents it, patched into the moto server process.

moto 5.2.1 stores a replication configuration and does nothing with it: nothing is copied,
objects have no replication status, an unversioned or missing destination is accepted, and
GetBucketReplication reports `DeleteMarkerReplication` Disabled (and `Filter` empty)
whatever was put. What AWS documents (S3 User Guide: replication-status.html,
replication-time-control.html, repl-metrics.html, replication-requirements.html,
replication-what-is-isnot-replicated.html, delete-marker-replication.html,
replication-config-for-kms-objects.html, replication-failure-codes.html; FIS User Guide,
fis-actions-reference.html `aws:s3:bucket-pause-replication`), and this module does:

- A version written to a versioned source bucket whose replication rule (enabled, matching
  its prefix and tags) names a destination is copied there asynchronously, with the same
  key, version ID, creation time (Last-Modified), content, metadata, ACL and tags.
  HeadObject/GetObject answer `x-amz-replication-status`: PENDING, then COMPLETED, or FAILED
  ("missing replication role permissions, AWS KMS permissions, or bucket permissions": here a
  missing or unversioned destination, an unusable KMS key); REPLICA on the copy. With
  several destinations the source is COMPLETED once every copy is. A replica is not
  replicated again (replica modification sync is not modelled).
- "By default, Amazon S3 doesn't replicate objects that are stored at rest using server-side
  encryption with AWS KMS keys": an SSE-KMS version replicates only under a rule with
  `SourceSelectionCriteria.SseKmsEncryptedObjects` Enabled, and the copy is encrypted under
  `Destination.EncryptionConfiguration.ReplicaKmsKeyID` (through the key-state rules of
  `fidelity.s3`/`fidelity.kms`).
- Delete markers: replicated when the rule has `DeleteMarkerReplication` Enabled (a rule with
  a `Filter`), or is a legacy rule (a `Prefix` and no `Filter`), which replicates them by
  default; a DELETE naming a version ID is never replicated.
- PutBucketReplication: a source without versioning is refused by moto already
  ("Versioning must be 'Enabled' on the bucket to apply a replication configuration"); the
  twin adds AWS's `InvalidRequest` "Destination bucket must exist.", "Destination bucket must
  have versioning enabled." and "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects
  tag is present.". GetBucketReplication answers the rules as they were put.
- "For temporary failures, such as if a bucket or Region is unavailable, replication status
  doesn't transition to FAILED, but remains PENDING": a paused link (below) keeps its
  versions PENDING; on resume they drain in the order they were written.
- Replication metrics (repl-metrics.html), when the rule's destination has `Metrics` or
  `ReplicationTime` (S3 RTC) Enabled: `ReplicationLatency` (Seconds, "the maximum number of
  seconds by which the replication destination bucket is behind the source bucket"),
  `OperationsPendingReplication` (Count), `BytesPendingReplication` (Bytes), namespace AWS/S3,
  dimensions SourceBucket, DestinationBucket, RuleId, published in the destination bucket's
  region.

Twin choices (AWS publishes no distribution; see also `Replicator` below):
- The lag of each version is a log-normal draw capped at `max`. `realistic` (median 4 s,
  sigma 1.2: p90 19 s, p99 65 s, p99.99 about 6 min, cap 1 h) is an estimate grounded in S3
  RTC, "most objects that you upload ... in seconds, and 99.99 percent of those objects
  within 15 minutes"; `fast` (median 0.2 s, sigma 0.5, cap 2 s) compresses it. Object size
  plays no part. Versions of one key are copied in the order they were written.
- Metrics are one datapoint per link per `metric_period` (fast 1 s, realistic 60 s: AWS's
  "minute-by-minute"), published while versions are pending or were replicated in the
  period, and once more when the backlog is back to 0. ReplicationLatency is the larger of
  the slowest copy of the period and the age of the oldest pending version (so it grows
  while replication is paused). No datapoint comes before a link has traffic.
- A pause (like the FIS action, which "pauses replication from target source buckets to
  destination buckets") takes effect at once, for every version not yet copied.
- Objects replicate only when written after the configuration (no Batch Replication); tags,
  ACL changes and Object Lock operations on existing versions are not replicated.

Twin-only control endpoints (see `ROUTES`), all `POST /drills-twin/<route>` with a JSON body:

    s3/replication-settings  {"profile": "fast"|"realistic", "median": <s>, "sigma": <>=0>,
                              "max": <s>, "metric_period": <s>, "seed": <int>}
        every field optional (profile first, then the others override it; sigma 0 gives
        every version exactly `median`). Answers the settings in force, with the lag's
        quantiles: {"profile", "median", "sigma", "max", "metric_period", "p50", "p99",
        "p99_99"}.
    s3/pause-replication     {"source_region", "destination_region", "source_bucket",
                              "destination_bucket"}
        all optional, {} pauses everything. Pauses every link the selector matches (also
        links created later), until the same selector is resumed. The region-isolation fault
        uses {"source_region": R} ("pause replication out of R") and {"destination_region": R};
        `aws:s3:bucket-pause-replication` is {"source_bucket": B} (plus its destination
        region and buckets when given). Answers like s3/replication-status.
    s3/resume-replication    the same selector as the pause to lift, or {"all": true}
        lifts it; held versions drain in write order. Answers like s3/replication-status.
    s3/replication-status    {}
        {"settings": {...}, "pauses": [selector, ...], "links": [{"source_region",
        "destination_region", "source_bucket", "destination_bucket", "rule", "paused",
        "pending", "pending_bytes", "oldest_pending_seconds", "completed", "failed",
        "last_failure", "max_latency_seconds"}, ...]}: what a drill needs for its RPO (the
        versions written but not yet copied) without waiting for a metric period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeDeleteMarker, FakeKey, S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.utilities.utils import get_partition

from drills.twin.fidelity import kms as kms_fidelity
from drills.twin.fidelity.replication import Lag, Link, LinkStats, Replicator, Selector, put_metrics

__all__ = ["ROUTES", "install", "replicator"]

_MARK = "_drills_twin_fidelity_s3_replication"
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_RESPONSE_DICT: list[property] = []  # moto's FakeKey.response_dict, once patched
_log = logging.getLogger(__name__)


# ================================================================== S3


PENDING, COMPLETED, FAILED, REPLICA = "PENDING", "COMPLETED", "FAILED", "REPLICA"
_STATUS = "_drills_replication"  # FakeKey attribute: {destination: status} or REPLICA


class ReplicationInvalidRequest(S3ClientError):
    """AWS's answer to a replication configuration it cannot honour."""

    code = "InvalidRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Rule:
    """One replication rule, as the copier needs it."""

    id: str
    priority: int
    enabled: bool
    prefix: str
    tags: tuple[tuple[str, str], ...]
    legacy: bool  # a rule-level Prefix and no Filter (the first configuration version)
    delete_markers: bool
    sse_kms: bool
    destination: str  # bucket name
    replica_kms_key: str | None
    storage_class: str | None
    metrics: bool

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Rule:
        legacy = "Filter" not in raw
        prefix, tags = raw.get("Prefix") or "", []
        spec = raw.get("Filter") or {}
        if "And" in spec:
            spec = spec["And"] or {}
            found = spec.get("Tag") or []
            tags = found if isinstance(found, list) else [found]
        elif "Tag" in spec:
            tags = [spec["Tag"]]
        if not legacy:
            prefix = spec.get("Prefix") or ""
        destination = raw.get("Destination") or {}
        selection = raw.get("SourceSelectionCriteria") or {}
        return cls(
            id=str(raw.get("ID", "")), priority=int(raw.get("Priority") or 0),
            enabled=raw.get("Status") == "Enabled", prefix=prefix,
            tags=tuple((str(t["Key"]), str(t.get("Value") or "")) for t in tags),
            legacy=legacy,
            delete_markers=legacy or _enabled(raw.get("DeleteMarkerReplication")),
            sse_kms=_enabled(selection.get("SseKmsEncryptedObjects")),
            destination=str(destination.get("Bucket", "")).split(":::")[-1],
            replica_kms_key=(destination.get("EncryptionConfiguration") or {}).get(
                "ReplicaKmsKeyID"),
            storage_class=destination.get("StorageClass"),
            metrics=_enabled(destination.get("Metrics"))
            or _enabled(destination.get("ReplicationTime")))

    def applies(self, name: str, tags: dict[str, str], marker: bool) -> bool:
        if not self.enabled or not name.startswith(self.prefix):
            return False
        if marker:  # "delete marker replication is not supported for tag-based rules"
            return self.delete_markers and not self.tags
        return all(tags.get(k) == v for k, v in self.tags)


def _enabled(block: Any) -> bool:
    return isinstance(block, dict) and block.get("Status") == "Enabled"


def _rules(bucket: Any) -> list[Rule]:
    config = getattr(bucket, "replication", None)
    if not config:
        return []
    raw = config.get("Rule") or []
    return [Rule.parse(r) for r in (raw if isinstance(raw, list) else [raw])]


def replication_status(version: Any) -> str | None:
    """`x-amz-replication-status` of an object version (None: not subject to replication)."""
    status = getattr(version, _STATUS, None)
    if status is None or isinstance(status, str):
        return status
    values = set(status.values())
    if FAILED in values:
        return FAILED
    return PENDING if PENDING in values else COMPLETED


# ------------------------------------------------------------------ which writes replicate
# A version is only complete when its request ends (PutObject sets metadata and tags after
# writing): writes seen inside a key request are scheduled when it ends.


class _Local(threading.local):
    depth = 0
    applying = False

    def __init__(self) -> None:
        self.deferred: list[tuple[S3Backend, str, Any]] = []


_local = _Local()


@contextmanager
def _applying() -> Iterator[None]:
    """Writes made inside are replicas: they are not replicated again."""
    _local.applying = True
    try:
        yield
    finally:
        _local.applying = False


def _written(backend: S3Backend, bucket_name: str, version: Any) -> None:
    if _local.applying:
        return
    if _local.depth:
        _local.deferred.append((backend, bucket_name, version))
    else:
        _schedule(backend, bucket_name, version)


def _schedule(backend: S3Backend, bucket_name: str, version: Any) -> None:
    bucket = backend.get_bucket(bucket_name)
    rules = _rules(bucket)
    if not rules or not bucket.is_versioned:
        return
    marker = isinstance(version, FakeDeleteMarker)
    tags = {} if marker else backend.tagger.get_tag_dict_for_resource(version.arn)
    chosen: dict[str, Rule] = {}  # destination -> its highest-priority rule
    for rule in rules:
        if not rule.applies(version.name, tags, marker):
            continue
        if not marker and version.encryption in ("aws:kms", "aws:kms:dsse") and not rule.sse_kms:
            continue  # SSE-KMS objects replicate only when the rule opts in
        if rule.destination not in chosen or rule.priority > chosen[rule.destination].priority:
            chosen[rule.destination] = rule
    if not chosen:
        return
    if not marker:
        setattr(version, _STATUS, dict.fromkeys(chosen, PENDING))
    size = 0 if marker else int(version.size)
    for destination, rule in chosen.items():
        dest = backend.buckets.get(destination)
        link = Link(backend.account_id, bucket.region_name,
                    dest.region_name if dest is not None else "", bucket_name, destination,
                    rule.id, rule.metrics)
        replicator.submit(link, version.name, (version.name, version.version_id, rule),
                          size)


# ------------------------------------------------------------------ the copier


class _Failed(Exception):
    """A replication failure reason (S3's failureReason names)."""


def _deliver(link: Link, payload: tuple[str, str, Rule]) -> str | None:
    name, version_id, rule = payload
    backend = s3_backends[link.account][get_partition(link.source_region or "us-east-1")]
    source = backend.buckets.get(link.source)
    version = None if source is None else next(
        (v for v in source.keys.getlist(name, []) if v.version_id == version_id), None)
    if version is None:
        return "SrcObjectNotFound"  # deleted (by version ID) before it was copied
    try:
        _copy(backend, link, version, rule)
    except _Failed as failed:
        if not isinstance(version, FakeDeleteMarker):
            getattr(version, _STATUS)[link.destination] = FAILED
        return str(failed)
    if not isinstance(version, FakeDeleteMarker):
        getattr(version, _STATUS)[link.destination] = COMPLETED
    return None


def _copy(backend: S3Backend, link: Link, version: Any, rule: Rule) -> None:
    dest = backend.buckets.get(link.destination)
    if dest is None:
        raise _Failed("DstBucketNotFound")
    if not dest.is_versioned:
        raise _Failed("DstBucketUnversioned")
    if isinstance(version, FakeDeleteMarker):
        if version.name in dest.keys:  # moto cannot hold a marker without a version
            with _applying():
                marker = backend._set_delete_marker(link.destination, version.name)
            marker._version_id = version.version_id
            marker.last_modified = version.last_modified
        return
    encryption, key_id = version.encryption, None
    if encryption in ("aws:kms", "aws:kms:dsse"):
        problem = kms_fidelity.key_problem(link.account, link.source_region, version.kms_key_id)
        if problem is not None:
            raise _Failed(f"SrcKmsKey{problem.code.removesuffix('Exception')}")
        key_id = rule.replica_kms_key
    try:
        with _applying():
            replica = backend.put_object(
                link.destination, version.name, version.value,
                storage=rule.storage_class or version.storage_class, encryption=encryption,
                kms_key_id=key_id, bucket_key_enabled=version.bucket_key_enabled,
                checksum_value=version.checksum_value, disable_notification=True)
    except S3ClientError as exc:  # e.g. KMS.DisabledException for the replica's key
        raise _Failed(f"DstPutObject {exc.code}") from None
    replica._version_id = version.version_id
    # "creation time of the replica remains the same as the corresponding object in the
    # source bucket" (S3 Developer Guide, crr-and-other-bucket-configs.html)
    replica.last_modified = version.last_modified
    replica.set_metadata(dict(version.metadata))
    replica.checksum_algorithm = version.checksum_algorithm
    replica.website_redirect_location = version.website_redirect_location
    replica.set_acl(version.acl)
    backend.tagger.copy_tags(version.arn, replica.arn)
    setattr(replica, _STATUS, REPLICA)


def _publish(link: Link, stats: LinkStats) -> None:
    if not link.metrics or not link.destination_region:
        return
    latency = max(stats.max_latency or 0.0, stats.oldest_pending_age or 0.0)
    put_metrics(link, link.destination_region, "AWS/S3", [
        ("ReplicationLatency", latency, "Seconds"),
        ("OperationsPendingReplication", float(stats.pending), "Count"),
        ("BytesPendingReplication", float(stats.pending_bytes), "Bytes"),
    ], {"SourceBucket": link.source, "DestinationBucket": link.destination,
        "RuleId": link.rule})


PROFILES = {
    "fast": (Lag(median=0.2, sigma=0.5, max=2.0), 1.0),
    "realistic": (Lag(median=4.0, sigma=1.2, max=3600.0), 60.0),
}
#: The S3 replication of this process (settings, pauses, backlog).
replicator = Replicator("s3-replication", _deliver, _publish, PROFILES)


# ------------------------------------------------------------------ patched moto


def _put_object(self: S3Backend, *args: Any, **kwargs: Any) -> FakeKey:
    new: FakeKey = _ORIGINAL["put_object"](self, *args, **kwargs)
    _written(self, str(new.bucket_name), new)
    return new


def _delete_object(self: S3Backend, bucket_name: str, key_name: str,
                   version_id: str | None = None, *args: Any, **kwargs: Any) -> Any:
    result = _ORIGINAL["delete_object"](self, bucket_name, key_name, version_id, *args,
                                        **kwargs)
    if version_id is None and result[0] and result[1].get("delete-marker") == "true":
        bucket = self.get_bucket(bucket_name)
        marker = bucket.keys.get(key_name)
        if isinstance(marker, FakeDeleteMarker):
            _written(self, bucket_name, marker)
    return result


def _key_response(self: S3Response, *args: Any, **kwargs: Any) -> Any:
    _local.depth += 1
    try:
        return _ORIGINAL["key_response"](self, *args, **kwargs)
    finally:
        _local.depth -= 1
        if not _local.depth:
            deferred, _local.deferred = _local.deferred, []
            for backend, bucket_name, version in deferred:
                # A bucket gone within the request has nothing left to replicate.
                with suppress(S3ClientError):
                    _schedule(backend, bucket_name, version)


def _put_bucket_replication(self: S3Backend, bucket_name: str,
                            replication: dict[str, Any]) -> None:
    raw = replication.get("Rule") or []
    for rule in (Rule.parse(r) for r in (raw if isinstance(raw, list) else [raw])):
        dest = self.buckets.get(rule.destination)
        if dest is None:
            raise ReplicationInvalidRequest("Destination bucket must exist.")
        if not dest.is_versioned:
            raise ReplicationInvalidRequest("Destination bucket must have versioning enabled.")
        if rule.sse_kms and not rule.replica_kms_key:
            raise ReplicationInvalidRequest(
                "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects tag is present.")
    _ORIGINAL["put_bucket_replication"](self, bucket_name, replication)


def _get_bucket_replication(self: S3Response) -> Any:
    self.data["Action"] = "GetBucketReplication"
    config = self.backend.get_bucket_replication(self.bucket_name)
    if not config:
        return _ORIGINAL["get_bucket_replication"](self)  # moto's "not found" answer
    raw = config.get("Rule") or []
    rules = [_rule_as_put(r) for r in (raw if isinstance(raw, list) else [raw])]
    return self.serialized(ActionResult({"ReplicationConfiguration": {
        "Role": config.get("Role"), "Rules": rules}}))


def _rule_as_put(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored rule (parsed XML) in the shape GetBucketReplication answers."""
    rule: dict[str, Any] = {"ID": raw.get("ID"), "Priority": int(raw.get("Priority") or 0),
                            "Status": raw.get("Status")}
    if "Filter" in raw:
        spec = raw["Filter"] or {}
        if "And" in spec:
            inner = spec["And"] or {}
            tags = inner.get("Tag") or []
            rule["Filter"] = {"And": {"Prefix": inner.get("Prefix") or "",
                                      "Tags": tags if isinstance(tags, list) else [tags]}}
        elif "Tag" in spec:
            rule["Filter"] = {"Tag": spec["Tag"]}
        else:
            rule["Filter"] = {"Prefix": spec.get("Prefix") or ""}
        rule["DeleteMarkerReplication"] = raw.get("DeleteMarkerReplication") or {
            "Status": "Disabled"}
    else:
        rule["Prefix"] = raw.get("Prefix") or ""
    for name in ("SourceSelectionCriteria", "ExistingObjectReplication", "Destination"):
        if raw.get(name):
            rule[name] = _numbers(raw[name])
    return rule


def _numbers(value: Any) -> Any:
    """Parsed XML with its `Minutes` as numbers again."""
    if isinstance(value, dict):
        return {k: int(v) if k == "Minutes" and v is not None else _numbers(v)
                for k, v in value.items()}
    return value


def _response_dict(self: FakeKey) -> dict[str, Any]:
    headers: dict[str, Any] = _RESPONSE_DICT[0].__get__(self)
    status = replication_status(self)
    if status is not None:
        headers["x-amz-replication-status"] = status
    return headers


def install() -> None:
    """Patch moto's S3 with cross-region replication (idempotent)."""
    if getattr(S3Backend, _MARK, False):
        return
    for owner, name, patch in (
        (S3Backend, "put_object", _put_object),
        (S3Backend, "delete_object", _delete_object),
        (S3Backend, "put_bucket_replication", _put_bucket_replication),
        (S3Response, "key_response", _key_response),
        (S3Response, "get_bucket_replication", _get_bucket_replication),
    ):
        _ORIGINAL[name] = getattr(owner, name)
        setattr(owner, name, patch)
    _RESPONSE_DICT.append(FakeKey.__dict__["response_dict"])
    FakeKey.response_dict = property(_response_dict)  # type: ignore[assignment,method-assign]
    setattr(S3Backend, _MARK, True)


# ------------------------------------------------------------------ twin-only control

_NAMES = {"source": "source_bucket", "destination": "destination_bucket"}


def _selector(request: dict[str, Any]) -> Selector:
    unknown = set(request) - {"source_region", "destination_region", "source_bucket",
                              "destination_bucket", "all"}
    if unknown:
        raise JsonRESTError("ValidationException",
                            f"unknown field(s) {sorted(unknown)}; a selector has source_region, "
                            "destination_region, source_bucket, destination_bucket")
    values = {k: request.get(k) for k in ("source_region", "destination_region",
                                          "source_bucket", "destination_bucket")}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        raise JsonRESTError("ValidationException", "selector fields are strings")
    return Selector(values["source_region"], values["destination_region"],
                    values["source_bucket"], values["destination_bucket"])


def replication_settings(request: dict[str, Any]) -> dict[str, Any]:
    """Set the lag distribution and metric period (see the module docstring)."""
    return replicator.configure(request)


def pause_replication(request: dict[str, Any]) -> dict[str, Any]:
    """Hold every link the selector matches; versions stay PENDING."""
    replicator.pause(_selector(request))
    return replicator.status(_NAMES)


def resume_replication(request: dict[str, Any]) -> dict[str, Any]:
    """Lift one pause (or all); held versions drain in write order."""
    selector = _selector(request)
    replicator.resume(None if request.get("all") is True else selector)
    return replicator.status(_NAMES)


def replication_status_route(request: dict[str, Any]) -> dict[str, Any]:
    """Settings, pauses and every link's backlog."""
    return replicator.status(_NAMES)


#: Twin-only control endpoints, served at POST /drills-twin/<name>.
ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "s3/replication-settings": replication_settings,
    "s3/pause-replication": pause_replication,
    "s3/resume-replication": resume_replication,
    "s3/replication-status": replication_status_route,
}
