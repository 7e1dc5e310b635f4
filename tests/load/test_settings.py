"""Load settings: [load] in the objectives file, `--load USERS[/SPAWN_RATE]` and the other
options over it; bad values are ConfigErrors (exit 2) that say what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.config import LoadSettings, load_settings
from drills.errors import ConfigError
from drills.load import parse_users, with_options


def settings_of(tmp_path: Path, text: str) -> LoadSettings:
    path = tmp_path / "objectives.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path).load


def test_no_load_by_default() -> None:
    """Without [load] or --load, no load runs."""
    assert not load_settings(None).load.enabled


def test_the_load_table_sets_defaults_and_objectives(tmp_path: Path) -> None:
    """Durations in seconds or with units (ms too), fractions as numbers or percentages."""
    load = settings_of(tmp_path, '[load]\nusers = 12\nspawn_rate = 4\nworkers = 2\n'
                                 'think_time = ["500ms", 2]\nrequest_timeout = "3s"\n'
                                 'max_error_rate_during_fault = "40%"\n'
                                 'p95_latency_after_recovery = "250ms"\n')
    assert (load.users, load.rate, load.workers, load.think_time) == (12, 4.0, 2, (0.5, 2.0))
    assert load.request_timeout == 3.0
    assert load.max_error_rate_during_fault == pytest.approx(0.4)
    assert load.p95_latency_after_recovery == pytest.approx(0.25)


@pytest.mark.parametrize(("table", "message"), [
    ("usres = 3", "unknown key"),
    ("users = -1", "users"),
    ("think_time = [3, 1]", "below the min"),
    ("max_error_rate_during_fault = 1.5", "fraction from 0 to 1"),
    ("p95_latency_after_recovery = 'fast'", "cannot read"),
    ("master_port = 70000", "not a TCP port"),
    ("spawn_rate = 0", "number > 0"),
])
def test_bad_load_settings_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    """A typo or an impossible value never silently keeps a default."""
    with pytest.raises(ConfigError, match=message):
        settings_of(tmp_path, f"[load]\n{table}\n")


def test_users_and_spawn_rate_from_the_command_line() -> None:
    """`20` and `20/5`; the spawn rate defaults to at most 10 users a second."""
    assert parse_users("20") == (20, None)
    assert parse_users("20/2.5") == (20, 2.5)
    assert LoadSettings(users=20).rate == 10.0
    assert LoadSettings(users=3).rate == 3.0


@pytest.mark.parametrize("text", ["0", "-3", "abc", "5/0", "5/", ""])
def test_a_bad_user_count_is_a_config_error(text: str) -> None:
    """What `--load` accepts is said in the message."""
    with pytest.raises(ConfigError, match=r"USERS\[/SPAWN_RATE\]"):
        parse_users(text)


def test_command_line_options_override_the_file() -> None:
    """--load keeps the file's spawn rate unless it gives one; the others replace theirs."""
    base = LoadSettings(users=5, spawn_rate=2.0, think_time=(0.5, 1.0))
    merged = with_options(base, "30", workers=2, master_port=5557)
    assert (merged.users, merged.spawn_rate, merged.workers, merged.master_port) == (
        30, 2.0, 2, 5557)
    assert merged.think_time == (0.5, 1.0)
    assert with_options(base, "30/6").spawn_rate == 6.0


def test_remote_workers_need_a_reachable_master() -> None:
    """Remote workers cannot reach a master on loopback, nor one on a port chosen at random."""
    with pytest.raises(ConfigError, match="--master-host"):
        with_options(LoadSettings(users=5), remote_workers=2, master_port=5557)
    with pytest.raises(ConfigError, match="--master-port"):
        with_options(LoadSettings(users=5), remote_workers=2, master_host="0.0.0.0")
    fine = with_options(LoadSettings(users=5), remote_workers=2, master_host="0.0.0.0",
                        master_port=5557)
    assert fine.remote_workers == 2
