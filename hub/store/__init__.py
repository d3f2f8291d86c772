"""The hub's state: users, tenancy, policies, alert state, outbox, history and audit.

Everything goes through :class:`hub.store.db.Database`, a deliberately small surface
(``query``, ``query_one``, ``execute``, ``transaction``) so that a PostgreSQL implementation
can stand in later without touching the callers. Repositories per area live beside it.
"""

from hub.store.db import Database, StateStore

__all__ = ["Database", "StateStore"]
