"""Grouping across policies, live: the sandbox's Prometheus and a private SMTP server (aiosmtpd,
a real one; the shared catcher is left alone).

Five node policies (different metrics and aggregations) watching one node all trip on it: the
receiver gets ONE email listing the five alerts with their evidence. A sixth policy on the same
node, later: ONE update carrying only it. Which alerts must fire is decided by Prometheus's
own answer to each rule's catalogue query (thresholds set at half the node's current value),
not by the hub.
"""

from __future__ import annotations

import email
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.catalogue import default_catalogue
from sandbox.core import Sandbox
from tests.integration.alerts_support import hub_settings, prom_query, start_hub, subject_of, text_of, wait_until
from tests.integration.test_alerts_faults import Catcher

pytestmark = pytest.mark.integration

PERIOD = 10
RULES = [  # (policy, metric, aggregation)
    ("cpu", "node_cpu_utilisation", "last"),
    ("cpu-peak", "node_cpu_utilisation", "max"),
    ("memory", "node_memory_utilisation", "last"),
    ("memory-floor", "node_memory_utilisation", "min"),
    ("disk", "node_disk_size_utilisation", "last"),
]
SIXTH = ("disk-avg", "node_disk_size_utilisation", "avg")


class Mailbox(Catcher):
    """The faults test's SMTP server, keeping whole messages too."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.messages.append(msg)
        return await super().handle_DATA(server, session, envelope)


def policy(name: str, metric: str, aggregation: str, node: str, threshold_pct: float, receiver: str) -> dict[str, Any]:
    return {
        "name": f"node-{name}",
        "level": "node",
        "target": {"nodes": [node]},
        "rules": [
            {
                "name": f"{name}-high",
                "metric": metric,
                "aggregation": aggregation,
                "comparator": ">",
                "threshold": threshold_pct,
                "unit": "percent",
                "period": f"{PERIOD}s",
                "consecutive": 1,
                "severity": "major",
            }
        ],
        "notification": {"receivers": [{"email": receiver}], "send_resolved": True},
        "repeat": {"major": {"mode": "none"}},
    }


def test_five_node_policies_tripped_by_one_node_make_one_email_and_a_sixth_one_update(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cat = default_catalogue()
    # the node, and each rule's threshold: half its value now, by Prometheus's own answer
    cpu, _ = cat.alert_query("nodes", "node_cpu_utilisation", "last", PERIOD)
    node = sorted(r["metric"]["node"] for r in prom_query(sandbox, cpu))[0]

    def threshold(metric: str) -> float:
        query, _ = cat.alert_query("nodes", metric, "last", PERIOD)
        value = {r["metric"]["node"]: float(r["value"][1]) for r in prom_query(sandbox, query)}[node]
        assert value > 0.02, (metric, value)
        return round(value * 50, 1)  # percent: half the value

    limits = {m: threshold(m) for m in {r[1] for r in RULES}}
    mailbox = Mailbox()
    mailbox.start()
    receiver = f"group-{uuid.uuid4().hex[:8]}@example.com"
    settings = hub_settings(
        sandbox, tmp_path / "hub", tick_seconds=2.0, group_wait_seconds=10.0, group_interval_seconds=5.0
    ).replace(smtp={"port": mailbox.port})
    hub = start_hub(settings)
    try:
        svc = hub.alerting
        for name, metric, agg in RULES:
            svc.create_policy(policy(name, metric, agg, node, limits[metric], receiver), level="node", actor="test")
        first = wait_until(lambda: list(mailbox.messages), timeout=90, what="the grouped email")
        time.sleep(6)  # a second email would have come by now (five alerts, group_interval 5 s)
        assert len(mailbox.messages) == 1, [subject_of(m) for m in mailbox.messages]
        msg = first[0]
        body = text_of(msg)
        assert subject_of(msg).startswith(f"[FIRING·major] {node}: 5 alerts ("), subject_of(msg)
        for name, metric, _ in RULES:
            assert f"node-{name}" in body and f"{name}-high" in body, name
            assert f"> {limits[metric]:g}%" in body or f"threshold > {limits[metric]:g}%" in body, (name, body)
        assert body.count(f"on node {node}") == 5
        assert body.count("First breach:") == 5  # each alert with its own evidence
        assert msg["X-Kubehub-Alerts"] and len(str(msg["X-Kubehub-Alerts"]).split(",")) == 5

        # a sixth policy on the same node: one update, carrying only the new alert
        name, metric, agg = SIXTH
        svc.create_policy(policy(name, metric, agg, node, limits[metric], receiver), level="node", actor="test")
        wait_until(lambda: len(mailbox.messages) >= 2, timeout=60, what="the update")
        time.sleep(6)
        assert len(mailbox.messages) == 2
        update = mailbox.messages[1]
        assert f"{name}-high" in text_of(update) and "cpu-high" not in text_of(update)
        assert subject_of(update).startswith(f"[FIRING·major] {node} ")
        ids = [m["Message-ID"] for m in mailbox.messages]
        assert len(set(ids)) == 2
    finally:
        hub.close()
        mailbox.stop()
