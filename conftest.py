"""Root conftest: every module of the step library is shared by every feature.

pytest-bdd finds step definitions through fixtures, and shared ones must be registered
here, in the root conftest; each `steps/*.py` module (but the binder) is one plugin.
"""

from pathlib import Path

import pytest

from drills.plugin import feature_path

pytest_plugins = sorted(
    f"steps.{path.stem}"
    for path in (Path(__file__).parent / "steps").glob("*.py")
    if not path.stem.startswith(("_", "test_"))
)


# Test modules of a minute or more each, scheduled right after the drills: left to the end,
# one of them keeps a worker busy while the other idles.
SLOW_MODULES = ("tests/faults/test_crash_sweep.py", "tests/test_examples_aws_run.py",
                "tests/test_annual_exercise.py", "tests/twin/test_realistic.py",
                "tests/faults/test_nats.py", "tests/test_dryrun.py",
                "tests/test_examples_aws.py")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order `_group_for_xdist` sets: xdist's loadgroup otherwise sorts the groups
    by their number of tests, which sends one-test groups of minutes to the end."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _leave_to_the_evidence_runs(config, items)
    if config.pluginmanager.hasplugin("xdist"):  # `drills run` needs only the load extra
        _group_for_xdist(items)


def _leave_to_the_evidence_runs(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A session with the tests of the evidence runs (three `drills run`s of the monthly
    drills and complete enclave failure, which those tests assert pass) does not run those
    features a second time through the binder."""
    if not any("runs" in getattr(item, "fixturenames", ()) for item in items):
        return
    from tests.conftest import RUN_BY_THE_EVIDENCE_RUNS

    base = config.rootpath / "features"
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        feature = feature_path(item)
        covered = feature is not None and str(feature.relative_to(base)).startswith(
            RUN_BY_THE_EVIDENCE_RUNS)
        (dropped if covered else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _group_for_xdist(items: list[pytest.Item]) -> None:
    """Groups for `pytest -n N --dist loadgroup` (the README's test command): each worker
    drills a twin of its own, so tests sharing a costly fixture stay on one worker. The
    scenarios of one feature form a group, every other test module is one, and the tests of
    the evidence runs (the `runs` fixture: three real `drills run`s) are one together.

    The longest groups go first (the evidence runs, the slow modules, then the drills), so
    that no worker is left with one of them while the other has finished."""
    order: dict[pytest.Item, int] = {}
    for item in items:
        feature = feature_path(item)
        if "runs" in getattr(item, "fixturenames", ()):
            group, order[item] = "evidence-runs", 0
        else:
            path = feature if feature is not None else item.path
            group = str(path.relative_to(item.config.rootpath))
            order[item] = 1 if group in SLOW_MODULES else 2 if feature is not None else 3
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=order.__getitem__)
