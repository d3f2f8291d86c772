"""Cluster-level roles against the sandbox's real Prometheus.

A cluster viewer ranks nodes, and the ranking is Prometheus's own (node memory utilisation
computed here in pandas from the raw node-exporter gauges, the outside reference); they get the
same answer as a platform admin. Tenant levels stay closed: naming a namespace is the one 403,
naming none returns no series (the scope lists no namespace). A custom cluster role holding only
monitoring:cluster gets the node levels and nothing else (not the node list).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from hub.settings import Settings
from tests.conftest import world_database_url

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-9"


def _prometheus_url(request: pytest.FixtureRequest) -> str:
    try:
        sb: Any = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        from sandbox.core import Sandbox

        sb = Sandbox(quiet=True)
        up = {c["name"] for c in sb.status()["components"] if c["state"] == "up"}
        if "prometheus" not in up:
            pytest.fail("the sandbox's Prometheus must be up: run `kubehub sandbox up`")
    return str(sb["prometheus_url"] if isinstance(sb, dict) else sb.prometheus_url)


def raw(prom: str, promql: str, at: float) -> pd.DataFrame:
    answer = requests.get(f"{prom}/api/v1/query", params={"query": promql, "time": at}, timeout=30).json()
    assert answer["status"] == "success", answer
    return pd.DataFrame([{**r["metric"], "value": float(r["value"][1])} for r in answer["data"]["result"]])


@pytest.fixture(scope="module")
def prom(request: pytest.FixtureRequest) -> str:
    return _prometheus_url(request)


@pytest.fixture(scope="module")
def hub_app(prom: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from web import create_app

    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("cluster-roles")), database_url=world_database_url()
    ).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        alerts={"evaluate": False},
        prometheus={"url": prom, "timeout": 20.0},
        auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1},
    )
    app = create_app(settings, testing=True)
    t = app.extensions["kubehub"].tenancy
    at = float(int(time.time()) - 20)
    namespaces = sorted(set(raw(prom, "kube_namespace_labels", at)["namespace"]))
    t.create_workspace("ws")
    t.create_project("ws", namespaces[0])
    for name, role in (("root", "admin"), ("noc", "regular"), ("graphs", "regular")):
        t.create_user(name, PASSWORD, platform_role=role)
    t.set_cluster_member(t.default_cluster, "noc", "viewer")
    t.create_custom_role({"name": "graphs", "level": "cluster", "permissions": ["monitoring:cluster"]}, actor="root")
    t.bind_custom_role("graphs", "graphs", t.default_cluster, actor="root")
    app.config["tokens"] = {u: t.issue_token(u).token for u in ("root", "noc", "graphs")}
    app.config["namespace"] = namespaces[0]
    yield app
    app.extensions["kubehub"].close()


def api(app: Any, user: str, path: str, **params: Any) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {app.config['tokens'][user]}"}
    r = app.test_client().get(path, query_string=params, headers=headers)
    return r.status_code, r.get_json()


def test_a_cluster_viewer_ranks_nodes_as_prometheus_does(hub_app: Any, prom: str) -> None:
    at = float(int(time.time()) - 20)
    metric = "node_memory_utilisation"
    status, body = api(hub_app, "noc", "/api/v1/monitoring/nodes", metrics=metric, sort_metric=metric, time=at)
    assert status == 200, body
    ranked = [(s["labels"]["node"], s["values"][0][1]) for s in body["results"][0]["series"]]
    total = raw(prom, 'node_memory_MemTotal_bytes{node!=""}', at).groupby("node")["value"].max()
    avail = raw(prom, 'node_memory_MemAvailable_bytes{node!=""}', at).groupby("node")["value"].max()
    want = sorted(((1 - avail[n] / total[n]), n) for n in total.index)[::-1]
    assert len(want) >= 2, "the sandbox should run several nodes"
    assert [v for _, v in ranked] == pytest.approx([v for v, _ in want], rel=1e-9)
    assert {n for n, _ in ranked} == set(total.index)
    admin_status, admin_body = api(
        hub_app, "root", "/api/v1/monitoring/nodes", metrics=metric, sort_metric=metric, time=at
    )
    assert admin_status == 200 and admin_body["results"] == body["results"]


def test_a_cluster_viewer_reaches_no_namespace(hub_app: Any) -> None:
    ns = hub_app.config["namespace"]
    status, body = api(hub_app, "noc", "/api/v1/monitoring/pods", metrics="pod_cpu_usage", namespaces=ns)
    assert status == 403 and body["error"] == f"you lack the permission monitoring:read in namespace {ns}"
    status, body = api(hub_app, "noc", "/api/v1/monitoring/pods", metrics="pod_cpu_usage")
    assert status == 200 and all(r["series"] == [] for r in body["results"])
    status, body = api(hub_app, "root", "/api/v1/monitoring/pods", metrics="pod_cpu_usage")
    assert status == 200 and any(r["series"] for r in body["results"])  # there is data to withhold


def test_a_custom_role_of_monitoring_cluster_alone_gets_the_node_levels_only(hub_app: Any) -> None:
    status, body = api(hub_app, "graphs", "/api/v1/monitoring/cluster", metrics="cluster_cpu_utilisation")
    assert status == 200 and body["results"][0]["series"], body
    assert api(hub_app, "graphs", "/api/v1/nodes")[0] == 403  # nodes:read is not part of it
    assert api(hub_app, "graphs", "/api/v1/alerting/policies")[0] == 403
