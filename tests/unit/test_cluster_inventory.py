"""Pure cluster views: parsing API JSON, quantities, owner chains, health, allocation, filters."""

from __future__ import annotations

import pytest

from hub.collectors.inventory import (
    ListQuery,
    config_meta_from_api,
    cpu_millis,
    decode_continue,
    deployment_revisions,
    encode_continue,
    event_from_api,
    memory_bytes,
    node_allocation,
    node_from_api,
    parse_label_selector,
    pod_from_api,
    pod_to_dict,
    pods_of_workload,
    select,
    selector_matches,
    top_owner,
    workload_from_api,
    workload_health,
)
from hub.errors import InvalidInput
from hub.model import Pod, Workload
from tests.unit.cluster_fakes import (
    cronjob_json,
    deployment_json,
    event_json,
    job_json,
    node_json,
    pod_json,
    replicaset_json,
    secret_json,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "millis"),
    [("100m", 100), ("1", 1000), ("0.5", 500), ("2.25", 2250), ("1500u", 2), ("250000000n", 250), (None, 0)],
)
def test_cpu_quantities_become_millicores_rounded_up(text: str | None, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(
    ("text", "value"),
    [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("1e3", 1000), ("500k", 500_000), ("12345", 12345)],
)
def test_memory_quantities_become_bytes(text: str, value: int) -> None:
    assert memory_bytes(text) == value


def test_an_unknown_quantity_counts_as_zero_instead_of_failing() -> None:
    assert memory_bytes("lots") == 0


def test_a_node_keeps_conditions_taints_and_allocatable() -> None:
    node = node_from_api(
        node_json(
            "n1",
            cpu="8",
            memory="16Gi",
            unschedulable=True,
            taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
            labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"},
        )
    )
    assert node.ready and node.unschedulable
    assert node.allocatable.cpu_millis == 8000 and node.allocatable.memory_bytes == 16 * 2**30
    assert node.allocatable_pods == 110
    assert [(t.key, t.value, t.effect) for t in node.taints] == [("dedicated", "gpu", "NoSchedule")]
    assert node.roles == ["control-plane"]
    assert node.internal_ip == "192.0.2.1"


def test_a_pod_request_is_the_larger_of_its_containers_sum_and_its_biggest_init_container() -> None:
    raw = pod_json("ns", "p", containers=("a", "b"), cpu="200m", memory="100Mi")
    raw["spec"]["initContainers"] = [
        {"name": "init", "image": "i:1", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}
    ]
    pod = pod_from_api(raw)
    assert pod.requests.cpu_millis == 1000  # init 1 CPU > 2 x 200m
    assert pod.requests.memory_bytes == 200 * 2**20  # 2 x 100Mi > init 10Mi


def test_a_pod_says_why_it_is_not_running() -> None:
    raw = pod_json("ns", "p", restarts=7, ready=False)
    raw["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    pod = pod_from_api(raw)
    assert pod.status == "CrashLoopBackOff" and pod.restarts == 7 and not pod.ready
    raw["metadata"]["deletionTimestamp"] = "2026-11-01T10:00:00Z"
    assert pod_from_api(raw).status == "Terminating"


def _rs(name: str, deployment: Workload, revision: str, replicas: int, image: str = "web:1") -> Workload:
    raw = replicaset_json(
        "ns", name, deployment=(deployment.name, deployment.uid), revision=revision, replicas=replicas, image=image
    )
    return workload_from_api("ReplicaSet", raw)


def _pod(name: str, node: str, owner: tuple[str, str, str], **kw: object) -> Pod:
    return pod_from_api(pod_json("ns", name, node=node, owned_by=owner, **kw))  # type: ignore[arg-type]


def _world() -> tuple[dict[str, Workload], list[Pod]]:
    dep = workload_from_api("Deployment", deployment_json("ns", "web", replicas=3, ready=3, revision="2"))
    other = workload_from_api("Deployment", deployment_json("ns", "web-canary"))
    rs_old = _rs("web-1a", dep, "1", 0, "web:1")
    rs_new = _rs("web-2b", dep, "2", 3, "web:2")
    rs_other = _rs("web-canary-3c", other, "1", 1)
    cron = workload_from_api("CronJob", cronjob_json("ns", "backup"))
    job = workload_from_api("Job", job_json("ns", "backup-1", cronjob=("backup", cron.uid)))
    pods = [_pod(f"web-2b-{i}", "n1", ("ReplicaSet", "web-2b", rs_new.uid), restarts=i) for i in range(3)]
    # Same labels as web's pods, but owned by the canary: must not count as web's.
    pods.append(_pod("web-canary-3c-x", "n2", ("ReplicaSet", "web-canary-3c", rs_other.uid), labels={"app": "web"}))
    pods.append(_pod("backup-1-x", "n2", ("Job", "backup-1", job.uid)))
    objs = {w.name: w for w in (dep, other, rs_old, rs_new, rs_other, cron, job)}
    return objs, pods


def _lookups(objs: dict[str, Workload], pods: list[Pod]):
    def pods_owned_by(uid: str) -> list[Pod]:
        return [p for p in pods if any(o.uid == uid for o in p.owners)]

    def workloads_owned_by(uid: str) -> list[Workload]:
        return [w for w in objs.values() if any(o.uid == uid for o in w.owners)]

    return {"pods_owned_by": pods_owned_by, "workloads_owned_by": workloads_owned_by}


def test_a_deployment_reaches_its_pods_through_its_replicasets_only() -> None:
    objs, pods = _world()
    found = pods_of_workload(objs["web"], **_lookups(objs, pods))
    assert [p.name for p in found] == ["web-2b-0", "web-2b-1", "web-2b-2"]


def test_a_cronjob_reaches_its_pods_through_its_jobs() -> None:
    objs, pods = _world()
    assert [p.name for p in pods_of_workload(objs["backup"], **_lookups(objs, pods))] == ["backup-1-x"]


def test_a_pod_resolves_to_its_top_level_workload() -> None:
    objs, pods = _world()

    def lookup(kind: str, namespace: str, name: str) -> Workload | None:
        w = objs.get(name)
        return w if w is not None and w.kind == kind else None

    by_name = {p.name: p for p in pods}
    assert top_owner(by_name["web-2b-0"].controller, namespace="ns", lookup=lookup) == ("Deployment", "web")
    assert top_owner(by_name["backup-1-x"].controller, namespace="ns", lookup=lookup) == ("CronJob", "backup")
    bare = pod_from_api(pod_json("ns", "bare"))
    assert top_owner(bare.controller, namespace="ns", lookup=lookup) is None
    assert pod_to_dict(by_name["web-2b-0"], workload=("Deployment", "web"))["workload"] == {
        "kind": "deployment",
        "name": "web",
    }


def test_workload_health_counts_pods_and_restarts() -> None:
    objs, pods = _world()
    web = objs["web"]
    health = workload_health(web, pods_of_workload(web, **_lookups(objs, pods)))
    assert health["status"] == "running"
    assert (health["desired"], health["ready"], health["available"]) == (3, 3, 3)
    assert health["pods"]["running"] == 3
    assert health["restarts"] == 0 + 1 + 2


@pytest.mark.parametrize(
    ("replicas", "ready", "status"),
    [(3, 1, "degraded"), (0, 0, "stopped"), (2, 2, "running")],
)
def test_workload_health_names_the_state(replicas: int, ready: int, status: str) -> None:
    w = workload_from_api("Deployment", deployment_json("ns", "x", replicas=replicas, ready=ready))
    assert workload_health(w, [])["status"] == status


def test_a_rollout_in_progress_is_updating_and_a_finished_job_completed() -> None:
    raw = deployment_json("ns", "x", replicas=3, ready=3)
    raw["metadata"]["generation"] = 2  # the controller has not seen the new spec yet
    assert workload_health(workload_from_api("Deployment", raw), [])["status"] == "updating"
    job = workload_from_api("Job", job_json("ns", "j", complete=True))
    assert workload_health(job, [])["status"] == "completed"


def test_node_allocation_sums_requests_of_pods_that_still_hold_their_place() -> None:
    node = node_from_api(node_json("n1", cpu="2", memory="1Gi", pods="10"))
    pods = [
        pod_from_api(pod_json("ns", "a", node="n1", cpu="500m", memory="256Mi")),
        pod_from_api(pod_json("ns", "b", node="n1", cpu="500m", memory="256Mi")),
        pod_from_api(pod_json("ns", "done", node="n1", cpu="1", memory="512Mi", phase="Succeeded")),
    ]
    alloc = node_allocation(node, pods)
    assert alloc["requested"] == {"cpu_millis": 1000, "memory_bytes": 512 * 2**20}
    assert alloc["cpu_ratio"] == 0.5 and alloc["memory_ratio"] == 0.5
    assert alloc["pods"] == 2 and alloc["pods_ratio"] == 0.2


def test_revisions_list_the_deployments_own_replicasets_newest_first() -> None:
    objs, _ = _world()
    revs = deployment_revisions(objs["web"], [objs["web-1a"], objs["web-2b"], objs["web-canary-3c"]])
    assert [(r["revision"], r["replicaset"], r["images"], r["current"]) for r in revs] == [
        (2, "web-2b", ["web:2"], True),
        (1, "web-1a", ["web:1"], False),
    ]


def test_config_metadata_keeps_names_and_labels_but_no_values_or_annotations() -> None:
    meta = config_meta_from_api("Secret", secret_json("ns", "db", "hunter2-value"))
    assert (meta.kind, meta.namespace, meta.name, dict(meta.labels)) == ("Secret", "ns", "db", {"team": "a"})
    assert "hunter2-value" not in repr(meta) + repr(meta.to_dict())
    assert not hasattr(meta, "data")


def test_events_carry_the_object_they_are_about() -> None:
    e = event_from_api(event_json("ns", "e1", kind="Pod", obj="web-1", reason="BackOff", last="2026-11-01T10:05:00Z"))
    d = e.to_dict()
    assert d["object"]["kind"] == "Pod" and d["object"]["name"] == "web-1"
    assert d["reason"] == "BackOff" and d["last_seen"] == "2026-11-01T10:05:00.000Z"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("tier in (front, back)", {"tier": "back"}, True),
        ("tier notin (front,back)", {"tier": "back"}, False),
        ("env", {"env": "prod"}, True),
        ("!env", {"env": "prod"}, False),
        ("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a"}, True),
        ("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a", "canary": "1"}, False),
        ("example.com/team=a", {"example.com/team": "a"}, True),
    ],
)
def test_label_selectors_match_as_kubectl_does(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector)(labels) is expected


def test_an_empty_label_value_is_legal_selector_syntax() -> None:
    assert parse_label_selector("app=")({"app": ""}) is True
    assert parse_label_selector("app=")({"app": "web"}) is False


@pytest.mark.parametrize("bad", ["=web", "app===web", "a b", "app in (x", ",app=web"])
def test_a_bad_label_selector_is_a_400_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_label_selector(bad)
    assert err.value.field == "label_selector"


def test_workload_selectors_with_expressions_select_pods() -> None:
    raw = deployment_json("ns", "web")
    raw["spec"]["selector"]["matchExpressions"] = [{"key": "track", "operator": "NotIn", "values": ["canary"]}]
    w = workload_from_api("Deployment", raw)
    assert selector_matches(w, {"app": "web"})
    assert not selector_matches(w, {"app": "web", "track": "canary"})


def test_pages_cut_a_sorted_filtered_list_and_hand_out_a_continue_token() -> None:
    names = [f"pod-{i:02d}" for i in range(10)]
    query = ListQuery(limit=4, name="POD-0")
    window, total, token = select(names, query, labels_of=lambda n: {}, name_of=lambda n: n)
    assert window == ["pod-00", "pod-01", "pod-02", "pod-03"] and total == 10 and token
    window, _, token = select(
        names, ListQuery(limit=4, offset=decode_continue(token)), labels_of=lambda n: {}, name_of=lambda n: n
    )
    assert window == ["pod-04", "pod-05", "pod-06", "pod-07"]
    window, _, token = select(names, ListQuery(limit=4, offset=8), labels_of=lambda n: {}, name_of=lambda n: n)
    assert window == ["pod-08", "pod-09"] and token is None


def test_continue_tokens_round_trip() -> None:
    assert decode_continue(encode_continue(10)) == 10


@pytest.mark.parametrize("token", ["garbage!!", "eDox", "bzotMQ=="])  # junk, "x:1", "o:-1"
def test_a_forged_continue_token_is_a_400(token: str) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_continue(token)
    assert err.value.field == "continue"
