from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.store import Database
from hub.store.meta import get_or_create_secret

pytestmark = pytest.mark.unit


def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    first = db.migrate()
    assert "core:1" in first
    assert db.migrate() == []
    rows = db.query("SELECT area, version FROM schema_migrations")
    assert ("core", 1) in {(r["area"], r["version"]) for r in rows}


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = Database(path)
    db.migrate()
    secret = get_or_create_secret(db)
    db.close()
    again = Database(path)
    again.migrate()
    assert get_or_create_secret(again) == secret


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    db.migrate()
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert db.query_one("SELECT value FROM meta WHERE key='k'") is None


def test_threads_share_one_database(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite3")
    db.migrate()

    def write(i: int) -> None:
        with db.transaction():
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"k{i}", str(i)))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.query_one("SELECT count(*) AS n FROM meta WHERE key LIKE 'k%'")["n"] == 8  # type: ignore[index]


def test_an_unwritable_data_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as err:
        Database(blocker / "sub" / "s.sqlite3")
    assert "KUBEHUB_DATA_DIR" in str(err.value)
