"""Support for the deployment tests: the Helm binary, rendering the chart, and a small admin
client of the sandbox's API server that applies manifests server-side.

Helm is built from the Go module proxy with the other engines (sandbox/engines/build-go-engines.sh)
and cached in ~/.cache/kubehub; a machine whose sandbox came up before Helm joined the engines
builds it here (cold: ~3-5 minutes on 2 cores).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from sandbox import prereqs

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "kubehub"
MANIFEST = REPO / "deploy" / "kubernetes" / "kubehub.yaml"
DOCKERFILE = REPO / "Dockerfile"

# The chart's "several replicas" shape: PostgreSQL from a Secret, logs in Elasticsearch, and the
# optional objects switched on, so every template renders.
HA_VALUES = {
    "replicaCount": "3",
    "database.existingSecret": "kubehub-database",
    "logs.backend": "elasticsearch",
    "elasticsearch.url": "http://elasticsearch.logging:9200",
    "prometheus.url": "http://prometheus.monitoring:9090",
    "smtp.host": "smtp.example.com",
    "smtp.passwordSecret": "kubehub-smtp",
    "ingress.enabled": "true",
    "networkPolicy.enabled": "true",
}


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV instructions (the last stage's, which is the image), as a dict."""
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    stage = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    env: dict[str, str] = {}
    joined = "\n".join(lines[stage:]).replace("\\\n", " ")
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def helm_binary() -> Path:
    """helm from the engines cache; built (or waited for: scripts/test.sh builds it in the
    background while the first integration tests run) when missing."""
    path = prereqs.ensure_helm(lambda line: print(f"[engines] {line}", flush=True))
    assert path.exists(), f"helm was not built into {path}"
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr or done.stdout}"
    return done


def render(release: str, namespace: str, values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``helm template`` of the chart as a list of objects."""
    sets = ",".join(f"{k}={v}" for k, v in (values or {}).items())
    args = ["template", release, str(CHART), "--namespace", namespace]
    if sets:
        args += ["--set", sets]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def manifest() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, (kind, [o["kind"] for o in objects])
    return found[0]


def normalized_rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """A ClusterRole's grants as (group, resource, verb) triples, whatever their grouping."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


# kind -> (API prefix, plural, namespaced): the kinds the chart and the manifest hold.
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Pod": ("/api/v1", "pods", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
}


class KubeAdmin:
    """The sandbox's admin identity (client certificate) or a bearer token, over plain HTTPS."""

    def __init__(self, server: str, ca: Path, *, cert: tuple[str, str] | None = None, token: str = "") -> None:
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.verify = str(ca)
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster's CA
        if cert:
            self.session.cert = cert
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeAdmin:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        return cls(
            cluster["server"],
            Path(cluster["certificate-authority"]),
            cert=(user["client-certificate"], user["client-key"]),
        )

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200, 201), **kw: Any) -> requests.Response:
        r = self.session.request(method, self.server + path, timeout=30, **kw)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r

    def path_of(self, obj: dict[str, Any], *, namespace: str | None = None) -> str:
        prefix, plural, namespaced = KINDS[obj["kind"]]
        name = obj["metadata"]["name"]
        if namespaced:
            ns = namespace or obj["metadata"].get("namespace")
            assert ns, f"{obj['kind']} {name} has no namespace"
            return f"{prefix}/namespaces/{ns}/{plural}/{name}"
        return f"{prefix}/{plural}/{name}"

    def apply(self, obj: dict[str, Any], *, manager: str = "kubehub-tests") -> dict[str, Any]:
        """Server-side apply (what ``kubectl apply --server-side`` sends)."""
        r = self.call(
            "PATCH",
            self.path_of(obj),
            # Strict: a field the API server does not know fails the apply instead of being dropped.
            params={"fieldManager": manager, "force": "true", "fieldValidation": "Strict"},
            data=yaml.safe_dump(obj).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return dict(r.json())

    def get(self, path: str) -> dict[str, Any] | None:
        r = self.call("GET", path, expect=(200, 404))
        return None if r.status_code == 404 else dict(r.json())

    def delete(self, path: str) -> None:
        self.call("DELETE", path, expect=(200, 202, 404))

    def wait_gone(self, path: str, *, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(path) is not None:
            assert time.monotonic() < deadline, f"{path} still exists after {timeout}s"
            time.sleep(0.5)

    def can(self, verb: str, resource: str, *, group: str = "", namespace: str = "", subresource: str = "") -> bool:
        """SelfSubjectAccessReview: may this identity do ``verb`` on ``resource``?"""
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        r = self.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
        return bool(r.json()["status"].get("allowed"))
