"""The lease suite (tests/unit/lease_suite.py) on SQLite and on a real PostgreSQL server (a
database of its own per test): election, renewal, fencing and concurrent asks must behave the
same on both engines."""

from __future__ import annotations

import pytest

from hub.store.postgres import PostgresDatabase
from tests.integration import pg_support
from tests.integration.pg_support import throwaway_database

pytest.register_assert_rewrite("tests.unit.lease_suite")
from tests.unit.lease_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.integration

# The fixtures shared with the other two-engine suite (tests/integration/pg_support.py).
pg_server = pg_support.pg_server
open_store = pg_support.open_store


def test_a_writer_frozen_inside_its_transaction_does_not_hold_the_others_for_good(pg_server: str) -> None:
    """A replica stopped (SIGSTOP) while it holds the writers' lock: the server ends its idle
    transaction after the idle timeout, the others write again (the lease can move),
    and the frozen one's write is lost with its transaction, never committed late."""
    import threading
    import time

    from hub.errors import BackendUnavailable
    from hub.settings import Settings
    from hub.store import open_state_store
    from hub.store.leases import LeaseStore
    from hub.store.postgres import IDLE_IN_TRANSACTION_TIMEOUT

    limit = 2.0
    with throwaway_database(pg_server) as url:
        # what the hub opens: a third of the lease (6 s here), at most IDLE_IN_TRANSACTION_TIMEOUT
        hub_store = open_state_store(Settings(database_url=url).replace(leader={"lease_seconds": 6.0}))
        row = hub_store.query_one("SHOW idle_in_transaction_session_timeout")
        assert row is not None and row[0] == "2s"
        hub_store.close()
        long_lease = open_state_store(Settings(database_url=url).replace(leader={"lease_seconds": 600.0}))
        row = long_lease.query_one("SHOW idle_in_transaction_session_timeout")
        assert row is not None and row[0] == f"{IDLE_IN_TRANSACTION_TIMEOUT:g}s"
        long_lease.close()
        frozen = PostgresDatabase(url, idle_in_transaction_timeout=limit)
        other = PostgresDatabase(url, idle_in_transaction_timeout=limit)
        frozen.migrate()
        entered = threading.Event()
        outcome: list[BaseException | None] = []

        def freeze() -> None:
            try:
                with frozen.transaction():
                    frozen.execute("INSERT INTO meta(key, value) VALUES ('frozen', 'late')")
                    entered.set()
                    time.sleep(limit + 3)  # stopped: not a statement for longer than the limit
                outcome.append(None)
            except BaseException as exc:  # the commit must fail
                outcome.append(exc)

        t = threading.Thread(target=freeze)
        t.start()
        assert entered.wait(10)
        began = time.monotonic()
        lease = LeaseStore(other).acquire(me="b", held=None, now=1_000.0, duration=3.0)
        waited = time.monotonic() - began
        t.join()
        assert lease is not None and lease.token == 1
        assert waited < limit + 3, f"the other writer waited {waited:.1f}s"
        assert outcome and isinstance(outcome[0], BackendUnavailable)
        assert other.query_one("SELECT value FROM meta WHERE key='frozen'") is None
        frozen.close()
        other.close()
