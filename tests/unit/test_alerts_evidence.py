"""The evidence lines of alert emails: the newest up to the notice within the breach span (a
repeat: since the previous send), errors and warnings first, of the alert's own workload kind
or node. The store is a real embedded log store; the cluster cache is a small fake of the
two calls the evidence reader makes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.notify import evidence
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.render import MAX_LOG_LINES, Renderer
from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.store import LogRecord, iso_micro
from hub.runtime.evidence import evidence_lines, pod_filter
from hub.tenancy.scope import LogFloors, Project, log_floors
from tests.unit.test_alerts_pipeline import T0, World, node_doc

pytestmark = pytest.mark.unit


def line(t: float, message: str, pod: str = "web-7d4b9c-x2k9p") -> dict[str, Any]:
    return {"time": iso_micro(t), "pod": pod, "container": "app", "message": message}


def test_pick_takes_the_newest_lines_errors_and_warnings_first() -> None:
    lines = [line(T0 + i, f"INFO request {i}") for i in range(100)]
    lines += [line(T0 + 3.5, "ERROR payment timed out"), line(T0 + 50.5, "level=warn slow query")]
    lines += [line(T0 + 60.5, "W1205 10:00:00 reflector.go:1] watch closed")]
    lines += lines[:5]  # the same line twice (two queries found it) counts once
    picked = evidence.pick(reversed(lines), 10)
    messages = [x["message"] for x in picked]
    assert messages[:3] == [
        "ERROR payment timed out",
        "level=warn slow query",
        "W1205 10:00:00 reflector.go:1] watch closed",
    ]
    assert messages[3:] == [f"INFO request {i}" for i in range(93, 100)]  # the newest, in time order
    assert not evidence.is_problem("INFO 0 errors, 3 warnings so far") and evidence.is_problem("Fatal: disk gone")


def notice(**over: Any) -> Notice:
    base = Notice(
        key="a:firing:1", kind="firing", at=T0 + 300, alert_id="a", policy_id="p1", policy_name="web-cpu",
        level="workload", namespace="shop", tenant="shop", rule="cpu", severity="major", entity="shop/deployment/web",
        labels={"namespace": "shop", "kind": "deployment", "workload": "web"}, metric="workload_cpu_usage",
        aggregation="avg", comparator=">", threshold=1, unit="cores", value=2.0, query="q", period=60,
        consecutive=3, started_at=T0 + 180,
    )  # fmt: skip
    return replace(base, **over)


def test_the_window_is_the_breach_span_up_to_the_notice_and_a_repeat_starts_at_the_previous_send() -> None:
    assert evidence.window(notice()) == (T0 + 120, T0 + 300)
    assert evidence.window(notice(kind="repeat", at=T0 + 900, since=T0 + 300)) == (T0 + 300, T0 + 900)
    assert evidence.subject_of(notice()) == {"namespace": "shop", "kind": "deployment", "workload": "web"}
    node = notice(level="node", namespace=None, labels={"node": "n1"}, entity="n1")
    assert evidence.subject_of(node) == {"node": "n1"}
    assert evidence.subject_of(replace(node, policy_id="__meta_reach__")) is None


def test_the_email_shows_the_lines_the_reader_returns_in_the_picked_order() -> None:
    asked: list[dict[str, Any]] = []

    def reader(**kw: Any) -> list[dict[str, Any]]:
        asked.append(kw)
        return [line(T0 + 200 + i, f"INFO tick {i}") for i in range(30)] + [line(T0 + 130, "ERROR boom")]

    text = Renderer(public_url="", log_lines=reader).render([notice()]).text
    assert asked == [
        {"namespace": "shop", "kind": "deployment", "workload": "web", "start": T0 + 120, "end": T0 + 300, "limit": 20}
    ]
    body = text[text.index("Newest log lines of deployment/web since the breach began") :]
    shown = [x.strip().split(" ", 2)[2] for x in body.splitlines()[1 : MAX_LOG_LINES + 1]]
    assert shown == ["ERROR boom"] + [f"INFO tick {i}" for i in range(11, 30)]
    repeat = Renderer(public_url="", log_lines=reader).render([notice(kind="repeat", since=T0 + 250)]).text
    assert "since the previous notice" in repeat and asked[-1]["start"] == T0 + 250


def test_a_repeat_notice_knows_when_the_previous_one_went_out(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}, repeat={"critical": {"mode": "fixed", "interval": "2m", "max_sends": 3}}))
    w.values = {"node-1": 0.97}
    w.tick(4)
    rows = w.store.db.query("SELECT kind, at, payload FROM alert_notices ORDER BY id")
    sent = [(r["kind"], Notice.from_json(r["payload"]).since) for r in rows]
    assert sent == [("firing", None), ("repeat", T0)]


@dataclass
class Pod:
    name: str
    namespace: str
    node: str


class Cluster:
    """The two calls the evidence reader makes of the cluster service."""

    def __init__(self, owners: dict[str, tuple[str, str]], nodes: dict[str, str]) -> None:
        self.owners, self.nodes = owners, nodes

    def pods(self, namespaces: Any) -> list[Pod]:
        return [Pod(name, "shop", self.nodes.get(name, "n1")) for name in self.owners]

    def pod_workload(self, pod: Pod) -> tuple[str, str] | None:
        return self.owners.get(pod.name)


def test_a_deployment_and_a_statefulset_of_the_same_name_never_lend_each_other_lines(tmp_path: Path) -> None:
    store = EmbeddedLogStore(tmp_path / "logs")
    try:
        pods = {
            "web-7d4b9c-x2k9p": ("deployment", "n1"),  # live pod of the Deployment
            "web-0": ("statefulset", "n2"),  # live pod of the StatefulSet
            "web-5f6d7e-abcde": ("deployment", "n1"),  # gone: judged by its name
            "web-1": ("statefulset", "n2"),  # gone
        }
        records = [
            LogRecord(time=T0 + 10 * i + j, namespace="shop", pod=pod, container="app",
                      message=f"{'ERROR' if i % 7 == 0 else 'INFO'} {pod} {i}", workload="web", node=node)
            for i in range(30) for j, (pod, (_, node)) in enumerate(pods.items())
        ]  # fmt: skip
        store.write(records)
        cluster = Cluster(
            {"web-7d4b9c-x2k9p": ("Deployment", "web"), "web-0": ("StatefulSet", "web")},
            {"web-7d4b9c-x2k9p": "n1", "web-0": "n2"},
        )
        read = evidence_lines(store, cluster, lambda ns: log_floors([Project(namespace=ns, workspace="")]))
        dep = evidence.pick(
            read(namespace="shop", kind="deployment", workload="web", start=T0, end=T0 + 400, limit=20), 20
        )
        sts = evidence.pick(
            read(namespace="shop", kind="statefulset", workload="web", start=T0, end=T0 + 400, limit=20), 20
        )
        assert dep and {x["pod"] for x in dep} == {"web-7d4b9c-x2k9p", "web-5f6d7e-abcde"}
        assert sts and {x["pod"] for x in sts} == {"web-0", "web-1"}
        # the newest lines before the end, errors first: a brute-force oracle over the records
        mine = [r for r in records if pods[r.pod][0] == "deployment" and T0 <= r.time < T0 + 200]
        errors = sorted((r for r in mine if "ERROR" in r.message), key=lambda r: r.time)
        others = sorted((r for r in mine if "ERROR" not in r.message), key=lambda r: r.time)[-(20 - len(errors)) :]
        got = evidence.pick(
            read(namespace="shop", kind="deployment", workload="web", start=T0, end=T0 + 200, limit=20), 20
        )
        assert [x["message"] for x in got] == [r.message for r in errors + others]
        # a node alert: the lines of the pods on that node only
        node = evidence.pick(read(node="n2", start=T0, end=T0 + 400, limit=20), 20)
        assert node and {x["pod"] for x in node} == {"web-0"}
        assert pod_filter(None, "shop", "statefulset", "web")("web-12") and not pod_filter(
            None, "shop", "statefulset", "web"
        )("web-abcde")
    finally:
        store.close()


def test_evidence_follows_the_tenants_predecessor_rule(tmp_path: Path) -> None:
    store = EmbeddedLogStore(tmp_path / "logs")
    try:
        # "shop" was deleted and created again at T0 + 100 (UID "second"): the first namespace's
        # lines are not evidence, the new one's are, even those older than its creation.
        def rec(t: float, message: str, uid: str) -> LogRecord:
            return LogRecord(time=t, namespace="shop", pod="web-7d4b9c-x2k9p", container="app",
                             message=message, workload="web", node="n1", namespace_uid=uid)  # fmt: skip

        store.write([rec(T0 + 10, "ERROR first namespace", "first"), rec(T0 + 50, "ERROR seeded history", "second"),
                     rec(T0 + 150, "ERROR after the recreation", "second")])  # fmt: skip

        def floors(ns: str) -> LogFloors:
            return log_floors([Project(namespace=ns, workspace="w", created=T0 + 100, uid="second")])

        got = evidence_lines(store, None, floors)(
            namespace="shop", kind="", workload="web", start=T0, end=T0 + 400, limit=20
        )
        assert {x["message"] for x in got} == {"ERROR seeded history", "ERROR after the recreation"}
    finally:
        store.close()
