"""The sandbox's acceptance, checked against its real engines (issue 3).

Every test reads the shared sandbox; the two that change something (usage annotations) put it
back. Nothing here waits on wall-clock durations: "within two scrape intervals" is checked on the
timestamps of the samples Prometheus stored.
"""

from __future__ import annotations

import asyncio
import json
import mailbox
import time
import urllib.parse
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from elasticsearch import Elasticsearch
from kubernetes import client, config

from hub.collectors.logs.words import spaced_words
from sandbox.backfill import read_record
from sandbox.core import COMPONENTS, Sandbox
from sandbox.kube import KubeRest
from sandbox.seed import SEED_LABEL, WORKLOADS, WORKSPACES

pytestmark = pytest.mark.integration

NODE_SERIES = [
    "node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes", "node_load1",
    "node_load5", "node_load15", "node_filesystem_size_bytes", "node_filesystem_avail_bytes",
    "node_filesystem_files", "node_filesystem_files_free", "node_disk_read_bytes_total",
    "node_disk_written_bytes_total", "node_disk_reads_completed_total", "node_disk_writes_completed_total",
    "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
]  # fmt: skip


def promql(sb: Sandbox, query: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    code, body = sb.http(f"{sb.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=30)
    data = json.loads(body)
    assert code == 200 and data["status"] == "success", data
    return list(data["data"]["result"])


def samples(sb: Sandbox, selector: str, window: str) -> list[tuple[float, float]]:
    result = promql(sb, f"{selector}[{window}]")
    assert len(result) == 1, f"{selector} matched {len(result)} series"
    return [(float(t), float(v)) for t, v in result[0]["values"]]


@pytest.fixture(scope="module")
def kube(sandbox: Sandbox) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sandbox.kubeconfig))


def seeded_pods(kube: client.ApiClient) -> list[Any]:
    return client.CoreV1Api(kube).list_pod_for_all_namespaces(label_selector=f"{SEED_LABEL}=true").items


def test_status_shows_every_component_up_with_its_version(sandbox: Sandbox) -> None:
    status = sandbox.status()
    names = [c["name"] for c in status["components"]]
    for name in COMPONENTS:
        if name != "hub":
            assert name in names
    for comp in status["components"]:
        if comp["name"] == "hub":
            continue  # tests run the sandbox without its hub
        assert comp["state"] == "up", comp
        assert comp["version"] not in ("", "unknown"), comp
        assert comp["url"]
    assert {c["username"] for c in status["credentials"]} == {"admin", "retail-admin", "api-operator", "etl-viewer"}
    roles = {c["username"]: c for c in status["credentials"]}
    assert roles["admin"]["platform_role"] == "admin"
    assert roles["retail-admin"]["workspaces"] == {"retail": "admin"}
    assert roles["api-operator"]["projects"] == {"retail-api": "operator"}
    assert roles["etl-viewer"]["projects"] == {"analytics-etl": "viewer"}
    assert all(len(c["password"]) >= 12 for c in status["credentials"])
    assert status["kubeconfig"] == str(sandbox.kubeconfig) and sandbox.kubeconfig.exists()
    assert status["mailbox"] == str(sandbox.mailbox)


def test_every_simulated_node_is_ready(sandbox: Sandbox, kube: client.ApiClient) -> None:
    nodes = client.CoreV1Api(kube).list_node().items
    assert len(nodes) >= sandbox.config.nodes
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.metadata.name


def test_every_seeded_deployment_has_its_available_replicas(kube: client.ApiClient) -> None:
    deployments = client.AppsV1Api(kube).list_deployment_for_all_namespaces(label_selector=f"{SEED_LABEL}=true").items
    assert {d.metadata.name for d in deployments} == {w.name for w in WORKLOADS if w.kind == "Deployment"}
    for d in deployments:
        assert d.spec.replicas >= 1
        assert d.status.available_replicas == d.spec.replicas, d.metadata.name


def test_seeded_workloads_of_every_kind_run_their_pods(kube: client.ApiClient) -> None:
    pods = seeded_pods(kube)
    kinds = set()
    for pod in pods:
        owner = (pod.metadata.owner_references or [None])[0]
        kinds.add(owner.kind if owner else "none")
        if owner and owner.kind == "Job":
            assert pod.status.phase in ("Running", "Succeeded"), pod.metadata.name
        else:
            assert pod.status.phase == "Running", pod.metadata.name
        assert pod.spec.node_name, pod.metadata.name
    assert {"ReplicaSet", "StatefulSet", "DaemonSet", "Job"} <= kinds
    batch = client.BatchV1Api(kube)
    assert {c.metadata.name for c in batch.list_cron_job_for_all_namespaces().items} >= {
        w.name for w in WORKLOADS if w.kind == "CronJob"
    }
    # Pods spread over the nodes rather than piling onto one.
    assert len({p.spec.node_name for p in pods}) >= min(3, len(client.CoreV1Api(kube).list_node().items))


def test_projects_are_namespaces_labelled_with_their_workspace(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    for ws, projects in WORKSPACES.items():
        for ns in projects:
            assert core.read_namespace(ns).metadata.labels["kubesphere.io/workspace"] == ws


def test_pod_log_api_serves_the_seeded_english_and_chinese_logs(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    pods = {p.metadata.labels["app.kubernetes.io/name"]: p for p in seeded_pods(kube)}
    en = core.read_namespaced_pod_log(pods["storefront"].metadata.name, "retail-web", container="web")
    zh = core.read_namespaced_pod_log(pods["checkout-api"].metadata.name, "retail-api", container="api")
    assert "GET /api/v1/products" in en or "served" in en
    both = en + zh
    assert "ERROR" in both
    assert "\tat com.example" in both or "Traceback" in both
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)


def test_every_prometheus_target_is_up(sandbox: Sandbox) -> None:
    _, body = sandbox.http(f"{sandbox.prometheus_url}/api/v1/targets?state=active", timeout=30)
    targets = json.loads(body)["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    assert {"etcd", "apiserver", "kube-scheduler", "kube-controller-manager", "kubelet", "node-exporter",
            "kube-state-metrics", "host", "prometheus"} <= jobs  # fmt: skip
    assert sum(1 for t in targets if t["labels"]["job"] == "kubelet") >= sandbox.config.nodes
    down = promql(sandbox, "up == 0")
    assert down == [], down
    assert len(promql(sandbox, "up == 1")) == len(targets)


def test_seeded_pods_have_cpu_and_memory_series(sandbox: Sandbox, kube: client.ApiClient) -> None:
    running = [p for p in seeded_pods(kube) if p.status.phase == "Running"]
    cpu = {(r["metric"]["namespace"], r["metric"]["pod"]) for r in promql(sandbox, "container_cpu_usage_seconds_total")}
    mem = promql(sandbox, "container_memory_working_set_bytes")
    mem_keys = {(r["metric"]["namespace"], r["metric"]["pod"]) for r in mem}
    for pod in running:
        key = (pod.metadata.namespace, pod.metadata.name)
        assert key in cpu and key in mem_keys, key
    for r in mem:
        assert {"namespace", "pod", "container", "node"} <= r["metric"].keys()
        assert float(r["value"][1]) > 0


def test_every_simulated_node_has_node_exporter_series(sandbox: Sandbox, kube: client.ApiClient) -> None:
    nodes = {n.metadata.name for n in client.CoreV1Api(kube).list_node().items}
    for series in NODE_SERIES:
        have = {r["metric"]["node"] for r in promql(sandbox, f'count by (node) ({series}{{job="node-exporter"}})')}
        assert have == nodes, series
    # The real host is scraped too, under its own job and without a node label.
    host = promql(sandbox, 'node_memory_MemTotal_bytes{job="host"}')
    assert len(host) == 1 and "node" not in host[0]["metric"]


def test_control_plane_series_are_present(sandbox: Sandbox) -> None:
    for query in (
        'etcd_server_has_leader{job="etcd"} == 1',
        'apiserver_request_total{job="apiserver"}',
        'apiserver_request_duration_seconds_bucket{job="apiserver"}',
        'scheduler_schedule_attempts_total{job="kube-scheduler"}',
        'workqueue_depth{job="kube-controller-manager"}',
        'kube_pod_info{namespace="retail-api"}',
        'kube_namespace_labels{label_kubesphere_io_workspace="retail"}',
    ):
        assert promql(sandbox, query), query


def test_prometheus_holds_24_hours_of_history_joinable_with_the_live_series(
    sandbox: Sandbox, kube: client.ApiClient
) -> None:
    backfill = read_record(sandbox.state_dir)
    # Pods of CronJob runs come and go; compare the series of pods that still exist.
    pods = {(p.metadata.namespace, p.metadata.name) for p in client.CoreV1Api(kube).list_pod_for_all_namespaces().items}
    assert backfill["end"] - backfill["start"] >= 86400
    at = backfill["start"] + 600  # ten minutes into the history
    for query in (
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        'node_cpu_seconds_total{job="node-exporter"}',
        "node_memory_MemAvailable_bytes",
        "kube_pod_info",
        "kube_pod_owner",
        "kube_replicaset_owner",
        "kube_namespace_labels",
        "kube_deployment_status_replicas_available",
        'up{job="etcd"}',
    ):
        old = {
            json.dumps(r["metric"], sort_keys=True)
            for r in promql(sandbox, query, at=at)
            if "pod" not in r["metric"] or (r["metric"]["namespace"], r["metric"]["pod"]) in pods
        }
        assert old, f"no history of {query}"
        now = {json.dumps(r["metric"], sort_keys=True) for r in promql(sandbox, query)}
        # The same label sets: history joins the live series (the live side may have more,
        # e.g. pods started since).
        assert old <= now, f"{query}: {sorted(old - now)[:3]}"
    # The history has its daily shape and hot periods: the busiest hour is busier than the
    # quietest by a clear margin.
    ranges = promql(
        sandbox,
        "max_over_time(sum(rate(container_cpu_usage_seconds_total[5m]))[24h:10m]) / "
        "min_over_time(sum(rate(container_cpu_usage_seconds_total[5m]))[24h:10m])",
        at=backfill["end"],
    )
    assert float(ranges[0]["value"][1]) > 1.3


def test_node_counters_never_reset_between_history_and_live(sandbox: Sandbox) -> None:
    resets = promql(sandbox, 'max(resets(node_cpu_seconds_total{job="node-exporter"}[1d]))')
    assert float(resets[0]["value"][1]) == 0


def _wait_for(fn: Any, timeout: float = 90, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_raising_a_pod_cpu_annotation_shows_in_prometheus_within_two_scrape_intervals(
    sandbox: Sandbox, kube: client.ApiClient
) -> None:
    pods = [p for p in seeded_pods(kube) if p.metadata.labels.get("app.kubernetes.io/name") == "payment-gateway"]
    pod = sorted(pods, key=lambda p: p.metadata.name)[0]
    ns, name = pod.metadata.namespace, pod.metadata.name
    rest = KubeRest(sandbox.kubeconfig)
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    selector = f'container_cpu_usage_seconds_total{{namespace="{ns}",pod="{name}"}}'
    mem_selector = f'container_memory_working_set_bytes{{namespace="{ns}",pod="{name}"}}'
    interval = 10.0
    try:
        patched_at = time.time()
        rest.patch(path, {"metadata": {"annotations": {"kubehub.io/cpu": "1.7", "kubehub.io/memory": "1500000000"}}})

        def after_patch() -> list[tuple[float, float]]:
            pts = [p for p in samples(sandbox, selector, "2m") if p[0] > patched_at]
            return pts if len(pts) >= 3 else []

        pts = _wait_for(after_patch)
        assert pts, "no samples after the patch"
        # Counter slope between the 1st and 2nd sample after the patch: the new usage, i.e. the
        # change is visible by the second scrape after the patch.
        (t1, v1), (t2, v2) = pts[1], pts[2]
        assert t2 - patched_at <= 3 * interval + 1  # the samples are the first scrapes after the patch
        assert v2 - v1 == pytest.approx(1.7 * (t2 - t1), rel=0.15)
        mem_pts = [v for t, v in samples(sandbox, mem_selector, "2m") if t > patched_at]
        assert mem_pts[:2] and mem_pts[1] == pytest.approx(1.5e9)
    finally:
        rest.patch(path, {"metadata": {"annotations": {"kubehub.io/cpu": None, "kubehub.io/memory": None}}})


def test_raising_a_node_cpu_annotation_shows_in_prometheus_within_two_scrape_intervals(
    sandbox: Sandbox, kube: client.ApiClient
) -> None:
    node = "kwok-node-0"
    rest = KubeRest(sandbox.kubeconfig)
    path = f"/api/v1/nodes/{node}"
    selector = f'node_cpu_seconds_total{{job="node-exporter",node="{node}",cpu="0",mode="idle"}}'
    try:
        patched_at = time.time()
        rest.patch(path, {"metadata": {"annotations": {"kubehub.io/cpu": "0.95"}}})

        def after_patch() -> list[tuple[float, float]]:
            pts = [p for p in samples(sandbox, selector, "2m") if p[0] > patched_at]
            return pts if len(pts) >= 3 else []

        pts = _wait_for(after_patch)
        assert pts
        (t1, v1), (t2, v2) = pts[1], pts[2]
        assert (v2 - v1) / (t2 - t1) == pytest.approx(0.05, abs=0.01)
    finally:
        rest.patch(path, {"metadata": {"annotations": {"kubehub.io/cpu": None}}})


def test_elasticsearch_answers_with_its_version_and_holds_the_seeded_logs(sandbox: Sandbox) -> None:
    es = Elasticsearch(sandbox.elasticsearch_url, request_timeout=30)
    try:
        nodes = es.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")
        assert next(iter(nodes["nodes"].values()))["version"].startswith("8.")
        for ns in ("retail-web", "retail-api", "analytics-etl", "analytics-db"):
            assert es.count(index="kubehub-logs-*", query={"term": {"namespace": ns}})["count"] > 0, ns

        # The seeded indices search like the hub's: message is stored, not indexed; phrases go
        # to the words field as the hub's word rule spaces them (hub/collectors/logs/words.py).
        def phrase(text: str) -> dict[str, Any]:
            return {"match_phrase": {"words": spaced_words(text)}}

        zh = es.search(index="kubehub-logs-*", query=phrase("支付失败"), size=1)
        assert zh["hits"]["total"]["value"] > 0
        assert "支付失败" in zh["hits"]["hits"][0]["_source"]["message"]
        trace = es.search(index="kubehub-logs-*", query=phrase("java.lang.NullPointerException"), size=1)
        doc = trace["hits"]["hits"][0]["_source"]
        assert "\n\tat com.example" in doc["message"]
        assert {"time", "namespace", "pod", "container", "workload", "node", "message"} <= doc.keys()
        days = es.indices.get(index="kubehub-logs-*")
        assert all(name.startswith("kubehub-logs-") for name in days)
    finally:
        es.close()


def test_smtp_catcher_stores_a_message_sent_with_aiosmtplib(sandbox: Sandbox) -> None:
    subject = f"sandbox test {uuid.uuid4()}"
    msg = EmailMessage()
    msg["From"] = "kubehub@localhost"
    msg["To"] = "ops@example.com"
    msg["Subject"] = subject
    msg.set_content("CPU 使用率过高 / CPU usage is high")
    asyncio.run(aiosmtplib.send(msg, hostname=sandbox.smtp_host, port=sandbox.smtp_port, timeout=10))
    box = mailbox.Maildir(str(sandbox.mailbox), create=False)
    found = [m for m in box if m["Subject"] == subject]
    assert len(found) == 1
    assert found[0]["X-Sandbox-Rcpt-To"] == "ops@example.com"
    assert "CPU 使用率过高" in found[0].get_payload(decode=True).decode("utf-8")


def test_status_json_of_the_command_has_the_documented_shape(sandbox: Sandbox) -> None:
    import subprocess
    import sys
    from pathlib import Path

    kubehub = Path(sys.executable).with_name("kubehub")
    out = subprocess.run(
        [str(kubehub), "sandbox", "status", "--json", "--dir", str(sandbox.dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    status = json.loads(out.stdout)
    assert {"components", "credentials", "mailbox", "kubeconfig"} <= status.keys()
    for comp in status["components"]:
        assert {"name", "state", "version", "url"} <= comp.keys()
        assert comp["state"] in ("up", "down", "starting")
    for cred in status["credentials"]:
        assert {"username", "password", "platform_role", "workspaces", "projects"} <= cred.keys()
        assert cred["platform_role"] in ("admin", "regular")


def test_up_again_reuses_every_running_component(sandbox: Sandbox) -> None:
    before = {name: sandbox.sup.pid(name) for name in COMPONENTS if name != "hub"}
    again = Sandbox(sandbox.dir, quiet=True)
    again.up(skip_hub=True)
    after = {name: again.sup.pid(name) for name in before}
    assert after == before


def test_seeded_containers_keep_logging(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    first: dict[str, Any] = {}
    for p in sorted(seeded_pods(kube), key=lambda p: p.metadata.name):
        first.setdefault(p.metadata.labels["app.kubernetes.io/name"], p)
    lines = 0
    for w in WORKLOADS:
        pod = first.get(w.name)
        if pod is None or pod.status.phase != "Running":
            continue
        for c in w.containers:
            text = core.read_namespaced_pod_log(pod.metadata.name, w.namespace, container=c, since_seconds=600)
            lines += len(text.splitlines())
    assert lines > 0
