"""Load during drills: simulated apps on the vault API, and what they saw, per drill.

    locustfile  the apps, run by locust in processes of their own (never imported here)
    records     the request listener's file, read back on the harness's monotonic clock
    runner      the locust processes: one, or a master and N workers; started, watched, stopped
    analysis    per drill: three windows (before the fault, to recovery, after), a series
    verify      the load users' acknowledged writes read back: the second RPO figure
    run         one run's load: started before the first drill, concluded after each

Locust is never imported into the harness: its gevent monkey-patching breaks boto3 and
threads. The harness reads only the file the locust processes write.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from drills.config import LoadSettings
from drills.errors import ConfigError

#: The locustfile shipped with the package (`locust -f` takes a path).
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

_USERS = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)\s*)?$")


def parse_users(text: str) -> tuple[int, float | None]:
    """`USERS[/SPAWN_RATE]` (e.g. "20" or "20/5") as (users, users started per second)."""
    match = _USERS.match(text)
    users = int(match.group(1)) if match else 0
    rate = float(match.group(2)) if match and match.group(2) else None
    if not match or users < 1 or (rate is not None and rate <= 0):
        raise ConfigError(f"--load {text!r}: expected USERS[/SPAWN_RATE], at least one user "
                          "and a positive spawn rate, e.g. --load 20 or --load 20/5")
    return users, rate


def with_options(base: LoadSettings, users: str | None = None, workers: int | None = None,
                 remote_workers: int | None = None, master_host: str | None = None,
                 master_port: int | None = None) -> LoadSettings:
    """The objectives file's [load] with the command line's options over it."""
    settings = base
    if users is not None:
        count, rate = parse_users(users)
        settings = replace(settings, users=count,
                           spawn_rate=rate if rate is not None else settings.spawn_rate)
    if workers is not None:
        settings = replace(settings, workers=_whole(workers, "--load-workers"))
    if remote_workers is not None:
        settings = replace(settings, remote_workers=_whole(remote_workers,
                                                           "--load-remote-workers"))
    if master_port is not None:
        settings = replace(settings, master_port=_whole(master_port, "--master-port", 65535))
    if master_host:
        settings = replace(settings, master_host=master_host)
    if settings.remote_workers and settings.master_host in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"{settings.remote_workers} remote load worker(s) cannot reach a "
                          f"master on {settings.master_host}; pass --master-host with an "
                          "address the other machines reach (or 0.0.0.0)")
    if settings.remote_workers and not settings.master_port:
        raise ConfigError("remote load workers need a known port: pass --master-port (e.g. "
                          "5557) and give the same to `locust --worker --master-port`")
    return settings


def _whole(value: int, option: str, most: int | None = None) -> int:
    if value < 0 or (most is not None and value > most):
        raise ConfigError(f"{option} {value}: expected a whole number from 0"
                          + (f" to {most}" if most is not None else ""))
    return value


__all__ = ["LOCUSTFILE", "parse_users", "with_options"]
