"""Issue 12: a tenant's first search finds something — the sandbox's seeded day of logs.

The sandbox seeds 24 hours of container logs that predate its namespaces (KWOK serves them as
pod logs). A hub like the sandbox's own ships them through the Kubernetes API, stamping each
line with its namespace's UID, so each demo tenant's search and histogram show their projects'
seeded history, while a namespace recreated under the same name would not inherit it.

This hub is the test's own (the sandbox's hub is not started in CI), built like the sandbox's:
seeded through the same tenancy hook, shipping every project namespace once before the browser
starts. Each tenant searches a Chinese term and an English phrase the seed writes into their
projects, over the day before their namespaces existed, in headless Chromium.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.runtime import build_hub
from hub.settings import Settings
from sandbox.core import Sandbox
from tests.conftest import world_database_url
from tests.e2e.conftest import Console, Journey, _free_port, _write_timings
from tests.waitress_thread import serving

pytestmark = pytest.mark.e2e

# A Chinese term and an English phrase the seed writes into each tenant's projects
# (sandbox/seed.py: the workloads' languages and styles).
TENANT_TERMS: dict[str, tuple[str, str]] = {
    "api-operator": ("超时", '"connection refused"'),  # retail-api: checkout-api (zh), payment-gateway (en)
    "retail-admin": ("超时", '"connection refused"'),  # retail-web and retail-api: cart (zh), storefront (en)
    "etl-viewer": ("任务", '"consumed batch"'),  # analytics-etl: backfill-events (zh), ingest-worker (en)
}


@pytest.fixture(scope="module")
def history_console(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from waitress.server import create_server

    from sandbox.hub_seed import seed_tenancy as seed_sandbox
    from sandbox.seed import WORKSPACES
    from web import create_app

    data = tmp_path_factory.mktemp("history-hub")
    port = _free_port()
    projects = [ns for p in WORKSPACES.values() for ns in p]
    settings = Settings(data_dir=data, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(sandbox.kubeconfig), "request_timeout": 30.0},
        prometheus={"url": sandbox.prometheus_url, "timeout": 20.0},
        logs={"ship": True, "ship_namespaces": ",".join(projects)},
        alerts={"evaluate": False},
        http={"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
    )
    credentials = sandbox.credentials
    seed_sandbox(settings, {"credentials": credentials, "workspaces": {ws: list(p) for ws, p in WORKSPACES.items()}})
    hub = build_hub(settings)
    shipper = hub.logs.shipper
    assert shipper is not None
    t0 = time.monotonic()
    shipped = shipper.poll_once()  # every followed container's log from its start: the seeded day
    shipper.drain()
    assert shipped > 1000, f"only {shipped} lines shipped ({shipper.status().last_error})"
    print(f"shipped {shipped} lines of {len(projects)} namespaces in {time.monotonic() - t0:.1f}s")
    app = create_app(hub=hub)
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    console = Console(
        hub=hub, url=f"http://127.0.0.1:{port}", passwords={c["username"]: c["password"] for c in credentials}
    )
    try:
        with serving(server, "e2e-history-hub"):
            yield console
    finally:
        hub.close()
        _write_timings(console.timings)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("user", sorted(TENANT_TERMS))
def test_each_demo_tenant_finds_the_seeded_history_of_its_projects(
    history_console: Console, browser: Any, user: str
) -> None:
    tenancy = history_console.hub.tenancy
    principal = tenancy.principal_for(user)
    scope = tenancy.scope(principal)
    own = sorted(scope.namespaces)
    assert own and not scope.all_namespaces
    # the day before the tenant's namespaces existed: only the seeded history is in it
    created = min(tenancy.project(ns).created for ns in own)
    assert all(tenancy.project(ns).uid for ns in own), "projects know their namespaces' UIDs"
    start, end = created - 86_400, created

    j = Journey(f"7-seeded-history-{user}", history_console, browser, locale="zh-CN", timezone="Asia/Shanghai")
    try:
        page = j.page
        j.login(user)
        j.goto("/logs")
        for n, term in enumerate(TENANT_TERMS[user]):
            page.fill("#q", term)
            page.select_option("#f-range", "")
            page.fill("input[name=start]", _iso(start))
            page.fill("input[name=end]", _iso(end))
            page.click("#logs-search")
            page.wait_for_selector("#logs-total")
            total = int(page.inner_text("#logs-total strong").rstrip("+"))
            assert total > 0, f"{user} finds no seeded line for {term}"
            counts = [
                int(c) for c in page.locator("#histogram .hbar").evaluate_all("bs => bs.map(b => b.dataset.count)")
            ]
            assert sum(counts) >= min(total, 1000), f"the histogram shows {user}'s lines for {term}"
            rows = page.locator("#log-lines tbody tr")
            assert rows.count() > 0
            for i in range(rows.count()):
                cells = rows.nth(i).locator("td")
                assert cells.nth(1).inner_text().strip() in own  # never another tenant's namespace
                stamp = cells.nth(0).locator("time").get_attribute("datetime") or ""
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                assert start <= when < end, f"a line outside the seeded day: {stamp}"
            marks = [m.lower() for m in page.locator("#log-lines mark").all_inner_texts()]
            assert term.strip('"').lower() in marks
            j.shot(f"{n + 1}-{'chinese' if n == 0 else 'phrase'}")
        slowest = max(j.slowest_ms(), j.login_ms())
        assert 0 < slowest < 1000.0, f"slowest page took {slowest:.0f} ms of server time"
    finally:
        j.close()
