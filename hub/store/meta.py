"""Small key/value facts the hub keeps about itself (e.g. the generated session key)."""

from __future__ import annotations

import secrets

from hub.store.db import StateStore


def get_or_create_secret(db: StateStore, key: str = "session_secret") -> str:
    """Return the stored secret, creating a random one the first time (race-safe)."""
    with db.transaction():
        row = db.query_one("SELECT value FROM meta WHERE key = ?", (key,))
        if row:
            return str(row["value"])
        value = secrets.token_urlsafe(48)
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))
        return value
