"""The load tests' own vault API (`fakeapi.FakeApi`): TLS, the twin's routes, in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.load.fakeapi import FakeApi


@pytest.fixture
def fake_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeApi]:
    """A running fake vault API of this test's own, healthy."""
    api = FakeApi(tmp_path_factory.mktemp("fake-api")).start()
    yield api
    api.stop()
