"""Objectives and settings: the runbook's table by default, overridable from a TOML file.

Features name objectives by component ("Nitro Enclave ASG"), never by a number, so the
figure an auditor reads in the report is the one the team wrote in its config.
"""

from __future__ import annotations

import math
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drills.environment import CONFIGURABLE, Names, configured_names
from drills.errors import ConfigError

#: Runbook section 1, "Critical Components Priority": component -> RTO in seconds.
RUNBOOK_COMPONENT_RTO: dict[str, float] = {
    "Nitro Enclave ASG": 5 * 60,
    "NATS Cluster": 5 * 60,
    "KMS Sealing Key": 15 * 60,
    "S3 Vault Data": 15 * 60,
    "CloudWatch Monitoring": 30 * 60,
}
#: Runbook 7.1's replication checks, by component -> how far behind the DR region's copy may
#: be, in seconds. "Verify S3 cross-region replication lag < 15 minutes" (7.1 item 1); the
#: runbook states no figure for its global tables (item 2), so they get the same bound until
#: the team sets one (`[components."DynamoDB Global Tables"]`).
S3_REPLICATION = "S3 Replication"
GLOBAL_TABLES = "DynamoDB Global Tables"
RUNBOOK_REPLICATION_LAG: dict[str, float] = {S3_REPLICATION: 15 * 60, GLOBAL_TABLES: 15 * 60}
#: The service-level objective (runbook section 1, "Service Level Objectives"), for drills
#: whose component the priority table does not name (DynamoDB metadata, SSM parameters).
SERVICE_COMPONENT = "Vault Service"
RUNBOOK_PRIORITY: dict[str, str] = {
    "Nitro Enclave ASG": "P1",
    "NATS Cluster": "P1",
    "KMS Sealing Key": "P2",
    "S3 Vault Data": "P2",
    "CloudWatch Monitoring": "P3",
}


#: Drills keep measuring at least this long (seconds) past an objective (`Objective.window`).
MIN_OVERRUN = 60.0


@dataclass(frozen=True, slots=True)
class Objective:
    """What one component must meet: RTO in seconds and RPO in acknowledged writes lost."""

    component: str
    rto: float
    rpo_writes: int = 0
    priority: str = ""

    @property
    def window(self) -> float:
        """How long after a fault a drill keeps measuring: past the objective, so that a
        breach is reported with the actual RTO rather than only "not within the objective"
        (twice the objective, and at least a minute past it)."""
        return max(2 * self.rto, self.rto + MIN_OVERRUN)

    def remaining(self, injected_at: float) -> float:
        """Seconds left of the measurement window of a fault injected at monotonic time
        `injected_at` (0 once it has passed)."""
        return max(0.0, self.window - (time.monotonic() - injected_at))


@dataclass(frozen=True, slots=True)
class Objectives:
    """Service-level and per-component objectives (runbook section 1)."""

    rto: float = 15 * 60
    rpo_writes: int = 0
    mttr: float = 30 * 60
    components: Mapping[str, Objective] = field(default_factory=dict)

    def for_component(self, name: str) -> Objective:
        """The objective for `name`, or a ConfigError listing the names that exist."""
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(f'"{c}"' for c in self.components)
            raise ConfigError(
                f'no objective for component "{name}"; known components: {known} '
                "(add it under [components] in your objectives file)"
            ) from None


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """How probes run: interval and timeout in seconds, K successes that mean recovered, the
    settle window (seconds without a failure after them; None: the target's default), and
    the path they take to the service."""

    # Ten reads a second: fine enough for RTOs of minutes (the bracket says how fine), light
    # enough not to be the load a small deployment (or the twin, on two cores) struggles with.
    interval: float = 0.1
    timeout: float = 0.5
    consecutive: int = 3
    settle: float | None = None
    path: str = "api"  # "api": the apps' HTTPS API; "nats": the Lambdas' NATS subjects


PROBE_PATHS = ("api", "nats")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How drills reach the vault API of an account (the twin knows its own): its URL, the CA
    that verifies it, the attestation root and app PCR sets the probes verify with."""

    url: str | None = None
    ca_bundle: str | None = None
    attestation_root: str | None = None  # PEM of the pinned root; None: not verified
    expected_pcrs: str | None = None  # an app's expected_pcrs.json
    dns: str | None = None  # host:port of the name server the apps ask; None: the system's


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """Load during drills (`[load]`, `--load`): simulated apps on the vault API, run by locust.

    `users` 0 means no load. `workers` local locust worker processes under a master (0: one
    locust process); `remote_workers` more that connect from other machines to the master on
    `master_host`:`master_port` (0: a free port). Objectives, when set, fail a drill that
    misses them: the error rate from the fault to recovery (0-1), the p95 latency of answered
    requests after recovery (seconds)."""

    users: int = 0
    spawn_rate: float | None = None  # users started per second; None: min(users, 10)
    workers: int = 0
    remote_workers: int = 0
    master_host: str = "127.0.0.1"
    master_port: int = 0
    think_time: tuple[float, float] = (2.0, 6.0)  # seconds between an app's requests
    request_timeout: float = 5.0
    max_duration: float = 4 * 3600.0  # locust stops by itself after this, whatever happens
    max_error_rate_during_fault: float | None = None
    p95_latency_after_recovery: float | None = None

    @property
    def enabled(self) -> bool:
        return self.users > 0

    @property
    def rate(self) -> float:
        """Users started per second."""
        return self.spawn_rate if self.spawn_rate is not None else float(min(self.users, 10))


COMMS_CHANNELS = ("sns", "slack")


@dataclass(frozen=True, slots=True)
class CommsSettings:
    """How the communication procedures reach people (`[comms]`): an SNS topic (on the twin
    one of its own when `topic_arn` is unset; on an account the team's topic) or a Slack
    incoming webhook whose URL is read from the environment variable `webhook_env` (the URL
    is a credential: it is never written to a file or the evidence). `update_every` is the
    update cadence promised to users (seconds; None: none promised: the runbook appendix
    states none); `impact` the impact text (None: measured from the drill's probes)."""

    channel: str = "sns"
    topic_arn: str | None = None
    webhook_env: str = "DRILLS_SLACK_WEBHOOK"
    update_every: float | None = None
    impact: str | None = None


@dataclass(frozen=True, slots=True)
class Clearance:
    """Where a run may act at all (`[allow] accounts`, `regions`, `production_accounts`).

    None: not configured. An account target then refuses to run (a production user must
    name the accounts and regions); the twin takes its own account and regions. An account
    in `production_accounts`, or whose IAM account alias says "prod", is production and needs
    `--allow-production`."""

    accounts: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    production_accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StopSettings:
    """Stop conditions (`[stop]`), as AWS FIS has them: CloudWatch alarms watched during each
    drill, every `poll` seconds; one going to ALARM for another reason than the drill's own
    faults reverts every fault at once and stops the run."""

    alarms: tuple[str, ...] = ()
    poll: float = 2.0


#: The share of a group a partial fault may act on by default (`[blast] max_share`).
DEFAULT_MAX_SHARE = 0.5
#: Where the objectives file is looked for when no --objectives is given.
OBJECTIVES_ENV = "DRILLS_OBJECTIVES"
#: What faults act on, the keys of the fault allow-list under [allow] (each fault's
#: `target_kind`; tests/faults/test_base.py checks the two agree).
TARGET_KINDS = frozenset({"asg", "bucket", "key", "nats", "region", "ssm-parameter", "table"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a drill run is configured with."""

    objectives: Objectives
    probes: ProbeSettings = ProbeSettings()
    api: ApiSettings = ApiSettings()
    #: Targets destructive steps may act on, by kind ("asg", "bucket", "key", ...).
    allow: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "built-in runbook defaults"
    load: LoadSettings = LoadSettings()
    #: The names of the system under drill (`[environment]`; default: the runbook's).
    names: Names = field(default_factory=Names)
    comms: CommsSettings = CommsSettings()
    #: The accounts and regions a run may act on at all (`[allow] accounts`, ...).
    clearance: Clearance = Clearance()
    stop: StopSettings = StopSettings()
    #: The largest share of a group (instances, nodes) a fault may act on without
    #: `@full_outage` (`[blast] max_share`).
    max_share: float = DEFAULT_MAX_SHARE


def runbook_objectives() -> Objectives:
    """The objectives the runbook states, as the defaults."""
    components = {
        name: Objective(name, rto, 0, RUNBOOK_PRIORITY[name])
        for name, rto in RUNBOOK_COMPONENT_RTO.items()
    }
    components[SERVICE_COMPONENT] = Objective(SERVICE_COMPONENT, 15 * 60, 0, "SLO")
    components |= {name: Objective(name, lag, 0)  # no priority: section 1 does not rank them
                   for name, lag in RUNBOOK_REPLICATION_LAG.items()}
    return Objectives(components=components)


def duration(value: Any, where: str) -> float:
    """Seconds from a number or a string like '90s', '5m', '1h'."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: expected a duration like 300, '90s', '5m' or '1h', "
                          f"got {value!r}")
    if isinstance(value, str):
        units = {"s": 1, "m": 60, "h": 3600}
        text = value.strip()
        try:
            seconds = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
        except (ValueError, IndexError):
            raise ConfigError(f"{where}: cannot read duration {value!r}; write e.g. 300, "
                              "'90s', '5m' or '1h'") from None
    else:
        seconds = float(value)
    if seconds <= 0:
        raise ConfigError(f"{where}: duration must be positive, got {value!r}")
    return seconds


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def load_settings(path: Path | None) -> Settings:
    """Load settings from a TOML file; None gives the runbook defaults.

    Unknown keys are errors: a typo must not silently keep a default objective.
    """
    base = Settings(objectives=runbook_objectives())
    if path is None:
        return base
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"objectives file {where} does not exist; pass an existing file "
                          "or omit --objectives for the runbook defaults") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    _reject_unknown(data, {"service", "components", "probes", "allow", "api", "load",
                           "environment", "comms", "stop", "blast"}, where)
    objectives = base.objectives
    service = _table(data, "service", where)
    _reject_unknown(service, {"rto", "rpo_writes", "mttr"}, f"{where} [service]")
    if "rto" in service:
        objectives = replace(objectives, rto=duration(service["rto"], f"{where} service.rto"))
    if "mttr" in service:
        objectives = replace(objectives, mttr=duration(service["mttr"], f"{where} service.mttr"))
    if "rpo_writes" in service:
        objectives = replace(objectives, rpo_writes=_count(service["rpo_writes"],
                                                           f"{where} service.rpo_writes"))
    components = dict(objectives.components)
    # The service-level objective is the "Vault Service" component's: [service] sets it.
    components[SERVICE_COMPONENT] = replace(components[SERVICE_COMPONENT], rto=objectives.rto,
                                            rpo_writes=objectives.rpo_writes)
    for name, spec in _table(data, "components", where).items():
        at = f'{where} [components."{name}"]'
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at} must be a table with rto (and optionally rpo_writes)")
        _reject_unknown(spec, {"rto", "rpo_writes", "priority"}, at)
        old = components.get(name)
        if "rto" not in spec and old is None:
            raise ConfigError(f"{at}: a new component needs an rto")
        components[name] = Objective(
            component=name,
            rto=duration(spec["rto"], f"{at}.rto") if "rto" in spec else old.rto,  # type: ignore[union-attr]
            rpo_writes=_count(spec.get("rpo_writes", old.rpo_writes if old else 0),
                              f"{at}.rpo_writes"),
            priority=str(spec.get("priority", old.priority if old else "")),
        )
    objectives = replace(objectives, components=components)
    probes = _table(data, "probes", where)
    _reject_unknown(probes, {"interval", "timeout", "consecutive", "settle", "path"},
                    f"{where} [probes]")
    path = probes.get("path", base.probes.path)
    if path not in PROBE_PATHS:
        raise ConfigError(f"{where} probes.path: {path!r} is not one of "
                          f"{', '.join(PROBE_PATHS)}")
    probe_settings = ProbeSettings(
        interval=duration(probes.get("interval", base.probes.interval),
                           f"{where} probes.interval"),
        timeout=duration(probes.get("timeout", base.probes.timeout), f"{where} probes.timeout"),
        consecutive=_count(probes.get("consecutive", base.probes.consecutive),
                           f"{where} probes.consecutive", minimum=1),
        settle=(duration(probes["settle"], f"{where} probes.settle")
                if "settle" in probes else None),
        path=path,
    )
    api = _table(data, "api", where)
    _reject_unknown(api, {"url", "ca_bundle", "attestation_root", "expected_pcrs", "dns"},
                    f"{where} [api]")
    for key, value in api.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} api.{key} must be a non-empty string")
    if "dns" in api and not re.fullmatch(r"[^:\s]+:\d{1,5}", api["dns"]):
        raise ConfigError(f"{where} api.dns {api['dns']!r} must be host:port of the name "
                          "server the API's name is resolved through, e.g. "
                          '"10.0.0.2:53"')
    api_settings = ApiSettings(**api)
    allow = {}
    for kind, names in _table(data, "allow", where).items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{where} allow.{kind} must be a list of names")
        allow[kind] = tuple(names)
    clearance = _clearance(allow, where)
    _reject_unknown(allow, set(TARGET_KINDS) | {"accounts", "regions", "production_accounts"},
                    f"{where} [allow]")
    blast = _table(data, "blast", where)
    _reject_unknown(blast, {"max_share"}, f"{where} [blast]")
    max_share = _fraction(blast.get("max_share", DEFAULT_MAX_SHARE), f"{where} blast.max_share")
    return Settings(objectives, probe_settings, api_settings, allow, source=where,
                    load=_load_settings(_table(data, "load", where), where),
                    names=_environment(_table(data, "environment", where), where),
                    comms=_comms_settings(_table(data, "comms", where), where),
                    clearance=clearance, stop=_stop(_table(data, "stop", where), where),
                    max_share=max_share)


def _comms_settings(table: Mapping[str, Any], where: str) -> CommsSettings:
    """The [comms] table: the channel notifications go through, and the promised cadence."""
    at = f"{where} [comms]"
    _reject_unknown(table, {"channel", "topic_arn", "webhook_env", "update_every", "impact"},
                    at)
    for key in ("channel", "topic_arn", "webhook_env", "impact"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{at} {key} must be a non-empty string")
    channel = table.get("channel", "sns")
    if channel not in COMMS_CHANNELS:
        raise ConfigError(f"{at} channel: {channel!r} is not one of "
                          f"{', '.join(COMMS_CHANNELS)}")
    topic = table.get("topic_arn")
    if topic is not None and (not topic.startswith("arn:") or ":sns:" not in topic):
        raise ConfigError(f"{at} topic_arn: {topic!r} is not an SNS topic ARN "
                          "(arn:aws:sns:REGION:ACCOUNT:NAME)")
    return CommsSettings(
        channel=channel, topic_arn=topic,
        webhook_env=table.get("webhook_env", CommsSettings().webhook_env),
        update_every=(duration(table["update_every"], f"{at} update_every")
                      if "update_every" in table else None),
        impact=table.get("impact"))



def _clearance(allow: dict[str, tuple[str, ...]], where: str) -> Clearance:
    """`[allow] accounts`, `regions` and `production_accounts`, taken out of the fault
    allow-list by kind (`allow`); account ids are 12 digits."""
    accounts = allow.pop("accounts", None)
    regions = allow.pop("regions", None)
    production = allow.pop("production_accounts", ())
    for key, ids in (("accounts", accounts or ()), ("production_accounts", production)):
        bad = [i for i in ids if not (len(i) == 12 and i.isdigit())]
        if bad:
            raise ConfigError(f"{where} allow.{key}: {', '.join(map(repr, bad))} is not an AWS "
                              "account id (12 digits, as `aws sts get-caller-identity` shows)")
    return Clearance(accounts, regions, production)


def _stop(table: Mapping[str, Any], where: str) -> StopSettings:
    """The [stop] table: the CloudWatch alarms that stop a run, and how often they are read."""
    at = f"{where} [stop]"
    _reject_unknown(table, {"alarms", "poll"}, at)
    alarms = table.get("alarms", [])
    if not isinstance(alarms, list) or not all(isinstance(a, str) and a for a in alarms):
        raise ConfigError(f"{at} alarms must be a list of CloudWatch alarm names, got "
                          f"{alarms!r}")
    return StopSettings(tuple(alarms), duration(table.get("poll", StopSettings().poll),
                                                 f"{at} poll"))


def _environment(table: Mapping[str, Any], where: str) -> Names:
    """The [environment] table: the names of the system under drill over the runbook's."""
    at = f"{where} [environment]"
    _reject_unknown(table, CONFIGURABLE, at)
    return configured_names(table, at)


LOAD_KEYS = {"users", "spawn_rate", "workers", "remote_workers", "master_host", "master_port",
             "think_time", "request_timeout", "max_duration", "max_error_rate_during_fault",
             "p95_latency_after_recovery"}


def _load_settings(table: Mapping[str, Any], where: str) -> LoadSettings:
    """The [load] table: defaults for `--load`, and the load objectives."""
    at = f"{where} [load]"
    _reject_unknown(table, LOAD_KEYS, at)
    base = LoadSettings()
    think = table.get("think_time", list(base.think_time))
    if not isinstance(think, list):
        think = [think, think]
    if len(think) != 2:
        raise ConfigError(f"{at} think_time: expected [min, max] in seconds, got {think!r}")
    low, high = (_latency(t, f"{at} think_time") for t in think)
    if high < low:
        raise ConfigError(f"{at} think_time: the max ({high:g}s) is below the min ({low:g}s)")
    host = table.get("master_host", base.master_host)
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{at} master_host must be a host name or address")
    port = _count(table.get("master_port", base.master_port), f"{at} master_port")
    if port > 65535:
        raise ConfigError(f"{at} master_port: {port} is not a TCP port (0 for any free one)")
    rate = table.get("spawn_rate")
    return LoadSettings(
        users=_count(table.get("users", base.users), f"{at} users"),
        spawn_rate=None if rate is None else _positive(rate, f"{at} spawn_rate"),
        workers=_count(table.get("workers", base.workers), f"{at} workers"),
        remote_workers=_count(table.get("remote_workers", base.remote_workers),
                              f"{at} remote_workers"),
        master_host=host, master_port=port, think_time=(low, high),
        request_timeout=_positive(_latency(table.get("request_timeout", base.request_timeout),
                                           f"{at} request_timeout"), f"{at} request_timeout"),
        max_duration=duration(table.get("max_duration", base.max_duration),
                               f"{at} max_duration"),
        max_error_rate_during_fault=(
            _fraction(table["max_error_rate_during_fault"],
                      f"{at} max_error_rate_during_fault")
            if "max_error_rate_during_fault" in table else None),
        p95_latency_after_recovery=(
            _latency(table["p95_latency_after_recovery"], f"{at} p95_latency_after_recovery")
            if "p95_latency_after_recovery" in table else None))


def _latency(value: Any, where: str) -> float:
    """Seconds from a number or a string like '250ms', '0.5s' (0 allowed: no wait)."""
    if isinstance(value, str) and value.strip().endswith("ms"):
        try:
            seconds = float(value.strip()[:-2]) / 1000
        except ValueError:
            raise ConfigError(f"{where}: cannot read {value!r}; write e.g. 0.25, '250ms' or "
                              "'1s'") from None
        if seconds < 0:
            raise ConfigError(f"{where}: must not be negative, got {value!r}")
        return seconds
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return duration(value, where)


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a number > 0, got {value!r}")
    return float(value)


def _fraction(value: Any, where: str) -> float:
    """0-1 from a number or a percentage string ('5%')."""
    text = value.strip() if isinstance(value, str) else None
    try:
        number = (float(text[:-1]) / 100 if text and text.endswith("%") else
                  float(value) if not isinstance(value, bool) else math.nan)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{where}: expected a fraction from 0 to 1 or a percentage such as "
                          f"'5%', got {value!r}")
    return number


def _count(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _reject_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(known))}")
