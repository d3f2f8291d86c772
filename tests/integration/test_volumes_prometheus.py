"""PVC metrics against a real Prometheus holding the node simulator's volume statistics.

The shared sandbox provisions no volumes (its controller-manager runs without the
persistentvolume-binder, so a StatefulSet's claims would stay Pending and its pods unscheduled),
so eight hours of what :mod:`sandbox.volsim` serves for two StatefulSets' declared claims, plus
the kube-state-metrics series that tie claims to pods and pods to StatefulSets, are backfilled
into a PRIVATE Prometheus (Debian's binary on a loopback port, ``promtool tsdb
create-blocks-from openmetrics``, as tests/integration/test_alerts_rule_import.py does).

1. The series of every declared claim are there.
2. The hub's volume ranking is Prometheus's own ``topk`` over the raw series (written here,
   not taken from the catalogue), and a tenant's ranking holds only their project's claims.
3. A backtest of the built-in template ``workload-pvc-full-in-6h`` over the history fires when
   Prometheus's own evaluation of ``predict_linear(...) < 0`` says it must (its 5-minute slots, two
   in a row), and that is where the straight line of the simulated growth says: 6 h before full.
"""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from hub.collectors.catalogue import resolution_for_period
from hub.runtime import build_hub
from hub.settings import Settings
from hub.timeutil import parse_time
from sandbox import volsim
from tests.conftest import world_database_url
from tests.integration.test_alerts_reference import PROMETHEUS, PROMTOOL, _free_port
from tests.integration.test_alerts_rule_import import write_openmetrics

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "rules"
PASSWORD = "correct-horse-battery-9"
SCRAPE = 30
LENGTH = 8 * 3600
POINTS = LENGTH // SCRAPE + 1
GROWTH = 0.05  # utilisation per hour of the growing StatefulSet
START_USED = 0.5


def statefulsets(base: int) -> list[dict[str, Any]]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base))

    def sts(ns: str, name: str, replicas: int, ann: dict[str, str], *claims: tuple[str, str]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {
                "replicas": replicas,
                "template": {"metadata": {"annotations": ann}},
                "volumeClaimTemplates": [
                    {"metadata": {"name": c}, "spec": {"resources": {"requests": {"storage": size}}}}
                    for c, size in claims
                ],
            },
        }

    return [
        sts("retail-api", "orders-db", 2, {}, ("data", "20Gi"), ("wal", "2Gi")),
        sts(
            "analytics-db",
            "clickhouse",
            2,
            {volsim.ANN_VOLUME_USED: str(START_USED), volsim.ANN_VOLUME_GROWTH: str(GROWTH)},
            ("data", "50Gi"),
        ),
    ]


def history(base: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    import numpy as np

    out: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    all_sts = statefulsets(base)
    claims = [c for s in all_sts for c in volsim.claims_of(s)]
    for k in range(POINTS):
        t = base + k * SCRAPE
        for c in claims:
            for name, value in c.stats(t).items():
                key = (name, (("job", "kubelet"), ("namespace", c.namespace), ("persistentvolumeclaim", c.name)))
                out.setdefault(key, np.full(POINTS, math.nan))[k] = value
    ones = np.ones(POINTS)
    for s in all_sts:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        for i in range(s["spec"]["replicas"]):
            pod = f"{name}-{i}"
            ksm = (("job", "kube-state-metrics"), ("namespace", ns), ("pod", pod))
            out[("kube_pod_owner", (*ksm, ("owner_kind", "StatefulSet"), ("owner_name", name)))] = ones
            for tpl in s["spec"]["volumeClaimTemplates"]:
                claim = f"{tpl['metadata']['name']}-{pod}"
                labels = (*ksm, ("persistentvolumeclaim", claim), ("volume", tpl["metadata"]["name"]))
                out[("kube_pod_spec_volumes_persistentvolumeclaims_info", labels)] = ones
    # An unmounted claim counts for its project and ranks, but belongs to no workload.
    spare = volsim.Claim("retail-api", "scratch", 5 * 2**30, 0.95, 0.0, base)
    for k in range(POINTS):
        for name, value in spare.stats(base + k * SCRAPE).items():
            key = (name, (("job", "kubelet"), ("namespace", "retail-api"), ("persistentvolumeclaim", "scratch")))
            out.setdefault(key, np.full(POINTS, math.nan))[k] = value
    return out


@dataclass
class World:
    base: int
    url: str
    work: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import tests.integration.test_alerts_rule_import as ri

    for binary in (PROMETHEUS, PROMTOOL):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: apt-get install prometheus (the reference engine of this test)")
    work = tmp_path_factory.mktemp("volumes")
    # The last point a minute ago: the console's ranking is live (now, with Prometheus's 5-minute lookback).
    base = (int(time.time()) - LENGTH - 60) // SCRAPE * SCRAPE
    blocks = work / "data"
    blocks.mkdir()
    saved, ri.SCRAPE = ri.SCRAPE, SCRAPE  # write_openmetrics spaces points by the module's SCRAPE
    try:
        files = write_openmetrics(history(base), base, work)
    finally:
        ri.SCRAPE = saved
    for path in files:
        proc = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(blocks)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"promtool rejected {path.name}: {proc.stdout}{proc.stderr}"
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={blocks}",
         "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the private Prometheus did not start: {(work / 'prometheus.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield World(base, url, work)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def raw(world: World, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
    answer = requests.get(f"{world.url}/api/v1/query", params={"query": promql, "time": at}, timeout=30).json()
    assert answer["status"] == "success", answer
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


def test_every_declared_claim_has_its_series(world: World) -> None:
    at = world.base + LENGTH
    want = {("retail-api", f"{t}-orders-db-{i}") for t in ("data", "wal") for i in (0, 1)}
    want |= {("analytics-db", f"data-clickhouse-{i}") for i in (0, 1)} | {("retail-api", "scratch")}
    for family in volsim.HELP:
        got = {(m["namespace"], m["persistentvolumeclaim"]) for m, _ in raw(world, family, at)}
        assert got == want, family


@pytest.fixture(scope="module")
def app(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from web import create_app

    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("volumes-hub")), database_url=world_database_url()
    ).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        alerts={"evaluate": False},
        prometheus={"url": world.url, "timeout": 20.0},
        auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1},
    )
    app = create_app(settings, testing=True)
    tenancy = app.extensions["kubehub"].tenancy
    tenancy.create_user("root", PASSWORD, platform_role="admin")
    tenancy.create_workspace("retail")
    tenancy.create_project("retail", "retail-api")
    tenancy.create_workspace("analytics")
    tenancy.create_project("analytics", "analytics-db")
    tenancy.create_user("api-viewer", PASSWORD)
    tenancy.set_project_member("retail-api", "api-viewer", "viewer")
    app.config["tokens"] = {u: tenancy.issue_token(u).token for u in ("root", "api-viewer")}
    yield app
    app.extensions["kubehub"].close()


def ranking(app: Any, user: str, metric: str, limit: int, at: float) -> list[tuple[float, str, str]]:
    token = app.config["tokens"][user]
    response = app.test_client().get(
        "/api/v1/monitoring/volumes",
        query_string={"metrics": metric, "sort_metric": metric, "sort_type": "desc", "limit": limit, "time": at},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_json()
    series = response.get_json()["results"][0]["series"]
    return [(s["values"][0][1], s["labels"]["namespace"], s["labels"]["persistentvolumeclaim"]) for s in series]


@pytest.mark.parametrize(
    ("metric", "expr"),
    [
        ("volume_utilisation", "kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes"),
        ("volume_used_bytes", "kubelet_volume_stats_used_bytes"),
    ],
)
def test_the_hubs_volume_ranking_is_prometheus_topk(app: Any, world: World, metric: str, expr: str) -> None:
    at = world.base + LENGTH
    n = 4
    want = sorted((-v, m["namespace"], m["persistentvolumeclaim"]) for m, v in raw(world, f"topk({n}, {expr})", at))
    got = [(-v, ns, pvc) for v, ns, pvc in ranking(app, "root", metric, n, at)]
    assert len(want) == n
    assert [v for v, _, _ in got] == pytest.approx([v for v, _, _ in want], rel=1e-9)
    assert [(ns, pvc) for _, ns, pvc in got] == [(ns, pvc) for _, ns, pvc in want]
    # A tenant of retail-api: their claims only, in Prometheus's order of that namespace.
    mine = raw(world, 'kubelet_volume_stats_capacity_bytes{namespace="retail-api"}', at)
    tenant = ranking(app, "api-viewer", metric, 10, at)
    assert {ns for _, ns, _ in tenant} == {"retail-api"}
    assert sorted(pvc for _, _, pvc in tenant) == sorted(m["persistentvolumeclaim"] for m, _ in mine)


def test_a_backtest_of_the_predictive_template_fires_when_prometheus_says_six_hours_before_full(
    world: World, tmp_path: Path
) -> None:
    doc = yaml.safe_load((RULES / "workload-pvc-full-in-6h.yaml").read_text())
    doc["namespace"] = "analytics-db"
    (rule,) = doc["rules"]
    period = 300
    assert (rule["period"], rule["consecutive"], rule["aggregation"]) == ("5m", 2, "max")
    settings = Settings(data_dir=tmp_path, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"}, logs={"ship": False}, prometheus={"url": world.url, "timeout": 30.0}
    )
    hub = build_hub(settings)
    try:
        start = math.ceil((world.base + 3600) / period) * period  # slots end on multiples of the period
        end = (world.base + LENGTH) // period * period
        result = hub.alerting.backtest(
            None, level="workload", namespace="analytics-db", start=start, end=end, document=doc
        )
    finally:
        hub.close()
    alerts = result["alerts"]
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert alert["entity"] == "analytics-db/statefulset/clickhouse" and alert["state"] == "firing", alert

    # Prometheus's own evaluation of the raw condition at the engine's points (a slot of 5 min:
    # its points every resolution_for_period(300) s, the last at the slot's end), two slots in a row.
    step = resolution_for_period(period)
    cond = 'min(predict_linear(kubelet_volume_stats_available_bytes{namespace="analytics-db"}[1h], 21600))'
    params = {"query": cond, "start": start, "end": end, "step": step}
    answer = requests.get(f"{world.url}/api/v1/query_range", params=params, timeout=60).json()
    points = {int(float(t)): float(v) for t, v in answer["data"]["result"][0]["values"]}
    slots = range(math.ceil((start + period) / period) * period, end + 1, period)
    below = [all(points[e - j * step] < 0 for j in range(period // step)) for e in slots]
    first = next(e for k, e in enumerate(slots) if k > 0 and below[k] and below[k - 1])
    assert parse_time(alert["fired_at"], field="fired_at") == first, (alert, first)
    # The straight line: used = 0.5 + 0.05/h; 6 h later it would pass capacity once
    # 0.5 + 0.05 x (h + 6) > 1, i.e. after h = 4 h (it is really full after ~10 h, past the history).
    analytic = world.base + (1.0 - START_USED - 6 * GROWTH) / GROWTH * 3600
    print(f"fired {first - world.base:.0f}s after the history start; straight line: {analytic - world.base:.0f}s")
    assert analytic <= first <= analytic + 3 * period


def test_the_console_ranks_volumes_and_a_tenant_sees_only_their_claims(app: Any, world: World) -> None:
    pages = {}
    for user in ("root", "api-viewer"):
        client = app.test_client()
        r = client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.get_data(as_text=True)
        page = client.get("/rankings", query_string={"level": "volumes", "sort": "volume_utilisation"})
        assert page.status_code == 200, page.get_data(as_text=True)[:500]
        pages[user] = page.get_data(as_text=True)
    for text in pages.values():
        assert "Free in 6 h (predicted)" in text and "scratch" in text
    assert "data-clickhouse-0" in pages["root"]
    assert "data-clickhouse-0" not in pages["api-viewer"] and "analytics-db" not in pages["api-viewer"]
