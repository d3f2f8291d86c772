"""Webhook and Alertmanager receivers through the real cycle, outbox and HTTP sender, against a
real HTTP server on loopback that this test starts (``http.server``), which checks each body's
signature with its own HMAC (not the hub's helper) and can answer 5xx, 4xx, be slow or be down.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.notify import hooks
from hub.alerts.notify.http_send import HttpNotifier
from hub.alerts.notify.outbox import Dispatcher
from hub.alerts.notify.render import Renderer
from hub.alerts.policy import Receiver, parse_policy
from hub.alerts.service import keep_secrets, redact_secrets
from hub.timeutil import FakeClock
from tests.unit.test_alerts_pipeline import T0, World, node_doc

pytestmark = pytest.mark.unit

SECRET = "s3cret-for-the-hook-0123456789"


class Hook:
    """A webhook receiver on 127.0.0.1: records every request; ``answers`` scripts statuses
    (popped per request, 200 when empty); ``delay`` makes it slow."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hook.delay:
                    time.sleep(hook.delay)
                status = hook.answers.pop(0) if hook.answers else 200
                hook.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body, "status": status}
                )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no thanks")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests if 200 <= r["status"] < 300]


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.stop()


def own_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookWorld(World):
    """The pipeline world with the HTTP sender (the production one) behind the outbox."""

    def __init__(self, tmp: Path, *, start: float = T0) -> None:
        super().__init__(tmp, start=start)
        self.leading = True

        def receiver(policy_id: str, recipient: str) -> Receiver | None:
            row = self.store.policy(policy_id)
            if row is None:
                return None
            policy = parse_policy(json.loads(row["document"]))
            return next((r for r in policy.notification.receivers if r.key == recipient), None)

        self.dispatcher = Dispatcher(
            store=self.store,
            notifier=self.notifier,
            renderer=Renderer(public_url="http://hub.example"),
            clock=self.clock,
            retry_initial=30,
            retry_max=300,
            http=HttpNotifier(),
            receiver=receiver,
            public_url="http://hub.example",
            alertmanager_hold=240,
            may_send=lambda: self.leading,
        )

    def add(self, doc: dict[str, Any], policy_id: str = "p1") -> None:
        policy = parse_policy(doc)
        self.store.insert_policy(
            policy_id=policy_id,
            level=policy.level,
            namespace=policy.namespace,
            name=policy.name,
            document=policy.to_document(secrets=True),
            enabled=True,
            actor="test",
            now=self.clock.now(),
        )


def hook_doc(url: str, **receiver: Any) -> dict[str, Any]:
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [{"webhook": url, "secret": SECRET, "timeout": "2s", **receiver}]
    return doc


def test_a_firing_and_its_resolve_arrive_once_each_as_alertmanager_webhook_json_signed(
    tmp_path: Path, hook: Hook
) -> None:
    w = HookWorld(tmp_path)
    w.add(hook_doc(hook.url))
    w.values = {"node-1": 0.97, "node-2": 0.95, "node-3": 0.1}
    w.tick()
    assert len(hook.requests) == 1
    req = hook.requests[0]
    assert req["headers"]["Content-Type"] == "application/json"
    # the signature is HMAC-SHA256 over the exact body received, computed here independently
    assert req["headers"]["X-Kubehub-Signature"] == own_signature(SECRET, req["body"])
    assert req["headers"]["X-Kubehub-Signature"] != own_signature("another secret", req["body"])
    body = json.loads(req["body"])
    # Alertmanager's webhook payload, version 4: every field a chat adapter reads
    assert set(body) >= {
        "version",
        "groupKey",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["externalURL"] == "http://hub.example"
    assert body["groupLabels"] == {"alertname": "node-pressure"}
    assert body["commonLabels"]["alertname"] == "node-pressure"
    assert body["commonLabels"]["severity"] == "critical"
    assert "node" not in body["commonLabels"]  # two nodes: not common
    by_node = {a["labels"]["node"]: a for a in body["alerts"]}
    assert set(by_node) == {"node-1", "node-2"}
    a = by_node["node-1"]
    assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["startsAt"] == "2026-11-18T06:30:00.000Z"  # T0: the slot it fired in ends then
    assert a["generatorURL"].startswith("http://hub.example/alerting/alerts/")
    assert len(a["fingerprint"]) == 16 and a["fingerprint"] != by_node["node-2"]["fingerprint"]
    assert "97%" in a["annotations"]["summary"] and "node-1" in a["annotations"]["summary"]
    # still firing: no second message (the policy's repeat is none)
    w.tick(2)
    assert len(hook.requests) == 1
    w.values = {"node-1": 0.2, "node-2": 0.95}
    w.tick()
    assert len(hook.requests) == 2
    second = json.loads(hook.requests[1]["body"])
    assert second["status"] == "resolved"
    [resolved] = second["alerts"]
    assert resolved["labels"]["node"] == "node-1" and resolved["status"] == "resolved"
    assert resolved["fingerprint"] == a["fingerprint"]  # the same alert
    assert resolved["endsAt"] == "2026-11-18T06:33:00.000Z"
    assert hook.requests[1]["headers"]["X-Kubehub-Signature"] == own_signature(SECRET, hook.requests[1]["body"])
    assert {r["status"] for r in w.store.outbox()} == {"sent"}
    w.tick(3)
    assert len(hook.requests) == 2  # nothing twice


def test_5xx_408_and_429_are_retried_with_back_off_and_delivered_once_in_order(tmp_path: Path, hook: Hook) -> None:
    w = HookWorld(tmp_path)
    w.add(hook_doc(hook.url))
    hook.answers = [503, 429, 408]
    w.values = {"node-1": 0.97}
    w.runner.run_once()
    times = []
    for _ in range(60):  # 5 s steps: back-off 30, 60, 120 s
        if w.dispatcher.deliver_all_due().sent:
            times.append(w.clock.now())
        if len(hook.requests) == 4:
            break
        w.clock.advance(5)
    assert [r["status"] for r in hook.requests] == [503, 429, 408, 200]
    # the same bytes each time (the same message), and once accepted nothing more
    assert len({json.loads(r["body"])["groupKey"] for r in hook.requests}) == 1
    assert times == [T0 + 30 + 60 + 120]
    [row] = w.store.outbox()
    assert row["status"] == "sent" and row["attempts"] == 4
    w.dispatcher.deliver_all_due()
    assert len(hook.accepted()) == 1


def test_a_4xx_other_than_408_and_429_fails_for_good_and_says_why(tmp_path: Path, hook: Hook) -> None:
    w = HookWorld(tmp_path)
    w.add(hook_doc(hook.url))
    hook.answers = [401]
    w.values = {"node-1": 0.97}
    w.tick()
    w.tick(5, step=600)
    assert [r["status"] for r in hook.requests] == [401]
    [row] = w.store.outbox()
    assert row["status"] == "failed"
    assert "answered 401: no thanks" in row["last_error"]


def test_a_receiver_down_or_too_slow_is_retried_and_gets_each_message_once_when_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Hook()
    port = hook.port
    hook.stop()  # nothing listens: connection refused
    w = HookWorld(tmp_path)
    w.add(hook_doc(f"http://127.0.0.1:{port}/hook"))
    caplog.set_level(logging.DEBUG)
    w.values = {"node-1": 0.97}
    w.tick()
    w.values = {"node-1": 0.2}
    w.tick()
    rows = w.store.outbox()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"waiting"}
    assert any("cannot reach" in r["last_error"] for r in rows)
    back = Hook(port)
    try:
        back.delay = 3.0  # longer than the receiver's 2 s timeout
        w.clock.advance(600)
        w.dispatcher.deliver_all_due()
        assert any("no answer within 2s" in r["last_error"] for r in w.store.outbox())
        back.delay = 0.0
        for _ in range(10):
            w.clock.advance(600)
            w.dispatcher.deliver_all_due()
        accepted = back.accepted()
        # the slow answer came after the timeout: the receiver may have that copy too (it is
        # marked X-Kubehub-Message-Id, the same both times); what counts is the order and
        # that each message was accepted once after the outage
        ids = [r["headers"]["X-Kubehub-Message-Id"] for r in back.requests if r["status"] == 200]
        assert [b["status"] for b in accepted][-2:] == ["firing", "resolved"]
        assert len(set(ids)) == 2
        assert {r["status"] for r in w.store.outbox()} == {"sent"}
    finally:
        back.stop()
    assert SECRET not in caplog.text
    assert all(SECRET not in (r["last_error"] or "") for r in w.store.outbox())


def test_a_replica_without_the_lease_posts_nothing(tmp_path: Path, hook: Hook) -> None:
    w = HookWorld(tmp_path)
    w.add(hook_doc(hook.url))
    w.leading = False
    w.values = {"node-1": 0.97}
    w.tick()
    assert hook.requests == []
    assert w.store.outbox()[0]["status"] == "waiting"
    w.leading = True
    w.clock.advance(600)
    w.dispatcher.deliver_all_due()
    assert len(hook.accepted()) == 1


def test_an_alertmanager_receiver_gets_v2_alerts_with_ends_at_ahead_then_the_resolve_time(
    tmp_path: Path, hook: Hook
) -> None:
    w = HookWorld(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    base = f"http://127.0.0.1:{hook.port}"
    doc["notification"]["receivers"] = [{"alertmanager": base}]
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.tick()
    [req] = hook.requests
    assert req["path"] == "/api/v2/alerts"
    assert "X-Kubehub-Signature" not in req["headers"]
    [alert] = json.loads(req["body"])
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert alert["labels"]["alertname"] == "node-pressure" and alert["labels"]["node"] == "node-1"
    assert alert["endsAt"] == "2026-11-18T06:34:00.000Z"  # sent at T0, held 240 s
    w.values = {"node-1": 0.2}
    w.tick()
    [resolved] = json.loads(hook.requests[1]["body"])
    assert resolved["labels"] == alert["labels"]
    assert resolved["endsAt"] == "2026-11-18T06:31:00.000Z"


def test_webhook_secrets_are_write_only() -> None:
    doc = hook_doc("http://127.0.0.1:9/hook")
    policy = parse_policy(doc)
    assert SECRET not in repr(policy)
    shown = policy.to_document()
    assert shown["notification"]["receivers"][0] == {
        "webhook": "http://127.0.0.1:9/hook",
        "secret_set": True,
        "timeout": "2s",
    }
    stored = policy.to_document(secrets=True)
    assert stored["notification"]["receivers"][0]["secret"] == SECRET
    assert SECRET not in json.dumps(redact_secrets(json.loads(json.dumps(stored))))
    # the form sends the receiver back without the secret: the stored one is kept ...
    again = parse_policy(shown)
    assert keep_secrets(again, policy).notification.receivers[0].secret == SECRET
    # ... an empty secret removes it, a new one replaces it, another URL does not inherit it
    cleared = parse_policy(hook_doc("http://127.0.0.1:9/hook", secret=""))
    assert not keep_secrets(cleared, policy).notification.receivers[0].secret
    moved = parse_policy({**shown, "notification": {"receivers": [{"webhook": "http://127.0.0.1:9/other"}]}})
    assert keep_secrets(moved, policy).notification.receivers[0].secret is None


@pytest.mark.parametrize(
    ("receiver", "field", "says"),
    [
        ({"webhook": "ftp://x.example/"}, "webhook", "not an http:// or https:// URL"),
        ({"webhook": "http://user:pw@x.example/"}, "webhook", "must not carry a user or password"),
        ({"webhook": "http:///nohost"}, "webhook", "names no host"),
        ({"webhook": "http://x.example/", "secret": "short"}, "secret", "16..256"),
        ({"alertmanager": "http://x.example", "secret": SECRET}, "secret", "only a webhook receiver"),
        ({"webhook": "http://x.example/", "timeout": "5m"}, "timeout", "1s..60s"),
        ({"email": "a@b.example", "timeout": "5s"}, "timeout", "only webhook and alertmanager"),
        ({"webhook": "http://x.example/", "email": "a@b.example"}, "", "exactly one of"),
    ],
)
def test_bad_http_receivers_are_refused_naming_the_field(receiver: dict[str, Any], field: str, says: str) -> None:
    from hub.alerts.policy import PolicyInvalid

    doc = node_doc()
    doc["notification"]["receivers"] = [receiver]
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(doc)
    want = "notification.receivers[0]" + (f".{field}" if field else "")
    assert any(p.path == want and says in p.message for p in info.value.problems), info.value.problems


def test_the_documented_verification_recipe_accepts_the_body_and_refuses_a_changed_one() -> None:
    body = hooks.body_bytes({"version": "4", "alerts": []})
    header = hooks.signature(SECRET, body)
    assert header == own_signature(SECRET, body)
    assert hooks.verify(SECRET, body, header)
    assert not hooks.verify(SECRET, body + b" ", header)


def test_through_the_api_the_secret_is_never_answered_kept_on_edit_and_never_audited(tmp_path: Path) -> None:
    from tests.unit.conftest_tenancy import build_world
    from tests.unit.test_alerts_api import workload_policy

    world = build_world(tmp_path, clock=FakeClock(T0))
    try:
        c = world.client("project-operator")
        url = "/api/v1/namespaces/ns-a1/alerting/policies"
        doc = workload_policy()
        doc["notification"]["receivers"] = [{"webhook": "https://hooks.example/k", "secret": SECRET}]
        r = c.post(url, json=doc)
        assert r.status_code == 201, r.get_data(as_text=True)
        pid = r.get_json()["id"]
        for answer in (r, c.get(f"{url}/{pid}"), c.get(url), c.post(f"{url}/validate", json=doc)):
            text = answer.get_data(as_text=True)
            assert SECRET not in text and '"secret_set":true' in text.replace(" ", ""), text
        stored = json.loads(
            world.hub.db.query_one("SELECT document FROM alert_policies WHERE id=?", (pid,))["document"]
        )
        assert stored["notification"]["receivers"][0]["secret"] == SECRET  # kept, for signing
        # the console's round trip: the answer sent back as it came (secret_set, no secret)
        shown = c.get(f"{url}/{pid}").get_json()
        edit = {k: shown[k] for k in ("name", "level", "rules", "notification")}
        assert c.put(f"{url}/{pid}", json=edit).status_code == 200
        stored = json.loads(
            world.hub.db.query_one("SELECT document FROM alert_policies WHERE id=?", (pid,))["document"]
        )
        assert stored["notification"]["receivers"][0]["secret"] == SECRET
        audit = world.hub.db.query("SELECT detail FROM audit_log")
        assert all(SECRET not in (row["detail"] or "") for row in audit)
        bad = {**edit, "notification": {"receivers": [{"webhook": "https://hooks.example/k", "secret": "short"}]}}
        r = c.put(f"{url}/{pid}", json=bad)
        assert r.status_code == 422 and r.get_json()["field"] == "notification.receivers[0].secret"
        assert "short" not in r.get_data(as_text=True)  # not even a refused secret is echoed
    finally:
        world.hub.close()


def test_the_console_form_takes_http_receivers_and_never_shows_the_secret_back(tmp_path: Path) -> None:
    from tests.unit.conftest_tenancy import HOME_NAMESPACE, build_world
    from tests.unit.test_console_pages import HTML, policy_form

    world = build_world(tmp_path, clock=FakeClock(T0))
    try:
        client, csrf = world.session("project-operator")
        base = f"/projects/{HOME_NAMESPACE}/alerting/policies"
        form = policy_form(csrf, "2")
        form["receivers"] = "webhook:https://hooks.example/k timeout=5s\nalertmanager:http://am.example:9093"
        # refused (a bad threshold): the page comes back without the typed secret
        refused = client.post(base, data={**form, "rules-0-threshold": "-2", "webhook_secret": SECRET}, headers=HTML)
        assert refused.status_code == 422 and SECRET not in refused.get_data(as_text=True)
        check = client.post(f"{base}/check", data={**form, "rules-0-threshold": "-2", "webhook_secret": SECRET},
                            headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert SECRET not in check.get_data(as_text=True)
        receivers = f"{{receivers: [{{webhook: 'https://h.example/', secret: {SECRET}}}]}}"
        yaml_text = (
            "name: y\nlevel: workload\nrules: [{name: c, metric: workload_cpu_usage, comparator: '>',"
            f" threshold: -1, period: 1m, severity: minor}}]\nnotification: {receivers}\n"
        )
        r = client.post(base, data={"csrf_token": csrf, "mode": "yaml", "yaml": yaml_text}, headers=HTML)
        assert r.status_code == 422 and SECRET not in r.get_data(as_text=True)
        # saved: receivers with their timeout, the secret stored, the edit page without it
        r = client.post(base, data={**form, "webhook_secret": SECRET}, headers=HTML)
        assert r.status_code == 303, r.get_data(as_text=True)
        [saved] = world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE)
        assert saved["notification"]["receivers"] == [
            {"webhook": "https://hooks.example/k", "secret_set": True, "timeout": "5s"},
            {"alertmanager": "http://am.example:9093"},
        ]
        shown = client.get(r.headers["Location"], headers=HTML)
        status, body = shown.status_code, shown.get_data(as_text=True)
        assert status == 200 and SECRET not in body
        assert "webhook:https://hooks.example/k timeout=5s" in body and "a secret is set" in body

        def stored_secret() -> str | None:
            row = world.hub.db.query_one("SELECT document FROM alert_policies WHERE id=?", (saved["id"],))
            return json.loads(row["document"])["notification"]["receivers"][0].get("secret")

        assert stored_secret() == SECRET
        edit = f"{base}/{saved['id']}"
        assert client.post(edit, data=form, headers=HTML).status_code == 303  # blank: kept
        assert stored_secret() == SECRET
        assert client.post(edit, data={**form, "webhook_secret_clear": "on"}, headers=HTML).status_code == 303
        assert stored_secret() is None
    finally:
        world.hub.close()


def test_without_an_http_sender_a_replay_lists_what_http_receivers_would_have_got(tmp_path: Path) -> None:
    w = World(tmp_path)  # the backtest's shape: a recording notifier and no HTTP sender
    w.add(hook_doc("https://hooks.example/k"))
    w.values = {"node-1": 0.97}
    w.tick()
    assert [(e.recipient, e.subject) for _, e in w.mails()] == [
        ("webhook:https://hooks.example/k", "[FIRING·critical] node-1 cpu-high 97% (>90%)")
    ]


def test_the_per_cycle_repost_keeps_open_alerts_alive_and_drops_resolved_ones(tmp_path: Path, hook: Hook) -> None:
    from hub.alerts.notify.repost import AlertmanagerRepost

    w = HookWorld(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [{"alertmanager": f"http://127.0.0.1:{hook.port}/"}]
    w.add(doc)
    repost = AlertmanagerRepost(
        store=w.store, http=HttpNotifier(), clock=w.clock, public_url="http://hub.example", hold=240
    )

    def reposted() -> list[tuple[str, str]]:
        before = len(hook.requests)
        report = repost.run()
        bodies = [json.loads(r["body"]) for r in hook.requests[before:]]
        assert report.posted == len(bodies) and report.failed == 0
        return sorted((a["labels"]["node"], a["endsAt"]) for body in bodies for a in body)

    assert reposted() == []  # nothing fired yet
    w.values = {"node-1": 0.97, "node-2": 0.99}
    w.tick()  # fires; the outbox posts it (sends = 1)
    assert reposted() == [("node-1", "2026-11-18T06:35:00.000Z"), ("node-2", "2026-11-18T06:35:00.000Z")]
    w.values = {"node-2": 0.99}  # node-1's data is gone: held open in nodata, still re-posted
    w.tick()
    assert [n for n, _ in reposted()] == ["node-1", "node-2"]
    w.values = {"node-1": 0.1, "node-2": 0.1}
    w.tick()
    assert reposted() == []  # resolved: the outbox posted the resolves, no more re-posts
    assert all(r["path"] == "/api/v2/alerts" for r in hook.requests)


def test_with_several_clusters_webhooks_and_alertmanager_name_the_implicit_cluster(tmp_path: Path, hook: Hook) -> None:
    """In a hub of several clusters the implicit cluster's alerts carry ``cluster`` (its name)
    in the webhook payload, the Alertmanager post and the per-cycle re-post (one label set, so
    Alertmanager sees one alert); a single-cluster hub's payloads stay without it."""
    from hub.alerts.notify.repost import AlertmanagerRepost

    several = {"on": True}

    def implicit() -> str:
        return "default" if several["on"] else ""

    w = HookWorld(tmp_path)
    w.dispatcher.implicit_cluster = implicit
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [
        {"webhook": hook.url, "secret": SECRET},
        {"alertmanager": f"http://127.0.0.1:{hook.port}"},
    ]
    w.add(doc)
    repost = AlertmanagerRepost(store=w.store, http=HttpNotifier(), clock=w.clock, public_url="http://hub.example",
                                hold=240, implicit_cluster=implicit)  # fmt: skip
    w.values = {"node-1": 0.97}
    w.tick()
    by_path = {r["path"]: json.loads(r["body"]) for r in hook.requests}
    payload, [posted] = by_path["/hook"], by_path["/api/v2/alerts"]
    [alert] = payload["alerts"]
    assert alert["labels"]["cluster"] == "default" and payload["commonLabels"]["cluster"] == "default"
    assert posted["labels"] == alert["labels"]
    before = len(hook.requests)
    assert repost.run().posted == 1
    [[again]] = [json.loads(r["body"]) for r in hook.requests[before:]]
    assert again["labels"] == posted["labels"]
    # One cluster again (the added one removed): the labels are the single-cluster hub's.
    several["on"] = False
    w.values = {"node-2": 0.97}
    w.tick()
    later = [json.loads(r["body"]) for r in hook.requests[before + 1 :] if r["path"] == "/hook"]
    assert later and all("cluster" not in a["labels"] for body in later for a in body["alerts"])
