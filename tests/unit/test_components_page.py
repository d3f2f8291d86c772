"""The console's component page and its navigation entry (no Prometheus here: the scraped
components read "unknown", the hub's probes answer), and metric words on the pages that show
metric ids (web/views/components.py, web/views/metric_words.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.conftest_tenancy import TenancyWorld, build_world

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("components-page")))
    yield w
    w.hub.close()


@pytest.mark.parametrize("role", ["platform-admin", "cluster-admin", "cluster-viewer"])
def test_cluster_readers_see_every_component_with_state_and_history(world: TenancyWorld, role: str) -> None:
    client, _ = world.session(role)
    r = client.get("/components?lang=zh", headers=HTML)
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    states = dict(re.findall(r'<tr data-component="([^"]+)" data-state="([^"]+)"', body))
    assert states["state-store"] == "up"
    assert states["etcd"] == "unknown"  # no Prometheus configured: unknown, never down
    assert states["smtp"] == "disabled"
    assert "平台组件" in body and "状态存储" in body
    assert 'class="lane" data-component="state-store"><span class="span s-ok"' in body
    assert 'href="/components"' in body  # in the navigation


@pytest.mark.parametrize("role", ["workspace-admin", "project-admin"])
def test_tenants_get_neither_the_page_nor_the_link(world: TenancyWorld, role: str) -> None:
    client, _ = world.session(role)
    assert client.get("/components", headers=HTML).status_code == 403
    assert 'href="/components"' not in client.get("/workspaces", headers=HTML).get_data(as_text=True)


def test_the_monitoring_page_shows_metric_words_with_the_id_on_hover(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    body = client.get("/monitoring?level=cluster&lang=zh", headers=HTML).get_data(as_text=True)
    assert '<abbr class="metric" title="cluster_cpu_utilisation">集群 CPU 使用率</abbr>' in body
    assert "data-metric-words=" in body and "集群 CPU 使用率" in body


def test_every_component_template_loads_as_a_node_policy(world: TenancyWorld) -> None:
    from hub.collectors.components import COMPONENTS

    client = world.client("platform-admin")
    listed = {t["name"] for t in client.get("/api/v1/alerting/templates?level=node").get_json()["items"]}
    for comp in COMPONENTS:
        assert f"component-{comp.name}" in listed
        r = client.post(f"/api/v1/alerting/policies/templates/component-{comp.name}", json={})
        assert r.status_code == 201, (comp.name, r.get_json())
        assert all(rule.get("expr") for rule in r.get_json()["rules"])


def test_policy_pages_show_the_rule_metric_as_words(world: TenancyWorld) -> None:
    client = world.client("platform-admin")
    created = client.post("/api/v1/alerting/policies/templates/node-cpu", json={"name": "words-node-cpu"})
    assert created.status_code == 201, created.get_json()
    session, _ = world.session("platform-admin")
    hover = '<abbr class="metric" title="node_cpu_utilisation">节点 CPU 使用率</abbr>'
    listing = session.get("/alerting/policies?lang=zh", headers=HTML).get_data(as_text=True)
    assert hover in listing
    editor = session.get(f"/alerting/node-policies/{created.get_json()['id']}?lang=zh", headers=HTML)
    assert hover in editor.get_data(as_text=True)


def test_a_slow_prometheus_is_said_on_the_page_and_in_the_api(world: TenancyWorld) -> None:
    from hub.collectors.components import ComponentService
    from tests.unit.test_components import Clock, SlowPrometheus

    hub = world.hub
    prom = SlowPrometheus({"etcd": [(float(t), 1.0, 1.0) for t in range(109_980, 200_160, 60)]})
    clock = Clock(200_000.0)
    kept = hub.components
    hub.components = ComponentService(prom, lambda: [], clock=clock, live_wait=0.5)
    try:
        client, _ = world.session("platform-admin")
        body = client.get("/components?lang=en", headers=HTML).get_data(as_text=True)
        assert 'id="components-scraped-earlier"' not in body  # live
        prom.hold.set()
        clock.t += 42
        body = client.get("/components?lang=en", headers=HTML).get_data(as_text=True)
        assert re.search(
            r'id="components-scraped-earlier">Prometheus had not answered within 0.5 s, .* 42 s earlier', body
        )
        assert 'data-component="etcd" data-state="up"' in body
        body = client.get("/components?lang=zh", headers=HTML).get_data(as_text=True)
        assert "42 秒前读取" in body
        api = world.client("platform-admin").get("/api/v1/components").get_json()
        assert api["time"] - api["scraped_time"] == 42
    finally:
        prom.release.set()
        hub.components = kept
