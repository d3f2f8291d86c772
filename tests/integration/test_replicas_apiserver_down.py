"""Issue 14, several replicas: stop the Kubernetes API server, and alerts are still evaluated and
delivered.

Three real hub processes on one PostgreSQL database of their own (tests/integration/replicas_support.py),
whose cluster is a private etcd + kube-apiserver (``ControlPlane``: the shared sandbox's API
server is never touched), the sandbox's Prometheus and a private SMTP catcher. The replicas
watch that API server until /readyz says they reach it; then it is killed (SIGKILL, not a
drain) and stays down to the end. While it is down, new policies arrive (from a web-side hub in
the test process) and must fire and be delivered: every policy raises as many alerts as
Prometheus itself finds workloads above the threshold (the outside reference), every queued
message reaches the catcher exactly once (counts printed), the leader keeps its lease (same
holder, same token: the lease lives in the state store, docs/architecture.md "Several
replicas"), and its cycles go on committing. /readyz on the replicas names the API server as
down meanwhile, so the outage was real from the hub's side.

About a minute (a private control plane starts in ~10-20 s).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sandbox.core import Sandbox
from sandbox.prereqs import ensure_engines
from tests.integration.alerts_support import wait_until
from tests.integration.cluster_support import ENGINES, ControlPlane
from tests.integration.pg_support import throwaway_database
from tests.integration.replicas_support import (
    NAMESPACES,
    Catcher,
    PolicyFeed,
    ReplicaSet,
    prometheus_workloads_above,
    readyz,
    tally,
    web_side_hub,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEASE = 3.0
TICK = 1.0


def kubernetes_ok(port: int) -> bool | None:
    """Whether the replica's /readyz says it reaches the API server (None: no answer yet)."""
    body = readyz(port)
    if body is None:
        return None
    found = [b for b in body["backends"] if b["name"] == "cluster"]  # the API server's backend
    assert found, body["backends"]
    return bool(found[0]["state"] == "ok")


def test_alerts_are_evaluated_and_delivered_while_the_api_server_is_down(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_engines(lambda line: print(f"[engines] {line}", flush=True))
    assert (ENGINES / "kube-apiserver").exists(), f"the Kubernetes engines are not in {ENGINES}"
    run = uuid.uuid4().hex[:6]
    plane = ControlPlane(tmp_path / "control-plane")
    catcher = Catcher()
    catcher.start()
    try:
        plane.start()
        with throwaway_database() as url:
            web = web_side_hub(url, tmp_path / "web", sandbox.prometheus_url, catcher.port)
            rs = ReplicaSet(
                url,
                sandbox.prometheus_url,
                catcher.port,
                tmp_path,
                lease_seconds=LEASE,
                tick_seconds=TICK,
                kubeconfig=str(plane.kubeconfig),
                extra_env={"KUBEHUB_KUBERNETES_REQUEST_TIMEOUT": "3"},
            )
            policies = PolicyFeed(web, "kdown", run, consecutive=1)
            created = policies.created
            reference = {ns: prometheus_workloads_above(sandbox.prometheus_url, ns) for ns in NAMESPACES}

            def settled() -> bool:
                return policies.settled(url, reference)

            outage: dict[str, Any] = {}
            began = time.monotonic()
            try:
                policies.add()
                for name in ("r1", "r2", "r3"):
                    rs.start(name)
                leader = rs.leader(timeout=90)
                for r in rs.replicas.values():  # they really use that API server
                    wait_until(lambda r=r: kubernetes_ok(r.port), timeout=60, what=f"{r.name} reaching the API server")
                before = rs.lease()
                outage["up_s"] = time.monotonic() - began

                plane.stop_apiserver()
                stopped = time.monotonic()
                for r in rs.replicas.values():
                    wait_until(
                        lambda r=r: kubernetes_ok(r.port) is False,
                        timeout=60,
                        what=f"{r.name} seeing the API server down",
                    )
                outage["seen_down_s"] = time.monotonic() - stopped
                during = [policies.add() for _ in range(3)]
                wait_until(
                    settled, timeout=120, interval=1, what="the policies added during the outage fired and delivered"
                )
                outage["settled_s"] = time.monotonic() - stopped
                time.sleep(2 * TICK)
                outage["apiserver_down_at_end"] = not plane.apiserver_healthy()
                outage["lease_before"], outage["lease_after"] = before, rs.lease()
                outage["cycles"] = len(rs.said(leader.name, "alert cycle committed", after=stopped))
                counts = tally(url, catcher)
                policies = {p["name"]: p["id"] for p in web.alerting.store.policies()}
                with psycopg.connect(url, autocommit=True) as conn:
                    rows = conn.execute("SELECT id, policy_id FROM alerts").fetchall()
                during_alerts = {str(a) for a, p in rows if p in {policies[n] for n in during}}
                outage["delivered_during"] = len(
                    {c.message_id for c in catcher.snapshot() if c.at >= stopped and set(c.alerts) & during_alerts}
                )
            finally:
                rs.close()
                web.close()
    finally:
        catcher.stop()
        plane.close()

    with capsys.disabled():  # CI's log shows the counts
        print(
            f"\nreplicas api-server down: {counts.line()} policies={len(created)} (added while down: {len(during)})"
            f" messages_delivered_while_down={outage['delivered_during']} leader_cycles_while_down={outage['cycles']}"
            f" lease before={outage['lease_before'][:2] if outage['lease_before'] else None}"
            f" after={outage['lease_after'][:2] if outage['lease_after'] else None}"
            f" timings_s: replicas_up={outage['up_s']:.1f} down_seen={outage['seen_down_s']:.1f}"
            f" all_delivered={outage['settled_s']:.1f}"
        )
    assert counts.lost == 0 and counts.duplicated == 0, counts.detail
    assert counts.expected >= len(created) and not counts.detail["unknown"]
    assert outage["delivered_during"] >= len(during)  # each new policy's message went out while it was down
    assert outage["cycles"] > 0 and outage["apiserver_down_at_end"]
    before, after = outage["lease_before"], outage["lease_after"]
    assert before is not None and after is not None and before[:2] == after[:2], (before, after)
