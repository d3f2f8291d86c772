"""Directory sign-in in Chromium: a user of the sandbox's real slapd signs in on the login page,
an admin sees where they come from and maps one of their groups in the console, and the user's
next sign-in carries the new role.

A hub of its own (waitress on a free port, no cluster: the journey is about identity) with the
sandbox directory's settings (sandbox/ldap.py ``hub_env``); screenshots in artifacts/e2e/ldap/.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.runtime import build_hub
from hub.settings import Settings, load_settings
from sandbox import ldap as sl
from sandbox.core import Sandbox
from tests.conftest import world_database_url
from tests.e2e.conftest import Console, Journey

pytestmark = pytest.mark.e2e

ADMIN, ADMIN_PASSWORD = "root-admin", "Break-Glass-Lantern-55"


@pytest.fixture(scope="module")
def ldap_console(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from waitress.server import create_server

    from web import create_app

    instance = sandbox.ensure_ldap()
    base = load_settings(sl.hub_env(instance, sandbox.pki_dir), config_file=os.devnull)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data_dir = Path(tmp_path_factory.mktemp("ldap-console"))
    settings = Settings(data_dir=data_dir, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        auth={"password_hash_memory_kib": 1024, "password_hash_time_cost": 1,
              "group_mappings": base.auth.group_mappings},
        ldap={k: getattr(base.ldap, k)
              for k in ("url", "ca_file", "bind_dn", "bind_password", "user_base", "group_base")},
        http={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
    )  # fmt: skip
    hub = build_hub(settings)
    hub.tenancy.create_user(ADMIN, ADMIN_PASSWORD, platform_role="admin")
    for ws, ns in (("retail", "retail-api"), ("analytics", "analytics-etl")):
        hub.tenancy.create_workspace(ws)
        hub.tenancy.create_project(ws, ns)
    server = create_server(create_app(hub=hub), host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, name="e2e-ldap-hub", daemon=True)
    thread.start()
    try:
        yield Console(
            hub=hub, url=f"http://127.0.0.1:{port}", passwords={ADMIN: ADMIN_PASSWORD, "bob": sl.USERS["bob"][0]}
        )
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        thread.join(timeout=10)
        hub.close()


def test_directory_user_signs_in_and_an_admin_maps_their_group_in_the_console(
    ldap_console: Console, browser: Any
) -> None:
    bob = Journey("ldap/1-bob", ldap_console, browser, locale="en-US", timezone="Europe/Berlin")
    try:
        bob.goto("/login")
        assert "directory (LDAP)" in bob.page.inner_text("#ldap-hint")
        bob.login("bob")
        assert bob.goto("/projects/retail-api").status == 403  # retail-devs: workspace regular only
        bob.shot("no-project-yet")
    finally:
        bob.close()

    admin = Journey("ldap/2-admin", ldap_console, browser, locale="en-US", timezone="Europe/Berlin")
    try:
        page = admin.page
        admin.login(ADMIN)
        admin.goto("/users")
        row = page.locator("table.data tr", has_text="Bob Retail")
        assert row.locator("td.source").inner_text() == "LDAP"
        local = page.locator("table.data tr", has_text=ADMIN)
        assert local.locator("td.source").inner_text() == "local"
        admin.shot("users-with-source")
        page.click("#group-mappings-link")
        page.wait_for_selector("#mapping-form")
        assert page.locator("#mappings tr", has_text="ops-admins").count() == 1  # from the settings
        page.fill("#mapping-form input[name=group]", "retail-devs")
        page.select_option("#mapping-form select[name=level]", "project")
        page.select_option("#mapping-form select[name=role_project]", "operator")
        page.fill("#mapping-form input[name=target]", "retail-api")
        admin.shot("mapping-form")
        with page.expect_navigation():
            page.click("#mapping-form button[type=submit]")
        rows = [page.locator("#mappings tr").nth(i).inner_text() for i in range(page.locator("#mappings tr").count())]
        assert [r for r in rows if "retail-devs" in r and "retail-api" in r and "operator" in r and "console" in r]
        admin.shot("mapping-created")
    finally:
        admin.close()

    again = Journey("ldap/3-bob-again", ldap_console, browser, locale="en-US", timezone="Europe/Berlin")
    try:
        again.login("bob")
        assert again.goto("/projects/retail-api").status == 200  # the new mapping, at the next sign-in
        again.shot("project-reached")
    finally:
        again.close()
