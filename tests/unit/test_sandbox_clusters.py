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
    assert " 1 added;" in seed_clusters(settings, state)
    assert " 0 added;" in seed_clusters(settings, state)  # idempotent
    hub = build_hub(settings)
    try:
        added = hub.clusters.get("cluster-2")
        assert added.connection.kubeconfig_path == str(second.kubeconfig) and not added.connection.has_credentials
        assert added.metrics.selector() == 'cluster="cluster-2"'
        assert hub.clusters.get("default").metrics.selector() == 'cluster="default"'
    finally:
        hub.close()


def test_the_further_cluster_gets_its_tenant_in_the_hub_and_its_pod_logs_in_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--clusters 2``: the hook makes workspace ``logistics`` (granted cluster-2), its projects
    keyed in cluster-2 (not the first cluster's same-named ``retail-api``) and its admin, on a real
    store; run again it changes nothing. The credentials gain ``logistics-admin`` only with two
    clusters, and cluster-2's KWOK reads its pod logs from its own directory."""
    from hub.runtime import build_hub
    from hub.settings import load_settings
    from hub.tenancy.scope import Principal
    from sandbox import seed
    from sandbox.hub_seed import seed_clusters, seed_tenancy
    from tests.unit.namespace_fakes import patch_runtime

    # cluster-2's API server is not running here: its namespace calls go to an in-memory stand-in.
    stand_ins = patch_runtime(monkeypatch)

    one = Sandbox(tmp_path / "one", quiet=True)
    seed.Seeder(one, None, site=one.primary).seed_credentials()  # type: ignore[arg-type]
    assert [c["username"] for c in one.credentials] == [u["username"] for u in seed.DEMO_USERS]

    sb = Sandbox(tmp_path / "sb", quiet=True)
    sb.config.clusters = 2
    seed.Seeder(sb, None, site=sb.primary).seed_credentials()  # type: ignore[arg-type]
    creds = sb.credentials
    logistics = next(c for c in creds if c["username"] == "logistics-admin")
    assert logistics["workspaces"] == {"logistics": "admin"} and len(logistics["password"]) >= 12
    env = {"KUBEHUB_DATA_DIR": str(tmp_path / "hub"), "KUBEHUB_KUBERNETES_KUBECONFIG": "none",
           "KUBEHUB_PROMETHEUS_URL": sb.prometheus_url, **sb.hub_cluster_env()}  # fmt: skip
    settings = load_settings(env=env)
    second = sb.site("cluster-2")
    state = {
        "credentials": creds,
        "workspaces": {ws: list(p) for ws, p in seed.WORKSPACES.items()},
        "clusters": [{"name": second.name, "kubeconfig": str(second.kubeconfig), "context": second.context,
                      "workspaces": {"logistics": ["retail-api", "logistics-routing"]}}],
    }  # fmt: skip
    assert seed_tenancy(settings, state).startswith(f"tenancy: {len(creds) - 1} users")  # not logistics-admin yet
    first = seed_clusters(settings, state)
    assert first == "clusters: 1 further cluster(s), 1 added; 2 projects, 1 users", first
    assert seed_clusters(settings, state).endswith("0 added; 2 projects, 1 users")  # idempotent
    # The projects' namespaces were made (or adopted) in cluster-2 with the workspace's label.
    labelled = {"kubesphere.io/workspace": "logistics"}
    assert stand_ins["cluster-2"].namespaces == {"retail-api": labelled, "logistics-routing": labelled}
    hub = build_hub(settings)
    try:
        svc = hub.tenancy
        assert svc.workspace_clusters("logistics") == ["default", "cluster-2"]
        assert svc.workspace_clusters("retail") == ["default"]
        assert sorted(p.namespace for p in svc.projects("logistics")) == [
            "cluster-2/logistics-routing",
            "cluster-2/retail-api",
        ]
        assert svc.project("retail-api").workspace == "retail"  # the first cluster's, untouched
        assert svc.project("cluster-2/retail-api").workspace == "logistics"
        assert svc.login("logistics-admin", logistics["password"]).name == "logistics-admin"
        ws_roles, _ = svc.memberships_of("logistics-admin")
        assert {k: str(v.value) for k, v in ws_roles.items()} == {"logistics": "admin"}
        scope = svc.scope(Principal("logistics-admin", workspaces=ws_roles))
        assert not scope.for_cluster("default").namespaces
        assert set(scope.for_cluster("cluster-2").namespaces) == {"retail-api", "logistics-routing"}
    finally:
        hub.close()

    objs = seed.Seeder(sb, None, site=second).cluster_logs()  # type: ignore[arg-type]
    files = [entry["logsFile"] for o in objs for entry in o["spec"]["logs"]]
    assert {o["spec"]["selector"]["matchNamespaces"][0] for o in objs} == {"retail-api", "logistics-routing",
                                                                          seed.SYSTEM_NAMESPACE}  # fmt: skip
    assert files and all(f.startswith(str(second.pod_logs_dir) + "/") for f in files)
    primary = seed.Seeder(sb, None).cluster_logs()  # type: ignore[arg-type]
    assert all(e["logsFile"].startswith(str(sb.pod_logs_dir) + "/") for o in primary for e in o["spec"]["logs"])
