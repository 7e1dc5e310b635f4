"""Root conftest: every module of the step library is shared by every feature.

pytest-bdd finds step definitions through fixtures, and shared ones must be registered
here, in the root conftest; each `steps/*.py` module (but the binder) is one plugin.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"steps.{path.stem}"
    for path in (Path(__file__).parent / "steps").glob("*.py")
    if not path.stem.startswith(("_", "test_"))
)
