"""Soak with faults: a private sandbox under load while its backends are stopped and restarted (issue 20).

    .venv/bin/python bench/soak.py [--minutes 5] [--quick] [--port-base N] [--dir D] [--keep]

What it runs. A sandbox of its own (never the shared one: other people's tests use that), in a
fresh temporary directory at a port base of its own (the first free one of ``PORT_BASES``,
below the kernel's ephemeral range), with a small cluster (``--nodes 4 --pods 24``) and its hub
storing logs in **Elasticsearch** (``KUBEHUB_LOGS_BACKEND=elasticsearch`` in this process's
environment, which the sandbox's hub inherits), so that an Elasticsearch outage means lines
spooled by the shipper and shipped after recovery. On top of the seeded policies it loads two
of its own that fire all the time and repeat every minute (one node policy, one workload policy
with an address receiver), so notices flow steadily; a Prometheus outage adds the hub's own
``kubehub-metric-source`` notices.

For ``--minutes`` (30 for ``make soak``, 5 in CI; ``--quick`` is the CI version, for ``make
bench``): a few sessions browse the console and the API as the demo users (tenants: pages,
log searches, rankings; an admin: nodes, charts, history), reusing the session scripts of
``bench/load.py`` (``tenant_round``, ``admin_round``) when that module imports, else a small
script of its own; after a warm-up, a fault injector stops and restarts, in turn, etcd, the
kube-apiserver, Prometheus, Elasticsearch and the SMTP catcher through the sandbox's own
``Supervisor`` (the whole process group, SIGTERM then SIGKILL), each down 20-30 s (20-40 s in
runs longer than 5 minutes), waiting for each to answer its health check again before the
next. The five always run, even if that takes longer than ``--minutes``; longer runs cycle.

Then a bounded drain (``--drain``, default 240 s) lets the outbox and the shipper catch up, and
the checks (each against an outside reference, not the hub's own bookkeeping where avoidable):

- notices: expected = the messages the hub's outbox (``GET /api/v1/alerting/outbox`` as admin)
  queued while the soak ran; delivered = the private catcher's Maildir, matched by
  ``Message-ID`` (one outbox row = one email to one recipient, with one or more notices; the
  hub keeps the Message-ID of a row across retries, so a second copy is a duplicate);
- lines: every line the sandbox's nodesim appended to the pod log files (CRI) with a timestamp
  inside the soak, times every pod that serves that file and lived through the whole soak,
  must be found exactly once through the hub's log search API (as admin), by (pod, container,
  message, time to the microsecond); lost and duplicated lines are counted;
- 5xx: every response of the load is kept with its time; a 5xx is expected only when it is a
  503 naming the backend that was down then (etcd and the kube-apiserver: "kubernetes API
  server"), from the stop until 15 s after the component answered again;
- memory: the hub's RSS (its process group) at the end of the warm-up vs at the end, at most
  10 % growth.

The last line is exactly ``soak: minutes=<m> faults=<n> notices_expected=<n> delivered=<n>
duplicated=<n> lines_lost=<n> unexpected_5xx=<n> rss_growth_pct=<x>`` (duplicated: duplicated
emails plus duplicated lines); the exit status is 1 when a check fails (or nothing was there to
check: no notice queued, no line written), 2 when the sandbox could not start.

The sandbox is always brought down (also on Ctrl-C or SIGTERM) and its temporary directory
removed unless ``--keep`` or ``--dir`` was given. Over 400 lines because the run, the fault
injector, the load and the four checks belong in one file that CI runs as one step.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import html
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import prereqs  # noqa: E402
from sandbox.config import PORT_OFFSETS  # noqa: E402
from sandbox.core import Sandbox  # noqa: E402
from sandbox.procs import port_in_use, rss_bytes  # noqa: E402
from sandbox.seed import WORKSPACES  # noqa: E402

FAULTS = ("etcd", "kube-apiserver", "prometheus", "elasticsearch", "smtp")
# The backend a 503 may name while the component is down (the hub only sees the API server).
BACKENDS = {
    "etcd": {"kubernetes API server"},
    "kube-apiserver": {"kubernetes API server"},
    "prometheus": {"prometheus"},
    "elasticsearch": {"elasticsearch"},
    "smtp": set(),  # mail is asynchronous: no request should ever fail for it
}
# Seconds the SMTP catcher may stay down waiting for a delivery to fail. The policy made then has
# its own recipient, so its alert opens a group of its own: a scheduler tick (15 s), the group's
# wait (30 s) and a delivery round (5 s) before the first attempt, with room for a loaded machine.
# (40 s was enough before notices were grouped; a CI run met no message within it.)
SMTP_DOWN_MAX = 120.0
GRACE = 15.0  # seconds after a component answers again during which its 503s still count as expected
HEALTHY_TIMEOUT = 300.0
# Far from the shared sandbox (29000) and from the bases tests pick (21000, 22000, ... and
# 31600/31700), and below the ephemeral range (32768+), where outgoing connections take ports.
PORT_BASES = (23500, 24500, 25500, 26500, 27500, 20500)
RSS_LIMIT_PCT = 10.0
BACKEND_RE = re.compile(
    r"(kubernetes API server|prometheus|elasticsearch|embedded log store|log store|tenancy|alerting) is unavailable"
)
SOAK_DOMAIN = "soak.kubehub.test"
META_TENANT = "__hub__"  # the outbox tenant of the hub's own alerts (hub/alerts/cycle.py)


def say(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- the record of the run -------------------------------------------------------------------


@dataclass
class Fault:
    component: str
    stopped: float
    down_for: float
    started: float = 0.0
    healthy: float | None = None

    def covers(self, t0: float, t1: float) -> bool:
        end = (self.healthy if self.healthy is not None else float("inf")) + GRACE
        return t0 <= end and t1 >= self.stopped - 1.0


@dataclass
class Answer:
    t0: float
    t1: float
    who: str
    label: str
    path: str
    status: int  # 0: no HTTP answer
    backend: str = ""
    detail: str = ""


@dataclass
class Record:
    answers: list[Answer] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def backend_of(status: int, body: bytes) -> tuple[str, str]:
    """The backend a 5xx names: the JSON ``backend`` field, else '<backend> is unavailable' in the page."""
    text = body[:4000].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(text)
        if isinstance(data, dict):
            return str(data.get("backend") or ""), str(data.get("error") or "")[:200]
    found = BACKEND_RE.search(html.unescape(text))
    return (found.group(1), found.group(0)) if found else ("", " ".join(text.split())[:200])


# ---- the load --------------------------------------------------------------------------------


class SoakSession:
    """One user's browser: a keep-alive connection with a login's cookie. Shaped like
    ``bench/load.py``'s Session (``call``, ``think``, ``over``, ``rng``) so its scripts run on it,
    but every answer is recorded with its time and status for the 5xx check."""

    def __init__(self, who: str, base: str, http: requests.Session, csrf: str, record: Record,
                 rng: random.Random, stop: threading.Event) -> None:  # fmt: skip
        self.who, self.base, self.http, self.csrf = who, base, http, csrf
        self.record, self.rng, self.stop = record, rng, stop

    def call(self, label: str, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        t0 = time.time()
        try:
            r = self.http.request(method, self.base + path, headers=headers, timeout=60, **kwargs)
            body = r.content
        except requests.RequestException as exc:
            self.record.add(Answer(t0, time.time(), self.who, label, path, 0, detail=f"{type(exc).__name__}: {exc}"))
            return None
        backend, detail = backend_of(r.status_code, body) if r.status_code >= 500 else ("", "")
        self.record.add(Answer(t0, time.time(), self.who, label, path, r.status_code, backend, detail))
        return r if r.status_code == expect else None

    def think(self) -> None:
        time.sleep(self.rng.uniform(0.2, 1.0))

    def over(self) -> bool:
        return self.stop.is_set()


def _own_tenant_round(s: SoakSession, ns: str) -> None:
    word = s.rng.choice(("error", "GET", "timeout", "请求"))
    for label, path in (
        ("page /workloads", f"/workloads?ns={ns}"),
        ("api logs search", f"/api/v1/logs?namespaces={ns}&q={urllib.parse.quote(word)}&size=50"),
        ("page /logs", f"/logs?namespaces={ns}&q={urllib.parse.quote(word)}"),
        ("api pod ranking", f"/api/v1/monitoring/pods?metrics=pod_cpu_usage&sort_metric=pod_cpu_usage&namespaces={ns}"),
        ("api alerts", "/api/v1/alerting/alerts?limit=50"),
    ):
        if s.over():
            return
        s.call(label, "GET", path)
        s.think()


def _own_admin_round(s: SoakSession) -> None:
    for label, path in (
        ("page /nodes", "/nodes"),
        ("api nodes", "/api/v1/nodes?limit=100"),
        ("page /monitoring", "/monitoring?level=cluster"),
        ("page /alerting/history", "/alerting/history"),
    ):
        if s.over():
            return
        s.call(label, "GET", path)
        s.think()


def session_scripts() -> tuple[Callable[[Any, str], None], Callable[[Any], None], str]:
    """bench/load.py's tenant and admin rounds when that module imports, else this file's own."""
    path = REPO / "bench" / "load.py"
    try:
        spec = importlib.util.spec_from_file_location("kubehub_bench_load", path)
        if spec is None or spec.loader is None:
            raise ImportError(str(path))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclasses look their module up there
        spec.loader.exec_module(mod)
        return mod.tenant_round, mod.admin_round, "bench/load.py"
    except Exception as exc:  # any failure of someone else's module: fall back, and say so
        say(f"note: bench/load.py not usable ({type(exc).__name__}: {exc}); using the soak's own session script")
        return _own_tenant_round, _own_admin_round, "bench/soak.py"


def log_in(base: str, cred: dict[str, Any]) -> tuple[requests.Session, str, bool, list[str]]:
    http = requests.Session()
    r = http.post(base + "/api/v1/auth/login", json={"username": cred["username"], "password": cred["password"]},
                  timeout=120)  # fmt: skip
    if r.status_code != 200:
        raise RuntimeError(f"{cred['username']} could not log in: {r.status_code} {r.text[:200]}")
    me = http.get(base + "/api/v1/me", timeout=60).json()
    namespaces = sorted(p["namespace"] for p in me.get("projects", []))
    return http, str(r.json()["csrf_token"]), me.get("platform_role") == "admin", namespaces


# ---- faults ----------------------------------------------------------------------------------


def spec_of(sb: Sandbox, name: str) -> Any:
    """The sandbox's own process spec of a component (the same command line ``up`` uses)."""
    if name == "elasticsearch":
        return sb._spec_elasticsearch(prereqs.ensure_elasticsearch(lambda _m: None))
    return {
        "etcd": sb._spec_etcd,
        "kube-apiserver": sb._spec_apiserver,
        "prometheus": sb._spec_prometheus,
        "smtp": sb._spec_smtp,
    }[name]()


def inject(sb: Sandbox, name: str, down_for: float, record: Record, *, while_down: Callable[[], None]) -> bool:
    """Stop a component, keep it down ``down_for`` seconds, start it, wait until it answers."""
    fault = Fault(name, time.time(), down_for)
    with record.lock:
        record.faults.append(fault)
    sb.sup.stop(name)
    say(f"fault: {name} stopped ({time.time() - fault.stopped:.1f}s to stop); down for {down_for:.0f}s")
    try:
        while_down()
    except (RuntimeError, requests.RequestException) as exc:
        say(f"fault: {name}: {exc}")
    time.sleep(max(0.0, fault.stopped + down_for - time.time()))
    fault.started = time.time()
    sb.sup.start(spec_of(sb, name))
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        if sb.sup.alive(name) and sb.healthy(name):
            fault.healthy = time.time()
            took, down = fault.healthy - fault.started, fault.healthy - fault.stopped
            say(f"fault: {name} back after {took:.1f}s (down {down:.0f}s)")
            return True
        if not sb.sup.alive(name):
            break
        time.sleep(1)
    say(f"FAULT: {name} did not come back (log: {sb.logs_dir / (name + '.log')})")
    return False


# ---- the hub, as admin -----------------------------------------------------------------------


class Admin:
    def __init__(self, base: str, cred: dict[str, Any]) -> None:
        self.base = base
        self.http, self.csrf, _, _ = log_in(base, cred)

    def get(self, path: str) -> Any:
        r = self.http.get(self.base + path, timeout=120)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.base + path, json=body, headers={"X-CSRF-Token": self.csrf}, timeout=120)


def node_policy(
    name: str, node: str, *, period: str, repeat: dict[str, Any] | None = None, recipient: str = ""
) -> dict[str, Any]:
    """A node policy that always breaches (a load average is never negative)."""
    return {
        "name": name,
        "description": "bench/soak.py: always breaches",
        "level": "node",
        "target": {"nodes": [node]},
        "rules": [
            {"name": "load-any", "metric": "node_load5", "aggregation": "last", "comparator": ">=", "threshold": 0,
             "unit": "load", "period": period, "consecutive": 1, "severity": "minor"}
        ],
        "notification": {"receivers": [{"email": recipient or f"soak-cluster@{SOAK_DOMAIN}"}], "send_resolved": True},
        "repeat": repeat or {"minor": {"mode": "none"}},
    }  # fmt: skip


def create_policy(admin: Admin, path: str, doc: dict[str, Any]) -> None:
    r = admin.post(path, doc)
    if r.status_code not in (200, 201, 409):  # 409: a kept --dir already has it
        raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")


def soak_policies(admin: Admin, node: str) -> None:
    """Policies that always breach: two repeat every minute (a steady flow of notices, one node
    and one workload policy), one is evaluated every 10 s (so any Prometheus outage longer
    than a scheduler tick fails a query and raises the hub's kubehub-metric-source notice)."""
    repeat = {"minor": {"mode": "fixed", "interval": "1m", "max_sends": 1000}}
    create_policy(admin, "/api/v1/alerting/policies", node_policy("soak-node-repeat", node, period="1m", repeat=repeat))
    create_policy(admin, "/api/v1/alerting/policies", node_policy("soak-node-fast", node, period="10s"))
    create_policy(admin, "/api/v1/namespaces/retail-api/alerting/policies", {
        "name": "soak-workload-repeat", "description": "bench/soak.py: always breaches", "level": "workload",
        "namespace": "retail-api", "target": {"workloads": [{"kind": "deployment", "name": "checkout-api"}]},
        "rules": [{"name": "cpu-any", "metric": "workload_cpu_usage", "aggregation": "avg", "comparator": ">",
                   "threshold": 0, "unit": "cores", "period": "1m", "consecutive": 1, "severity": "minor"}],
        "notification": {"receivers": [{"email": f"soak-retail-api@{SOAK_DOMAIN}"}], "send_resolved": True},
        "repeat": repeat,
    })  # fmt: skip


def wait_shipper_idle(admin: Admin, timeout: float) -> dict[str, Any]:
    """Wait until the shipper has read every container once and its spool is empty (the day's
    history is shipped when a hub first follows a pod: the soak starts after that)."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    idle = 0  # an empty spool twice in a row, 10 s apart: not just a gap between two polls
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, requests.RequestException):
            state = admin.get("/api/v1/logs/stores").get("shipper") or {}
            busy = not (state.get("followed_containers") and state.get("delivered_lines")) or state.get("spooled_lines")
            idle = 0 if busy else idle + 1
            if idle >= 2:
                return state
        time.sleep(10)
    return state


def outbox(admin: Admin, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The outbox's messages, newest first (all of them, or the newest ``limit``)."""
    rows: list[dict[str, Any]] = []
    size = min(limit or 1000, 1000)
    while True:
        page = admin.get(f"/api/v1/alerting/outbox?limit={size}&offset={len(rows)}")
        items = page.get("items", page) if isinstance(page, dict) else page
        rows += items
        if len(items) < size or (limit and len(rows) >= limit):
            return rows


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- the checks ------------------------------------------------------------------------------


def mailbox_ids(maildir: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    parser = email.parser.BytesHeaderParser()
    for f in (maildir / "new").glob("*"):
        with open(f, "rb") as fh:
            ids[str(parser.parse(fh).get("Message-ID", "")).strip()] += 1
    return ids


def check_notices(admin: Admin, maildir: Path, t0: float, t1: float) -> dict[str, Any]:
    rows = [r for r in outbox(admin) if t0 <= epoch(r["created_at"]) <= t1]
    got = mailbox_ids(maildir)
    expected = {r["message_id"] for r in rows}
    delivered = {m for m in expected if got[m] >= 1}
    return {
        "expected": len(expected),
        "delivered": len(delivered),
        "duplicated": sum(got[m] - 1 for m in delivered),
        "missing": sorted(
            (r["message_id"], r["recipient"], r["status"], r.get("last_error"))
            for r in rows
            if r["message_id"] not in delivered
        ),
        "by_status": dict(Counter(r["status"] for r in rows)),
        "retried": sum(1 for r in rows if (r.get("attempts") or 0) > 1),
        "hub_own": sum(1 for r in rows if r["tenant"] == META_TENANT),
    }


Lines = dict[tuple[str, str, str], list[int]]  # (pod, container, message) -> times in microseconds


def cri_lines(path: Path, t0: float, t1: float) -> list[tuple[int, str]]:
    """(microseconds, message) of the CRI lines of a file with a time in [t0, t1]."""
    out = []
    lo, hi = int(t0 * 1e6), int(t1 * 1e6)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            stamp, _, rest = raw.rstrip("\n").partition(" ")
            _stream, _, rest = rest.partition(" ")
            _tag, _, message = rest.partition(" ")
            head, _, frac = stamp.rstrip("Z").partition(".")
            try:
                us = int(datetime.fromisoformat(head + "+00:00").timestamp()) * 1_000_000 + int((frac + "000000")[:6])
            except ValueError:
                continue
            if lo <= us <= hi:
                out.append((us, message.rstrip("\r")))
    return out


def stable_pods(sb: Sandbox, namespaces: list[str]) -> dict[tuple[str, str, str], list[str]]:
    """(namespace, pod, uid) -> containers of the scheduled, running pods of these namespaces."""
    from sandbox.kube import KubeRest

    api = KubeRest(sb.kubeconfig)
    out = {}
    for ns in namespaces:
        for p in api.list(f"/api/v1/namespaces/{ns}/pods"):
            if p.get("spec", {}).get("nodeName") and p.get("status", {}).get("phase") == "Running":
                meta = p["metadata"]
                out[(ns, meta["name"], meta["uid"])] = [c["name"] for c in p["spec"]["containers"]]
    return out


def search_all(admin: Admin, ns: str, start: float, end: float) -> list[dict[str, Any]]:
    """Every line of a namespace in [start, end) through the search API, splitting the range
    when it holds more than the API's 10,000-line window."""
    items: list[dict[str, Any]] = []
    q = {"namespaces": ns, "start": f"{start:.6f}", "end": f"{end:.6f}", "sort": "asc", "size": "1000"}
    while True:
        page = admin.get("/api/v1/logs?" + urllib.parse.urlencode({**q, "from": str(len(items))}))
        items += page["items"]
        if len(page["items"]) < 1000:
            return items
        if len(items) >= 9000:
            mid = (start + end) / 2
            return search_all(admin, ns, start, mid) + search_all(admin, ns, mid, end)


def check_lines(admin: Admin, sb: Sandbox, pods: dict[tuple[str, str, str], list[str]], t0: float,
                t1: float) -> dict[str, Any]:  # fmt: skip
    expected: Lines = defaultdict(list)
    files: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for (ns, pod, _uid), containers in pods.items():
        for c in containers:
            path = sb.pod_logs_dir / ns / f"{c}.log"
            if not path.exists():
                continue
            if (ns, c) not in files:
                files[(ns, c)] = cri_lines(path, t0, t1)
            for us, message in files[(ns, c)]:
                expected[(pod, c, message)].append(us)
    wanted = {(pod, c) for (_ns, pod, _uid), cs in pods.items() for c in cs}
    actual: Lines = defaultdict(list)
    for ns in sorted({k[0] for k in pods}):
        for item in search_all(admin, ns, t0 - 1, t1 + 1):
            if (item["pod"], item["container"]) not in wanted:
                continue  # a pod that came or went during the soak
            us = round(epoch(item["time"]) * 1e6)
            if int(t0 * 1e6) <= us <= int(t1 * 1e6):
                actual[(item["pod"], item["container"], item["message"])].append(us)
    lost, duplicated, unexpected, examples = compare_lines(expected, actual)
    return {
        "expected": sum(len(v) for v in expected.values()),
        "found": sum(len(v) for v in actual.values()),
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "pods": len(pods),
        "examples": examples,
    }


def compare_lines(expected: Lines, actual: Lines, *, tolerance_us: int = 2) -> tuple[int, int, int, list[str]]:
    """(lost, duplicated, not in the files, a few examples): each line found is matched to one
    expected line of the same pod, container and message within ``tolerance_us`` (the API's
    times pass through a float); a second match of the same line is a duplicate."""
    lost = duplicated = unexpected = 0
    examples: list[str] = []
    for key in expected.keys() | actual.keys():
        want, have = sorted(expected.get(key, [])), sorted(actual.get(key, []))
        matched = [False] * len(want)
        for us in have:
            i = next((j for j, w in enumerate(want) if not matched[j] and abs(w - us) <= tolerance_us), None)
            if i is not None:
                matched[i] = True
                continue
            if any(abs(w - us) <= tolerance_us for w in want):
                duplicated += 1
                what = "duplicated"
            else:
                unexpected += 1
                what = "not in the files"
            if len(examples) < 5:
                examples.append(f"{what}: {key[0]}/{key[1]} {us} {key[2][:80]!r}")
        for i, ok in enumerate(matched):
            if not ok:
                lost += 1
                if len(examples) < 5:
                    examples.append(f"lost: {key[0]}/{key[1]} {want[i]} {key[2][:80]!r}")
    return lost, duplicated, unexpected, examples


def check_5xx(record: Record) -> tuple[int, int, list[Answer]]:
    """(answers, expected 503s, unexpected failures): a 5xx or no answer at all is expected only as
    a 503 naming the backend of a fault that covers the request's time."""
    expected, bad = 0, []
    for a in record.answers:
        if 0 < a.status < 500:
            continue
        if a.status == 503 and any(f.covers(a.t0, a.t1) and a.backend in BACKENDS[f.component] for f in record.faults):
            expected += 1
        else:
            bad.append(a)
    return len(record.answers), expected, bad


# ---- the run ---------------------------------------------------------------------------------


def free_port_base(preferred: int | None) -> int:
    for base in (preferred,) if preferred else PORT_BASES:
        if not any(port_in_use(base + off) for off in PORT_OFFSETS.values()):
            return base
    raise SystemExit(f"soak: no free port base among {[preferred] if preferred else list(PORT_BASES)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the load and fault phase (default 30)")
    ap.add_argument("--quick", action="store_true", help="the CI version: --minutes 5")
    ap.add_argument("--drain", type=float, default=240.0, help="at most this many seconds for the outbox and shipper")
    ap.add_argument("--port-base", type=int, help=f"port base (default: first free of {PORT_BASES})")
    ap.add_argument("--dir", help="directory of the private sandbox (kept; default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary sandbox directory (it is still stopped)")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--pods", type=int, default=24)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma list of components to fault, in turn")
    args = ap.parse_args(argv)
    minutes = 5.0 if args.quick else args.minutes
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if not args.faults or any(f not in FAULTS for f in args.faults):
        raise SystemExit(f"soak: --faults takes a comma list of {', '.join(FAULTS)}")
    if minutes <= 0:
        raise SystemExit("soak: --minutes must be positive")

    def _terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    temp = args.dir is None
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kubehub-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    # Elasticsearch runs as its own user when we are root: let it reach its data in this directory.
    root.chmod(0o755)
    os.environ["KUBEHUB_LOGS_BACKEND"] = "elasticsearch"  # the hub's environment inherits it
    sb = Sandbox(root, port_base=free_port_base(args.port_base))
    say(f"private sandbox in {root}, port base {sb.config.port_base}; load average {os.getloadavg()[0]:.1f}")
    try:
        return run(sb, args, minutes)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("stopping the private sandbox")
        with contextlib.suppress(Exception):
            sb.down()
        if temp and not args.keep:
            with contextlib.suppress(Exception):
                sb.reset()  # also Elasticsearch's data when it lives outside the directory
            shutil.rmtree(root, ignore_errors=True)


def show_log_tail(exc: BaseException, lines: int = 25) -> None:
    """The last lines of the log of the component that failed, when the error names one."""
    log = getattr(exc, "log", None)
    if not isinstance(log, Path) or not log.exists():
        return
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    say(f"last {len(tail)} lines of {log}:")
    for line in tail:
        print(f"    {line}", flush=True)


def run(sb: Sandbox, args: argparse.Namespace, minutes: float) -> int:
    t_up = time.monotonic()
    for attempt in (1, 2):
        try:
            sb.up(nodes=args.nodes, pods=args.pods, hub=True)
            break
        except Exception as exc:
            say(f"the private sandbox did not start: {exc}")
            show_log_tail(exc)  # its directory is removed when the soak ends
            if attempt == 2:
                return 2
            # What the soak measures is the hub under faults, not a component's first start on a
            # machine just done with the whole suite: one more try, said out loud. It starts from
            # an empty state: in ci14 both tries on the same state stopped at the same 19 of 20
            # pods, so what stalled the first was kept in etcd for the second.
            say("trying the private sandbox's start once more, from an empty state")
            with contextlib.suppress(Exception):
                sb.reset()
    say(f"sandbox up in {time.monotonic() - t_up:.0f}s")
    base = sb.hub_url
    creds = sb.credentials
    admin_cred = next(c for c in creds if c.get("platform_role") == "admin")
    admin = Admin(base, admin_cred)
    node = "kwok-node-0"
    soak_policies(admin, node)
    shipper = wait_shipper_idle(admin, timeout=600)
    say(f"shipper caught up with the seeded history: {shipper}")

    record = Record()
    stop = threading.Event()
    rng = random.Random(args.seed)
    tenant_round, admin_round, source = session_scripts()
    threads = []
    for i, cred in enumerate(creds):
        http, csrf, is_admin, namespaces = log_in(base, cred)
        if not is_admin and not namespaces:
            continue
        s = SoakSession(cred["username"], base, http, csrf, record, random.Random(rng.random()), stop)

        def loop(s: SoakSession = s, is_admin: bool = is_admin, namespaces: list[str] = namespaces) -> None:
            while not s.over():
                try:
                    if is_admin:
                        admin_round(s)
                    else:
                        tenant_round(s, s.rng.choice(namespaces))
                except Exception as exc:  # a script's own bug must not end the session quietly
                    s.record.add(Answer(time.time(), time.time(), s.who, "script", "", 0, detail=repr(exc)[:200]))
                s.stop.wait(s.rng.uniform(1.0, 3.0))

        threads.append(threading.Thread(target=loop, name=f"session-{i}", daemon=True))
    hub_pid = sb.sup.pid("hub")
    if hub_pid is None:
        say("the private hub is not running")
        return 2

    def sample_rss() -> None:
        while not stop.is_set():
            with record.lock:
                record.rss.append((time.time(), rss_bytes(hub_pid)))
            stop.wait(10)

    namespaces = [ns for projects in WORKSPACES.values() for ns in projects]
    pods_before = stable_pods(sb, namespaces)
    t0 = time.time()
    say(f"soak: {minutes:g} min, {len(threads)} sessions ({source} scripts), load average {os.getloadavg()[0]:.1f}")
    for t in threads:
        t.start()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()

    end = t0 + minutes * 60
    warmup = min(120.0, max(30.0, minutes * 6))
    time.sleep(warmup)
    rss_first = rss_bytes(hub_pid)
    lo, hi = (20.0, 30.0) if minutes <= 5 else (20.0, 40.0)
    fault_rng = random.Random(args.seed)
    ok = True
    i = 0
    while ok:
        down_for = fault_rng.uniform(lo, hi)
        if i >= len(args.faults) and end - time.time() < down_for + 90:
            break  # every component had its turn; another cycle would not fit
        name = args.faults[i % len(args.faults)]

        # The SMTP catcher must meet mail: a policy made while it is down fires within a few
        # ticks; the catcher stays down until a delivery of it failed (at most SMTP_DOWN_MAX s).
        def while_down(n: int = i, name: str = name) -> None:
            if name != "smtp":
                return
            since = time.time()
            alone = f"soak-smtp-{n}@{SOAK_DOMAIN}"  # a recipient of its own: a group of its own
            create_policy(
                admin, "/api/v1/alerting/policies", node_policy(f"soak-smtp-{n}", node, period="10s", recipient=alone)
            )
            while time.time() < since + SMTP_DOWN_MAX:
                if any(r["status"] == "waiting" and r["attempts"] for r in outbox(admin, limit=50)):
                    return
                time.sleep(2)

        ok = inject(sb, name, down_for, record, while_down=while_down)
        i += 1
        time.sleep(10)
    if time.time() < end:
        time.sleep(end - time.time())
    stop.set()
    for t in threads:
        t.join(70)
    t1 = time.time()
    say(f"load and faults over after {(t1 - t0) / 60:.1f} min; draining (at most {args.drain:.0f}s)")

    pods_after = stable_pods(sb, namespaces)
    pods = {k: v for k, v in pods_before.items() if k in pods_after}
    drain_end = time.monotonic() + args.drain
    notices: dict[str, Any] = {}
    lines: dict[str, Any] = {}
    while True:
        time.sleep(15)  # nodesim appends every 15 s: the lines stamped up to t1 are all in the files now
        try:
            notices = check_notices(admin, sb.mailbox, t0, t1)
            lines = check_lines(admin, sb, pods, t0, t1)
        except (RuntimeError, requests.RequestException) as exc:
            say(f"drain: the hub did not answer a check: {exc}")
            if time.monotonic() > drain_end:
                return 1
            continue
        waiting = notices["expected"] - notices["delivered"]
        say(f"drain: {waiting} message(s) not delivered yet, {lines['lost']} line(s) not found yet")
        if (not waiting and not lines["lost"]) or time.monotonic() > drain_end:
            break
    drained = args.drain - (drain_end - time.monotonic())
    rss_last = rss_bytes(hub_pid)
    answers, expected_503, bad = check_5xx(record)
    growth = (rss_last - rss_first) / rss_first * 100 if rss_first else float("inf")

    say("faults (component, down s, back after start s):")
    for f in record.faults:
        back = f"{f.healthy - f.started:.1f}" if f.healthy else "never"
        covered = sum(1 for a in record.answers if a.status == 503 and f.covers(a.t0, a.t1))
        print(f"  {f.component:15} stopped {time.strftime('%H:%M:%S', time.gmtime(f.stopped))}Z "
              f"down {f.started - f.stopped:5.1f}s  back after {back:>6}s  503s meanwhile {covered}")  # fmt: skip
    statuses = Counter(a.status for a in record.answers)
    print(f"  answers: {answers} ({dict(sorted(statuses.items()))}); expected 503s {expected_503}")
    for a in bad[:20]:
        print(f"  UNEXPECTED {a.status or 'no answer'} {time.strftime('%H:%M:%S', time.gmtime(a.t0))}Z {a.who} "
              f"{a.label} {a.path} backend={a.backend!r} {a.detail[:160]}")  # fmt: skip
    print(
        f"  notices: {notices['expected']} messages queued during the soak ({notices['by_status']}, "
        f"{notices['retried']} retried, {notices['hub_own']} of the hub's own alerts), "
        f"{notices['delivered']} in the Maildir, {notices['duplicated']} duplicated"
    )
    for m in notices["missing"][:10]:
        print(f"  NOT DELIVERED {m}")
    print(
        f"  lines: {lines['expected']} written for {lines['pods']} pods, {lines['found']} found, "
        f"{lines['lost']} lost, {lines['duplicated']} duplicated, {lines['unexpected']} not in the files"
    )
    for e in lines["examples"]:
        print(f"  {e}")
    peak = max((b for _t, b in record.rss), default=rss_last)
    print(f"  hub RSS {rss_first / 2**20:.1f} MiB after the {warmup:.0f}s warm-up -> {rss_last / 2**20:.1f} MiB "
          f"(peak {peak / 2**20:.1f} MiB); "
          f"drain took {drained:.0f}s; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip

    duplicated = notices["duplicated"] + lines["duplicated"]
    faulted = {f.component for f in record.faults}
    failed = [
        name
        for name, bad_check in (
            ("a component did not come back", not ok or any(f.healthy is None for f in record.faults)),
            ("fewer faults than components", len(record.faults) < len(args.faults)),
            ("no notice was queued", notices["expected"] == 0),
            ("the SMTP outage met no message", "smtp" in faulted and not notices["retried"]),
            (
                "the Prometheus outage raised no kubehub-metric-source notice",
                "prometheus" in faulted and not notices["hub_own"],
            ),
            ("notices not delivered", notices["delivered"] < notices["expected"]),
            ("duplicates", duplicated > 0),
            ("no line was written", lines["expected"] == 0),
            ("lines lost", lines["lost"] > 0 or lines["unexpected"] > 0),
            ("unexpected 5xx", bool(bad)),
            (f"hub RSS grew over {RSS_LIMIT_PCT:.0f}%", growth > RSS_LIMIT_PCT),
        )
        if bad_check
    ]
    if failed:
        say("FAILED: " + "; ".join(failed))
    print(
        f"soak: minutes={minutes:g} faults={sum(1 for f in record.faults if f.healthy)} "
        f"notices_expected={notices['expected']} delivered={notices['delivered']} duplicated={duplicated} "
        f"lines_lost={lines['lost']} unexpected_5xx={len(bad)} rss_growth_pct={growth:.1f}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
