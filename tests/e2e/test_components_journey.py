"""E2E journey: a platform admin opens the component health page in Chromium while one
component is stopped.

The shared sandbox's components are never stopped: this journey's hub (its own, in this
process) reads a PRIVATE Prometheus that scrapes a private target as job ``etcd``
(tests/integration/test_components_health.py's fixture), and the target is stopped before the
page is opened; its SMTP relay is a port nothing listens on. Screenshots go to
``artifacts/e2e/7-components/``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings
from tests.conftest import world_database_url
from tests.e2e.conftest import Console, Journey
from tests.integration.test_components_health import _wait_up, private_prometheus  # noqa: F401

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery-9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def own_console(private_prometheus: tuple[str, ThreadingHTTPServer], tmp_path: Path) -> Iterator[Console]:  # noqa: F811
    from waitress.server import create_server

    from hub.runtime import build_hub
    from web import create_app

    url, _ = private_prometheus
    port = _free_port()
    settings = Settings(data_dir=tmp_path / "hub", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        # components_wait = timeout: always the live reading, as it is compared with Prometheus
        prometheus={"url": url, "timeout": 20.0, "components_wait": 20.0},
        logs={"ship": False},
        alerts={"evaluate": False},
        smtp={"host": "127.0.0.1", "port": _free_port(), "timeout": 2.0},
        http={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1},
    )
    hub = build_hub(settings)
    hub.tenancy.create_user("root", PASSWORD, platform_role="admin")
    app = create_app(hub=hub)
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, name="e2e-components-hub", daemon=True)
    thread.start()
    try:
        yield Console(hub=hub, url=f"http://127.0.0.1:{port}", passwords={"root": PASSWORD})
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        thread.join(timeout=10)
        hub.close()


def test_admin_sees_a_stopped_component_down_with_since_and_the_others_named(
    own_console: Console,
    browser: Any,
    private_prometheus: tuple[str, ThreadingHTTPServer],  # noqa: F811
) -> None:
    url, target = private_prometheus
    _wait_up(url, 1.0, time.monotonic() + 60)
    j = Journey("7-components", own_console, browser, locale="zh-CN", timezone="Asia/Shanghai")
    try:
        page = j.page
        j.login("root")
        page.click('nav a[href="/components"]')
        page.wait_for_selector("#components-table")
        assert page.get_attribute('tr[data-component="etcd"]', "data-state") == "up"
        j.shot("etcd-up")

        target.shutdown()
        target.server_close()
        stopped = time.time()
        _wait_up(url, 0.0, time.monotonic() + 30)
        page.reload()
        row = page.locator('tr[data-component="etcd"]')
        assert row.get_attribute("data-state") == "down"
        assert "故障" in row.inner_text()  # the state in Chinese
        since = float(row.locator("time").get_attribute("datetime") or "0")
        assert stopped - 1 <= since <= time.time()
        # shown in the viewer's zone by the console's script, not as epoch seconds
        assert not re.fullmatch(r"[0-9.]+", row.locator("time").inner_text().strip())
        smtp = page.locator('tr[data-component="smtp"]')
        assert smtp.get_attribute("data-state") == "down" and "127.0.0.1:" in smtp.inner_text()
        assert page.get_attribute('tr[data-component="kube-scheduler"]', "data-state") == "unknown"
        assert page.locator('.lane[data-component="etcd"] .span.s-firing').count() == 1
        j.shot("etcd-down")
        assert j.csp_violations == []
    finally:
        j.close()
