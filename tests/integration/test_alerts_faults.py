"""Issue 8 faults against real engines: an SMTP outage, a Prometheus outage, and kill -9.

- SMTP stopped while notices pile up, then started: every notice is delivered once, in order.
  (A private aiosmtpd server, a real SMTP server, so the shared catcher keeps running.)
- Prometheus unreachable (a cuttable proxy in front of the sandbox's): rules go to the error
  state, the admins get one meta-alert, nobody gets a resolve, and recovery is announced.
- ``kubehub serve --role worker`` killed with SIGKILL right after a cycle starts, several
  times, and restarted: every message of the outbox reaches the catcher exactly once.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hub.runtime import build_hub
from hub.scope import Scope
from hub.settings import Settings
from hub.store.db import open_state_store
from sandbox.core import Sandbox
from tests.integration.alerts_support import hub_settings, mails_to, start_hub, subject_of, wait_until
from tests.integration.cluster_support import CuttableProxy

pytestmark = pytest.mark.integration

NAMESPACES = ("retail-web", "retail-api", "analytics-etl", "analytics-db")


def memory_policy(
    name: str, receiver: str, *, repeat: dict[str, Any] | None = None, period: str = "10s"
) -> dict[str, Any]:
    """Fires at once for every workload of the project: its working set is above one byte."""
    return {
        "name": name,
        "level": "workload",
        "rules": [
            {
                "name": "memory-any",
                "metric": "workload_memory_usage",
                "aggregation": "last",
                "comparator": ">",
                "threshold": 1,
                "unit": "bytes",
                "period": period,
                "consecutive": 1,
                "severity": "minor",
            }
        ],
        "notification": {"receivers": [{"email": receiver}], "send_resolved": True},
        "repeat": {"minor": repeat or {"mode": "none"}},
    }


class Catcher:
    """A real SMTP server (aiosmtpd) that records Message-IDs in arrival order; stoppable."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.received: list[tuple[str, str]] = []  # (Message-ID, recipient)
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes

        msg = message_from_bytes(envelope.original_content or envelope.content)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append((str(msg["Message-ID"]), rcpt))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def state(settings: Settings, sql: str) -> list[Any]:
    """Rows of the hub's state store, read as an outside observer (SQLite or PostgreSQL)."""
    db = open_state_store(settings)
    try:
        return db.query(sql)
    finally:
        db.close()


def outbox(settings: Settings) -> list[Any]:
    return state(settings, "SELECT * FROM alert_outbox ORDER BY id")


def test_an_smtp_outage_delays_notices_and_then_delivers_each_once_in_order(sandbox: Sandbox, tmp_path: Path) -> None:
    catcher = Catcher()
    receiver = f"oncall-{uuid.uuid4().hex[:8]}@example.com"
    settings = hub_settings(sandbox, tmp_path / "hub").replace(smtp={"port": catcher.port, "connections": 2})
    hub = start_hub(settings)
    try:
        svc = hub.alerting
        # The server is down from the start: five policies fire one after another.
        for i, ns in enumerate((*NAMESPACES, "kubehub-system")):
            svc.create_policy(memory_policy(f"mem-{i}", receiver), level="workload", namespace=ns, actor="test")
            wait_until(lambda n=i + 1: len(outbox(settings)) >= n, timeout=60, what=f"message {i + 1} queued")
        rows = wait_until(
            lambda: [r for r in outbox(settings) if r["attempts"] > 0] or None,
            timeout=30,
            what="a failed delivery attempt",
        )
        assert all(r["status"] == "waiting" for r in outbox(settings))
        assert "cannot connect" in rows[0]["last_error"]
        assert catcher.received == []
        catcher.start()
        wait_until(
            lambda: all(r["status"] == "sent" for r in outbox(settings)),
            timeout=60,
            what="every message sent",
        )
        expected = [r["message_id"] for r in outbox(settings)]
        got = [mid for mid, rcpt in catcher.received if rcpt == receiver]
        assert len(expected) == 5
        assert got == expected  # once each, in the order they were queued
    finally:
        hub.close()
        catcher.stop()


def test_prometheus_down_errors_the_rules_alerts_admins_once_and_never_resolves(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    port = int(urllib.parse.urlparse(sandbox.prometheus_url).port or 9090)
    proxy = CuttableProxy(port)
    run = uuid.uuid4().hex[:8]
    tenant, admin = f"tenant-{run}@example.com", f"hub-admin-{run}@example.com"
    settings = hub_settings(sandbox, tmp_path / "hub", admin_emails=admin).replace(
        prometheus={"url": f"http://127.0.0.1:{proxy.port}", "timeout": 5.0}
    )
    hub = start_hub(settings)
    try:
        svc = hub.alerting
        svc.create_policy(memory_policy("mem", tenant), level="workload", namespace="retail-api", actor="test")
        wait_until(lambda: mails_to(sandbox, tenant), timeout=60, what="the firing email")
        proxy.cut()
        wait_until(
            lambda: any(
                "kubehub-metric-source" in subject_of(m) or "prometheus" in subject_of(m)
                for m in mails_to(sandbox, admin)
            ),
            timeout=60,
            what="the meta-alert to the admins",
        )
        states = wait_until(
            lambda: (
                {
                    a["state"]
                    for a in svc.alerts(Scope(all_namespaces=True, namespaces={}))[0]
                    if a["namespace"] == "retail-api"
                }
                == {"error"}
            ),
            timeout=30,
            what="the workload alerts in the error state",
        )
        assert states
        time.sleep(15)  # several cycles in error
        proxy.heal()
        wait_until(
            lambda: any(subject_of(m).startswith("[RESOLVED]") for m in mails_to(sandbox, admin)),
            timeout=60,
            what="the meta-alert's resolve",
        )
        wait_until(
            lambda: (
                {
                    a["state"]
                    for a in svc.alerts(Scope(all_namespaces=True, namespaces={}))[0]
                    if a["namespace"] == "retail-api"
                }
                == {"firing"}
            ),
            timeout=30,
            what="the workload alerts firing again",
        )
        admin_subjects = [subject_of(m) for m in mails_to(sandbox, admin)]
        assert len([s for s in admin_subjects if s.startswith("[FIRING")]) == 1, admin_subjects
        tenant_subjects = [subject_of(m) for m in mails_to(sandbox, tenant)]
        assert not any(s.startswith("[RESOLVED]") for s in tenant_subjects), tenant_subjects
        events, _ = svc.history(Scope(all_namespaces=True, namespaces={}), limit=1000)
        assert not any(e["to"] == "resolved" and e["namespace"] == "retail-api" for e in events)
    finally:
        hub.close()
        proxy.close()


def test_kill_9_during_cycles_loses_and_duplicates_no_email(sandbox: Sandbox, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    receivers = [f"kill-{run}-{i}@example.com" for i in range(len(NAMESPACES))]
    settings = hub_settings(sandbox, tmp_path / "hub", tick_seconds=2.0, delivery_seconds=1.0)
    # Policies are stored before the worker starts; repeats keep notices flowing for minutes.
    hub = build_hub(settings)
    svc = hub.alerting
    for ns, receiver in zip(NAMESPACES, receivers, strict=True):
        svc.create_policy(
            memory_policy(f"mem-{ns}", receiver, repeat={"mode": "fixed", "interval": "1m", "max_sends": 3}),
            level="workload",
            namespace=ns,
            actor="test",
        )
    hub.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
    env.update(
        KUBEHUB_DATA_DIR=str(settings.data_dir),
        KUBEHUB_DATABASE_URL=settings.database_url,  # '': SQLite in the data directory
        KUBEHUB_KUBERNETES_KUBECONFIG="none",
        KUBEHUB_LOGS_SHIP="false",
        KUBEHUB_PROMETHEUS_URL=sandbox.prometheus_url,
        KUBEHUB_SMTP_HOST=sandbox.smtp_host,
        KUBEHUB_SMTP_PORT=str(sandbox.smtp_port),
        KUBEHUB_ALERTS_TICK_SECONDS="2",
        KUBEHUB_ALERTS_DELIVERY_SECONDS="1",
        KUBEHUB_ALERTS_RETRY_INITIAL_SECONDS="1",
        KUBEHUB_ALERTS_RETRY_MAX_SECONDS="4",
        KUBEHUB_ALERTS_GROUP_WAIT_SECONDS="2",  # grouping across policies on, its waits short
        KUBEHUB_ALERTS_GROUP_INTERVAL_SECONDS="5",
        # The restarted worker takes over the killed one's lease once it expires (issue 14).
        KUBEHUB_LEADER_LEASE_SECONDS="3",
        KUBEHUB_LOG_LEVEL="debug",
    )
    rng = random.Random(8)
    kills = 0
    interrupted = 0  # kills that landed before the cycle committed
    lines: queue.Queue[tuple[int, str]] = queue.Queue()

    def start() -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--role", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        def drain() -> None:  # always read the (debug) log, or a full pipe would stall the worker
            assert p.stderr is not None
            for text in p.stderr:
                lines.put((p.pid, text))

        threading.Thread(target=drain, daemon=True).start()
        return p

    deadline = time.monotonic() + 200
    proc = start()
    try:
        while kills < 6 and time.monotonic() < deadline:
            try:
                pid, line = lines.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"the worker said nothing for 30 s (exit code {proc.poll()})") from None
            if pid != proc.pid:
                continue
            if "alert cycle started" in line:
                time.sleep(rng.uniform(0.0, 0.02))  # inside the cycle: it takes tens of ms
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                time.sleep(0.5)  # the drain thread reaches the end of the dead worker's log
                tail = []
                while not lines.empty():
                    p, text = lines.get()
                    if p == proc.pid:
                        tail.append(text)
                if not any("alert cycle committed" in t for t in tail):
                    interrupted += 1
                time.sleep(rng.uniform(5, 25))  # let notices come due while it is down
                proc = start()
        assert kills == 6
        assert interrupted >= 3, f"only {interrupted} of {kills} kills landed inside a cycle"

        # Let the last life run until every repeat (3 sends, 1 minute apart) went out.
        def settled() -> bool:
            rows = outbox(settings)
            return bool(rows) and all(r["status"] == "sent" for r in rows) and _all_repeats_done(settings)

        wait_until(settled, timeout=240, interval=2, what="all notices sent")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows = outbox(settings)
    sent = {r["message_id"]: r for r in rows}
    assert len(sent) == len(rows)
    caught: list[str] = []
    for receiver in receivers:
        caught += [str(m["Message-ID"]) for m in mails_to(sandbox, receiver)]
    assert sorted(caught) == sorted(sent), "every queued message arrived exactly once"
    assert len(caught) == len(set(caught))
    # And nothing was lost upstream of the outbox: each alert that fired was told once, then
    # repeated until its max_sends (3) while it kept firing.
    alerts = [tuple(r) for r in state(settings, "SELECT state, sends FROM alerts WHERE fired_at IS NOT NULL")]
    kinds = {r[0]: r[1] for r in state(settings, "SELECT kind, COUNT(*) FROM alert_notices GROUP BY kind")}
    assert alerts and all(sends == 3 for state, sends in alerts if state == "firing")
    assert kinds["firing"] == len(alerts)
    assert kinds["repeat"] == sum(sends - 1 for _, sends in alerts)


def _all_repeats_done(settings: Settings) -> bool:
    rows = state(settings, "SELECT sends FROM alerts WHERE state='firing'")
    return bool(rows) and all(r[0] >= 3 for r in rows)
