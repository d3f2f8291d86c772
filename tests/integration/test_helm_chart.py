"""The Helm chart in deploy/helm/kubehub: ``helm lint`` is clean and ``helm template`` renders
what the README and docs/operations.md promise, for one replica on SQLite and for several on
PostgreSQL. The rendering is Helm's own (the real binary, built from the Go module proxy).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hub.settings import settings_table
from tests.integration.deploy_support import (
    CHART,
    HA_VALUES,
    helm,
    image_env,
    manifest,
    normalized_rules,
    one,
    render,
)

pytestmark = pytest.mark.integration

NS = "kubehub-prod"


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    env: dict[str, Any] = dict(one(objects, "ConfigMap")["data"])
    for item in _container(objects)["env"]:
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


# The node log collector switched on (a digest as `kubehub collector-token` prints one).
COLLECTOR_VALUES = {"collector.enabled": "true", "collector.tokenSha256": "ab" * 32}
COLLECTOR_MANIFEST = CHART.parents[2] / "deploy" / "kubernetes" / "collector.yaml"


@pytest.mark.parametrize(
    "values",
    [{}, HA_VALUES, {**HA_VALUES, "rbac.manage": "false"}, {**HA_VALUES, **COLLECTOR_VALUES}],
    ids=["sqlite", "ha", "ro", "collector"],
)
def test_helm_lint_is_clean(values: dict[str, str]) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["--set", ",".join(f"{k}={v}" for k, v in values.items())]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_one_replica_keeps_sqlite_on_a_volume_and_is_recreated_not_rolled() -> None:
    objects = render("kubehub", NS)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "Secret",
            "ConfigMap",
            "PersistentVolumeClaim",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
        ]
    )
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one SQLite writer at a time
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"]
        == one(objects, "PersistentVolumeClaim")["metadata"]["name"]
    )
    assert "KUBEHUB_DATABASE_URL" not in _env(objects)


def test_several_replicas_take_postgresql_from_a_secret_and_get_a_disruption_budget() -> None:
    objects = render("kubehub", NS, HA_VALUES)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    env = _env(objects)
    assert env["KUBEHUB_DATABASE_URL"] == {"secretKeyRef": {"name": "kubehub-database", "key": "url"}}
    assert env["KUBEHUB_SMTP_PASSWORD"] == {"secretKeyRef": {"name": "kubehub-smtp", "key": "password"}}
    secret_key = env["KUBEHUB_HTTP_SECRET_KEY"]["secretKeyRef"]  # one key for every replica's cookies
    assert secret_key["name"] == one(objects, "Secret")["metadata"]["name"]
    assert env["KUBEHUB_LOGS_BACKEND"] == "elasticsearch"
    assert env["KUBEHUB_ELASTICSEARCH_URL"] == HA_VALUES["elasticsearch.url"]
    assert env["KUBEHUB_PROMETHEUS_URL"] == HA_VALUES["prometheus.url"]
    assert env["KUBEHUB_SMTP_HOST"] == HA_VALUES["smtp.host"]
    assert env["KUBEHUB_LEADER_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # the pod's name
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]  # nothing in the pod must outlive it
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    ingress = one(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(objects, "Service")["metadata"]["name"]
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    "values, named",
    [
        ({"replicaCount": "2"}, "database.existingSecret"),
        ({"replicaCount": "2", "database.existingSecret": "db"}, "logs.backend=elasticsearch"),
        ({"logs.backend": "elasticsearch"}, "elasticsearch.url"),
        ({"smtp.security": "ssl"}, "smtp.security"),
        ({"collector.enabled": "true"}, "collector.tokenSha256"),
        ({"collector.enabled": "true", "collector.tokenSha256": "not-a-digest"}, "collector.tokenSha256"),
    ],
)
def test_settings_that_cannot_work_fail_the_render_naming_the_value(values: dict[str, str], named: str) -> None:
    sets = ",".join(f"{k}={v}" for k, v in values.items())
    done = helm("template", "kubehub", str(CHART), "--namespace", NS, "--set", sets, check=False)
    assert done.returncode != 0
    assert named in done.stderr, done.stderr


@pytest.mark.parametrize("values", [{}, HA_VALUES], ids=["sqlite", "ha"])
def test_the_pod_runs_as_non_root_with_a_read_only_root_and_probes(values: dict[str, str]) -> None:
    objects = render("kubehub", NS, values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's kubehub user
    c = _container(objects)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data", "/tmp"}  # the only writable places
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz/serving"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_the_image_environment_and_every_chart_variable_are_real_settings() -> None:
    known = {row[0] for row in settings_table()}
    for values in ({}, HA_VALUES):
        env = _env(render("kubehub", NS, values))
        unknown = sorted(k for k in env if k.startswith("KUBEHUB_") and k not in known)
        assert not unknown, unknown
    # The chart repeats the image's ENV so it does not depend on it; both must agree.
    chart_env = _env(render("kubehub", NS))
    image = image_env()
    assert image["KUBEHUB_DATA_DIR"] == "/data"
    for name, value in image.items():
        if not name.startswith("KUBEHUB_"):
            continue
        assert name in known, name
        assert str(chart_env[name]) == value, (name, chart_env[name], value)


def test_chart_and_manifest_grant_the_same_least_privilege_rules() -> None:
    chart_role = one(render("kubehub", NS), "ClusterRole")
    manifest_role = one(manifest(), "ClusterRole")
    assert normalized_rules(chart_role) == normalized_rules(manifest_role)
    grants = normalized_rules(chart_role)
    # Never: Secret values, RBAC, exec/attach, impersonation, wildcards.
    assert not [g for g in grants if "*" in g]
    assert ("", "secrets", "get") not in grants
    assert not [g for g in grants if g[0] == "rbac.authorization.k8s.io"]
    assert not [g for g in grants if g[1] in ("pods/exec", "pods/attach", "serviceaccounts/token")]
    assert not [g for g in grants if g[2] in ("impersonate", "escalate", "bind")]
    read_only = one(render("kubehub", NS, {**HA_VALUES, "rbac.manage": "false"}), "ClusterRole")
    assert {g[2] for g in normalized_rules(read_only)} == {"get", "list", "watch"}
    # The binding names the chart's own account, and cluster-scoped names carry the namespace
    # so two installations do not overwrite each other's role.
    objects = render("hub", "team-a")
    binding = one(objects, "ClusterRoleBinding")
    sa = one(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": "team-a"}]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"] == "team-a-hub-kubehub"


def test_the_collector_is_off_by_default_and_the_hub_then_polls_logs_itself() -> None:
    objects = render("kubehub", NS)
    assert not [o for o in objects if o["kind"] in ("DaemonSet", "Namespace")]
    env = _env(objects)
    assert env["KUBEHUB_LOGS_SHIP"] == "true" and env["KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256"] == ""


def test_the_collector_daemonset_gives_up_what_the_manifest_gives_up_in_a_namespace_allowing_hostpath() -> None:
    objects = render("kubehub", NS, {**HA_VALUES, **COLLECTOR_VALUES})
    ds = one(objects, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    # deploy/kubernetes/collector.yaml is the reference the chart must match, field for field.
    reference = [d for d in yaml.safe_load_all(COLLECTOR_MANIFEST.read_text(encoding="utf-8")) if d]
    ref_pod = one(reference, "DaemonSet")["spec"]["template"]["spec"]
    (ref_c,) = ref_pod["containers"]
    for key in ("securityContext", "automountServiceAccountToken", "tolerations", "priorityClassName"):
        assert pod[key] == ref_pod[key], key
    # the chart maps the Secret's key (collector.tokenSecret.key) onto the file the manifest reads
    token = next(v for v in pod["volumes"] if v["name"] == "token")
    assert token["secret"].pop("items") == [{"key": "token", "path": "token"}]
    assert pod["volumes"] == ref_pod["volumes"]
    for key in ("securityContext", "volumeMounts", "env", "resources"):
        assert c[key] == ref_c[key], key
    # and, spelled out: uid 0 with nothing else, read-only /var/log/pods, every taint tolerated
    assert pod["securityContext"]["runAsUser"] == 0
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/log/pods"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pods"]["hostPath"]["path"] == "/var/log/pods"
    assert "hostPath" in volumes["state"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert c["env"] == [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    assert "--hub-url=http://kubehub.kubehub-prod.svc:8080" in c["args"]
    assert "--batch-wait=0.2" in c["args"]
    # Its own namespace, created at the "privileged" level: hostPath is refused by baseline and
    # restricted, and the hub's namespace stays restricted.
    namespace = one(objects, "Namespace")
    assert ds["metadata"]["namespace"] == namespace["metadata"]["name"] == "kubehub-collector"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts[pod["serviceAccountName"]]["metadata"]["namespace"] == "kubehub-collector"
    assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False
    # The hub takes the collectors' tokens and stops polling the API for logs (no line twice).
    env = _env(objects)
    assert env["KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256"] == COLLECTOR_VALUES["collector.tokenSha256"]
    assert env["KUBEHUB_LOGS_SHIP"] == "false"
    # The hub's NetworkPolicy lets the collectors' pods in.
    peers = one(objects, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubehub-collector"}},
        "podSelector": {"matchLabels": ds["spec"]["selector"]["matchLabels"]},
    } in peers


def test_the_collector_can_go_into_a_namespace_the_operator_manages() -> None:
    values = {**COLLECTOR_VALUES, "collector.namespace": "node-agents", "collector.createNamespace": "false"}
    values |= {"collector.batchWait": "1", "collector.priorityClassName": "agents"}
    objects = render("kubehub", NS, values)
    assert not [o for o in objects if o["kind"] == "Namespace"]
    ds = one(objects, "DaemonSet")
    assert ds["metadata"]["namespace"] == "node-agents"
    assert ds["spec"]["template"]["spec"]["priorityClassName"] == "agents"
    assert "--batch-wait=1" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
