"""Log search, histogram and export through the HTTP API: tenant isolation, bad input, outages.

Uses the tenancy world (tests/unit/conftest_tenancy.py): ws-a holds ns-a1 and ns-a2, ws-b (bob's)
holds ns-b1 and ns-b2. The projects are created before the log lines, so every floor is older
than every line unless a test moves it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.elasticsearch import ElasticsearchLogStore
from hub.collectors.logs.store import LogRecord
from hub.scope import Scope
from hub.store.audit import AuditFilter
from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import TenancyWorld, assert_no_leak, build_world

ADMIN_SCOPE = Scope(all_namespaces=True, namespaces={})  # the audit log is read as a platform admin

pytestmark = pytest.mark.unit

DAY1 = 1_795_219_200.0  # 2026-11-21T00:00:00Z
DAY2 = DAY1 + 86_400


def _line(
    ns: str, t: float, message: str, *, workload: str = "api", pod: str = "", container: str = "app"
) -> LogRecord:
    return LogRecord(
        time=t,
        namespace=ns,
        workload=workload,
        pod=pod or f"{workload}-6b7c8d9f5-{ns[-2:]}xyz",
        container=container,
        node="node-1",
        pod_uid=f"uid-{ns}-{workload}",
        message=message,
    )


LINES = [
    _line("ns-a1", DAY1 + 3600, "a1-1 ERROR 请求超时 connection refused"),
    _line("ns-a1", DAY2 + 3600, "a1-2 \x1b[32mINFO\x1b[0m payment 成功", workload="worker", container="sidecar"),
    _line("ns-a1", DAY2 + 7200, "a1-3 =cmd|calc 数据库连接失败"),
    _line("ns-a2", DAY2 + 3700, "a2-1 sibling 超时 line"),
    _line("ns-b1", DAY1 + 7200, "b1-1 secret-of-bob 超时 payment", workload="billing", container="vault"),
    _line("ns-b1", DAY2 + 7300, "b1-2 ERROR connection refused bob", workload="billing", container="vault"),
    _line("ns-b2", DAY2 + 9000, "b2-1 another 失败 of bob"),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY1 - 3600)


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[TenancyWorld]:
    w = build_world(tmp_path, clock=clock, settings={"logs": {"export_cap": 5, "retention_days": 7}})
    clock.set(DAY2 + 43_200)
    assert w.hub.logs.write(LINES) == len(LINES)
    yield w
    w.hub.close()


def get(world: TenancyWorld, role: str, path: str, **params: Any) -> Any:
    return world.client(role).get(path, query_string=params)


def tags(body: dict[str, Any]) -> set[str]:
    return {item["message"].split(" ", 1)[0] for item in body["items"]}


# -- isolation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("project-operator", {"a1-1", "a1-2", "a1-3"}),
        ("project-viewer", {"a1-1", "a1-2", "a1-3"}),
        ("workspace-admin", {"a1-1", "a1-2", "a1-3", "a2-1"}),
        ("workspace-viewer", {"a1-1", "a1-2", "a1-3", "a2-1"}),
        ("tenant-b", {"b1-1", "b1-2", "b2-1"}),
        ("workspace-regular", set()),
        ("platform-regular", set()),
        ("platform-admin", {"a1-1", "a1-2", "a1-3", "a2-1", "b1-1", "b1-2", "b2-1"}),
    ],
)
def test_each_role_sees_exactly_the_lines_of_its_namespaces(world: TenancyWorld, role: str, expected: set[str]) -> None:
    r = get(world, role, "/api/v1/logs")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert tags(body) == expected
    assert body["total"] == len(expected)


def test_a_tenant_naming_a_foreign_or_unknown_namespace_is_refused_alike(world: TenancyWorld) -> None:
    answers = {}
    for ns in ("ns-b1", "ns-ghost"):
        r = get(world, "project-operator", "/api/v1/logs", namespaces=f"ns-a1,{ns}", q="超时")
        assert r.status_code == 403
        assert_no_leak(r, requested=ns)
        answers[ns] = r.get_json()["error"].replace(ns, "NS")
    assert answers["ns-b1"] == answers["ns-ghost"]


@pytest.mark.parametrize(
    "params",
    [
        {"q": "secret-of-bob"},
        {"q": "bob"},
        {"q": "超时 OR 失败 OR refused"},
        {"workloads": "billing"},
        {"containers": "vault"},
        {"pods": "billing-6b7c8d9f5-b1xyz"},
        {"workloads": "billing", "q": "payment", "sort": "asc"},
        {"start": str(DAY1), "end": str(DAY2 + 86_400), "size": "1000"},
        {"namespaces": "", "q": '"connection refused"'},
    ],
)
def test_no_parameter_lets_a_tenant_reach_another_tenants_lines(world: TenancyWorld, params: dict[str, str]) -> None:
    for path in ("/api/v1/logs", "/api/v1/logs/histogram", "/api/v1/logs/export"):
        r = get(world, "project-operator", path, **params)
        assert r.status_code == 200, r.get_data(as_text=True)
        assert_no_leak(r)
        text = r.get_data(as_text=True)
        assert "b1-" not in text and "b2-" not in text
    body = get(world, "project-operator", "/api/v1/logs", **params).get_json()
    assert {item["namespace"] for item in body["items"]} <= {"ns-a1"}


def test_a_recreated_namespace_does_not_show_its_predecessors_lines(world: TenancyWorld) -> None:
    tenancy = world.hub.tenancy
    assert tenancy.observe_namespace("ns-a1", created=DAY2)  # deleted and created again on day 2
    assert tags(get(world, "project-operator", "/api/v1/logs").get_json()) == {"a1-2", "a1-3"}
    assert tags(get(world, "project-operator", "/api/v1/logs", q="超时").get_json()) == set()
    hist = get(world, "project-operator", "/api/v1/logs/histogram", start=DAY1, end=DAY2 + 86_400, interval="1d")
    assert [b["count"] for b in hist.get_json()["buckets"]] == [0, 2]
    # admins investigate the whole cluster, predecessor included
    assert "a1-1" in tags(get(world, "platform-admin", "/api/v1/logs", namespaces="ns-a1").get_json())


def test_the_namespace_uid_shows_history_older_than_the_namespace_and_hides_a_predecessors(
    world: TenancyWorld,
) -> None:
    tenancy = world.hub.tenancy
    logs = world.hub.logs
    # ns-a1 exists since day 2 as namespace "uid-first"; its pods' history (and the first lines
    # shipped without a UID, a1-1..a1-3) go back to day 1.
    assert tenancy.observe_namespace("ns-a1", created=DAY2 + 1800, uid="uid-first")
    history = [
        replace(_line("ns-a1", DAY1 + 600, "h-1 history 超时 before the namespace object"), namespace_uid="uid-first"),
        replace(_line("ns-a1", DAY2 + 600, "h-2 history payment"), namespace_uid="uid-first"),
    ]
    assert logs.write(history) == 2
    assert tags(get(world, "project-operator", "/api/v1/logs").get_json()) == {"h-1", "h-2", "a1-2", "a1-3"}
    assert tags(get(world, "project-operator", "/api/v1/logs", q="超时").get_json()) == {"h-1"}
    hist = get(world, "project-operator", "/api/v1/logs/histogram", start=DAY1, end=DAY2 + 86_400, interval="1d")
    assert [b["count"] for b in hist.get_json()["buckets"]] == [1, 3]

    # Deleted and created again: a new UID (and a new creation time). The first namespace's
    # lines are hidden whatever their time; the new one's own line shows.
    assert tenancy.observe_namespace("ns-a1", created=DAY2 + 9000, uid="uid-second")
    assert tenancy.project("ns-a1").uid == "uid-second"
    assert logs.write([replace(_line("ns-a1", DAY2 + 9500, "n-1 new 超时", pod="api-new"), namespace_uid="uid-second")])
    assert tags(get(world, "project-operator", "/api/v1/logs").get_json()) == {"n-1"}
    assert tags(get(world, "project-operator", "/api/v1/logs", q="超时").get_json()) == {"n-1"}
    # admins investigate the whole cluster, predecessors included
    every = tags(get(world, "platform-admin", "/api/v1/logs", namespaces="ns-a1").get_json())
    assert every == {"a1-1", "a1-2", "a1-3", "h-1", "h-2", "n-1"}


def test_every_search_and_export_is_audited_with_its_namespaces(world: TenancyWorld) -> None:
    get(world, "project-operator", "/api/v1/logs", q="超时")
    get(world, "project-operator", "/api/v1/logs/export", format="jsonl").get_data()
    get(world, "project-operator", "/api/v1/logs", namespaces="ns-b1")
    tenancy = world.hub.tenancy
    entries, _ = tenancy.audit_log(ADMIN_SCOPE, AuditFilter(actor="poperator", action="logs."))
    seen = [(e.action, e.result, e.namespaces) for e in entries]
    assert ("logs.search", "ok", ("ns-a1",)) in seen
    assert ("logs.export", "ok", ("ns-a1",)) in seen
    assert ("logs.search", "denied", ("ns-b1",)) in seen
    ok = next(e for e in entries if e.action == "logs.search" and e.result == "ok")
    assert ok.detail["q"] == "超时" and ok.detail["total"] == 1


def test_a_search_over_the_whole_scope_is_audited_with_its_size_and_the_namespaces_it_showed(
    world: TenancyWorld,
) -> None:
    """The workspace admin's scope holds ns-a1 and ns-a2: a search naming neither records the
    scope's size and the namespaces of the lines in the answer (not the whole scope, which at
    1,200 namespaces was most of the hub's cost per search); naming one records it; an export
    records the whole scope it may stream."""
    get(world, "workspace-admin", "/api/v1/logs", q="payment")  # a1-2 only
    get(world, "workspace-admin", "/api/v1/logs", q="超时", namespaces="ns-a2")
    get(world, "workspace-admin", "/api/v1/logs", q="zzz-nothing")
    get(world, "workspace-admin", "/api/v1/logs/export", format="jsonl").get_data()
    entries, _ = world.hub.tenancy.audit_log(ADMIN_SCOPE, AuditFilter(actor="wsadmin", action="logs."))
    by_query = {(e.action, e.detail.get("q")): e for e in entries if e.result == "ok"}
    whole = by_query[("logs.search", "payment")]
    assert whole.namespaces == ("ns-a1",) and whole.detail["scope_namespaces"] == 2 and whole.detail["total"] == 1
    named = by_query[("logs.search", "超时")]
    assert named.namespaces == ("ns-a2",) and "scope_namespaces" not in named.detail
    empty = by_query[("logs.search", "zzz-nothing")]
    assert empty.namespaces == () and empty.detail["scope_namespaces"] == 2
    export = next(e for e in entries if e.action == "logs.export" and e.result == "ok")
    assert export.namespaces == ("ns-a1", "ns-a2")
    found, _ = world.hub.tenancy.audit_log(ADMIN_SCOPE, AuditFilter(action="logs.search", namespace="ns-a1"))
    assert whole.id in {e.id for e in found} and empty.id not in {e.id for e in found}


# -- answers ---------------------------------------------------------------------------------------


def test_search_answers_in_the_documented_shape(world: TenancyWorld) -> None:
    body = get(world, "project-operator", "/api/v1/logs", q="payment", namespaces="ns-a1").get_json()
    assert body["total"] == 1 and body["total_relation"] == "eq"
    (item,) = body["items"]
    assert item == {
        "time": "2026-11-22T01:00:00.000000Z",
        "cluster": "default",  # written without a cluster: the implicit one's
        "namespace": "ns-a1",
        "pod": "worker-6b7c8d9f5-a1xyz",
        "container": "sidecar",
        "workload": "worker",
        "node": "node-1",
        "message": "a1-2 INFO payment 成功",
    }


def test_paging_and_sorting_follow_the_parameters(world: TenancyWorld) -> None:
    first = get(world, "workspace-admin", "/api/v1/logs", size=2, sort="asc").get_json()
    second = get(world, "workspace-admin", "/api/v1/logs", size=2, sort="asc", **{"from": 2}).get_json()
    assert [i["message"][:4] for i in first["items"] + second["items"]] == ["a1-1", "a1-2", "a2-1", "a1-3"]
    assert first["total"] == second["total"] == 4


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"q": 'error "connection refused'}, "q", "unbalanced quote"),
        ({"q": "a OR"}, "q", "OR needs a term after it"),
        ({"q": "OR b"}, "q", "OR needs a term before it"),
        ({"q": '""'}, "q", "empty phrase"),
        ({"q": "!!!"}, "q", "no letters or digits"),
        ({"start": "2026-11-22T10:00:00Z", "end": "2026-11-22T09:00:00Z"}, "end", "reversed"),
        ({"start": "yesterday"}, "start", "neither epoch seconds nor RFC 3339"),
        ({"sort": "newest"}, "sort", "sort must be"),
        ({"size": "0"}, "size", "between 1 and 1000"),
        ({"from": "9990", "size": "50"}, "from", "10000"),
        ({"size": "ten"}, "size", "whole number"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    world: TenancyWorld, params: dict[str, str], field: str, words: str
) -> None:
    r = get(world, "project-operator", "/api/v1/logs", **params)
    assert r.status_code == 400
    body = r.get_json()
    assert body["field"] == field
    assert words in body["error"]


def test_an_unbalanced_quote_reports_its_column(world: TenancyWorld) -> None:
    body = get(world, "project-operator", "/api/v1/logs", q='error "connection refused').get_json()
    assert body["position"] == 7
    assert "column 7" in body["error"]


def test_histogram_counts_per_interval_within_the_scope(world: TenancyWorld) -> None:
    r = get(world, "workspace-admin", "/api/v1/logs/histogram", start=DAY2, end=DAY2 + 3 * 3600, interval="1h")
    body = r.get_json()
    assert body["interval"] == "1h"
    assert body["buckets"] == [
        {"time": "2026-11-22T00:00:00.000Z", "count": 0},
        {"time": "2026-11-22T01:00:00.000Z", "count": 2},
        {"time": "2026-11-22T02:00:00.000Z", "count": 1},
    ]
    bad = get(world, "workspace-admin", "/api/v1/logs/histogram", start=DAY1, end=DAY2, interval="1s")
    assert bad.status_code == 400 and bad.get_json()["field"] == "interval"


def test_csv_export_is_an_attachment_without_colour_codes_or_formulas(world: TenancyWorld) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    world.hub.logs.write([_line("ns-a1", DAY2 + 9999, formula)])
    r = get(world, "project-operator", "/api/v1/logs/export", format="csv", sort="asc")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"].startswith('attachment; filename="kubehub-logs-')
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["time", "namespace", "workload", "pod", "container", "node", "message", "cluster"]
    assert [row[6] for row in rows[1:]] == [
        "a1-1 ERROR 请求超时 connection refused",
        "a1-2 INFO payment 成功",
        "a1-3 =cmd|calc 数据库连接失败",
        "'" + formula,  # a spreadsheet shows it as text instead of running it
    ]
    assert all("\x1b" not in row[6] for row in rows[1:])


def test_an_export_past_the_cap_says_so_in_the_file(world: TenancyWorld) -> None:
    r = get(world, "platform-admin", "/api/v1/logs/export", format="jsonl")  # 7 lines, cap 5
    docs = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    assert len(docs) == 6
    assert docs[-1]["capped"] is True and docs[-1]["limit"] == 5
    r = get(world, "platform-admin", "/api/v1/logs/export", format="csv", limit=2)
    text = r.get_data(as_text=True).splitlines()
    assert len(text) == 4 and text[-1].startswith("# export capped at 2 lines")
    exact = get(world, "workspace-admin", "/api/v1/logs/export", format="csv", q="超时")
    assert "capped" not in exact.get_data(as_text=True)


def test_export_refuses_unknown_formats_and_limits_beyond_the_cap(world: TenancyWorld) -> None:
    r = get(world, "project-operator", "/api/v1/logs/export", format="xlsx")
    assert r.status_code == 400 and r.get_json()["field"] == "format"
    r = get(world, "project-operator", "/api/v1/logs/export", limit="6")
    assert r.status_code == 400 and r.get_json()["field"] == "limit"


def test_store_sizes_are_for_platform_admins_only(world: TenancyWorld) -> None:
    r = get(world, "platform-admin", "/api/v1/logs/stores")
    body = r.get_json()
    assert body["backend"] == "embedded"
    assert {p["day"]: p["lines"] for p in body["partitions"]} == {"2026-11-21": 2, "2026-11-22": 5}
    assert body["total_lines"] == 7 and body["total_bytes"] > 0
    for role in ("project-admin", "workspace-admin", "tenant-b"):
        assert get(world, role, "/api/v1/logs/stores").status_code == 403


def test_retention_drops_days_past_the_configured_window(world: TenancyWorld, clock: FakeClock) -> None:
    clock.set(DAY1 + 7 * 86_400 + 60)  # day 1 is now the 8th day back; 7 are kept
    client = world.client("platform-admin")
    r = client.post("/api/v1/logs/stores/retention")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["dropped"] == ["logs-2026-11-21.sqlite3"]
    assert tags(get(world, "platform-admin", "/api/v1/logs").get_json()) == {"a1-2", "a1-3", "a2-1", "b1-2", "b2-1"}
    # lines already past retention are not written back in
    assert world.hub.logs.write([_line("ns-a1", DAY1 + 60, "late line")]) == 0


def test_a_store_outage_is_a_503_naming_the_backend(world: TenancyWorld) -> None:
    service = world.hub.logs
    service.store = ElasticsearchLogStore("http://127.0.0.1:9", timeout=2.0)  # nothing listens on port 9
    for path in ("/api/v1/logs", "/api/v1/logs/histogram", "/api/v1/logs/export"):
        r = get(world, "project-operator", path)
        assert r.status_code == 503, (path, r.get_data(as_text=True))
        assert r.get_json()["backend"] == "elasticsearch"
    ready = world.client("platform-admin").get("/readyz").get_json()  # reasons are for admins
    logs_state = next(b for b in ready["backends"] if b["name"] == "logs")
    assert logs_state["state"] == "unreachable" and "elasticsearch" in logs_state["reason"]


def test_readiness_reports_the_embedded_store(world: TenancyWorld) -> None:
    ready = world.client("platform-admin").get("/readyz").get_json()  # details are for admins
    logs_state = next(b for b in ready["backends"] if b["name"] == "logs")
    assert logs_state["state"] == "ok" and "fts5" in logs_state["detail"]


def test_anonymous_callers_get_no_logs(world: TenancyWorld) -> None:
    for path in ("/api/v1/logs", "/api/v1/logs/histogram", "/api/v1/logs/export", "/api/v1/logs/stores"):
        assert world.client().get(path).status_code == 401
