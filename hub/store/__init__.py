"""The hub's state: users, tenancy, policies, alert state, outbox, history and audit.

Everything goes through :class:`hub.store.db.StateStore`, a deliberately small surface
(``query``, ``query_one``, ``execute``, ``transaction``) with two implementations: SQLite
(:class:`hub.store.db.Database`, the embedded default) and PostgreSQL
(:mod:`hub.store.postgres`, when ``KUBEHUB_DATABASE_URL`` is set); :func:`open_state_store`
picks one from the settings. Repositories per area live beside it.
"""

from hub.store.db import Database, IntegrityError, Row, StateStore, open_state_store

__all__ = ["Database", "IntegrityError", "Row", "StateStore", "open_state_store"]
