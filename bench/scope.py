"""Benchmark: the caller's scope from the tenancy service's cache, and the hub's fixed cost per
API request (issue 13).

1. ``tenancy.scope(principal)`` at 1,300 projects for three callers (a workspace admin reaching
   every project, a tenant with 650 direct project memberships, a platform admin), from the
   cache, side by side with the baseline: the same scope built from scratch by the pure rule
   (``hub.tenancy.scope.scope_for`` over every project), which is what each call cost before the
   cache. Goal: <= 50 us from the cache.
2. The hub's own fixed cost per API request, in process (Flask test client, no socket): a
   bearer-token ``GET /api/v1/monitoring/pods?namespaces=<home>`` through the whole stack
   against a query backend that answers at once with an empty frame, minus the same request
   sent straight to the monitoring service: what is left is authentication, the route's access
   check, the scope, the audit hooks and JSON. Goal: <= 1 ms.

Everything runs on a throw-away SQLite state store; no sandbox needed.

Last line: ``scope: cached_p50_us=... baseline_p50_us=... fixed_cost_ms=... ...``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.collectors.prometheus import Vector, empty_frame  # noqa: E402
from hub.settings import Settings  # noqa: E402

PROJECTS = 1300
WORKSPACES = 13
PASSWORD = "Bench-password-1"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(q * len(ordered)) - 1)]


def timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class NoBackend:
    """A query backend that answers every query at once with an empty frame (our own interface,
    ``hub.collectors.prometheus.QueryBackend``), so the request measures only the hub."""

    def __init__(self) -> None:
        self._empty = empty_frame()  # built once: the fake's own cost stays out of the figures

    def instant(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> pd.DataFrame:
        return self._empty

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame:
        return self._empty

    def many(self, specs: Sequence[Any], *, timeout: float | None = None) -> list[pd.DataFrame]:
        return [self._empty for _ in specs]

    def vectors(self, specs: Sequence[Any], *, timeout: float | None = None) -> list[Vector]:
        return [Vector() for _ in specs]


def api_fixed_cost(app: Any, username: str, namespace: str, rounds: int) -> tuple[float, float, float]:
    """The hub's fixed cost per API request, in process: (request p50, service-alone p50,
    /healthz p50) in ms for ``GET /api/v1/monitoring/pods?namespaces=<namespace>`` as
    ``username``, with the monitoring backend swapped for :class:`NoBackend` meanwhile. The
    difference of the first two is authentication, the access check, the scope, the audit
    hooks and JSON. bench/monitoring.py prints it too."""
    from web.params import monitoring_request

    hub = app.extensions["kubehub"]
    tenancy = hub.tenancy
    saved = hub.monitoring.backend
    hub.monitoring.backend = NoBackend()
    try:
        client = app.test_client()
        token = tenancy.issue_token(username).token
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces={namespace}"
        first = client.get(url, headers=headers)
        assert first.status_code == 200, first.get_data(as_text=True)
        request_s = timed(lambda: client.get(url, headers=headers), rounds)
        # The area's own work for the same request, straight to the service (no web layer).
        caller = tenancy.scope(tenancy.principal_for(username))
        query_args = {"metrics": "pod_cpu_usage", "namespaces": namespace}
        with app.test_request_context(url):
            service_s = timed(
                lambda: hub.monitoring.query(monitoring_request(hub.monitoring, "pods", query_args), caller), rounds
            )
        health = timed(lambda: client.get("/healthz"), rounds)  # the framework alone, no auth
    finally:
        hub.monitoring.backend = saved
    ms = 1000.0
    return statistics.median(request_s) * ms, statistics.median(service_s) * ms, statistics.median(health) * ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (CI)")
    args = parser.parse_args(argv)
    rounds = 300 if args.quick else 3000
    requests_n = 200 if args.quick else 2000

    from hub.tenancy import scope as rules
    from web import create_app

    with tempfile.TemporaryDirectory(prefix="kubehub-bench-scope-") as tmp:
        settings = Settings(data_dir=Path(tmp)).replace(
            kubernetes={"kubeconfig": "none"},
            logs={"ship": False},
            alerts={"evaluate": False},
            auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1},
        )
        app = create_app(settings)
        hub = app.extensions["kubehub"]
        tenancy = hub.tenancy
        started = time.perf_counter()
        for w in range(WORKSPACES):
            tenancy.create_workspace(f"ws-{w:02d}", actor="bench")
        for i in range(PROJECTS):
            tenancy.create_project(f"ws-{i % WORKSPACES:02d}", f"ns-{i:04d}", actor="bench")
        tenancy.create_user("wide", PASSWORD)
        tenancy.create_user("direct", PASSWORD)
        tenancy.create_user("root", PASSWORD, platform_role="admin")
        for w in range(WORKSPACES):
            tenancy.set_workspace_member(f"ws-{w:02d}", "wide", "admin", actor="bench")
        for i in range(0, PROJECTS, 2):
            tenancy.set_project_member(f"ns-{i:04d}", "direct", "viewer", actor="bench")
        print(f"world: {PROJECTS} projects in {WORKSPACES} workspaces ({time.perf_counter() - started:.1f}s to build)")

        cached_all: list[float] = []
        baseline_all: list[float] = []
        for user in ("wide", "direct", "root"):
            principal = tenancy.principal_for(user)
            assert principal is not None
            scope = tenancy.scope(principal)
            fresh = rules.scope_for(principal, tenancy.projects())
            assert dict(scope.namespaces) == dict(fresh.namespaces) and dict(scope.grants) == dict(fresh.grants)
            cached = timed(lambda p=principal: tenancy.scope(p), rounds)
            baseline = timed(lambda p=principal: rules.scope_for(p, tenancy.projects()), max(20, rounds // 10))
            cached_all += cached
            baseline_all += baseline
            print(
                f"  {user:6} ({len(scope.namespaces):4} namespaces): scope() from the cache "
                f"p50 {statistics.median(cached) * 1e6:6.1f} us p95 {percentile(cached, 0.95) * 1e6:6.1f} us | "
                f"built from scratch p50 {statistics.median(baseline) * 1e6:8.1f} us"
            )

        request_ms, service_ms, health_ms = api_fixed_cost(app, "wide", "ns-0000", requests_n)
        fixed_s = (request_ms - service_ms) / 1000
        request_s = [request_ms / 1000]
        print(
            f"  API request in process (empty backend): p50 {request_ms:.3f} ms; the monitoring service alone "
            f"p50 {service_ms:.3f} ms; fixed cost (difference) {fixed_s * 1e3:.3f} ms; "
            f"Flask alone (/healthz, no auth) p50 {health_ms:.3f} ms"
        )
        hub.close()

    c50 = statistics.median(cached_all) * 1e6
    b50 = statistics.median(baseline_all) * 1e6
    r50 = fixed_s * 1e3
    print(
        f"scope: cached_p50_us={c50:.1f} cached_p95_us={percentile(cached_all, 0.95) * 1e6:.1f} "
        f"baseline_p50_us={b50:.1f} speedup={b50 / c50:.0f}x fixed_cost_ms={r50:.3f} "
        f"request_p50_ms={request_s[0] * 1e3:.3f} projects={PROJECTS} "
        f"goals: cached<=50us {'met' if c50 <= 50 else 'NOT met'}, fixed<=1ms {'met' if r50 <= 1 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
