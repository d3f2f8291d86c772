"""The one test suite every log store must pass (APScheduler style: one suite, every backend).

Not collected by itself (no ``test_`` prefix): ``tests/unit/test_logs_store_embedded.py`` runs it
on the embedded store, ``tests/integration/test_logs_store_suite.py`` on the embedded store and a
real Elasticsearch. Both provide the ``log_store`` fixture (a fresh, empty store).

The corpus below has one line per behaviour worth pinning; every keyword test names the exact
set of lines it must find, so a backend that finds too much fails as surely as one that finds
too little.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import TOTAL_CAP, LogQuery, LogRecord, LogStore

DAY1 = 1_795_219_200.0  # 2026-11-21T00:00:00Z
DAY2 = DAY1 + 86_400  # 2026-11-22T00:00:00Z


def _rec(
    tag: str, t: float, ns: str, workload: str, pod: str, container: str, message: str, node: str = "node-1"
) -> LogRecord:
    return LogRecord(
        time=t,
        namespace=ns,
        workload=workload,
        pod=pod,
        container=container,
        node=node,
        pod_uid=f"uid-{pod}",
        message=f"{tag} {message}",
    )


# tag, time, namespace, workload, pod, container, message
CORPUS: list[LogRecord] = [
    _rec("m01", DAY1 + 3600, "team-a", "api", "api-7d9f8c6b5-x1a2b", "app", "ERROR connection refused to db:5432"),
    _rec("m02", DAY1 + 7200, "team-a", "api", "api-7d9f8c6b5-x1a2b", "app", "WARN refused connection, retrying"),
    _rec("m03", DAY1 + 10800, "team-a", "worker", "worker-0", "app", "请求超时，请稍后重试"),
    _rec("m04", DAY1 + 14400, "team-a", "worker", "worker-0", "sidecar", "数据库连接失败: timeout"),
    _rec("m05", DAY1 + 18000, "team-b", "api", "api-5c4b3a291-q9w8e", "app", "连接超时 after 30s"),
    _rec("m06", DAY1 + 21600, "team-b", "api", "api-5c4b3a291-q9w8e", "app", "ERROR Connection Refused"),
    _rec("m07", DAY2 + 3600, "team-a", "api", "api-7d9f8c6b5-x1a2b", "app", "INFO user login ok"),
    _rec("m08", DAY2 + 7200, "team-a", "api", "api-7d9f8c6b5-y3c4d", "app", "\x1b[31mERROR\x1b[0m payment failed"),
    _rec("m09", DAY2 + 10800, "team-c", "worker", "worker-1", "app", "payment refund issued"),
    _rec("m10", DAY2 + 14400, "team-a", "api", "api-7d9f8c6b5-y3c4d", "sidecar", "超过时间限制"),
    _rec("m11", DAY2 + 18000, "team-a", "worker", "worker-0", "app", "job timeout reached"),
    _rec("m12", DAY2 + 21600, "team-a", "api", "api-7d9f8c6b5-y3c4d", "app", "user_id=42 failed 用户登录失败"),
]
ALL = {r.message.split(" ", 1)[0] for r in CORPUS}
TEAM_A = {r.message.split(" ", 1)[0] for r in CORPUS if r.namespace == "team-a"}


def tags(lines: list[Any]) -> set[str]:
    return {line.message.split(" ", 1)[0] for line in lines}


def ordered_tags(lines: list[Any]) -> list[str]:
    return [line.message.split(" ", 1)[0] for line in lines]


def q(visibility: dict[str, float] | None = None, text: str = "", **kw: Any) -> LogQuery:
    return LogQuery(visibility=visibility, text=parse_keywords(text), **{"size": 100, **kw})


@pytest.fixture
def corpus_store(log_store: LogStore) -> LogStore:
    assert log_store.write(CORPUS) == len(CORPUS)
    log_store.refresh()
    return log_store


def test_a_written_batch_is_found_whole_and_newest_first(corpus_store: LogStore) -> None:
    result = corpus_store.search(q())
    assert ordered_tags(result.items) == sorted(ALL, reverse=True)
    assert result.total == len(CORPUS)
    assert result.total_exact


def test_ascending_sort_returns_oldest_first(corpus_store: LogStore) -> None:
    assert ordered_tags(corpus_store.search(q(sort="asc")).items) == sorted(ALL)


def test_writing_the_same_lines_again_stores_nothing_twice(corpus_store: LogStore) -> None:
    assert corpus_store.write(CORPUS[:5]) == 0
    corpus_store.refresh()
    result = corpus_store.search(q())
    assert result.total == len(CORPUS)
    assert sorted(ordered_tags(result.items)) == sorted(ALL)


def test_lines_carry_every_label_and_a_microsecond_time(corpus_store: LogStore) -> None:
    (line,) = corpus_store.search(q(text="m01")).items
    assert line.to_dict() == {
        "time": "2026-11-21T01:00:00.000000Z",
        "namespace": "team-a",
        "pod": "api-7d9f8c6b5-x1a2b",
        "container": "app",
        "workload": "api",
        "node": "node-1",
        "message": "m01 ERROR connection refused to db:5432",
        "cluster": "",  # written without one
    }


# -- clusters -----------------------------------------------------------------------------------

# The same namespace name in two clusters (two tenants), and lines that name no cluster (written
# by a single-cluster hub): the oracle is the records themselves.
CLUSTERED: list[LogRecord] = [
    LogRecord(
        time=DAY2 + 40_000 + i,
        namespace=ns,
        pod=f"{ns}-pod",
        container="app",
        message=f"c{i:02d} clustered {cluster or 'none'}",
        pod_uid=f"uid-{cluster}-{ns}",
        cluster=cluster,
    )
    for i, (cluster, ns) in enumerate(
        [
            ("", "team-a"),
            ("default", "team-a"),
            ("cluster-2", "team-a"),
            ("cluster-2", "team-z"),
            ("cluster-3", "team-a"),
        ]
        * 3
    )
]


@pytest.mark.parametrize(
    ("clusters", "visibility"),
    [
        (("", "default"), {"team-a": 0.0}),
        (("cluster-2",), {"team-a": 0.0}),
        (("cluster-2",), {"team-a": 0.0, "team-z": 0.0}),
        (("cluster-2", "cluster-3"), None),
        (("cluster-9",), None),
        (("",), None),
        (None, {"team-a": 0.0}),
    ],
)
def test_a_query_sees_only_the_lines_of_its_clusters(
    log_store: LogStore, clusters: tuple[str, ...] | None, visibility: dict[str, float] | None
) -> None:
    assert log_store.write(CLUSTERED) == len(CLUSTERED)
    log_store.refresh()
    want = [
        r.message
        for r in CLUSTERED
        if (clusters is None or r.cluster in clusters) and (visibility is None or r.namespace in visibility)
    ]
    for text in ("", "clustered"):  # the plain and the keyword plans
        got = log_store.search(q(visibility, text=text, clusters=clusters))
        assert sorted(line.message for line in got.items) == sorted(want), (clusters, visibility, text)
        assert got.total == len(want)
        assert {line.cluster for line in got.items} <= set(clusters or ("", "default", "cluster-2", "cluster-3"))
    counts = log_store.histogram(q(visibility, clusters=clusters), interval=86_400)
    assert sum(b.count for b in counts) == len(want)
    assert sorted(line.message for line in log_store.export(q(visibility, clusters=clusters), limit=100)) == sorted(
        want
    )


# -- keywords ---------------------------------------------------------------------------------------

KEYWORD_CASES = [
    ("超时", {"m03", "m05"}),  # two-character Chinese word, anywhere in a run
    ("失败", {"m04", "m12"}),  # m08 says "failed", which is not 失败
    ("数据库", {"m04"}),  # three characters
    ('"请求超时"', {"m03"}),
    ("超", {"m03", "m05", "m10"}),  # one character
    ("时间", {"m10"}),  # 超过时间 holds 时间 but not 超时
    ("连接 失败", {"m04"}),  # AND across Chinese words
    ('"connection refused"', {"m01", "m06"}),  # phrase: order and adjacency, any case
    ("connection refused", {"m01", "m02", "m06"}),  # AND: both words anywhere
    ("payment OR refund", {"m08", "m09"}),
    ("error", {"m01", "m06", "m08"}),  # case-insensitive; m08's colour codes do not hide it
    ("ERROR payment", {"m08"}),
    ("ok", {"m07"}),  # a two-letter Latin word
    ("time", set()),  # words, not substrings: "timeout" is not "time"
    ("timeout", {"m04", "m11"}),
    ("user_id", {"m12"}),
    ("用户 OR 超时", {"m03", "m05", "m12"}),
    ("error refused OR payment", {"m01", "m06", "m08"}),  # OR binds tighter than AND
    ("zzznothing", set()),
]


@pytest.mark.parametrize(("keywords", "expected"), KEYWORD_CASES, ids=[c[0] for c in KEYWORD_CASES])
def test_keywords_find_exactly_the_expected_lines(corpus_store: LogStore, keywords: str, expected: set[str]) -> None:
    result = corpus_store.search(q(text=keywords))
    assert tags(result.items) == expected
    assert result.total == len(expected)


def test_colour_codes_are_gone_from_stored_messages(corpus_store: LogStore) -> None:
    (line,) = corpus_store.search(q(text="payment failed")).items
    assert "\x1b" not in line.message
    assert line.message == "m08 ERROR payment failed"


# -- scope and filters ------------------------------------------------------------------------------


def test_visibility_limits_lines_to_the_namespaces_given(corpus_store: LogStore) -> None:
    assert tags(corpus_store.search(q({"team-a": 0.0})).items) == TEAM_A
    assert tags(corpus_store.search(q({"team-b": 0.0, "team-c": 0.0})).items) == {"m05", "m06", "m09"}


def test_an_empty_visibility_sees_nothing_even_with_filters_and_keywords(corpus_store: LogStore) -> None:
    for query in (q({}), q({}, "超时"), q({}, pods=("worker-0",))):
        result = corpus_store.search(query)
        assert result.items == [] and result.total == 0


def test_a_namespace_floor_hides_the_lines_before_it(corpus_store: LogStore) -> None:
    # team-a "recreated" at the start of day 2: its day-1 lines belong to the old namespace
    result = corpus_store.search(q({"team-a": DAY2}))
    assert tags(result.items) == {"m07", "m08", "m10", "m11", "m12"}
    assert tags(corpus_store.search(q({"team-a": DAY2}, "超时")).items) == set()
    assert tags(corpus_store.search(q({"team-a": DAY2, "team-b": 0.0}, "超时")).items) == {"m05"}


def test_a_floor_inside_a_sources_lifetime_is_checked_line_by_line(corpus_store: LogStore) -> None:
    # the pod api-...-x1a2b logged at DAY1+1h, DAY1+2h and DAY2+1h: a floor between them
    result = corpus_store.search(q({"team-a": DAY1 + 5400}, pods=("api-7d9f8c6b5-x1a2b",)))
    assert tags(result.items) == {"m02", "m07"}


def test_scope_stays_one_clause_with_two_thousand_namespaces(corpus_store: LogStore) -> None:
    visibility = {f"tenant-{i:04d}": DAY1 + i for i in range(2000)}
    visibility["team-c"] = 0.0
    visibility["team-b"] = DAY1 + 20_000  # after m05, before m06
    assert tags(corpus_store.search(q(visibility)).items) == {"m06", "m09"}


# A namespace "team-u" deleted and created again at DAY2 under the same name: "uid-old" was the
# first one, "uid-new" is the one that exists now, and its pods logged before DAY2 too (history
# seeded, or shipped from before the namespace object was made). The "legacy-0" lines come from
# a writer that knew no namespace UID; u07 is the old namespace's although it is late.
def _u(t: float, ns: str, pod: str, message: str, namespace_uid: str = "") -> LogRecord:
    return LogRecord(t, ns, pod, "app", message, pod_uid=f"uid-{pod}", namespace_uid=namespace_uid)


UID_LINES: list[LogRecord] = [
    _u(DAY1 + 3600, "team-u", "old-0", "u01 超时 in the old namespace", "uid-old"),
    _u(DAY1 + 7200, "team-u", "old-0", "u02 old namespace timeout", "uid-old"),
    _u(DAY1 + 10800, "team-u", "new-0", "u03 超时 history of the new one", "uid-new"),
    _u(DAY2 + 3600, "team-u", "new-0", "u04 new namespace timeout", "uid-new"),
    _u(DAY1 + 14400, "team-u", "legacy-0", "u05 超时 without a uid, before the floor"),
    _u(DAY2 + 7200, "team-u", "legacy-0", "u06 without a uid, after the floor"),
    _u(DAY2 + 10800, "team-u", "old-0", "u07 late line of the old namespace", "uid-old"),
    _u(DAY1 + 18000, "team-v", "v-0", "u08 超时 in team-v", "uid-v"),
]
CURRENT = {"team-u": "uid-new", "team-v": "uid-v"}


def _visible(lines: list[LogRecord], floors: dict[str, float], uids: dict[str, str]) -> set[str]:
    """The predecessor rule written out line by line (the oracle the stores are held to)."""
    out = set()
    for r in lines:
        if r.namespace not in floors:
            continue
        current = uids.get(r.namespace, "")
        shown = r.namespace_uid == current if current and r.namespace_uid else r.time >= floors[r.namespace]
        if shown:
            out.add(r.message.split(" ", 1)[0])
    return out


@pytest.fixture
def uid_store(log_store: LogStore) -> LogStore:
    assert log_store.write(UID_LINES) == len(UID_LINES)
    log_store.refresh()
    return log_store


def test_a_namespace_uid_shows_the_current_namespaces_lines_whatever_their_time(uid_store: LogStore) -> None:
    floors = {"team-u": DAY2}
    found = tags(uid_store.search(q(floors, namespace_uids=CURRENT)).items)
    assert found == {"u03", "u04", "u06"} == _visible(UID_LINES, floors, CURRENT)
    assert tags(uid_store.search(q(floors, "超时", namespace_uids=CURRENT)).items) == {"u03"}
    both = {"team-u": DAY2, "team-v": DAY2}
    assert tags(uid_store.search(q(both, "超时", namespace_uids=CURRENT)).items) == {"u03", "u08"}
    # filtered by pod: the old namespace's pod name finds nothing, the new one's finds its history
    assert tags(uid_store.search(q(floors, pods=("old-0", "new-0"), namespace_uids=CURRENT)).items) == {"u03", "u04"}


def test_without_a_current_uid_the_time_floor_alone_decides(uid_store: LogStore) -> None:
    floors = {"team-u": DAY2}
    assert tags(uid_store.search(q(floors)).items) == {"u04", "u06", "u07"} == _visible(UID_LINES, floors, {})
    # the other namespace's UID never admits lines of this one
    assert tags(uid_store.search(q({"team-v": 0.0}, namespace_uids={"team-v": "uid-new"})).items) == set()
    # admins (no visibility) see every line, the predecessor's included
    assert tags(uid_store.search(q(None)).items) == {r.message.split(" ", 1)[0] for r in UID_LINES}


def test_histogram_and_export_follow_the_uid_rule(uid_store: LogStore) -> None:
    floors = {"team-u": DAY2}
    query = q(floors, start=DAY1, end=DAY2 + 86400, namespace_uids=CURRENT)
    assert [(b.time, b.count) for b in uid_store.histogram(query, interval=86400)] == [(DAY1, 1), (DAY2, 2)]
    keyword = q(floors, "timeout", start=DAY1, end=DAY2 + 86400, namespace_uids=CURRENT)
    assert [(b.time, b.count) for b in uid_store.histogram(keyword, interval=86400)] == [(DAY1, 0), (DAY2, 1)]
    assert ordered_tags(list(uid_store.export(q(floors, sort="asc", namespace_uids=CURRENT), limit=100))) == [
        "u03",
        "u04",
        "u06",
    ]


def test_filters_narrow_by_workload_pod_and_container(corpus_store: LogStore) -> None:
    team_a = {"team-a": 0.0}
    assert tags(corpus_store.search(q(team_a, workloads=("worker",))).items) == {"m03", "m04", "m11"}
    assert tags(corpus_store.search(q(team_a, pods=("api-7d9f8c6b5-y3c4d",))).items) == {"m08", "m10", "m12"}
    assert tags(corpus_store.search(q(team_a, containers=("sidecar",))).items) == {"m04", "m10"}
    assert tags(corpus_store.search(q(team_a, workloads=("api",), containers=("sidecar",))).items) == {"m10"}
    assert tags(corpus_store.search(q(team_a, "failed", workloads=("api",), containers=("app",))).items) == {
        "m08",
        "m12",
    }
    # another tenant's workload name finds nothing inside this scope
    assert tags(corpus_store.search(q({"team-c": 0.0}, workloads=("api",))).items) == set()


def test_filters_apply_for_admins_without_a_namespace_filter(corpus_store: LogStore) -> None:
    assert tags(corpus_store.search(q(None, workloads=("api",), containers=("app",))).items) == {
        "m01",
        "m02",
        "m05",
        "m06",
        "m07",
        "m08",
        "m12",
    }


# -- time, paging, totals ----------------------------------------------------------------------------


def test_time_range_is_start_inclusive_end_exclusive_across_days(corpus_store: LogStore) -> None:
    result = corpus_store.search(q(start=DAY1 + 21600, end=DAY2 + 7200))
    assert tags(result.items) == {"m06", "m07"}
    assert tags(corpus_store.search(q(start=DAY2)).items) == {"m07", "m08", "m09", "m10", "m11", "m12"}
    assert tags(corpus_store.search(q(end=DAY1 + 3600.000001)).items) == {"m01"}


def test_pages_walk_the_matches_in_order_with_a_stable_total(corpus_store: LogStore) -> None:
    seen: list[str] = []
    for offset in range(0, 12, 5):
        result = corpus_store.search(q(offset=offset, size=5))
        assert result.total == 12
        seen += ordered_tags(result.items)
    assert seen == sorted(ALL, reverse=True)


def test_total_is_exact_up_to_the_cap_and_at_least_beyond_it(log_store: LogStore) -> None:
    lines = [
        LogRecord(time=DAY1 + i * 0.5, namespace="bulk", pod="p", container="c", message=f"line {i} flood")
        for i in range(TOTAL_CAP + 25)
    ]
    for i in range(0, len(lines), 5000):
        log_store.write(lines[i : i + 5000])
    log_store.refresh()
    result = log_store.search(q({"bulk": 0.0}, "flood", size=10))
    assert result.total == TOTAL_CAP and not result.total_exact
    assert ordered_tags(result.items)[:2] == ["line", "line"]
    assert result.items[0].message == f"line {TOTAL_CAP + 24} flood"
    narrow = log_store.search(q({"bulk": 0.0}, "flood", start=DAY1, end=DAY1 + 50))
    assert narrow.total == 100 and narrow.total_exact


def test_total_relation_at_the_edges_of_the_cap_and_on_deep_pages(log_store: LogStore) -> None:
    lines = [
        LogRecord(time=DAY1 + i * 0.5, namespace="bulk", pod="p", container="c", message=f"line {i} flood")
        for i in range(1_200)
    ]
    log_store.write(lines)
    log_store.refresh()

    def first(n: int, **kw: Any) -> Any:  # the first n lines match
        return log_store.search(q({"bulk": 0.0}, "flood", end=DAY1 + n * 0.5, **kw))

    for n, relation in ((TOTAL_CAP - 1, True), (TOTAL_CAP, True), (TOTAL_CAP + 1, False)):
        result = first(n, size=10)
        assert (result.total, result.total_exact) == (min(n, TOTAL_CAP), relation), n
        assert result.items[0].message == f"line {n - 1} flood"
    deep = first(1_200, offset=500, size=1_000)  # a page reaching past the first 1,000 matches
    assert (deep.total, deep.total_exact) == (TOTAL_CAP, False)
    assert [i.message for i in deep.items] == [f"line {k} flood" for k in range(699, -1, -1)]
    beyond = first(1_200, offset=9_000, size=50)
    assert (beyond.total, beyond.total_exact, beyond.items) == (TOTAL_CAP, False, [])
    exact_deep = first(TOTAL_CAP, offset=990, size=50)
    assert (exact_deep.total, exact_deep.total_exact, len(exact_deep.items)) == (TOTAL_CAP, True, 10)


# -- histogram and export --------------------------------------------------------------------------------


def test_histogram_counts_per_interval_and_fills_empty_buckets(corpus_store: LogStore) -> None:
    buckets = corpus_store.histogram(q({"team-a": 0.0}, start=DAY1, end=DAY1 + 6 * 3600), interval=3600)
    assert [(b.time - DAY1, b.count) for b in buckets] == [
        (0, 0),
        (3600, 1),
        (7200, 1),
        (10800, 1),
        (14400, 1),
        (18000, 0),
    ]


def test_histogram_without_range_spans_first_to_last_match(corpus_store: LogStore) -> None:
    buckets = corpus_store.histogram(q(None, "超时 OR 失败"), interval=86400)
    assert [(b.time, b.count) for b in buckets] == [(DAY1, 3), (DAY2, 1)]


def test_export_streams_every_match_in_order_up_to_the_limit(corpus_store: LogStore) -> None:
    lines = list(corpus_store.export(q({"team-a": 0.0}), limit=1000))
    assert ordered_tags(lines) == sorted(TEAM_A, reverse=True)
    limited = list(corpus_store.export(q({"team-a": 0.0}, sort="asc"), limit=3))
    assert ordered_tags(limited) == sorted(TEAM_A)[:3]
    assert all("\x1b" not in line.message for line in lines)
    assert list(corpus_store.export(q({}), limit=10)) == []


def test_export_pages_through_more_lines_than_one_chunk(log_store: LogStore) -> None:
    lines = [
        LogRecord(time=DAY2 + i, namespace="ex", pod="p", container="c", message=f"n{i:05d} export me")
        for i in range(4500)
    ]
    log_store.write(lines)
    log_store.refresh()
    got = [line.message for line in log_store.export(q({"ex": 0.0}, "export", sort="asc"), limit=10_000)]
    assert got == [r.message for r in lines]


# -- lifecycle -------------------------------------------------------------------------------------------


def test_partitions_are_days_with_their_line_counts(corpus_store: LogStore) -> None:
    parts = {p.day: p for p in corpus_store.partitions()}
    assert set(parts) == {"2026-11-21", "2026-11-22"}
    assert parts["2026-11-21"].lines == 6 and parts["2026-11-22"].lines == 6
    assert all(p.bytes > 0 for p in parts.values())


def test_retention_drops_whole_days_and_their_lines(corpus_store: LogStore) -> None:
    dropped = corpus_store.drop_before("2026-11-22")
    assert len(dropped) == 1 and re.search(r"2026.11.21", dropped[0])
    corpus_store.refresh()
    assert tags(corpus_store.search(q()).items) == {"m07", "m08", "m09", "m10", "m11", "m12"}
    assert [p.day for p in corpus_store.partitions()] == ["2026-11-22"]
    assert corpus_store.drop_before("2026-11-22") == []


def test_probe_describes_the_backend(log_store: LogStore) -> None:
    assert isinstance(log_store.probe(), str) and log_store.probe()
