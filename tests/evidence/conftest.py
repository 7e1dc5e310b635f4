"""Fixtures of the evidence tests (the real runs they read are `runs`, in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, or a skip saying how to install it."""
    from tests.evidence.browser import find_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed: `apt-get install -y chromium` (Debian) is "
                    "needed to render the HTML reports in a real browser")
    return path
