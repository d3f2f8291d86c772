"""The cycle, the notification pipeline and the outbox, over a real SQLite state store, with a
fake clock, our own query runner and a recording notifier (no vendor client involved)."""

from __future__ import annotations

import email
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hub.alerts.cycle import CycleRunner, CycleStopped
from hub.alerts.notify.delivery import DeliveryResult, OutgoingEmail, RecordingNotifier
from hub.alerts.notify.outbox import Dispatcher
from hub.alerts.notify.render import Renderer
from hub.alerts.policy import parse_policy
from hub.store.alerts import AlertStore
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

pytestmark = pytest.mark.unit

T0 = 1_794_983_400.0  # 2026-11-18 06:30:00 UTC (14:30 in Shanghai)


def builder(level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None) -> Any:
    labels = ["node"] if level == "node" else ["namespace", "kind", "workload"]
    if aggregation == "last":
        return metric, labels
    return f"{aggregation}_over_time({metric}[{int(period_seconds)}s])", labels


class World:
    """A hub's alerting core on a temp database: set values, tick, read the mail."""

    def __init__(self, tmp: Path, *, quota: int = 0, start: float = T0) -> None:
        self.db = open_test_store(tmp / "state.sqlite3")
        self.db.migrate()
        self.store = AlertStore(self.db)
        self.clock = FakeClock(start)
        self.values: dict[str, float] = {}
        self.down = False
        self.queries: list[tuple[str, float]] = []
        self.runner = CycleRunner(
            store=self.store,
            build_query=builder,
            run_query=self.run_query,
            clock=self.clock,
            resolve_user=lambda name, namespace: f"{name}@users.example" if name == "alice" else None,
            admin_receivers=lambda: parse_policy(admin_doc()).notification.receivers,
            quota_per_hour=quota,
            tick_seconds=60,
        )
        self.notifier = RecordingNotifier(clock=self.clock.now)
        self.dispatcher = Dispatcher(
            store=self.store,
            notifier=self.notifier,
            renderer=Renderer(public_url="http://hub.example"),
            clock=self.clock,
            retry_initial=30,
            retry_max=300,
        )

    def run_query(self, promql: str, start: float, at: float, step: float) -> pd.DataFrame:
        self.queries.append((promql, at))
        if self.down:
            raise ConnectionError("connection refused")
        if "node_" in promql:
            return pd.DataFrame({"node": list(self.values), "value": list(self.values.values())})
        rows = [(k.split("/")[0], "deployment", k.split("/")[1], v) for k, v in self.values.items() if "/" in k]
        return pd.DataFrame(rows, columns=["namespace", "kind", "workload", "value"])

    def add(self, doc: dict[str, Any], policy_id: str = "p1") -> None:
        policy = parse_policy(doc)
        self.store.insert_policy(
            policy_id=policy_id,
            level=policy.level,
            namespace=policy.namespace,
            name=policy.name,
            document=policy.to_document(),
            enabled=True,
            actor="test",
            now=self.clock.now(),
        )

    def tick(self, n: int = 1, *, step: float = 60) -> None:
        for _ in range(n):
            self.runner.run_once()
            self.dispatcher.deliver_all_due()
            self.clock.advance(step)

    def mails(self) -> list[tuple[float, OutgoingEmail]]:
        return list(self.notifier.sent)

    def subjects(self) -> list[str]:
        return [e.subject for _, e in self.notifier.sent]


def node_doc(**over: Any) -> dict[str, Any]:
    rule = {
        "name": "cpu-high",
        "metric": "node_cpu_utilisation",
        "comparator": ">",
        "threshold": 90,
        "unit": "percent",
        "period": "1m",
        "consecutive": 3,
        "severity": "critical",
    }
    rule.update(over.pop("rule", {}))
    doc = {
        "name": "node-pressure",
        "level": "node",
        "rules": [rule],
        "notification": {"receivers": [{"email": "oncall@example.com"}], "send_resolved": True},
        "repeat": {"critical": {"mode": "none"}},
    }
    doc.update(over)
    return doc


def admin_doc() -> dict[str, Any]:
    return {
        "name": "admins",
        "level": "node",
        "rules": node_doc()["rules"],
        "notification": {"receivers": [{"email": "admin@example.com"}]},
    }


def test_the_start_time_is_aligned_to_minutes_and_hours() -> None:
    assert T0 % 60 == 0


def test_a_breach_fires_after_consecutive_periods_and_one_email_carries_the_evidence(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc())
    w.values = {"node-1": 0.97, "node-2": 0.2}
    w.tick(2)
    assert w.mails() == []
    w.tick()
    assert len(w.mails()) == 1
    sent_at, mail = w.mails()[0]
    assert sent_at == T0 + 120  # the third period, in the same cycle
    assert mail.recipient == "oncall@example.com"
    assert mail.subject == "[FIRING·critical] node-1 cpu-high 97% (>90%)"
    for evidence in (
        "node-pressure",
        "cpu-high",
        "node-1",
        "critical",
        "avg of 4 points (15s apart) in each 60s period of: node_cpu_utilisation",
        "97% (threshold > 90%)",
        "First breach:",
        "3 breaching period(s) of 1m",
        "http://hub.example/alerting/alerts/",
    ):
        assert evidence in mail.text, evidence
    assert mail.text.count(" breach\n") == 3
    assert mail.images and mail.images[0][1].startswith(b"\x89PNG")
    assert 'src="cid:chart0@kubehub"' in mail.html
    # The API record of the alert
    rows, total = w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])
    assert total == 1 and rows[0]["entity"] == "node-1" and rows[0]["sends"] == 1


def test_a_cycle_the_hub_stops_during_writes_nothing_and_the_next_one_evaluates_its_slot(tmp_path: Path) -> None:
    """Stopping the hub ends a cycle after its queries in flight (at scale they take up to their
    timeout, and waiting for them all outlasted Kubernetes's grace period). Nothing of it is
    written, as with a kill there, so the next cycle evaluates the same slot."""
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.add(node_doc(name="memory", rule={"consecutive": 1, "metric": "node_memory_utilisation"}), policy_id="p2")
    w.values = {"node-1": 0.97}
    stopping = False
    asked = w.run_query

    def run_query(promql: str, start: float, at: float, step: float) -> pd.DataFrame:
        nonlocal stopping
        stopping = True  # the hub begins stopping while this first query runs
        return asked(promql, start, at, step)

    w.runner.run_query = run_query
    w.runner.stopping = lambda: stopping
    w.runner.query_workers = 1  # one query at a time: the second is not sent
    with pytest.raises(CycleStopped):
        w.runner.run_once()
    assert len(w.queries) == 1
    assert w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])[1] == 0
    assert w.store.slots() == {}  # no slot marked evaluated
    stopping, w.runner.run_query, w.queries = False, asked, []
    w.runner.run_once()  # the next start (or the next leader): the same slot, evaluated now
    w.dispatcher.deliver_all_due()
    assert len(w.queries) == 2
    assert w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])[1] == 2
    assert len(w.mails()) == 2  # one per policy, each once


def test_a_recovery_sends_a_resolve_notice_only_to_those_told_it_fired(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc())
    w.values = {"node-1": 0.97}
    w.tick(3)
    w.values = {"node-1": 0.4}
    w.tick()
    assert w.subjects()[-1] == "[RESOLVED] node-1 cpu-high 40% (was >90%)"
    assert "It was firing from" in w.mails()[-1][1].text
    # A pending streak that never fired resolves silently.
    w.values = {"node-1": 0.97}
    w.tick(2)
    w.values = {"node-1": 0.4}
    w.tick()
    assert len(w.mails()) == 2


def test_send_resolved_false_keeps_the_resolve_quiet(tmp_path: Path) -> None:
    w = World(tmp_path)
    doc = node_doc()
    doc["notification"]["send_resolved"] = False
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.tick(3)
    w.values = {"node-1": 0.4}
    w.tick(2)
    assert len(w.mails()) == 1


@pytest.mark.parametrize(
    ("repeat", "expected_sends"),
    [
        ({"mode": "none"}, [120]),
        ({"mode": "fixed", "interval": "5m", "max_sends": 4}, [120, 420, 720, 1020]),
        ({"mode": "exponential", "interval": "2m", "max_sends": 4}, [120, 240, 480, 960]),
    ],
)
def test_repeat_rules_per_severity_through_the_whole_pipeline(
    tmp_path: Path, repeat: dict[str, Any], expected_sends: list[int]
) -> None:
    w = World(tmp_path)
    doc = node_doc()
    doc["repeat"] = {"critical": repeat, "minor": {"mode": "fixed", "interval": "1m", "max_sends": 50}}
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.tick(40)  # firing for most of 40 minutes
    assert [round(t - T0) for t, _ in w.mails()] == expected_sends
    assert [e.subject.split("]")[0] for _, e in w.mails()][1:] == ["[STILL FIRING·critical"] * (len(expected_sends) - 1)


def test_notices_outside_the_window_are_held_and_delivered_when_it_opens(tmp_path: Path) -> None:
    # T0 is 2026-11-18 06:30 UTC: outside a 09:00-17:00 UTC window.
    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["window"] = {"start": "09:00", "end": "17:00", "timezone": "UTC"}
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.tick()
    w.values = {"node-1": 0.1}
    w.tick()
    w.values = {"node-2": 0.99}
    w.tick()
    assert w.mails() == []
    held = w.store.outbox()
    assert len(held) == 1 and held[0]["reason"] == "window"
    w.clock.set(T0 + 2.5 * 3600)  # 09:00 UTC
    w.tick()
    assert len(w.mails()) == 1
    mail = w.mails()[0][1]
    assert "held until now" in mail.text
    # All three notices of the night (node-1 fired and resolved, node-2 fired) in one message.
    assert mail.text.count("==== ") == 3
    assert mail.subject.startswith("[FIRING·critical] node-pressure: 3 alerts")


def test_quiet_hours_hold_a_receiver_in_their_own_time_zone_only(tmp_path: Path) -> None:
    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [
        {"email": "day@example.com"},
        # 06:30 UTC is 14:30 in Shanghai: inside these quiet hours until 15:00 local.
        {"email": "napper@example.com", "timezone": "Asia/Shanghai", "quiet_hours": {"start": "13:00", "end": "15:00"}},
    ]
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.tick()
    assert [e.recipient for _, e in w.mails()] == ["day@example.com"]
    w.values = {"node-1": 0.97}
    w.tick(30)
    assert [e.recipient for _, e in w.mails()] == ["day@example.com", "napper@example.com"]
    assert w.mails()[1][0] == T0 + 1800


def test_a_silence_suppresses_and_its_end_lets_the_first_notice_out(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.store.insert_silence(
        silence_id="s1",
        namespace=None,
        matchers={"entity": "node-*"},
        starts_at=T0 - 1,
        ends_at=T0 + 300,
        comment="maintenance",
        actor="admin",
        now=T0,
    )
    w.values = {"node-1": 0.97}
    w.tick(5)
    assert w.mails() == []
    w.tick()
    assert len(w.mails()) == 1 and w.mails()[0][0] == T0 + 300


def test_a_flapping_rule_is_held_and_summarised_once_it_settles(tmp_path: Path) -> None:
    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["flap"] = {"changes": 4, "window": "10m"}
    w.add(doc)
    for i in range(12):
        w.values = {"node-1": 0.97 if i % 2 == 0 else 0.1}
        w.tick()
    # fired, resolved, fired (3 changes told); the 4th change starts the hold.
    assert w.subjects() == [
        "[FIRING·critical] node-1 cpu-high 97% (>90%)",
        "[RESOLVED] node-1 cpu-high 10% (was >90%)",
        "[FIRING·critical] node-1 cpu-high 97% (>90%)",
    ]
    w.values = {"node-1": 0.1}
    w.tick(12)
    assert len(w.mails()) == 4
    summary = w.mails()[3][1]
    assert summary.subject.startswith("[FLAPPING·critical] node-1 cpu-high: changed state")
    assert "current state: ok" in summary.text


def test_the_tenant_quota_overflows_into_one_digest_at_the_end_of_the_hour(tmp_path: Path) -> None:
    w = World(tmp_path, quota=2)
    doc = node_doc(rule={"consecutive": 1})
    w.add(doc)
    for i in range(6):
        w.values = {f"node-{i}": 0.99}
        w.tick()
    assert len(w.mails()) == 2
    hour_end = (T0 // 3600 + 1) * 3600
    w.clock.set(hour_end)
    w.tick()
    assert len(w.mails()) == 3
    digest = w.mails()[2][1]
    assert digest.subject.startswith("[DIGEST]")
    assert digest.text.count("\n- ") == 8  # 4 fires + 4 resolves held by the quota


def test_prometheus_down_puts_rules_in_error_tells_the_admins_once_and_never_resolves(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick()
    w.down = True
    w.tick(5)
    w.down = False
    w.values = {"node-1": 0.97}
    w.tick()
    kinds = [(e.recipient, e.subject.split("]")[0]) for _, e in w.mails()]
    assert kinds == [
        ("oncall@example.com", "[FIRING·critical"),
        ("admin@example.com", "[FIRING·critical"),
        ("admin@example.com", "[RESOLVED"),
    ]
    events, _ = w.store.events(namespaces=None, include_cluster=True)
    assert not any(e["to_state"] == "resolved" and e["entity"] == "node-1" for e in events)


def test_a_cycle_that_dies_before_its_commit_leaves_nothing_and_its_rerun_sends_once(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    real = w.store.commit_cycle

    def killed(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt("kill -9")

    w.store.commit_cycle = killed  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        w.runner.run_once()
    assert w.store.state_rows() == [] and w.store.outbox() == []
    w.store.commit_cycle = real  # type: ignore[method-assign]
    w.tick()
    # Re-evaluating the same slot (e.g. the slot record lost) decides the same notice: deduplicated.
    w.db.execute("DELETE FROM alert_slots")
    w.clock.advance(-60)
    w.tick()
    assert len(w.mails()) == 1


def test_retryable_failures_back_off_and_deliver_in_order_bad_addresses_fail(tmp_path: Path) -> None:
    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [{"email": "oncall@example.com"}, {"email": "nobody@bad.example"}]
    w.add(doc)
    outage = {"on": True}

    def fail(e: OutgoingEmail) -> DeliveryResult | None:
        if e.recipient == "nobody@bad.example":
            return DeliveryResult(e.message_id, ok=False, retry=False, error="550 no such user")
        if outage["on"]:
            return DeliveryResult(e.message_id, ok=False, retry=True, error="connection refused")
        return None

    w.notifier.fail = fail
    for i in range(4):
        w.values = {f"node-{i}": 0.97}
        w.tick()
    assert w.mails() == []
    statuses = {r["recipient"]: r["status"] for r in w.store.outbox()}
    assert statuses["nobody@bad.example"] == "failed"
    outage["on"] = False
    w.tick(10)
    got = [e.subject for _, e in w.mails() if e.recipient == "oncall@example.com"]
    assert (
        got
        == [
            "[FIRING·critical] node-0 cpu-high 97% (>90%)",
            "[FIRING·critical] node-pressure: 2 alerts (node-1, node-0)",
            "[FIRING·critical] node-pressure: 2 alerts (node-2, node-1)",
            "[FIRING·critical] node-pressure: 2 alerts (node-3, node-2)",
        ][: len(got)]
    )
    assert len(got) == 4
    failed = [r for r in w.store.outbox() if r["status"] == "failed"]
    assert failed and all(r["attempts"] == 1 for r in failed)


def test_a_message_caught_mid_send_is_resent_with_the_same_message_id(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.runner.run_once()
    row = w.store.due_messages(w.clock.now(), 10)[0]
    w.store.mark_sending([row["id"]], w.clock.now())  # ... and the process dies here
    assert w.dispatcher.deliver_all_due().sent == 0
    assert w.dispatcher.recover() == 1
    w.dispatcher.deliver_all_due()
    mail = w.mails()[0][1]
    assert mail.message_id == row["message_id"]
    assert "may be a duplicate" in mail.text


def test_a_workload_alert_email_is_in_chinese_when_asked_and_lists_log_lines(tmp_path: Path) -> None:
    w = World(tmp_path)
    calls: list[dict[str, Any]] = []

    def log_lines(**kw: Any) -> Sequence[dict[str, Any]]:
        calls.append(kw)
        return [{"time": "2026-11-18T06:30:05Z", "pod": "api-7d9-x", "message": "GC overhead limit exceeded"}]

    w.dispatcher.renderer = Renderer(public_url="http://hub.example", log_lines=log_lines)
    w.add(
        {
            "name": "api-cpu",
            "level": "workload",
            "namespace": "team-a",
            "rules": [
                {
                    "name": "cpu",
                    "metric": "workload_cpu_usage",
                    "comparator": ">",
                    "threshold": 500,
                    "unit": "millicores",
                    "period": "1m",
                    "consecutive": 1,
                    "severity": "major",
                }
            ],
            "notification": {"receivers": [{"user": "alice", "language": "zh"}]},
        },
        policy_id="w1",
    )
    w.values = {"team-a/api": 0.9, "team-b/api": 3.0}
    w.tick()
    assert len(w.mails()) == 1
    mail = w.mails()[0][1]
    assert mail.recipient == "alice@users.example"
    assert mail.subject == "[告警·重要] deployment/api cpu 900m (>500m)"
    assert "GC overhead limit exceeded" in mail.text and "截至本次通知的最新日志（错误和警告在前）" in mail.text
    assert calls[0]["namespace"] == "team-a" and calls[0]["workload"] == "api"
    msg = email.message_from_string(mail.text)
    assert msg is not None


def test_one_query_per_distinct_key_however_many_policies(tmp_path: Path) -> None:
    w = World(tmp_path)
    for i in range(30):
        doc = node_doc()
        doc["name"] = f"p{i}"
        w.add(doc, policy_id=f"p{i}")
    w.values = {"node-1": 0.5}
    w.tick()
    assert len(w.queries) == 1


def test_stored_policy_documents_are_the_canonical_form(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc())
    row = w.store.policy("p1")
    assert row is not None
    assert json.loads(row["document"])["rules"][0]["period"] == "1m"


def test_a_notice_for_several_recipients_is_rendered_once_per_language(tmp_path: Path) -> None:
    """One message per recipient, but the rendering (text, HTML, chart) is the notice's: it is
    drawn once per delivery round and language, and each message keeps its own recipient and
    Message-ID."""
    w = World(tmp_path)
    renders: list[str] = []

    class CountingRenderer(Renderer):
        def render(self, notices: Sequence[Any], **kw: Any) -> Any:
            renders.append(kw.get("language", "en"))
            return super().render(notices, **kw)

    w.dispatcher.renderer = CountingRenderer(public_url="http://hub.example")
    receivers = [{"email": f"oncall-{i}@example.com"} for i in range(3)]
    receivers.append({"email": "ops-cn@example.com", "language": "zh"})
    w.add(node_doc(notification={"receivers": receivers, "send_resolved": True}))
    w.values = {"node-1": 0.97}
    w.tick(3)
    mails = [m for _, m in w.mails()]
    assert sorted(m.recipient for m in mails) == sorted(r["email"] for r in receivers)
    assert len({m.message_id for m in mails}) == 4
    english = [m for m in mails if m.recipient != "ops-cn@example.com"]
    assert {(m.subject, m.text, m.html, m.images) for m in english} == {
        (english[0].subject, english[0].text, english[0].html, english[0].images)
    }
    chinese = next(m for m in mails if m.recipient == "ops-cn@example.com")
    assert chinese.subject.startswith("[告警·") and chinese.images
    assert sorted(renders) == ["en", "zh"]
