"""The Alertmanager hand-off against a PRIVATE Alertmanager (Debian's prometheus-alertmanager,
started for this module; the sandbox's own is left alone): the hub's production cycle, outbox,
HTTP sender and per-cycle re-post post the alerts; Alertmanager's own API and the grouped
notifications it sends to a loopback webhook show that it received, grouped and resolved them,
and that an outage delays them and then each arrives once.

The hub's clock is a fake one kept a little behind real time (Alertmanager judges ``endsAt``
by its own clock), advanced a 10 s period per cycle; the metric values come from the test.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hub.alerts.notify.http_send import HttpNotifier
from hub.alerts.notify.repost import AlertmanagerRepost
from tests.integration.alertmanager_support import CountingProxy, Notifications, PrivateAlertmanager
from tests.unit.test_alerts_pipeline import node_doc
from tests.unit.test_alerts_webhooks import HookWorld

pytestmark = pytest.mark.integration

T = TypeVar("T")
HOLD = 240.0


def wait_for(what: str, probe: Callable[[], T], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:g}s (last: {last!r})")


@pytest.fixture(scope="module")
def notes() -> Iterator[Notifications]:
    n = Notifications()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory, notes: Notifications) -> Iterator[PrivateAlertmanager]:
    if not PrivateAlertmanager.available():
        pytest.fail("prometheus-alertmanager is not installed (scripts/bootstrap.sh installs it)")
    a = PrivateAlertmanager(tmp_path_factory.mktemp("alertmanager"), notes.url)
    a.start()
    yield a
    a.stop()


def nodes(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["labels"].get("node", "?") for a in alerts if a["labels"].get("source") == "kubehub"}


def notified(notes: Notifications, node: str, status: str) -> int:
    return sum(
        1 for n in notes.received for a in n["alerts"] if a["labels"].get("node") == node and a["status"] == status
    )


def test_alertmanager_receives_groups_resolves_and_survives_an_outage(
    tmp_path: Path, am: PrivateAlertmanager, notes: Notifications
) -> None:
    start = (time.time() - 150) // 10 * 10
    w = HookWorld(tmp_path, start=start)
    doc = node_doc(rule={"consecutive": 1, "period": "10s"})
    proxy = CountingProxy(am.url)
    doc["notification"]["receivers"] = [{"alertmanager": proxy.url, "timeout": "2s"}]
    w.add(doc)
    repost = AlertmanagerRepost(
        store=w.store, http=HttpNotifier(), clock=w.clock, public_url="http://hub.example", hold=HOLD
    )

    def cycle() -> None:
        w.runner.run_once()
        w.dispatcher.deliver_all_due()
        repost.run()
        w.clock.advance(10)

    # 1. Two nodes fire: Alertmanager holds both, in ONE group (its group_by: alertname).
    w.values = {"node-1": 0.97, "node-2": 0.95, "node-3": 0.1}
    cycle()
    got = wait_for("both alerts in Alertmanager", lambda: nodes(am.alerts()) == {"node-1", "node-2"} and am.alerts())
    hub_alerts = {r["entity"]: r for r in w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])[0]}
    for a in got:
        node = a["labels"]["node"]
        assert a["labels"]["alertname"] == "node-pressure" and a["labels"]["severity"] == "critical"
        assert a["generatorURL"] == f"http://hub.example/alerting/alerts/{hub_alerts[node]['id']}"
        assert a["status"]["state"] == "active"
        assert "97%" in a["annotations"]["summary"] or "95%" in a["annotations"]["summary"]
    groups = wait_for(
        "one group of two", lambda: [g for g in am.groups() if nodes(g["alerts"]) == {"node-1", "node-2"}]
    )
    assert len(groups) == 1 and groups[0]["labels"] == {"alertname": "node-pressure"}
    first = wait_for(
        "Alertmanager's grouped notification", lambda: [n for n in notes.received if len(n["alerts"]) == 2]
    )
    assert first[0]["status"] == "firing" and first[0]["groupLabels"] == {"alertname": "node-pressure"}

    # 2. Still firing: re-posted each cycle, so its endsAt moves forward with the hub's clock.
    ends_before = {a["labels"]["node"]: a["endsAt"] for a in am.alerts()}
    cycle()
    cycle()
    ends_after = {a["labels"]["node"]: a["endsAt"] for a in am.alerts()}
    assert all(ends_after[n] > ends_before[n] for n in ("node-1", "node-2")), (ends_before, ends_after)
    assert len(w.store.outbox()) == 1  # the re-posts are not messages: the outbox holds the fire only

    # 3. node-1 recovers: Alertmanager resolves it and tells its receiver so.
    w.values = {"node-1": 0.2, "node-2": 0.95, "node-3": 0.1}
    cycle()
    wait_for("node-1 resolved in Alertmanager", lambda: nodes(am.alerts()) == {"node-2"})
    wait_for("the resolved notification", lambda: notified(notes, "node-1", "resolved") >= 1)

    # 4. Outage: Alertmanager stops; node-3 fires and node-2 recovers meanwhile.
    am.stop()
    w.values = {"node-1": 0.2, "node-2": 0.95, "node-3": 0.99}
    cycle()
    w.values = {"node-1": 0.2, "node-2": 0.2, "node-3": 0.99}
    cycle()
    waiting = [r for r in w.store.outbox() if r["status"] == "waiting"]
    assert len(waiting) == 2  # node-3's fire, then node-2's resolve, in that order
    assert any("closed without an answer" in r["last_error"] for r in waiting)
    assert notified(notes, "node-3", "firing") == 0
    am.start()  # same port and data directory, its alerts gone from memory
    w.clock.advance(60)  # past the outbox's back-off
    w.dispatcher.deliver_all_due()
    repost.run()
    wait_for("node-3 alone active after the outage", lambda: nodes(am.alerts()) == {"node-3"})
    wait_for("node-3's notification", lambda: notified(notes, "node-3", "firing") >= 1)
    rows = w.store.outbox()
    assert {r["status"] for r in rows} == {"sent"}, [(r["status"], r["last_error"]) for r in rows]
    # Each message was accepted once (counted by the proxy, outside the hub), however many
    # cycles and delivery rounds run after it; the re-posts carry no message id.
    cycle()
    w.dispatcher.deliver_all_due()
    ids = [i for i in proxy.accepted if i]
    assert sorted(ids) == sorted(r["message_id"] for r in rows) and len(ids) == len(set(ids)) == 4
    assert proxy.accepted.count("") >= 3  # the per-cycle re-posts
    assert len(w.store.outbox()) == len(rows) and {r["status"] for r in w.store.outbox()} == {"sent"}
    proxy.stop()


def test_the_sandboxs_alertmanager_receives_groups_and_resolves_the_hubs_alerts(tmp_path: Path) -> None:
    """The shared sandbox's Alertmanager (only posted to, never reconfigured or stopped): a policy
    of a name of its own, so other tests' alerts there do not matter."""
    from sandbox.core import Sandbox

    sb = Sandbox.shared()
    name = f"handoff-{uuid.uuid4().hex[:8]}"
    start = (time.time() - 150) // 10 * 10
    w = HookWorld(tmp_path, start=start)
    doc = node_doc(name=name, rule={"consecutive": 1, "period": "10s"})
    doc["notification"]["receivers"] = [{"alertmanager": sb.alertmanager_url}]
    w.add(doc)
    mine = f"/api/v2/alerts?filter=alertname%3D%22{name}%22"

    def active() -> set[str]:
        return nodes(_get(sb.alertmanager_url + mine))

    w.values = {"node-1": 0.97, "node-2": 0.99}
    w.runner.run_once()
    w.dispatcher.deliver_all_due()
    wait_for("both alerts in the sandbox's Alertmanager", lambda: active() == {"node-1", "node-2"})
    groups = wait_for(
        "their group",
        lambda: [g for g in _get(sb.alertmanager_url + "/api/v2/alerts/groups") if g["labels"] == {"alertname": name}],
    )
    assert len(groups) == 1 and nodes(groups[0]["alerts"]) == {"node-1", "node-2"}
    assert groups[0]["receiver"]["name"] == "sandbox"
    w.clock.advance(10)
    w.values = {"node-1": 0.1, "node-2": 0.1}
    w.runner.run_once()
    w.dispatcher.deliver_all_due()
    deadline = time.monotonic() + 20
    while active() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert active() == set()
    assert {r["status"] for r in w.store.outbox()} == {"sent"} and len(w.store.outbox()) == 2


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())
