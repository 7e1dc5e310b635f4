"""Root conftest: the step library is shared by every feature (pytest-bdd needs it here)."""

pytest_plugins = ["steps.common", "steps.enclave"]
