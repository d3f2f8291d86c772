"""Passwords, API tokens and session ids are never stored or logged in clear.

Runs every way a secret enters the hub (user creation over the API and the CLI, logins by
token exchange, JSON and form, failed logins, a password typed into the user name field,
password changes and resets, named tokens), with every logger captured at DEBUG, then greps
the data directory's files (the SQLite database *and* its WAL, before and after closing) and
the captured logs and output for each secret.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import pytest

from hub.cli import main as cli_main
from tests.unit.conftest_tenancy import FAST_AUTH, PASSWORD, build_world

pytestmark = pytest.mark.unit


def _secret() -> str:
    return "Sx-" + secrets.token_urlsafe(18)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _sid_of(app: Any, client: Any) -> str:
    cookie = client.get_cookie("kubehub_session")
    return str(app.session_interface.get_signing_serializer(app).loads(cookie.value)["sid"])


def _rows(db: Any) -> bytes:
    """Every row of every table of a PostgreSQL store, as text (what a dump would hold)."""
    tables = [r[0] for r in db.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    return "\n".join(repr(tuple(row)) for table in tables for row in db.query(f'SELECT * FROM "{table}"')).encode()


def test_no_secret_reaches_the_data_dir_or_the_logs(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    world = build_world(tmp_path)
    app, data_dir = world.app, tmp_path / "data"
    found: dict[str, str] = {}  # label -> secret
    try:
        found.update({f"world token {k}": v for k, v in world.tokens.items()})
        found["world password"] = PASSWORD
        admin = world.client("platform-admin")

        created = _secret()
        assert admin.post("/api/v1/users", json={"name": "carol", "password": created}).status_code == 201
        found["created password"] = created

        anon = app.test_client()
        r = anon.post("/api/v1/auth/token", json={"username": "carol", "password": created})
        found["exchanged token"] = r.get_json()["token"]

        wrong = _secret()
        assert anon.post("/api/v1/auth/token", json={"username": "carol", "password": wrong}).status_code == 401
        found["wrong password"] = wrong

        typed_as_name = _secret().lower()
        anon.post("/api/v1/auth/token", json={"username": typed_as_name, "password": "whatever-else"})
        found["password typed as user name"] = typed_as_name

        session = app.test_client()
        r = session.post("/api/v1/auth/login", json={"username": "carol", "password": created})
        found["json session id"] = _sid_of(app, session)
        csrf = r.get_json()["csrf_token"]

        changed = _secret()
        r = session.put(
            "/api/v1/me/password",
            json={"current_password": created, "new_password": changed},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 204
        found["changed password"] = changed

        named = session.post("/api/v1/auth/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": csrf})
        found["named token"] = named.get_json()["token"]

        form = app.test_client()
        form.get("/healthz")
        with form.session_transaction() as sess:
            sess["pre_csrf"] = "pre-login-csrf-value-123"
        r = form.post(
            "/login", data={"username": "carol", "password": changed, "csrf_token": "pre-login-csrf-value-123"}
        )
        assert r.status_code == 303 and r.headers["Location"] == "/"
        found["form session id"] = _sid_of(app, form)

        reset = _secret()
        assert admin.patch("/api/v1/users/carol", json={"password": reset}).status_code == 200
        found["reset password"] = reset

        before_close = _files(data_dir)
        if world.hub.db.dialect == "sqlite":
            assert any(name.endswith("-wal") for name in before_close), "the WAL is part of what is checked"
        else:  # on PostgreSQL (make test-postgres) the state is every row of every table
            before_close["state store rows (open)"] = _rows(world.hub.db)
    finally:
        world.hub.close()

    cli_password = _secret()
    monkeypatch.setenv("KUBEHUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB", str(FAST_AUTH["password_hash_memory_kib"]))
    monkeypatch.setenv("ADMIN_PW", cli_password)
    monkeypatch.delenv("KUBEHUB_CONFIG", raising=False)
    assert cli_main(["users", "create-admin", "root2", "--password-env", "ADMIN_PW"]) == 0
    found["cli password"] = cli_password

    after_close = _files(data_dir)
    if world.hub.db.dialect != "sqlite":
        from tests.conftest import open_test_store

        store = open_test_store(data_dir / "state.sqlite3")
        try:
            after_close["state store rows (closed) state.sqlite3"] = _rows(store)
        finally:
            store.close()
    out = capsys.readouterr()
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    places = {
        **{f"file {k} (open)": v for k, v in before_close.items()},
        **{f"file {k} (closed)": v for k, v in after_close.items()},
        "logs": logs.encode(),
        "stdout": out.out.encode(),
        "stderr": out.err.encode(),
    }
    assert caplog.records, "logging was captured"
    leaks = [
        f"{label} in {place}"
        for label, secret in found.items()
        for place, content in places.items()
        if secret.encode() in content
    ]
    assert leaks == []
    # The check itself works: the stored forms are there, just not the secrets.
    db = next(v for k, v in after_close.items() if k.endswith("state.sqlite3"))
    assert b"$argon2id$" in db and b"carol" in db
