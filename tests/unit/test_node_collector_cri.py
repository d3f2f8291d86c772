"""The node collector's pure parts: CRI lines, partial lines, the multi-line rules, the ingest body
and collector tokens; and the ingest route through the app (collector token only, idempotent).

The expected records are written out by hand from the documented rules (docs/logs.md
"Multi-line records"), not computed by the collector's code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs import nodewire
from hub.collectors.logs.nodecri import (
    CriLine,
    StreamGrouper,
    parse_cri,
    parse_log_name,
    parse_pod_dir,
    workload_from_pod_name,
)
from hub.errors import Unauthenticated, Unprocessable
from tests.unit.conftest_tenancy import TenancyWorld, build_world

pytestmark = pytest.mark.unit

T0 = 1_795_219_200_000_000_000  # 2026-11-21T00:00:00Z in ns


def lines(*texts: str, stream: str = "stderr", partial: set[int] | None = None) -> list[CriLine]:
    out, offset = [], 0
    for i, text in enumerate(texts):
        size = 40 + len(text.encode())
        out.append(CriLine(T0 + i, stream, i in (partial or set()), text, offset, offset + size))
        offset += size
    return out


def group(cri: list[CriLine], *, now: float = 0.0, **kw: Any) -> list[str]:
    g = StreamGrouper(cri[0].stream if cri else "stdout", **kw)
    out = []
    for line in cri:
        out += [r.message for r in g.feed(line, now)]
    out += [r.message for r in g.flush()]
    return out


def test_a_cri_line_is_parsed_with_its_nanoseconds_and_offsets() -> None:
    raw = b"2026-11-21T00:00:00.123456789Z stdout F hello world  \n"
    line = parse_cri(raw, 100)
    assert line == CriLine(T0 + 123_456_789, "stdout", False, "hello world  ", 100, 100 + len(raw))
    assert parse_cri(b"2026-11-21T00:00:00Z stderr P \n", 0) == CriLine(T0, "stderr", True, "", 0, 31)
    for bad in (b"hello\n", b"2026-11-21T00:00:00Z stdin F x\n", b"2026-11-21 stdout F x\n", b"x stdout X y\n"):
        assert parse_cri(bad, 0) is None, bad


def test_partial_pieces_join_into_one_line() -> None:
    cri = lines("aaa", "bbb", "ccc", "next", stream="stdout", partial={0, 1})
    assert group(cri) == ["aaabbbccc", "next"]


def test_a_java_stack_trace_is_one_record() -> None:
    cri = lines(
        "2026-11-21 ERROR request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.Api.handle(Api.java:42)",
        "    at com.example.Server.run(Server.java:7)",
        "Caused by: java.io.IOException: reset",
        "\tat java.base/java.net.Socket.read(Socket.java:1)",
        "\t... 12 more",
        "Suppressed: java.lang.RuntimeException: close",
        "\t... 3 common frames omitted",
        "2026-11-21 INFO recovered",
    )
    assert group(cri) == [
        "2026-11-21 ERROR request failed",
        "\n".join(x.message for x in cri[1:9]),
        "2026-11-21 INFO recovered",
    ]


def test_a_python_traceback_is_one_record_up_to_its_exception_line() -> None:
    tb = [
        "Traceback (most recent call last):",
        '  File "/app/main.py", line 10, in <module>',
        "    main()",
        '  File "/app/main.py", line 6, in main',
        "    raise ValueError('bad')",
        "ValueError: bad",
    ]
    cri = lines("starting", *tb, "after")
    assert group(cri) == ["starting", "\n".join(tb), "after"]


def test_a_chained_python_traceback_stays_one_record() -> None:
    first = ["Traceback (most recent call last):", '  File "a.py", line 1, in f', "KeyError: 'x'"]
    second = ["Traceback (most recent call last):", '  File "a.py", line 3, in f', "RuntimeError: wrapped"]
    chain = "During handling of the above exception, another exception occurred:"
    cri = lines(*first, "", chain, "", *second, "next")
    assert group(cri) == ["\n".join([*first, "", chain, "", *second]), "next"]


def test_blank_lines_after_a_traceback_without_a_chain_are_records_of_their_own() -> None:
    tb = ["Traceback (most recent call last):", '  File "a.py", line 1, in f', "KeyError: 'x'"]
    assert group(lines(*tb, "", "plain")) == ["\n".join(tb), "", "plain"]


def test_a_record_is_cut_at_the_maximum_size_and_nothing_is_dropped() -> None:
    frames = [f"\tat x.Y.m{i}(Y.java:{i})" for i in range(50)]
    cri = lines("java.lang.Error: big", *frames)
    out = group(cri, max_record_bytes=300)
    assert len(out) > 1
    assert all(len(m.encode()) <= 300 for m in out)
    assert "\n".join(out) == "\n".join(x.message for x in cri)


def test_a_record_waiting_for_its_next_line_is_flushed_after_the_timeout() -> None:
    cri = lines("java.lang.Error: x", "\tat a.B.c(B.java:1)")
    g = StreamGrouper("stderr", flush_after=2.0)
    assert g.feed(cri[0], 10.0) == [] and g.feed(cri[1], 10.5) == []
    assert g.pending_start == 0
    assert g.flush_due(12.0) == []
    (rec,) = g.flush_due(12.5)
    assert rec.message == "java.lang.Error: x\n\tat a.B.c(B.java:1)" and (rec.start, rec.end) == (0, cri[1].end)
    assert g.pending_start is None


def test_paths_of_the_kubelet_are_recognised() -> None:
    assert parse_pod_dir("shop_api-7d9f8c6b5-x1a2b_3f1c0d2e-0000-4000-8000-000000000001") == (
        "shop",
        "api-7d9f8c6b5-x1a2b",
        "3f1c0d2e-0000-4000-8000-000000000001",
    )
    assert parse_pod_dir("not-a-pod-dir") is None
    assert parse_log_name("0.log") == (0, "", False)
    assert parse_log_name("3.log.20261121-101500") == (3, "20261121-101500", False)
    assert parse_log_name("0.log.20261121-101500.gz") == (0, "20261121-101500", True)
    assert parse_log_name("0.log.20261121-101500.gz.tmp") is None
    assert workload_from_pod_name("api-7d9f8c6b5-x1a2b") == "api"
    assert workload_from_pod_name("db-2") == "db"


# -- the ingest body and tokens ----------------------------------------------------------------
NOW_NS = time.time_ns()  # ingest keeps lines within the retention window, so "now"


def record(**over: Any) -> dict[str, Any]:
    rec = {
        "namespace": "ns-a1",
        "pod": "api-7d9f8c6b5-x1a2b",
        "pod_uid": "3f1c0d2e-0000-4000-8000-000000000001",
        "container": "app",
        "stream": "stdout",
        "time_ns": NOW_NS,
        "message": "hello",
        "file": "2049:1234",
        "offset": 0,
    }
    rec.update(over)
    return rec


def test_a_body_becomes_records_identified_by_file_and_offset() -> None:
    node, recs = nodewire.decode_batch({"node": "node-1", "records": [record(), record(offset=40, message="b")]})
    assert node == "node-1" and [r.message for r in recs] == ["hello", "b"]
    assert recs[0].uid == "cri/3f1c0d2e-0000-4000-8000-000000000001/app/2049:1234/0"
    assert recs[0].time == NOW_NS / 1e9 and recs[0].workload == "api" and recs[0].node == "node-1"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"namespace": "Bad_NS"}, "records[0].namespace"),
        ({"time_ns": "yesterday"}, "records[0].time_ns"),
        ({"time_ns": 10**30}, "records[0].time_ns"),
        ({"offset": -1}, "records[0].offset"),
        ({"stream": "stdin"}, "records[0].stream"),
        ({"file": "../etc"}, "records[0].file"),
        ({"message": "x" * 70_000}, "records[0].message"),
    ],
)
def test_bad_fields_are_a_422_naming_each(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(Unprocessable) as err:
        nodewire.decode_batch({"node": "node-1", "records": [record(**bad), record()]})
    assert err.value.field == field and err.value.status == 422
    assert err.value.to_dict()["problems"][0]["field"] == field


def test_too_many_records_is_a_413_naming_records() -> None:
    with pytest.raises(nodewire.PayloadTooLarge) as err:
        nodewire.decode_batch({"node": "n", "records": [record()] * (nodewire.MAX_INGEST_RECORDS + 1)})
    assert err.value.status == 413 and err.value.field == "records"


def test_only_a_configured_collector_token_is_accepted() -> None:
    token, digest = nodewire.new_collector_token()
    nodewire.check_collector_token(token, [digest])
    for wrong in (None, "", "khc_other", token[4:], "Bearer " + token):
        with pytest.raises(Unauthenticated):
            nodewire.check_collector_token(wrong, [digest])
    with pytest.raises(Unauthenticated):
        nodewire.check_collector_token(token, [])  # ingest closed


# -- the route ---------------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TenancyWorld, str]]:
    token, digest = nodewire.new_collector_token()
    w = build_world(tmp_path, settings={"logs": {"collector_token_sha256": digest}})
    yield w, token
    w.hub.close()


def post(world: TenancyWorld, body: Any, token: str | None) -> Any:
    client = world.app.test_client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/logs/ingest", data=json.dumps(body), headers=headers, content_type="application/json")


def test_ingest_stores_a_batch_once_however_often_it_is_sent(world: tuple[TenancyWorld, str]) -> None:
    w, token = world
    body = {"node": "node-1", "records": [record(offset=i * 50, message=f"m{i}") for i in range(20)]}
    r = post(w, body, token)
    assert r.status_code == 200 and r.get_json() == {"received": 20, "new": 20, "skipped": 0}
    r = post(w, body, token)
    assert r.status_code == 200 and r.get_json() == {"received": 20, "new": 0, "skipped": 0}
    found = w.client("platform-admin").get("/api/v1/logs", query_string={"namespaces": "ns-a1", "size": 100})
    assert sorted(i["message"] for i in found.get_json()["items"]) == sorted(f"m{i}" for i in range(20))


def test_ingest_refuses_user_tokens_and_anonymous_callers(world: tuple[TenancyWorld, str]) -> None:
    w, _ = world
    user_token = w.tokens["platform-admin"]
    body = {"node": "node-1", "records": [record()]}
    for token in (None, user_token, "khc_forged"):
        r = post(w, body, token)
        assert r.status_code == 401, (token, r.get_data(as_text=True))
    assert w.hub.logs.store.partitions() == [] or all(p.lines == 0 for p in w.hub.logs.store.partitions())


def test_ingest_labels_lines_with_the_collectors_cluster(world: tuple[TenancyWorld, str]) -> None:
    w, token = world  # lines from now on: the project's log floor is its creation
    w.hub.clusters.add(
        {"name": "cluster-2", "connection": {"mode": "kubeconfig", "kubeconfig_path": "/nonexistent"}}, actor="t"
    )
    r = post(
        w,
        {"node": "node-9", "cluster": "cluster-2", "records": [record(message="from two", time_ns=time.time_ns())]},
        token,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    r = post(w, {"node": "node-1", "records": [record(message="from one", offset=99, time_ns=time.time_ns())]}, token)
    assert r.status_code == 200
    admin = w.client("platform-admin")
    every = admin.get("/api/v1/logs", query_string={"namespaces": "ns-a1", "size": 100}).get_json()["items"]
    assert {(i["message"], i["cluster"]) for i in every} == {("from two", "cluster-2"), ("from one", "default")}
    two = admin.get("/api/v1/logs", query_string={"cluster": "cluster-2", "size": 100}).get_json()["items"]
    assert [i["message"] for i in two] == ["from two"]
    # ns-a1 of cluster-2 is not the tenant's ns-a1: the operator of ns-a1 reads only the first
    mine = w.client("project-operator").get("/api/v1/logs", query_string={"namespaces": "ns-a1", "size": 100})
    assert [i["message"] for i in mine.get_json()["items"]] == ["from one"]
    for bad in ("nope", "Bad_Name", 7):
        r = post(w, {"node": "node-1", "cluster": bad, "records": [record()]}, token)
        assert r.status_code == 422 and r.get_json()["field"] == "cluster", bad


def test_ingest_bad_input_names_the_field(world: tuple[TenancyWorld, str]) -> None:
    w, token = world
    r = post(w, {"node": "node-1", "records": [record(), record(pod="UPPER")]}, token)
    assert r.status_code == 422 and r.get_json()["field"] == "records[1].pod"
    r = post(w, {"node": "node-1", "records": [record()] * 5001}, token)
    assert r.status_code == 413 and r.get_json()["field"] == "records"
    big = {"node": "node-1", "records": [record(message="x" * 60_000, offset=i) for i in range(80)]}
    r = post(w, big, token)
    assert r.status_code == 413


def test_a_line_naming_no_exception_leaves_at_once_and_one_naming_one_waits() -> None:
    g = StreamGrouper("stdout", flush_after=2.0)
    (plain,) = lines("GET /api 200 3ms", stream="stdout")
    assert [r.message for r in g.feed(plain, 0.0)] == ["GET /api 200 3ms"] and g.pending_start is None
    for header in ("java.lang.IllegalStateException: boom", 'Exception in thread "main" java.lang.Error'):
        g = StreamGrouper("stderr")
        assert g.feed(lines(header)[0], 0.0) == [] and g.pending_start == 0
