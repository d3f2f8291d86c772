"""A waitress server run on a thread of the test process, stopped by the test: the one way the
e2e and integration fixtures serve a hub of their own.

Why one place: stopping it closes the server's sockets from the fixture's thread while the
server's loop may be inside ``select()`` on them, and that loop then raises EBADF. That is the
stop itself, not a failure, but pytest reports an exception in a thread as an error at teardown
(ci22, tests/e2e/test_seeded_logs.py). Worker threads are let finish first, or they write to a
closed trigger pipe on the way out.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serving(server: Any, name: str) -> Iterator[None]:
    """Run ``server`` (a ``waitress.create_server`` result) on a daemon thread named ``name``
    until the block ends."""
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError as exc:
            if not (stopping.is_set() and exc.errno == errno.EBADF):
                raise

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        thread.join(timeout=10)
