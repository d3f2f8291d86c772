"""Issue 19, live: one workspace default policy, evaluated by a hub's real engine cycle against
the sandbox's Prometheus, fires separately in each project of its workspace, and never in a
project of another workspace whose workloads are just as hot.

The reference is Prometheus's own answer to the rule's catalogue query (asked directly by the
test): the workloads of the two projects whose value is above the threshold are exactly the
alerts, each owned by its project (policy id ``<workspace policy>@<namespace>``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.catalogue import default_catalogue
from sandbox.core import Sandbox
from tests.integration.alerts_support import hub_settings, prom_query, start_hub

pytestmark = pytest.mark.integration

PERIOD = 20
THRESHOLD_M = 1  # millicores: every simulated workload that does anything is above it


def test_one_workspace_policy_fires_in_two_projects_separately(sandbox: Sandbox, tmp_path: Path) -> None:
    query, _ = default_catalogue().alert_query("workloads", "workload_cpu_usage", "avg", PERIOD)
    by_ns: dict[str, dict[str, float]] = {}
    for r in prom_query(sandbox, query):
        by_ns.setdefault(r["metric"]["namespace"], {})[r["metric"]["workload"]] = float(r["value"][1])
    busy = sorted((ns for ns in by_ns if not ns.startswith("kube-")), key=lambda ns: -len(by_ns[ns]))
    assert len(busy) >= 3, f"the sandbox should run workloads in three namespaces, has {sorted(by_ns)}"
    home, foreign = busy[:2], busy[2]

    def expected() -> set[tuple[str, str]]:
        now = {
            (r["metric"]["namespace"], r["metric"]["workload"]): float(r["value"][1])
            for r in prom_query(sandbox, query)
        }
        return {k for k, v in now.items() if k[0] in home and v * 1000 > THRESHOLD_M}

    hub = start_hub(hub_settings(sandbox, tmp_path / "hub", tick_seconds=5.0))
    try:
        tenancy = hub.tenancy
        tenancy.create_workspace("ws-home")
        tenancy.create_workspace("ws-other")
        for ns in home:
            tenancy.create_project("ws-home", ns)
        tenancy.create_project("ws-other", foreign)
        policy = hub.alerting.create_workspace_policy(
            "ws-home",
            {
                "name": "any-cpu",
                "level": "workload",
                "rules": [
                    {
                        "name": "cpu",
                        "metric": "workload_cpu_usage",
                        "aggregation": "avg",
                        "comparator": ">",
                        "threshold": THRESHOLD_M,
                        "unit": "millicores",
                        "period": f"{PERIOD}s",
                        "consecutive": 1,
                        "severity": "minor",
                    }
                ],
                "notification": {"receivers": [{"email": "inherited-live@example.com"}]},
            },
            actor="test",
        )

        def fired() -> list[dict[str, Any]]:
            rows, _ = hub.alerting.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
            return [{k: r[k] for k in r.keys()} for r in rows if r["state"] == "firing"]  # noqa: SIM118

        deadline, got, want = time.monotonic() + 90, set(), expected()
        while time.monotonic() < deadline:
            alerts = fired()
            got = {(a["namespace"], json.loads(a["labels"]).get("workload", "")) for a in alerts}
            want = expected()
            if got and got == want:
                break
            time.sleep(2)
        assert want and got == want, f"hub fired {sorted(got)}, Prometheus says {sorted(want)}"
        assert {a["namespace"] for a in alerts} == set(home)  # both projects, separately
        assert all(a["policy_id"] == f"{policy['id']}@{a['namespace']}" for a in alerts)
        assert not any(a["namespace"] == foreign for a in fired())
        # Each project's effective view counts its own alerts only.
        for ns in home:
            entry = next(e for e in hub.alerting.effective_policies(ns) if e["source"] == "workspace")
            assert entry["status"]["alerts"].get("firing", 0) == sum(1 for a in alerts if a["namespace"] == ns)
    finally:
        hub.close()
