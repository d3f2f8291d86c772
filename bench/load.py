"""Load test: concurrent console and API sessions against a running hub, on loopback (issue 20).

    .venv/bin/python bench/load.py [--quick] [--sessions N] [--rounds N] [--seconds S]
                                   [--url URL --credentials FILE --pid PID]

By default it loads the sandbox's hub (``kubehub sandbox status``: URL, pid, demo logins);
``--url/--credentials/--pid`` name another hub (the CI test starts one of its own). Each demo
user logs in once (``POST /api/v1/auth/login``: a console session cookie and its CSRF token)
and its sessions share that login, as tabs of one browser do, so the run measures browsing,
not argon2. Then ``--sessions`` threads, each with its own keep-alive connection, run
``--rounds`` rounds of a fixed script with a short think time (seeded, so runs are alike):

- tenants (the demo users with projects; most sessions): the overview, workloads, logs (with a
  keyword), rankings and project pages of the console, and the API's log search, pod ranking
  and alert list, all in one of their namespaces;
- platform admins browsing: overview, nodes, cluster charts, history pages; node list and
  node ranking through the API;
- platform admins editing policies (one session per 25): each creates a disabled workload
  policy of its own from the ``workload-cpu`` template, changes its threshold every round,
  reads it back through the API and the console, and deletes it at the end (also on failure).
The mix stays under the hub's rate limits (no exports, backtests or long-range queries):
a 429 would be counted as an error.

Read-mostly: nothing seeded is changed; the only writes are the editors' own policies.
Bounded: sessions x rounds requests at most, and every session stops at the ``--seconds``
deadline. Loopback only: the URL must be 127.0.0.1 or localhost.

Baseline (the bench rule: the hub and a baseline side by side, same run): every round of every
session also sends ``GET /healthz``, the hub's cheapest answer, through the same connections
under the same load; its p95 is the floor of HTTP, queueing and the WSGI server, and the line
before the last gives each page's p95 against it.

Errors: a transport failure or any status other than the expected one (200; 201 for the
policy create). RSS: ``VmRSS`` of the hub's process from ``/proc/<pid>/status`` before the
logins and after the last request. The last line is exactly
``load: sessions=<n> requests=<n> p95_ms=<...> errors=<n> rss_growth_pct=<...>`` with p95
over every page and API call (the baseline excluded). The exit status is 1 when errors > 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BASELINE = "healthz (baseline)"
EDITABLE = ("description", "enabled", "flap", "level", "name", "namespace", "notification", "repeat", "rules", "target")
KEYWORDS = ("error", "request", "timeout", "GET", "started", "请求")


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"load: no VmRSS for pid {pid}")


@dataclass
class Login:
    user: str
    cookies: Any
    csrf: str
    platform_admin: bool
    namespaces: list[str]


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.latencies[label].append(ms)
            if error:
                self.errors[label] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{label}: {error}")


class Session:
    """One simulated user: a keep-alive connection, a login's cookie, a seeded think time."""

    def __init__(self, base: str, login: Login, results: Results, rng: random.Random, deadline: float) -> None:
        self.base, self.login, self.results, self.rng, self.deadline = base, login, results, rng, deadline
        self.http = requests.Session()
        self.http.cookies.update(login.cookies)

    def call(self, label: str, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.login.csrf} if method != "GET" else {}
        started = time.perf_counter()
        error: str | None = None
        response = None
        try:
            response = self.http.request(method, self.base + path, headers=headers, timeout=60, **kwargs)
            _ = response.content  # the whole body, as a browser would
            if response.status_code != expect:
                error = f"{method} {path} -> {response.status_code} {response.text[:160]!r}"
        except requests.RequestException as exc:
            error = f"{method} {path} -> {type(exc).__name__}: {exc}"
        self.results.add(label, (time.perf_counter() - started) * 1000, error)
        return response if error is None else None

    def think(self) -> None:
        time.sleep(self.rng.uniform(0.0, 0.2))

    def over(self) -> bool:
        return time.monotonic() >= self.deadline


def tenant_round(s: Session, ns: str) -> None:
    word = s.rng.choice(KEYWORDS)
    q = urllib.parse.quote(word)
    steps: list[tuple[str, str]] = [
        ("page /", "/"),
        ("page /workloads", f"/workloads?ns={ns}"),
        ("page /logs", f"/logs?namespaces={ns}&q={q}"),
        ("api logs search", f"/api/v1/logs?namespaces={ns}&q={q}&size=50"),
        ("page /rankings", f"/rankings?level=pods&namespaces={ns}"),
        (
            "api pod ranking",
            f"/api/v1/monitoring/pods?metrics=pod_cpu_usage,pod_memory_usage&sort_metric=pod_cpu_usage"
            f"&namespaces={ns}&limit=10",
        ),
        ("api alerts", "/api/v1/alerting/alerts?limit=50"),
        ("page /projects/<ns>", f"/projects/{ns}"),
    ]
    for label, path in steps:
        if s.over():
            return
        s.call(label, "GET", path)
        s.think()


def admin_round(s: Session) -> None:
    steps = [
        ("page /", "/"),
        ("page /nodes", "/nodes"),
        ("page /monitoring (cluster)", "/monitoring?level=cluster"),
        ("api nodes", "/api/v1/nodes?limit=100"),
        ("api node ranking", "/api/v1/monitoring/nodes?metrics=node_cpu_utilisation&sort_metric=node_cpu_utilisation"),
        ("page /alerting/history", "/alerting/history"),
    ]
    for label, path in steps:
        if s.over():
            return
        s.call(label, "GET", path)
        s.think()


def browse(s: Session, one_round: Callable[[Session], None], rounds: int) -> None:
    """``rounds`` rounds of a script, each followed by the baseline request, until the deadline."""
    for _ in range(rounds):
        if s.over():
            return
        one_round(s)
        s.call(BASELINE, "GET", "/healthz")


def editor_session(s: Session, ns: str, rounds: int, tag: str) -> None:
    """Create a policy of its own, edit it every round, delete it at the end (whatever happens)."""
    base = f"/api/v1/namespaces/{ns}/alerting/policies"
    created = s.call(
        "api policy create",
        "POST",
        f"{base}/templates/workload-cpu",
        expect=201,
        json={"name": f"load-{tag}", "enabled": False, "description": "bench/load.py; deleted at the end"},
    )
    if created is None:
        return
    policy = created.json()
    pid = policy["id"]
    try:
        doc = {k: v for k, v in policy.items() if k in EDITABLE}
        for i in range(rounds):
            if s.over():
                break
            doc["rules"][0]["threshold"] = float(doc["rules"][0]["threshold"]) + 0.5
            doc["description"] = f"bench/load.py edit {i + 1}; deleted at the end"
            s.call("api policy update", "PUT", f"{base}/{pid}", json=doc)
            s.think()
            s.call("api policy get", "GET", f"{base}/{pid}")
            s.think()
            s.call("page policy", "GET", f"/projects/{ns}/alerting/policies/{pid}")
            s.think()
            s.call("api policy list", "GET", base)
            s.call(BASELINE, "GET", "/healthz")
            s.think()
    finally:
        s.call("api policy delete", "DELETE", f"{base}/{pid}")


def log_in(base: str, cred: dict[str, Any], results: Results) -> Login:
    http = requests.Session()
    started = time.perf_counter()
    r = http.post(
        base + "/api/v1/auth/login", json={"username": cred["username"], "password": cred["password"]}, timeout=60
    )
    results.add("api login", (time.perf_counter() - started) * 1000, None if r.status_code == 200 else r.text[:160])
    if r.status_code != 200:
        raise SystemExit(f"load: {cred['username']} could not log in: {r.status_code} {r.text[:200]}")
    me = http.get(base + "/api/v1/me", timeout=60).json()
    namespaces = sorted(p["namespace"] for p in me.get("projects", []) if p.get("role"))
    return Login(
        user=cred["username"],
        cookies=http.cookies,
        csrf=r.json()["csrf_token"],
        platform_admin=me.get("platform_role") == "admin",
        namespaces=namespaces or sorted(p["namespace"] for p in me.get("projects", [])),
    )


def sandbox_target() -> tuple[str, list[dict[str, Any]], int]:
    from sandbox.core import Sandbox

    status = Sandbox(quiet=True).status()
    hub = next((c for c in status["components"] if c["name"] == "hub"), None)
    if hub is None or hub.get("state") != "up" or not hub.get("pid"):
        raise SystemExit("load: the sandbox's hub is not up (run `kubehub sandbox up`, or pass --url/--pid)")
    return str(hub["url"]), list(status["credentials"]), int(hub["pid"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 sessions, 3 rounds, 90 s at most (make bench, CI)")
    ap.add_argument("--sessions", type=int, help="concurrent sessions (default 50)")
    ap.add_argument("--rounds", type=int, help="rounds of the script per session (default 6)")
    ap.add_argument("--seconds", type=float, help="deadline of the whole run (default 300)")
    ap.add_argument("--url", help="the hub's base URL (default: the sandbox's hub)")
    ap.add_argument("--credentials", help="JSON list of {username, password} (with --url)")
    ap.add_argument("--pid", type=int, help="the hub's process id, for its RSS (with --url)")
    ap.add_argument("--seed", type=int, default=20, help="seed of the think times and keyword choices")
    args = ap.parse_args(argv)
    sessions = args.sessions or (20 if args.quick else 50)
    rounds = args.rounds or (3 if args.quick else 6)
    seconds = args.seconds or (90.0 if args.quick else 300.0)
    if args.url:
        if not (args.credentials and args.pid):
            raise SystemExit("load: --url needs --credentials and --pid")
        base, creds, pid = args.url.rstrip("/"), json.loads(Path(args.credentials).read_text()), args.pid
    else:
        base, creds, pid = sandbox_target()
    host = urllib.parse.urlsplit(base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"load: loopback only, not {host}")

    results = Results()
    rss_before = rss_kib(pid)
    print(f"load: {base} (pid {pid}), {sessions} sessions x {rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    logins = [log_in(base, c, results) for c in creds]
    admins = [x for x in logins if x.platform_admin]
    tenants = [x for x in logins if not x.platform_admin and x.namespaces]
    if not admins or not tenants:
        raise SystemExit("load: needs a platform admin and a tenant with a project among the logins")
    tenant_namespaces = sorted({ns for t in tenants for ns in t.namespaces})

    editors = max(1, sessions // 25)
    admin_browsers = max(1, sessions // 10)
    plan: list[Callable[[Session], None]] = []
    rng = random.Random(args.seed)
    tag = f"{os.getpid()}-{int(time.time())}"
    for i in range(sessions):
        if i < editors:
            ns = tenant_namespaces[i % len(tenant_namespaces)]
            plan.append(lambda s, ns=ns, i=i: editor_session(s, ns, rounds, f"{tag}-{i}"))
        elif i < editors + admin_browsers:
            plan.append(lambda s: browse(s, admin_round, rounds))
        else:
            tenant = tenants[i % len(tenants)]
            ns = tenant.namespaces[i % len(tenant.namespaces)]
            plan.append(lambda s, ns=ns: browse(s, lambda s: tenant_round(s, ns), rounds))

    deadline = time.monotonic() + seconds
    threads = []
    started = time.monotonic()
    for i, script in enumerate(plan):
        login = admins[i % len(admins)] if i < editors + admin_browsers else tenants[i % len(tenants)]
        session = Session(base, login, results, random.Random(rng.random()), deadline)
        thread = threading.Thread(target=script, args=(session,), name=f"session-{i}", daemon=True)
        threads.append(thread)
        thread.start()
        time.sleep(0.02)  # a short ramp: 50 sessions start within a second
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 60)
    took = time.monotonic() - started
    rss_after = rss_kib(pid)

    timed = {k: v for k, v in results.latencies.items() if k != BASELINE}
    everything = [ms for k, v in timed.items() if k != "api login" for ms in v]
    requests_sent = sum(len(v) for v in results.latencies.values())
    errors = sum(results.errors.values())
    floor = p95(results.latencies.get(BASELINE, []))
    print(f"{'request':32} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'x healthz':>9} {'errors':>6}")
    for label in sorted(results.latencies):
        values = results.latencies[label]
        ratio = p95(values) / floor if floor else 0.0
        print(
            f"{label:32} {len(values):6d} {statistics.median(values):8.1f} {p95(values):8.1f} {ratio:9.1f} "
            f"{results.errors.get(label, 0):6d}"
        )
    for example in results.examples:
        print(f"load: error: {example}", file=sys.stderr)
    if any(t.is_alive() for t in threads):
        print("load: some sessions were still running at the deadline", file=sys.stderr)
    growth = (rss_after - rss_before) / rss_before * 100
    print(
        f"load: {took:.0f} s, {requests_sent / took:.0f} requests/s; hub RSS {rss_before / 1024:.1f} -> "
        f"{rss_after / 1024:.1f} MiB; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"baseline: healthz p95_ms={floor:.1f} under the same load; pages and API calls p95 "
        f"{p95(everything):.1f} ms = {p95(everything) / floor if floor else 0:.1f}x the healthz round trip"
    )
    print(
        f"load: sessions={sessions} requests={requests_sent} p95_ms={p95(everything):.1f} errors={errors} "
        f"rss_growth_pct={growth:.1f}"
    )
    return 1 if errors else 0  # timings are reported; a failed request fails the run (make bench, CI)


if __name__ == "__main__":
    raise SystemExit(main())
