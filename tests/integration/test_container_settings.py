"""Issue 19 "probes and resources of a workload's containers edited in a form": the JSON route and
the console form against the sandbox's real kube-apiserver.

The outside reference is the API server: what the hub says it changed is read back with the
official client, and its optimistic concurrency (resourceVersion) is what turns a concurrent
change into a 409. Everything happens in a namespace of this module's own, deleted at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from hub.collectors.container_settings import parse_settings, patch_ops
from hub.errors import Conflict
from hub.store.audit import AuditFilter
from tests.integration.cluster_support import HubUnderTest, project_namespace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.25",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "resources": {"requests": {"cpu": "50m", "ephemeral-storage": "1Gi"}},
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                            "successThreshold": 2,
                        },
                    },
                    {"name": "sidecar", "image": "busybox:1.36"},
                ]
            },
        },
    },
}


@pytest.fixture(scope="module")
def apps(kube: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(kube)


@pytest.fixture(scope="module")
def ns(h: HubUnderTest, kube: k8s.ApiClient, apps: k8s.AppsV1Api) -> Iterator[str]:
    with project_namespace(h, kube, "kh-probes") as name:
        apps.create_namespaced_deployment(name, _DEPLOYMENT)
        yield name


def put(h: HubUnderTest, ns: str, body: dict) -> tuple[int, dict]:
    r = h.client.put(f"/api/v1/namespaces/{ns}/workloads/deployment/api/containers", json=body)
    return r.status_code, r.get_json()


def test_the_form_reads_what_the_api_server_holds(h: HubUnderTest, ns: str) -> None:
    got = h.get(f"/api/v1/namespaces/{ns}/workloads/deployment/api/containers")
    web, sidecar = got["containers"]
    assert web["name"] == "web" and sidecar["name"] == "sidecar"
    assert web["resources"] == {"requests": {"cpu": "50m"}, "limits": {}}  # ephemeral-storage is not the form's
    assert web["readiness_probe"]["type"] == "http" and web["readiness_probe"]["path"] == "/ready"
    # Defaults filled in by the API server come back, not the form's own defaults
    assert web["readiness_probe"]["period_seconds"] == 10 and web["liveness_probe"] is None


def test_a_change_reaches_the_api_server_and_keeps_what_the_form_does_not_show(
    h: HubUnderTest, apps: k8s.AppsV1Api, ns: str
) -> None:
    status, out = put(
        h,
        ns,
        {
            "container": "web",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            "liveness_probe": {"type": "tcp", "port": "http", "initial_delay_seconds": 5, "period_seconds": 20},
            "readiness_probe": {"type": "http", "path": "/healthz", "port": 8080, "timeout_seconds": 2},
        },
    )
    assert status == 200, out
    live = apps.read_namespaced_deployment("api", ns).spec.template.spec.containers
    web = next(c for c in live if c.name == "web")
    assert web.resources.requests == {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Gi"}
    assert web.resources.limits == {"cpu": "1", "memory": "128Mi"}
    assert web.liveness_probe.tcp_socket.port == "http" and web.liveness_probe.initial_delay_seconds == 5
    assert web.liveness_probe.period_seconds == 20
    ready = web.readiness_probe
    assert ready.http_get.path == "/healthz" and ready.http_get.port == 8080 and ready.timeout_seconds == 2
    assert ready.http_get.scheme == "HTTP" and ready.success_threshold == 2  # kept from the live probe
    sidecar = next(c for c in live if c.name == "sidecar")
    assert sidecar.liveness_probe is None and not (sidecar.resources.requests or sidecar.resources.limits)
    entries, _ = h.hub.tenancy.audit_store.search(AuditFilter(), offset=0, limit=1000)
    (entry,) = [e for e in entries if e.action == "cluster.containers" and e.target == f"{ns}/deployment/api"]
    assert "web" in repr(entry)

    # Removing: a probe null, an empty resource value
    status, out = put(h, ns, {"container": "web", "resources": {"limits": {"cpu": ""}}, "liveness_probe": None})
    assert status == 200, out
    web = next(c for c in apps.read_namespaced_deployment("api", ns).spec.template.spec.containers if c.name == "web")
    assert web.liveness_probe is None and web.resources.limits == {"memory": "128Mi"}
    assert web.readiness_probe.http_get.path == "/healthz"  # absent key: unchanged


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        (
            {"container": "web", "liveness_probe": {"type": "http", "path": "/x", "port": 70000}},
            "liveness_probe.port",
            400,
        ),
        ({"container": "web", "liveness_probe": {"type": "http", "path": "x", "port": 80}}, "liveness_probe.path", 400),
        ({"container": "web", "readiness_probe": {"type": "smoke"}}, "readiness_probe.type", 400),
        ({"container": "web", "readiness_probe": {"type": "exec", "command": ""}}, "readiness_probe.command", 400),
        ({"container": "web", "resources": {"limits": {"memory": "lots"}}}, "resources.limits.memory", 400),
        (
            {"container": "web", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            "resources.requests.cpu",
            400,
        ),
        ({"container": "db", "resources": {"requests": {"cpu": "1"}}}, "container", 422),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    h: HubUnderTest, apps: k8s.AppsV1Api, ns: str, body: dict, field: str, status: int
) -> None:
    before = apps.read_namespaced_deployment("api", ns).metadata.generation
    got, out = put(h, ns, body)
    assert (got, out["field"]) == (status, field), out
    assert apps.read_namespaced_deployment("api", ns).metadata.generation == before


def test_a_concurrent_change_answers_409_from_the_api_servers_own_check(
    h: HubUnderTest, apps: k8s.AppsV1Api, ns: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/api"
    stale = h.cluster.api.request("GET", path, verb="get", resource="deployments", namespace=ns, name="api")
    apps.patch_namespaced_deployment("api", ns, {"metadata": {"annotations": {"someone": "else"}}})
    ops = patch_ops("Deployment", stale, parse_settings({"container": "web", "liveness_probe": None}), "x")
    with pytest.raises(Conflict):
        h.cluster.api.request(
            "PATCH",
            path,
            body=ops,
            content_type="application/json-patch+json",
            verb="patch",
            resource="deployments",
            namespace=ns,
            name="api",
        )


def test_the_console_form_shows_a_refused_field_next_to_its_input_and_applies_a_good_one(
    h: HubUnderTest, apps: k8s.AppsV1Api, ns: str
) -> None:
    url = f"/projects/{ns}/workloads/deployment/api/containers"
    page = h.client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="resources.requests.cpu"' in html and 'name="liveness_probe.type"' in html
    form = {
        "container": "web",
        "resources.requests.cpu": "200m",
        "resources.requests.memory": "",
        "resources.limits.cpu": "",
        "resources.limits.memory": "256Mi",
        "liveness_probe.type": "exec",
        "liveness_probe.command": "cat /tmp/alive",
        "liveness_probe.period_seconds": "15",
        "liveness_probe.timeout_seconds": "30",  # longer than the period: refused
        "readiness_probe.type": "none",
    }
    before = apps.read_namespaced_deployment("api", ns).metadata.generation
    bad = h.client.post(url, data=form)
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'data-error-for="liveness_probe.timeout_seconds">liveness_probe.timeout_seconds (30)' in text
    typed = 'name="liveness_probe.timeout_seconds" type="text" inputmode="numeric" class="short" value="30"'
    assert typed + ' aria-invalid="true"' in text
    assert apps.read_namespaced_deployment("api", ns).metadata.generation == before

    good = h.client.post(url, data={**form, "liveness_probe.timeout_seconds": "3"})
    assert good.status_code == 303
    web = next(c for c in apps.read_namespaced_deployment("api", ns).spec.template.spec.containers if c.name == "web")
    assert web.liveness_probe._exec.command == ["cat", "/tmp/alive"] and web.liveness_probe.timeout_seconds == 3
    assert web.readiness_probe is None
    assert web.resources.requests == {"cpu": "200m", "ephemeral-storage": "1Gi"}
    assert web.resources.limits == {"memory": "256Mi"}
