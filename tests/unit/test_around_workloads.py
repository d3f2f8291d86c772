"""The pure parts of the resources around workloads: quota forms and the scale-up check, the
revisions of a StatefulSet/DaemonSet, a Service's endpoints, an HPA's current vs target. The
API server's side is tested against the real one in tests/integration/test_workload_apply.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.collectors.quotas import check_scale, pod_requests, quota_objects
from hub.collectors.resources import endpoint_states, hpa_manifest, hpa_view, selects
from hub.collectors.revisions import revision_entries
from hub.errors import InvalidInput, Unprocessable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "cpu"),
        ({"cpu": "lots"}, "cpu"),
        ({"cpu": "1", "memory": "1 Gi"}, "memory"),
        ({"pods": True}, "pods"),
        ({"pods": -3}, "pods"),
        ({"cpu": "1", "default_request": {"cpu": "x"}}, "default_request.cpu"),
        ({"cpu": "1", "default_limit": "100m"}, "default_limit"),
    ],
)
def test_a_bad_quota_form_names_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        quota_objects("ns", body)
    assert exc.value.field == field


def test_quota_form_becomes_a_resource_quota_and_a_limit_range() -> None:
    quota, limits = quota_objects("ns", {"cpu": "2", "pods": 10, "default_request": {"memory": "64Mi"}})
    assert quota["spec"]["hard"] == {"requests.cpu": "2", "pods": "10"}
    assert limits["spec"]["limits"] == [{"type": "Container", "defaultRequest": {"memory": "64Mi"}}]
    assert len(quota_objects("ns", {"pods": 1})) == 1  # no defaults: no LimitRange


QUOTA = {
    "metadata": {"name": "q"},
    "status": {"hard": {"pods": "5", "requests.cpu": "2"}, "used": {"pods": "2", "requests.cpu": "1500m"}},
}


def test_scale_check_adds_each_pods_requests_and_the_limit_range_default() -> None:
    template = {
        "spec": {"containers": [{"resources": {"requests": {"cpu": "200m"}}}, {"name": "side"}]},
    }
    per_pod = pod_requests(template, {"cpu": "50m", "memory": "10Mi"})
    assert per_pod == {"pods": 1, "requests.cpu": Decimal("0.25"), "requests.memory": Decimal(2 * 10 * 1024**2)}
    check_scale([QUOTA], what="x", added_pods=2, per_pod=per_pod)  # 1500m + 500m = 2: fits exactly
    with pytest.raises(Unprocessable) as exc:
        check_scale([QUOTA], what="x", added_pods=3, per_pod=per_pod)  # 1500m + 750m > 2
    assert (
        exc.value.field == "replicas"
        and "750m more requests.cpu" in exc.value.message
        and "quota q" in exc.value.message
    )
    check_scale([QUOTA], what="x", added_pods=-4, per_pod=per_pod)  # scaling down is never refused


def test_revisions_are_the_workloads_own_newest_first() -> None:
    sts = {"metadata": {"uid": "u1"}, "status": {"updateRevision": "web-b"}}

    def rev(name: str, number: int, owner: str, image: str) -> dict:
        return {
            "metadata": {"name": name, "ownerReferences": [{"uid": owner}]},
            "revision": number,
            "data": {"spec": {"template": {"spec": {"containers": [{"image": image}]}}}},
        }

    entries = revision_entries(
        sts, [rev("web-a", 1, "u1", "a"), rev("other", 7, "u2", "z"), rev("web-b", 2, "u1", "b")]
    )
    assert [(e["revision"], e["images"], e["current"]) for e in entries] == [(2, ["b"], True), (1, ["a"], False)]


def test_service_endpoints_and_selectors() -> None:
    slices = [
        {
            "endpoints": [
                {"targetRef": {"kind": "Pod", "name": "a"}, "conditions": {"ready": True}},
                {"targetRef": {"kind": "Pod", "name": "b"}, "conditions": {"ready": False}},
                {"targetRef": {"kind": "Node", "name": "n"}},
            ]
        }
    ]
    assert endpoint_states(slices) == {"a": True, "b": False}
    assert selects({"app": "x"}, {"app": "x", "tier": "web"}) and not selects({}, {"app": "x"})


def test_hpa_view_pairs_current_with_target_and_the_form_is_bounded() -> None:
    hpa = hpa_manifest("deployment", "web", {"min_replicas": 2, "max_replicas": 4, "cpu_utilization": 70})
    hpa["status"] = {
        "currentReplicas": 3,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 91}}}],
    }
    view = hpa_view(hpa)
    assert view["metrics"] == [
        {
            "type": "Resource",
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70},
            "current": {"averageUtilization": 91},
        }
    ]
    with pytest.raises(Unprocessable):
        hpa_manifest("daemonset", "web", {"max_replicas": 4, "cpu_utilization": 70})
    with pytest.raises(InvalidInput):
        hpa_manifest("deployment", "web", {"max_replicas": 4})
