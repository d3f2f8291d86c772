"""``kubehub sandbox up --clusters 2``: the second cluster as the sandbox would start it (process
names, ports, files, its own PKI and kubeconfig) and the Prometheus configuration that keeps the
clusters apart by a ``cluster`` label, checked by ``promtool`` itself; without starting anything.
The default sandbox is unchanged (no second cluster, no ``cluster`` label)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox import promcfg
from sandbox.cli import add_arguments
from sandbox.core import Sandbox

pytestmark = pytest.mark.unit


def test_one_cluster_by_default_and_the_second_on_its_own_ports_and_files(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path / "sb")
    assert [s.name for s in sb.sites] == ["default"]
    assert not any("@" in n for n in sb._expected_components())
    default_specs = [sb._spec_etcd(), sb._spec_apiserver(), sb._spec_kcm(), sb._spec_kwok(), sb._spec_ksm()]
    sb.config.clusters = 2
    # The first cluster's command lines do not move when a second one joins.
    assert [s.argv for s in default_specs] == [
        s.argv for s in (sb._spec_etcd(), sb._spec_apiserver(), sb._spec_kcm(), sb._spec_kwok(), sb._spec_ksm())
    ]
    second = sb.site("cluster-2")
    assert second.dir == sb.dir / "clusters" / "cluster-2" and second.kubeconfig != sb.kubeconfig
    assert second.nodes < sb.config.nodes
    extra = [n for n in sb._expected_components() if "@" in n]
    assert extra == [
        f"{c}@cluster-2"
        for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                  "kube-state-metrics", "nodesim")
    ]  # fmt: skip
    specs = [sb._spec_etcd(second), sb._spec_apiserver(second), sb._spec_kcm(second), sb._spec_scheduler(second),
             sb._spec_kwok(second), sb._spec_ksm(second), sb._spec_nodesim(second)]  # fmt: skip
    assert [s.name for s in specs] == extra
    ports_first = {p for s in default_specs for p in s.ports}
    ports_second = [p for s in specs for p in s.ports]
    assert len(set(ports_second)) == len(ports_second) and not ports_first & set(ports_second)
    assert all(p == sb.port(n) + 1000 for p, n in zip(specs[1].ports, ["kube-apiserver"], strict=True))
    text = " ".join(a for s in specs for a in s.argv)
    assert str(second.pki_dir) in text and str(sb.pki_dir) + "/" not in text  # its own certificates only
    assert str(sb.kubeconfig) + " " not in text + " " and f"--kubeconfig={second.kubeconfig}" in text
    assert sb.url_of("kube-apiserver@cluster-2") == f"https://127.0.0.1:{sb.port('kube-apiserver') + 1000}"


def test_prometheus_keeps_the_clusters_apart_by_a_cluster_label(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path / "sb", quiet=True)
    one = promcfg.render(sb)
    for job in yaml.safe_load(one)["scrape_configs"]:  # unchanged: no cluster label anywhere
        assert all(r.get("target_label") != "cluster" for r in job.get("relabel_configs") or []), job["job_name"]
    sb.config.clusters = 2
    for site in sb.sites:  # promtool checks that the certificate files exist
        site.pki_dir.mkdir(parents=True, exist_ok=True)
        for f in ("ca.crt", "admin.crt", "admin.key"):
            (site.pki_dir / f).write_text("")
    text = promcfg.render(sb)
    jobs = {j["job_name"]: j for j in yaml.safe_load(text)["scrape_configs"]}
    for name in promcfg.CLUSTER_JOBS:
        first, other = jobs[name], jobs[f"{name}@cluster-2"]
        assert {"target_label": "cluster", "replacement": "default"} in first["relabel_configs"]
        assert {"target_label": "cluster", "replacement": "cluster-2"} in other["relabel_configs"]
        assert {"target_label": "job", "replacement": name} in other["relabel_configs"]  # queries stay the same
        assert yaml.safe_dump(other).count(str(sb.site("cluster-2").pki_dir)) == yaml.safe_dump(first).count(
            str(sb.pki_dir) + "/"
        )
    assert "relabel_configs" not in jobs["host"] and "relabel_configs" not in jobs["prometheus"]
    if shutil.which("promtool"):
        path = tmp_path / "p.yml"
        path.write_text(text)
        proc = subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_flag_is_parsed_and_bounded() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["up", "--clusters", "2"]).clusters == 2
    assert parser.parse_args(["up"]).clusters is None


def test_the_sandbox_hub_gets_the_further_clusters_and_reads_prometheus_as_a_shared_endpoint(tmp_path: Path) -> None:
    from hub.runtime import build_hub
    from hub.settings import load_settings
    from sandbox.hub_seed import seed_clusters

    sb = Sandbox(tmp_path / "sb", quiet=True)
    assert sb.hub_cluster_env() == {} and "KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL" not in sb._spec_hub().env
    sb.config.clusters = 2
    assert sb._spec_hub().env["KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL"] == "default"
    env = {"KUBEHUB_DATA_DIR": str(tmp_path / "hub"), "KUBEHUB_KUBERNETES_KUBECONFIG": "none",
           "KUBEHUB_PROMETHEUS_URL": sb.prometheus_url, **sb.hub_cluster_env()}  # fmt: skip
    settings = load_settings(env=env)
    second = sb.site("cluster-2")
    state = {"clusters": [{"name": second.name, "kubeconfig": str(second.kubeconfig), "context": second.context}]}
    assert seed_clusters(settings, {}) == "clusters: one cluster, nothing to add"
    assert seed_clusters(settings, state).endswith("1 added")
    assert seed_clusters(settings, state).endswith("0 added")  # idempotent
    hub = build_hub(settings)
    try:
        added = hub.clusters.get("cluster-2")
        assert added.connection.kubeconfig_path == str(second.kubeconfig) and not added.connection.has_credentials
        assert added.metrics.selector() == 'cluster="cluster-2"'
        assert hub.clusters.get("default").metrics.selector() == 'cluster="default"'
    finally:
        hub.close()
