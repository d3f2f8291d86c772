"""Probes and resources form (issue 19): the body checks, the JSON patch built from a live object,
and the service's retry when only the controller's status write came in between."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hub.collectors.cluster import ClusterService
from hub.collectors.container_settings import container_views, parse_settings, patch_ops
from hub.errors import Conflict, InvalidInput, Unprocessable
from hub.timeutil import FakeClock
from tests.unit.cluster_fakes import FakeKube

pytestmark = pytest.mark.unit


def deployment(generation: int = 1, rv: str = "7") -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "namespace": "ns-a1", "generation": generation, "resourceVersion": rv},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "resources": {"requests": {"cpu": "50m", "ephemeral-storage": "1Gi"}},
                            "livenessProbe": {
                                "httpGet": {"path": "/", "port": 80, "httpHeaders": [{"name": "X", "value": "1"}]},
                                "successThreshold": 1,
                                "periodSeconds": 10,
                            },
                        },
                        {"name": "side", "image": "busybox"},
                    ]
                }
            }
        },
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resources": {}}, "container"),
        ({"container": "web"}, "resources"),
        ({"container": "web", "resources": {"requests": {"gpu": "1"}}}, "resources.requests.gpu"),
        ({"container": "web", "resources": {"requests": {"cpu": "-1"}}}, "resources.requests.cpu"),
        ({"container": "web", "resources": {"requests": {"cpu": "0"}}}, "resources.requests.cpu"),
        ({"container": "web", "resources": {"limits": {"memory": True}}}, "resources.limits.memory"),
        ({"container": "web", "liveness_probe": {"type": "tcp", "port": 0}}, "liveness_probe.port"),
        ({"container": "web", "liveness_probe": {"type": "tcp", "port": "Not_A_Name"}}, "liveness_probe.port"),
        ({"container": "web", "liveness_probe": {"type": "grpc", "port": "grpc"}}, "liveness_probe.port"),
        ({"container": "web", "liveness_probe": {"type": "http", "path": "/a b", "port": 80}}, "liveness_probe.path"),
        ({"container": "web", "readiness_probe": {"type": "exec", "command": "'open"}}, "readiness_probe.command"),
        (
            {"container": "web", "readiness_probe": {"type": "exec", "command": ["ok"], "period_seconds": 0}},
            "readiness_probe.period_seconds",
        ),
        (
            {"container": "web", "readiness_probe": {"type": "tcp", "port": 1, "initial_delay_seconds": -1}},
            "readiness_probe.initial_delay_seconds",
        ),
        (
            {"container": "web", "readiness_probe": {"type": "tcp", "port": 1, "failure_threshold": "3.5"}},
            "readiness_probe.failure_threshold",
        ),
        ({"container": "web", "readiness_probe": "tcp"}, "readiness_probe"),
    ],
)
def test_each_mistake_is_a_400_naming_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_settings(body)
    assert exc.value.field == field


def test_the_patch_changes_only_what_the_form_holds() -> None:
    obj = deployment()
    settings = parse_settings(
        {
            "container": "web",
            "resources": {"requests": {"cpu": "", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "liveness_probe": {"type": "http", "path": "/healthz", "port": "8080", "period_seconds": "20"},
            "readiness_probe": {"type": "exec", "command": "sh -c 'test -f /tmp/ok'"},
        }
    )
    ops = patch_ops("Deployment", obj, settings, "x")
    by_path = {op["path"]: op for op in ops}
    base = "/spec/template/spec/containers/0"
    assert by_path[f"{base}/resources"]["value"] == {
        "requests": {"ephemeral-storage": "1Gi", "memory": "64Mi"},
        "limits": {"memory": "128Mi"},
    }
    live = by_path[f"{base}/livenessProbe"]["value"]
    assert live["httpGet"] == {"path": "/healthz", "port": 8080, "httpHeaders": [{"name": "X", "value": "1"}]}
    assert live["periodSeconds"] == 20 and live["successThreshold"] == 1 and live["timeoutSeconds"] == 1
    assert by_path[f"{base}/readinessProbe"]["value"]["exec"] == {"command": ["sh", "-c", "test -f /tmp/ok"]}
    assert by_path["/metadata/resourceVersion"] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "7"}
    assert obj == deployment()  # the live object is not modified in place


def test_switching_a_probes_handler_drops_the_old_one_and_null_removes_it() -> None:
    obj = deployment()
    ops = patch_ops(
        "Deployment", obj, parse_settings({"container": "web", "liveness_probe": {"type": "tcp", "port": 80}}), "x"
    )
    assert set(ops[0]["value"]) >= {"tcpSocket"} and "httpGet" not in ops[0]["value"]
    ops = patch_ops(
        "Deployment", obj, parse_settings({"container": "web", "liveness_probe": None, "readiness_probe": None}), "x"
    )
    assert [o["op"] for o in ops] == ["remove", "replace"]  # no remove of an absent readiness probe


def test_a_request_above_its_limit_counts_the_live_limit_too() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"cpu": "100m"}
    with pytest.raises(InvalidInput) as exc:
        patch_ops(
            "Deployment", obj, parse_settings({"container": "web", "resources": {"requests": {"cpu": "0.2"}}}), "x"
        )
    assert exc.value.field == "resources.requests.cpu"
    with pytest.raises(Unprocessable) as missing:
        patch_ops("Deployment", obj, parse_settings({"container": "db", "liveness_probe": None}), "deployment ns/api")
    assert missing.value.field == "container" and "web, side" in missing.value.message


def test_a_cronjobs_containers_sit_in_its_job_template() -> None:
    pod = deployment()["spec"]["template"]
    cron = {"metadata": {"resourceVersion": "3"}, "spec": {"jobTemplate": {"spec": {"template": pod}}}}
    ops = patch_ops("CronJob", cron, parse_settings({"container": "side", "resources": {"limits": {"cpu": "1"}}}), "x")
    assert ops[0]["path"] == "/spec/jobTemplate/spec/template/spec/containers/1/resources"
    views = container_views("CronJob", cron)
    assert views[0]["liveness_probe"]["type"] == "http" and views[1]["liveness_probe"] is None


class RacingKube(FakeKube):
    """One deployment; JSON patches are refused (409) when their resourceVersion is stale, as the
    API server does. ``between`` runs once after each GET: a status or a spec write by someone else."""

    def __init__(self, between: list[str]) -> None:
        super().__init__()
        self.obj = deployment()
        self.between = between
        self.patches = 0

    def request(self, method: str, path: str, *, verb: str, resource: str, body: Any = None, **kwargs: Any) -> Any:
        md = self.obj["metadata"]
        if method == "GET":
            out = copy.deepcopy(self.obj)
            if self.between:
                change = self.between.pop(0)
                md["resourceVersion"] = str(int(md["resourceVersion"]) + 1)
                if change == "spec":
                    md["generation"] += 1
            return out
        self.patches += 1
        rv = next(op["value"] for op in body if op["path"] == "/metadata/resourceVersion")
        if rv != md["resourceVersion"]:
            raise Conflict("changed")
        md["generation"] += 1
        return copy.deepcopy(self.obj)


def service(kube: FakeKube) -> ClusterService:
    return ClusterService(kube, clock=FakeClock(0), autostart=False, initial_wait=0.05)


def test_a_status_write_in_between_is_retried_and_a_spec_write_is_a_409() -> None:
    body = {"container": "web", "liveness_probe": None}
    kube = RacingKube(["status", "status"])
    service(kube).set_container_settings("ns-a1", "deployment", "api", body)
    assert kube.patches == 3 and kube.obj["metadata"]["generation"] == 2

    kube = RacingKube(["status", "spec"])
    with pytest.raises(Conflict):
        service(kube).set_container_settings("ns-a1", "deployment", "api", body)
    assert kube.patches == 2 and kube.obj["metadata"]["generation"] == 2  # only the other writer's change

    with pytest.raises(Unprocessable) as job:
        service(RacingKube([])).set_container_settings("ns-a1", "job", "api", body)
    assert job.value.field == "kind"
