"""``make test-postgres``: the whole pytest suite with the hub's state on PostgreSQL.

The server is the sandbox's ``postgresql`` component (started on demand, also when the
sandbox's hub runs on SQLite), or the one ``KUBEHUB_TEST_POSTGRES_URL`` names (a superuser URL
of its ``postgres`` database). Each run gets a database of its own, created empty here and
dropped afterwards; inside it every test gets a schema of its own (tests/conftest.py,
``database_url``), so tests see each other's state no more than on SQLite. Arguments go to
pytest (e.g. ``tests/unit -x``). The exit status is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.pg_support import server_url, with_database  # noqa: E402


def main(argv: list[str]) -> int:
    admin = server_url()
    name = f"kh_suite_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    print(f"[test-postgres] state store: {url}", flush=True)
    env = {**os.environ, "KUBEHUB_DATABASE_URL": url}
    (REPO / "artifacts").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml=artifacts/junit-postgres.xml", *argv]
    started = time.monotonic()
    try:
        rc = subprocess.call(cmd, cwd=REPO, env=env)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"[test-postgres] pytest exit status {rc} after {time.monotonic() - started:.0f} s", flush=True)
    return 1 if rc == 5 else rc  # no tests collected is a failure here, as in scripts/test.sh


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
