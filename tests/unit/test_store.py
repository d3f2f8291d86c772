"""The shared state store suite (tests/unit/store_suite.py) on SQLite, plus what only SQLite has
(a data directory to write to)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.store import Database, StateStore

pytest.register_assert_rewrite("tests.unit.store_suite")
from tests.unit.store_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.unit


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    opened: list[Database] = []

    def open_() -> StateStore:
        db = Database(tmp_path / "state.sqlite3")
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()


def test_an_unwritable_data_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as err:
        Database(blocker / "sub" / "s.sqlite3")
    assert "KUBEHUB_DATA_DIR" in str(err.value)
