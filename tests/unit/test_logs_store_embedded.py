"""The shared log store suite (tests/unit/logs_suite.py) on the embedded SQLite FTS5 store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore

pytest.register_assert_rewrite("tests.unit.logs_suite")
from tests.unit.logs_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.unit


@pytest.fixture
def log_store(tmp_path: Path) -> Iterator[EmbeddedLogStore]:
    store = EmbeddedLogStore(tmp_path / "logs")
    yield store
    store.close()
