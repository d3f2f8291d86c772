"""Logs: the store contract, its two backends, keyword syntax, the shipper and export.

``store`` declares the LogStore protocol and the query model, ``embedded`` (SQLite FTS5, the
default) and ``elasticsearch`` implement it, ``query`` parses the keyword syntax, ``shipper``
pulls container logs into a store, ``export`` writes CSV / JSON lines. Tenant scoping is done
by the runtime's log service, which turns the caller's scope into ``LogQuery.visibility``.
"""
