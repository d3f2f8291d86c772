"""The monitoring service over a fake query backend: what it sends and how it shapes answers."""

from __future__ import annotations

from typing import Any

import pytest

from hub.collectors.catalogue import Catalogue
from hub.collectors.monitoring import MonitoringService
from hub.errors import BackendUnavailable, InvalidInput, Unprocessable
from hub.scope import Scope
from hub.timeutil import FakeClock
from tests.unit.monitoring_fakes import FakeBackend, unavailable
from web.params import monitoring_request

pytestmark = pytest.mark.unit

CPU = "container_cpu_usage_seconds_total"
MEM = "container_memory_working_set_bytes"
NOW = 1_800_000_000.0


def service(values: dict, pods: list[tuple[str, str]]) -> tuple[MonitoringService, FakeBackend]:
    backend = FakeBackend(values, pods)
    return MonitoringService(Catalogue(), backend, clock=FakeClock(NOW), max_points=1000), backend


ADMIN = Scope(all_namespaces=True, namespaces={})


def tenant(namespaces: list[str]) -> Scope:
    """A tenant who may read exactly ``namespaces`` (as the tenancy service would build it)."""
    return Scope(
        all_namespaces=False,
        namespaces=dict.fromkeys(namespaces, 0.0),
        grants=dict.fromkeys(namespaces, frozenset({"monitoring:read"})),
    )


def run(svc: MonitoringService, level: str, scope: list[str] | None = None, **args: Any) -> dict:
    req = monitoring_request(svc, level, {k: str(v) for k, v in args.items()})
    return svc.query(req, ADMIN if scope is None else tenant(scope))


def series_names(body: dict, metric: int = 0) -> list[str]:
    return [f"{s['labels']['namespace']}/{s['labels']['pod']}" for s in body["results"][metric]["series"]]


PODS = [("ns", f"p{i:02d}") for i in range(30)]


def test_a_ranking_page_costs_one_topk_and_one_count_query() -> None:
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", page=2, limit=5)
    assert series_names(body) == ["ns/p24", "ns/p23", "ns/p22", "ns/p21", "ns/p20"]
    assert [s["values"][0][1] for s in body["results"][0]["series"]] == [24.0, 23.0, 22.0, 21.0, 20.0]
    assert body["total"] == 30 and body["page"] == 2 and body["partial"] is False
    sent = [q.promql for q in backend.sent]
    assert len(sent) == 2
    assert sent[0].startswith("topk(15, (") and sent[0].endswith(") >= -Inf)")
    assert sent[1].startswith("count(")


def test_ascending_rankings_ask_for_bottomk() -> None:
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", sort_type="asc", limit=3)
    assert series_names(body) == ["ns/p00", "ns/p01", "ns/p02"]
    assert backend.sent[0].promql.startswith("bottomk(")


def test_a_tie_across_the_page_boundary_is_resolved_by_name_over_the_whole_tie() -> None:
    values = {k: 0.5 for k in PODS}  # below the boundary: never fetched again
    for i in range(10, 30):
        values[("ns", f"p{i:02d}")] = 1.0  # a tie of 20 pods, more than topk's 8
    values[("ns", "p29")] = 5.0
    svc, backend = service({CPU: values}, PODS)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", limit=3)
    assert series_names(body) == ["ns/p29", "ns/p10", "ns/p11"]
    assert len(backend.sent) == 3  # topk, count, then the entities at least as good as the boundary
    assert backend.sent[2].promql.endswith(") >= 1.0")


def test_an_ascending_tie_fetches_the_entities_at_or_below_the_boundary() -> None:
    values = {k: 0.0 for k in PODS}  # idle pods: a tie of everything at zero
    values[("ns", "p00")] = 3.0
    svc, backend = service({CPU: values}, PODS)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", sort_type="asc", limit=2, page=2)
    assert series_names(body) == ["ns/p03", "ns/p04"]
    assert backend.sent[2].promql.endswith(") <= 0.0")


def test_entities_without_a_value_come_last_and_are_reported_missing() -> None:
    pods = [("ns", "a"), ("ns", "b"), ("ns", "c"), ("ns", "d"), ("ns", "e")]
    svc, _ = service({CPU: {("ns", "d"): 1.0, ("ns", "b"): 2.0}}, pods)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", limit=4)
    result = body["results"][0]
    assert series_names(body) == ["ns/b", "ns/d"]
    assert result["missing"] == [{"namespace": "ns", "pod": "a"}, {"namespace": "ns", "pod": "c"}]
    assert body["partial"] is True and body["total"] == 5


def test_other_metrics_are_fetched_only_for_the_entities_of_the_page() -> None:
    svc, backend = service(
        {CPU: {k: float(i) for i, k in enumerate(PODS)}, MEM: {k: 100.0 + i for i, k in enumerate(PODS)}}, PODS
    )
    body = run(svc, "pods", metrics="pod_cpu_usage,pod_memory_usage", sort_metric="pod_cpu_usage", limit=2)
    assert series_names(body, 1) == ["ns/p29", "ns/p28"]
    memory_query = backend.sent[-1].promql
    assert MEM in memory_query and 'pod=~"p28|p29"' in memory_query


def test_a_window_ranking_asks_prometheus_for_the_stat_over_the_window() -> None:
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    body = run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", window="24h", stat="p95", limit=3)
    top = backend.sent[0].promql
    assert "quantile_over_time(0.95, (" in top and "[86400s:300s]" in top
    assert "[600s]" in top  # the inner rate window follows the subquery step
    assert body["window"] == "1d" and body["stat"] == "p95"
    assert backend.sent[0].time == NOW


def test_a_window_request_without_metrics_computes_only_what_it_ranks_by() -> None:
    """At scale each window metric is minutes of Prometheus the first time; the default of every
    metric of the level (10 for pods) never answered there."""
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    body = run(svc, "pods", sort_metric="pod_cpu_usage", window="24h", stat="max", limit=3)
    assert [r["metric"] for r in body["results"]] == ["pod_cpu_usage"]
    assert all(MEM not in q.promql for q in backend.sent)
    unsorted = monitoring_request(svc, "pods", {"window": "1h"})
    assert unsorted.metrics == (svc.catalogue.metric_names("pods")[0],)
    instant = monitoring_request(svc, "pods", {"sort_metric": "pod_cpu_usage"})
    assert instant.metrics == tuple(svc.catalogue.metric_names("pods"))  # no window: every metric, as before


def test_a_window_request_naming_too_many_metrics_is_a_422_naming_metrics() -> None:
    from hub.collectors.monitoring_view import WINDOW_METRICS

    svc, backend = service({}, [])
    names = svc.catalogue.metric_names("workloads")
    allowed = ",".join(names[:WINDOW_METRICS])
    assert monitoring_request(svc, "workloads", {"metrics": allowed, "window": "24h"}).metrics == tuple(
        names[:WINDOW_METRICS]
    )
    with pytest.raises(Unprocessable) as info:
        run(svc, "workloads", metrics=",".join(names[: WINDOW_METRICS + 1]), window="24h")
    assert info.value.field == "metrics" and f"at most {WINDOW_METRICS}" in info.value.message
    assert backend.sent == []
    assert len(monitoring_request(svc, "workloads", {"metrics": ",".join(names)}).metrics) == len(names)


def test_a_range_ranking_orders_by_the_stat_over_the_range_and_returns_the_series() -> None:
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    body = run(
        svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", stat="max", limit=2,
        start=NOW - 3600, end=NOW, step=600,
    )  # fmt: skip
    assert backend.sent[0].promql.startswith("topk(") and "max_over_time(" in backend.sent[0].promql
    assert backend.sent[-1].start == NOW - 3600 and backend.sent[-1].step == 600
    assert series_names(body) == ["ns/p29", "ns/p28"]
    assert len(body["results"][0]["series"][0]["values"]) == 7


def test_a_caller_who_may_see_no_namespace_gets_nothing_and_nothing_is_sent() -> None:
    svc, backend = service({CPU: {k: 1.0 for k in PODS}}, PODS)
    body = run(svc, "pods", scope=[], metrics="pod_cpu_usage", sort_metric="pod_cpu_usage")
    assert body["total"] == 0 and body["results"][0]["series"] == []
    assert backend.sent == []


def test_the_scope_restricts_what_prometheus_returns() -> None:
    pods = [("mine", "a"), ("theirs", "b")]
    svc, backend = service({CPU: {pods[0]: 1.0, pods[1]: 9.0}}, pods)
    body = run(svc, "pods", scope=["mine"], metrics="pod_cpu_usage")
    assert series_names(body) == ["mine/a"]
    assert all('namespace="mine"' in q.promql and "theirs" not in q.promql for q in backend.sent)


def test_unranked_answers_mark_entities_missing_from_some_metrics() -> None:
    pods = [("ns", "a"), ("ns", "b")]
    svc, _ = service({CPU: {("ns", "a"): 1.0}, MEM: {("ns", "a"): 5.0, ("ns", "b"): 6.0}}, pods)
    body = run(svc, "pods", metrics="pod_cpu_usage,pod_memory_usage")
    assert body["partial"] is True
    assert body["results"][0]["missing"] == [{"namespace": "ns", "pod": "b"}]
    assert body["results"][1]["missing"] == []
    assert body["total"] == 2


def test_a_range_with_too_many_points_is_a_422_naming_the_limit() -> None:
    svc, _ = service({}, [])
    with pytest.raises(Unprocessable) as info:
        run(svc, "pods", metrics="pod_cpu_usage", start=NOW - 86400, end=NOW, step=15)
    assert info.value.field == "step" and "1000" in info.value.message and "87s" in info.value.message


@pytest.mark.parametrize(
    ("level", "args", "field"),
    [
        ("pods", {"metrics": "node_cpu_utilisation"}, "metrics"),
        ("workloads", {"nodes": "n1"}, "nodes"),
        ("workloads", {"kind": "cronjob"}, "kind"),
        ("cluster", {"sort_metric": "cluster_cpu_usage"}, "sort_metric"),
        ("pods", {"sort_metric": "pod_cpu_usage", "sort_type": "up"}, "sort_type"),
        ("pods", {"sort_metric": "pod_cpu_usage", "limit": "0"}, "limit"),
        ("pods", {"stat": "p95"}, "stat"),
        ("pods", {"window": "24h", "stat": "p42"}, "stat"),
        ("pods", {"time": "100", "start": "50"}, "time"),
        ("pods", {"start": "200", "end": "100"}, "end"),
        ("pods", {"window": "soon"}, "window"),
        ("moons", {}, "level"),
    ],
)
def test_bad_parameters_are_400s_naming_the_field(level: str, args: dict, field: str) -> None:
    svc, _ = service({}, [])
    with pytest.raises(InvalidInput) as info:
        run(svc, level, **args)
    assert info.value.field == field


def test_an_unknown_metric_error_lists_the_valid_names() -> None:
    svc, _ = service({}, [])
    with pytest.raises(InvalidInput) as info:
        run(svc, "workloads", metrics="workload_cpu")
    assert "workload_cpu_usage" in info.value.message and "workload_unavailable_ratio" in info.value.message


def test_a_prometheus_outage_surfaces_as_a_503_naming_prometheus() -> None:
    svc, backend = service({CPU: {}}, PODS)
    backend.fail = unavailable()
    with pytest.raises(BackendUnavailable) as info:
        run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage")
    assert info.value.backend == "prometheus"


def test_without_a_configured_prometheus_queries_are_503_but_the_catalogue_works() -> None:
    svc = MonitoringService(Catalogue(), None, clock=FakeClock(NOW))
    with pytest.raises(BackendUnavailable):
        svc.query(monitoring_request(svc, "nodes", {}), ADMIN)
    assert "nodes" in svc.metric_table() and svc.metric_table()["nodes"]["node_cpu_utilisation"] == "ratio"


def test_a_live_rankings_total_is_reused_briefly_and_per_scope() -> None:
    pods = [("a", "p1"), ("a", "p2"), ("b", "q1")]
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(pods)}}, pods)
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 1}
    assert run(svc, "pods", scope=["a"], **ask)["total"] == 2
    assert run(svc, "pods", scope=["a"], **ask)["total"] == 2
    assert [q.promql.split("(")[0] for q in backend.sent] == ["topk", "count", "topk"]
    assert run(svc, "pods", scope=["b"], **ask)["total"] == 1  # another scope: its own count
    assert backend.sent[-1].promql.startswith("count(")
    svc.clock.advance(16)  # type: ignore[attr-defined]
    run(svc, "pods", scope=["a"], **ask)
    assert backend.sent[-1].promql.startswith("count(")


def test_a_ranking_at_an_explicit_time_always_counts_afresh() -> None:
    svc, backend = service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    for _ in range(2):
        run(svc, "pods", metrics="pod_cpu_usage", sort_metric="pod_cpu_usage", limit=1, time=NOW - 60)
    assert [q.promql.split("(")[0] for q in backend.sent] == ["topk", "count", "topk", "count"]


def shared_service(values: dict, pods: list[tuple[str, str]]) -> tuple[MonitoringService, FakeBackend]:
    backend = FakeBackend(values, pods)
    svc = MonitoringService(Catalogue(), backend, clock=FakeClock(NOW), max_points=1000, share_seconds=5.0)
    return svc, backend


def test_a_live_answer_is_shared_for_a_few_seconds_by_callers_of_the_same_scope_only() -> None:
    pods = [("a", "p1"), ("a", "p2"), ("b", "q1")]
    svc, backend = shared_service({CPU: {k: float(i) for i, k in enumerate(pods)}}, pods)
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 5}
    first = run(svc, "pods", scope=["a"], **ask)
    assert series_names(first) == ["a/p2", "a/p1"] and first["total"] == 2
    sent = len(backend.sent)
    assert run(svc, "pods", scope=["a"], **ask) == first  # the same scope: no new query
    assert len(backend.sent) == sent
    other = run(svc, "pods", scope=["b"], **ask)  # another scope never gets a's entities
    assert series_names(other) == ["b/q1"] and other["total"] == 1
    assert series_names(run(svc, "pods", **ask)) == ["b/q1", "a/p2", "a/p1"]  # nor the admin's
    assert run(svc, "pods", scope=["a"], **{**ask, "page": 2})["results"][0]["series"] == []
    assert len(backend.sent) == sent  # every scope and page from the one table
    svc.clock.advance(6)  # type: ignore[attr-defined]
    run(svc, "pods", scope=["a"], **ask)
    assert len(backend.sent) > sent  # older than share_seconds: evaluated again
    counts = []
    for _ in range(2):  # an explicit time is never shared
        sent = len(backend.sent)
        run(svc, "pods", scope=["a"], **ask, time=NOW - 60)
        counts.append(len(backend.sent) - sent)
    assert counts[0] == counts[1] > 0


def test_a_live_ranking_is_one_unscoped_evaluation_narrowed_to_each_callers_namespaces() -> None:
    pods = [("a", "p1"), ("a", "p2"), ("b", "q1"), ("c", "idle")]
    values = {("a", "p1"): 3.0, ("a", "p2"): 1.0, ("b", "q1"): 2.0}  # c/idle: listed, no value
    svc, backend = shared_service({CPU: values}, pods)
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 2}
    body = run(svc, "pods", scope=["a", "c"], **ask)
    assert series_names(body) == ["a/p1", "a/p2"] and body["total"] == 3
    sent = [q.promql for q in backend.sent]
    assert len(sent) == 2 and not any("topk" in q or 'namespace=~"' in q for q in sent)  # every namespace
    last = run(svc, "pods", scope=["a", "c"], **{**ask, "page": 2})
    assert last["results"][0]["series"] == [] and last["results"][0]["missing"] == [{"namespace": "c", "pod": "idle"}]
    up = run(svc, "pods", scope=["b", "a"], **{**ask, "sort_type": "asc"})
    assert series_names(up) == ["a/p2", "b/q1"]
    assert run(svc, "pods", scope=[], **ask)["total"] == 0
    both = run(svc, "pods", scope=["b"], metrics="pod_cpu_usage,pod_memory_usage", sort_metric="pod_cpu_usage")
    assert series_names(both) == ["b/q1"] and 'namespace="b",pod="q1"' in backend.sent[-1].promql  # the page only
    assert len(backend.sent) == 3  # the table once; the other metric for the page


def test_a_table_in_use_is_rebuilt_ahead_at_its_own_time_and_callers_keep_the_current_one() -> None:
    pods = [("a", "p1"), ("b", "q1")]
    backend = FakeBackend({CPU: {("a", "p1"): 1.0, ("b", "q1"): 2.0}}, pods)
    jobs: list[Any] = []
    svc = MonitoringService(
        Catalogue(), backend, clock=FakeClock(NOW), max_points=1000, share_seconds=5.0, spawn=jobs.append
    )
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 2}
    first = run(svc, "pods", scope=["a"], **ask)
    sent = len(backend.sent)
    svc.clock.advance(4.6)  # type: ignore[attr-defined]
    assert run(svc, "pods", scope=["b"], **ask)["results"][0]["series"][0]["values"][0][0] == NOW  # the kept table
    assert len(backend.sent) == sent and len(jobs) == 1  # its rebuild was handed to the background
    svc.clock.advance(0.2)  # type: ignore[attr-defined]
    jobs.pop()()  # runs a moment later, and evaluates at that moment
    assert len(backend.sent) == sent + 2 and [q.time for q in backend.sent[sent:]] == [pytest.approx(NOW + 4.8)] * 2
    again = run(svc, "pods", scope=["a"], **ask)
    assert again["results"][0]["series"][0]["values"][0][0] == pytest.approx(NOW + 4.8)
    assert len(backend.sent) == sent + 2
    assert series_names(again) == series_names(first) == ["a/p1"]


def test_a_window_ranking_is_one_table_per_subquery_step_shared_by_every_caller() -> None:
    pods = [("a", "p1"), ("a", "p2"), ("b", "q1")]
    values = {("a", "p1"): 3.0, ("a", "p2"): 1.0, ("b", "q1"): 2.0}
    svc, backend = shared_service({CPU: values}, pods)
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 1, "window": "1h", "stat": "max"}
    assert NOW % 15 == 0  # 1h windows use a 15 s step; the requests below start a step
    first = run(svc, "pods", scope=["a"], **ask)
    assert series_names(first) == ["a/p1"] and first["total"] == 2
    sent = [q.promql for q in backend.sent]
    assert len(sent) == 2 and sent[0].startswith("(max_over_time(") and "[3600s:15s]" in sent[0]
    assert not any('namespace=~"' in q or 'namespace="' in q for q in sent)  # every namespace, once
    svc.clock.advance(14)  # type: ignore[attr-defined]
    assert series_names(run(svc, "pods", scope=["b"], **ask)) == ["b/q1"]  # another scope, same table
    assert series_names(run(svc, "pods", **{**ask, "page": 2})) == ["b/q1"]  # the admin's page 2
    assert series_names(run(svc, "pods", scope=["a"], **{**ask, "sort_type": "asc"})) == ["a/p2"]
    assert len(backend.sent) == 2
    other = run(svc, "pods", scope=["a"], **{**ask, "stat": "avg"})  # another statistic: its own table
    assert series_names(other) == ["a/p1"] and backend.sent[-2].promql.startswith("(avg_over_time(")
    svc.clock.advance(2)  # the next step: the same points no longer
    run(svc, "pods", scope=["a"], **ask)
    assert len(backend.sent) == 6 and backend.sent[-2].time == NOW + 16
    workloads = {"metrics": "workload_cpu_usage", "sort_metric": "workload_cpu_usage", "limit": 1, "window": "1h"}
    sent_before = len(backend.sent)
    run(svc, "workloads", scope=["a"], **workloads)  # a narrowed workloads ranking: never a table
    assert any(q.promql.startswith("topk(") for q in backend.sent[sent_before:])


def test_requests_a_table_cannot_answer_are_evaluated_per_request() -> None:
    pods = [("a", "p1"), ("b", "q1")]
    svc, backend = shared_service({CPU: {("a", "p1"): 1.0, ("b", "q1"): 2.0}}, pods)
    base = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 2}
    for extra in ({"pods": "p1"}, {"time": NOW - 60}, {"window": "1h", "pods": "p1"}):
        sent = len(backend.sent)
        run(svc, "pods", scope=["a"], **base, **extra)
        assert any(q.promql.startswith(("topk(", "bottomk(")) for q in backend.sent[sent:]), extra


def test_callers_asking_at_once_share_one_evaluation_and_a_failure_is_not_kept() -> None:
    import threading

    svc, backend = shared_service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    gate = threading.Event()
    answer = backend._answer

    def slow(spec: Any) -> Any:
        gate.wait(5)
        return answer(spec)

    backend._answer = slow  # type: ignore[method-assign]
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 3}
    bodies: list[dict] = []
    threads = [threading.Thread(target=lambda: bodies.append(run(svc, "pods", **ask))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(bodies) == 4 and all(series_names(b) == ["ns/p29", "ns/p28", "ns/p27"] for b in bodies)
    assert len(backend.sent) == 2 and not backend.sent[0].promql.startswith("topk")  # one evaluation

    svc2, backend2 = shared_service({CPU: {k: 1.0 for k in PODS}}, PODS)
    backend2.fail = unavailable()
    with pytest.raises(BackendUnavailable):
        run(svc2, "pods", **ask)
    backend2.fail = None
    assert len(run(svc2, "pods", **ask)["results"][0]["series"]) == 3  # the failure was not shared


def test_a_narrowed_caller_whose_table_fails_is_answered_per_request_and_never_sees_its_error() -> None:
    """A whole-cluster evaluation can fail where the caller's own would not (another tenant's
    objects, a limit): the tenant then gets their own namespaces' ranking, not the error that
    names other namespaces; the table is not tried again for 5 s; an admin (every namespace)
    gets the error, as a per-request query would give."""
    from hub.collectors.prometheus import PrometheusQueryError

    pods = [("a", "p1"), ("b", "q1")]
    svc, backend = shared_service({CPU: {("a", "p1"): 1.0, ("b", "q1"): 2.0}}, pods)
    answer = backend._answer

    def refuse_unscoped(spec: Any) -> Any:
        if "namespace=" not in spec.promql:
            raise PrometheusQueryError(
                'duplicate series for the match group {namespace="b", secret="x"}', query=spec.promql
            )
        return answer(spec)

    backend._answer = refuse_unscoped  # type: ignore[method-assign]
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 5}
    body = run(svc, "pods", scope=["a"], **ask)
    assert series_names(body) == ["a/p1"] and body["total"] == 1
    assert "secret" not in repr(body) and 'namespace="b"' not in repr(body)
    sent = len(backend.sent)
    run(svc, "pods", scope=["a"], **{**ask, "sort_type": "asc"})
    assert all("namespace=" in q.promql for q in backend.sent[sent:])  # the table not tried again
    with pytest.raises(PrometheusQueryError):
        run(svc, "pods", **ask)


def test_a_narrowed_workloads_ranking_is_never_taken_from_a_table() -> None:
    """Workload templates join pods to owners (group_left): unscoped, one namespace's objects
    could fail every tenant's query, so a tenant's workloads ranking carries their matchers."""
    svc, backend = shared_service({CPU: {k: float(i) for i, k in enumerate(PODS)}}, PODS)
    ask = {"metrics": "workload_cpu_usage", "sort_metric": "workload_cpu_usage", "limit": 3}
    run(svc, "workloads", scope=["ns"], **ask)
    assert backend.sent and all('namespace="ns"' in q.promql for q in backend.sent)


def test_a_window_table_is_kept_until_its_subquery_step_ends() -> None:
    from hub.collectors.monitoring_view import window_table_ttl

    day = 86_400.0  # a 24 h window: 5-minute steps
    assert window_table_ttl(day, 1_800_000_000.0) == 300.0  # at a step's start: the whole step
    assert window_table_ttl(day, 1_800_000_120.0) == 180.0
    assert window_table_ttl(day, 1_800_000_299.5) == 1.0  # never less than a second
    assert window_table_ttl(3600.0, 1_800_000_007.0) == 8.0  # a 1 h window: 15-second steps


def test_a_window_table_slower_than_a_request_is_built_on_and_kept_for_the_callers_after_it() -> None:
    """Issue 15: at 20,000 pods one evaluation of a 24 h window outlasts a request's timeout;
    built in the request it was abandoned every time and the ranking never answered."""
    from collections.abc import Callable, Sequence

    from hub.collectors.prometheus import QuerySpec, Vector

    class Recording(FakeBackend):
        timeouts: list[float | None] = []

        def vectors(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[Vector]:
            self.timeouts.append(timeout)
            return super().vectors(specs, timeout=timeout)

    pods = [("a", "p1"), ("a", "p2"), ("b", "q1")]
    backend = Recording({CPU: {("a", "p1"): 3.0, ("a", "p2"): 1.0, ("b", "q1"): 2.0}}, pods)
    jobs: list[Callable[[], None]] = []
    svc = MonitoringService(
        Catalogue(), backend, clock=FakeClock(NOW), timeout=0.05, max_points=1000, share_seconds=5.0, spawn=jobs.append
    )
    ask = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 1, "window": "24h", "stat": "max"}
    with pytest.raises(BackendUnavailable, match="goes on"):  # the admin's whole-cluster ranking
        run(svc, "pods", **ask)
    assert backend.sent == [] and len(jobs) == 1  # the table's build waits for its thread
    tenant_answer = run(svc, "pods", scope=["b"], **ask)  # a tenant is answered per request meanwhile
    assert series_names(tenant_answer) == ["b/q1"] and len(jobs) == 1
    sent = len(backend.sent)
    jobs.pop()()  # the build, with a 24 h window's budget: its 5-minute step, at most 120 s
    assert backend.timeouts[-1] == 120.0 and len(backend.sent) == sent + 2
    assert series_names(run(svc, "pods", **ask)) == ["a/p1"]  # kept: the next caller gets it
    assert len(backend.sent) == sent + 2 and jobs == []


def test_every_column_of_a_stepped_window_ranking_starts_building_at_the_first_request() -> None:
    """After a restart at 20,000 pods the console's 24 h workload ranking said "still computing"
    once per column: the other columns' tables were asked for only once the sort metric's was
    kept, each then a build of its own. Now all start at the first request."""
    from collections.abc import Callable

    from hub.errors import StillComputing

    jobs: list[Callable[[], None]] = []
    backend = FakeBackend({}, [])
    svc = MonitoringService(
        Catalogue(), backend, clock=FakeClock(NOW), timeout=0.05, max_points=1000, share_seconds=5.0, spawn=jobs.append
    )
    ask = {
        "metrics": "workload_cpu_usage,workload_memory_usage,workload_pod_count",
        "sort_metric": "workload_cpu_usage",
        "limit": 10,
        "window": "24h",
        "stat": "max",
    }
    with pytest.raises(StillComputing):
        run(svc, "workloads", **ask)
    assert len(jobs) == 3 and backend.sent == []  # one build per column, none run yet
    with pytest.raises(StillComputing):
        run(svc, "workloads", **ask)
    assert len(jobs) == 3  # the same builds, not new ones
