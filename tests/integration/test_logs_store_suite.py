"""The shared log store suite (tests/unit/logs_suite.py) on both backends: the embedded store and
the sandbox's real Elasticsearch 8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore
from tests.integration.logs_support import elasticsearch_url, throwaway_es_store

pytest.register_assert_rewrite("tests.unit.logs_suite")
from tests.unit.logs_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["embedded", "elasticsearch"])
def log_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        store = EmbeddedLogStore(tmp_path / "logs")
        yield store
        store.close()
        return
    with throwaway_es_store(elasticsearch_url(request)) as es_store:
        yield es_store
