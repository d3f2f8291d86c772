"""Log store benchmark: ingest and tenant-scoped search through the hub vs the raw backend query.

    .venv/bin/python bench/logs.py [--quick] [--es-url URL]

1. Generates 1,000,000 synthetic container log lines (``--quick``: 200,000) over two and a half
   days: 300 namespaces with data (skewed: a few are busy), English and Chinese messages, request
   ids, a rare token, colour codes.
2. Ingests them through the hub's own write path (``hub.logs.write``, the shipper's
   sink, 5,000 lines per call like the shipper's batches) into the embedded store and into
   Elasticsearch (the sandbox's, or ``--es-url``), and reports lines per second.
3. Runs a fixed mix of searches for two tenants through the hub (``LogService.search``: parse,
   scope from the tenancy service, store query, audit entry, JSON-ready answer) and, in the
   same run, the raw backend query: for Elasticsearch the identical DSL body the hub sent
   (captured from its search, byte for byte) POSTed with a plain keep-alive HTTP connection,
   for the embedded store the identical SQL statements the hub ran (captured with their
   parameters) on plain sqlite3 connections.

   Tenants: "broad", a workspace admin of 1,200 namespaces (100 of them with data, about a
   third of all lines; two recreated during the data so their floors cut through it) and
   "narrow", a project member of 2 namespaces. Queries: a phrase, an AND, an OR, a rare
   token, a three- and two-character Chinese word, each without a time range and some with
   the last hour or six hours, and a filter-only page of the last hour.

   How the hub runs for the Elasticsearch searches (``--hub``): ``process`` (the default) serves
   the hub as its own process, as deployed (``kubehub serve`` on a free loopback port over the
   data directory the bench prepared, bench/hubproc.py), and the client times
   ``GET /api/v1/logs`` on one keep-alive ``http.client`` connection against the raw DSL POSTed
   the same way on another, decoding both answers: the only difference is the hub (its HTTP
   server, authentication, parameters, scope, the audit entry, JSON). ``inprocess`` calls
   ``LogService.search`` in this process with no HTTP on the hub's side, as earlier runs did.
   The embedded store's searches are always in process (its raw side is SQL on local files).

With ``--postgres`` (a superuser URL of a server's ``postgres`` database; bare: the sandbox's
server) the embedded store's searches run again through a hub whose state (tenancy, scope,
the audit entry every search writes) is in PostgreSQL instead of SQLite, over the same log
files: ``pg_search_x`` is that hub's p95 over the SQLite-state hub's (goal <= 1.5), and
``fixed_ms_pg`` the fixed cost per API request below with the state in PostgreSQL.

The hub's fixed cost per request is measured in process too: ``GET /api/v1/logs?q=...`` as the
broad tenant through the Flask app with the store answering at once (authentication, access
check, parameters, scope, the audit entry, JSON), and ``LogService.search`` alone likewise.

The last line is ``logs: ratio=<hub p95 / raw ES p95> embedded_p95_ms=<...>
embedded_ingest_lps=<...> es_ingest_lps=<...> fixed_ms_embedded=<median of hub - raw>
fixed_ms_es=<same> fixed_ms=<the fixed cost per API request above> embedded_mb_per_m=<disk per
million lines, embedded> es_mb_per_m=<same, Elasticsearch, unmerged> hub=<process|inprocess>``,
and with ``--hub process`` two more: ``inprocess_ratio=<the same searches through LogService.search
in this process, p95 over raw p95>`` and ``served_floor_ms=<p50 of the served hub's GET /healthz
minus p50 of Elasticsearch's GET />``, which together say how much of ``ratio`` is the hub's own
work and how much is one more HTTP hop through a Python server; and ``relay_ratio`` /
``over_relay`` (the raw DSL through a bare relay process, and the hub over it) and
``framework_ratio`` / ``over_framework`` (the raw DSL forwarded by a Flask view on waitress that
does nothing else, bench/hubproc.py: the floor of any hub on this framework served as its own
process, and the hub over it). Goals (issues 7 and 13):
ratio <= 1.2, embedded p95 <= 25 ms at 1M lines, embedded ingest >= 20,000 lines/s, fixed_ms <= 1.
Not a timed test: it reports, it does not assert.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.collectors.logs.store import LogRecord  # noqa: E402
from hub.runtime import Hub, build_hub  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.timeutil import FakeClock  # noqa: E402
from web.params import log_params  # noqa: E402
from web.serving import settle_collector  # noqa: E402

END = 1_795_348_800.0  # 2026-11-22T12:00:00Z: the data spans three UTC days (three partitions)
SPAN = 2.5 * 86_400
DATA_NAMESPACES = 300
BATCH = 5_000  # lines per write, as the shipper delivers them

_WORD_TEXT = (
    "request served user login checkout payment refund order cart session cache redis mysql postgres "
    "kafka consumer producer offset commit retry backoff upstream downstream gateway proxy handler "
    "worker queue job scheduled started stopped ready healthy probe liveness readiness config reload "
    "token expired invalid denied allowed granted metrics exporter scrape target endpoint service "
    "deployment replica rollout image pull container restart memory cpu disk volume mount network "
    "dns resolve lookup socket connect listen accept close read write flush sync batch insert update "
    "delete select query index shard leader follower election heartbeat lease renew "
)
WORDS = _WORD_TEXT.split()
CHINESE = [
    "请求超时",
    "连接数据库失败",
    "用户登录成功",
    "订单创建完成",
    "支付回调失败",
    "缓存未命中",
    "服务启动完成",
    "配置已重新加载",
    "磁盘空间不足",
    "网络连接超时",
    "消息队列积压",
    "健康检查通过",
    "数据同步失败",
    "权限校验通过",
]
TEMPLATES = [
    "GET /api/v1/{w} 200 {n}ms user={u}",
    "POST /api/v1/{w}/{w2} 500 {n}ms error: connection refused",
    "{w} {w2} completed in {n}ms",
    "ERROR {w} failed: timeout after {n}ms (retry {k})",
    "WARN {w} slow {w2} took {n}ms",
    "INFO {w} {w2} ok trace={h}",
    "{zh} trace={h} 耗时{n}毫秒",
    "[{w}] {zh}: {w2} id={h}",
    "\x1b[32mINFO\x1b[0m {w} {w2} {n}",
    "DEBUG {w} {w2} {w3} {h}",
]


def ns_name(i: int) -> str:
    return f"ns-{i:04d}"


def sources(rnd: random.Random) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for i in range(DATA_NAMESPACES):
        for w in range(rnd.randint(1, 3)):
            workload = f"{rnd.choice(WORDS)}-{w}"
            rs = f"{rnd.getrandbits(32):08x}"[:9]
            for _ in range(2):
                pod = f"{workload}-{rs}-{rnd.getrandbits(20):05x}"
                for container in ("app", "proxy") if w == 0 else ("app",):
                    out.append((ns_name(i), workload, pod, container, f"node-{rnd.randint(0, 19)}", f"uid-{pod}"))
    return out


def generate(n: int, *, seed: int = 7) -> Iterator[list[LogRecord]]:
    """Batches of ``BATCH`` lines in time order (as a shipper delivers them), deterministic."""
    rnd = random.Random(seed)
    srcs = sources(rnd)
    # skewed: source i of namespace k gets weight ~ 1/(k+1)^0.8
    cum: list[float] = []
    total = 0.0
    for s in srcs:
        total += 1.0 / (int(s[0][3:]) + 1) ** 0.8
        cum.append(total)
    step = SPAN / n
    start = END - SPAN
    batch: list[LogRecord] = []
    for i in range(n):
        t = start + i * step + rnd.random() * step
        ns, workload, pod, container, node, uid = srcs[bisect.bisect(cum, rnd.random() * total)]
        template = TEMPLATES[rnd.randrange(len(TEMPLATES))]
        message = template.format(
            w=rnd.choice(WORDS),
            w2=rnd.choice(WORDS),
            w3=rnd.choice(WORDS),
            n=rnd.randint(1, 5000),
            k=rnd.randint(1, 5),
            u=rnd.randint(1, 100_000),
            h=f"{rnd.getrandbits(32):08x}",
            zh=rnd.choice(CHINESE),
        )
        if rnd.random() < 0.00005:
            message += " zqxjv-rare"
        batch.append(
            LogRecord(
                time=t,
                namespace=ns,
                workload=workload,
                pod=pod,
                container=container,
                node=node,
                pod_uid=uid,
                message=message,
                uid=f"{uid}/{container}/{i}",
            )
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# -- the hub under test -----------------------------------------------------------------------------


def make_hub(
    data_dir: Path, logs: dict[str, Any], es: dict[str, Any] | None = None, database_url: str = ""
) -> tuple[Hub, FakeClock]:
    clock = FakeClock(END - SPAN - 86_400)  # projects exist a day before the data
    settings = Settings(data_dir=data_dir, database_url=database_url).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False, "retention_days": 7, **logs},
        auth={"password_hash_memory_kib": 1024, "password_hash_time_cost": 1},
    )
    if es:
        settings = settings.replace(elasticsearch=es)
    return build_hub(settings, clock=clock), clock


def make_tenants(hub: Hub, clock: FakeClock, tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """The broad and narrow tenants' principals (through the tenancy service, as a request would);
    their API tokens go into ``tokens`` if given."""
    tenancy = hub.tenancy
    password = "Bench-password-1"
    tenancy.create_workspace("big")
    tenancy.create_workspace("small")
    for i in range(0, DATA_NAMESPACES, 3):
        tenancy.create_project("big", ns_name(i))
    for i in range(1000, 2100):
        tenancy.create_project("big", ns_name(i))  # namespaces with no lines at all
    for i in (5, 77):
        tenancy.create_project("small", ns_name(i))
    # two namespaces of the broad tenant were deleted and recreated while the data was written
    for i in (3, 6):
        tenancy.observe_namespace(ns_name(i), created=END - SPAN / 2 - i * 3600)
    tenancy.create_user("broad", password)
    tenancy.set_workspace_member("big", "broad", "admin")
    tenancy.create_user("narrow", password)
    for i in (5, 77):
        tenancy.set_project_member(ns_name(i), "narrow", "viewer")
    out = {}
    for name in ("broad", "narrow"):
        token = tenancy.issue_token(name, kind="named", name="bench").token
        out[name] = tenancy.principal_from_token(token)
        if tokens is not None:
            tokens[name] = token
    clock.set(END + 60)
    return out


def query_mix() -> list[dict[str, str]]:
    hour = {"start": str(END - 3600), "end": str(END)}
    six = {"start": str(END - 6 * 3600), "end": str(END)}
    return [
        {"q": '"connection refused"'},
        {"q": "error timeout"},
        {"q": "payment OR refund"},
        {"q": "zqxjv"},
        {"q": "数据库"},
        {"q": "超时"},
        {"q": "失败"},
        {"q": "超时", **hour},
        {"q": '"connection refused"', **six},
        {"q": "error timeout", **hour},
        {**hour},
    ]


def ingest(hub: Hub, n: int) -> float:
    service = hub.logs
    elapsed = 0.0
    written = 0
    for batch in generate(n):
        t0 = time.perf_counter()
        written += service.write(batch)
        elapsed += time.perf_counter() - t0
    service.store.refresh()
    if written != n:
        raise SystemExit(f"logs: bench: wrote {written} of {n} lines")
    return n / elapsed


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- raw baselines ------------------------------------------------------------------------------------


class RawSql:
    """Replays the exact statements the embedded store ran, on plain sqlite3 connections."""

    def __init__(self) -> None:
        self.conns: dict[str, sqlite3.Connection] = {}

    def run(self, statements: list[tuple[str, str]]) -> None:
        for path, sql in statements:
            conn = self.conns.get(path)
            if conn is None:
                conn = sqlite3.connect(path, check_same_thread=False)
                conn.execute("PRAGMA query_only=ON")
                conn.execute("PRAGMA cache_size=-16384")
                conn.execute("PRAGMA mmap_size=268435456")
                self.conns[path] = conn
            conn.execute(sql).fetchall()


class RawEs:
    """POSTs a DSL body to ``_search`` on one keep-alive connection and decodes the answer."""

    def __init__(self, url: str, pattern: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 9200, timeout=30)
        self.path = f"/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"

    def run(self, body: bytes) -> dict[str, Any]:
        self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"logs: bench: raw search failed with HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data)  # type: ignore[no-any-return]


class ScopeTimer:
    """Times the tenancy service's scope() calls made inside the hub's searches (not replaced:
    the real method runs), so the report can say how much of the hub's time is scoping."""

    def __init__(self, tenancy: Any) -> None:
        self.calls: list[float] = []
        real = tenancy.scope

        def timed(principal: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real(principal)
            finally:
                self.calls.append((time.perf_counter() - t0) * 1000)

        tenancy.scope = timed


def measure(
    hub: Hub,
    tenants: dict[str, Any],
    reps: int,
    raw_for: Callable[[Any, dict[str, str]], Callable[[], Any]],
    *,
    verbose: bool = False,
) -> tuple[list[float], list[float]]:
    service = hub.logs
    cases = [(name, args) for name in tenants for args in query_mix()]
    raws = {}
    for name, args in cases:  # warm-up, and the raw baseline of each case
        service.search(hub.tenancy.scope(tenants[name]), log_params(args))
        raws[(name, json.dumps(args))] = raw_for(tenants[name], args)
        raws[(name, json.dumps(args))]()
    timer = ScopeTimer(hub.tenancy)
    hub_ms: list[float] = []
    raw_ms: list[float] = []
    per_case: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for rep in range(reps):
        for name, args in cases:
            key = (name, json.dumps(args, ensure_ascii=False))
            raw = raws[(name, json.dumps(args))]
            mine = per_case.setdefault(key, ([], []))
            order = (0, 1) if rep % 2 == 0 else (1, 0)
            for which in order:
                t0 = time.perf_counter()
                if which == 0:
                    service.search(hub.tenancy.scope(tenants[name]), log_params(args))
                    mine[0].append((time.perf_counter() - t0) * 1000)
                else:
                    raw()
                    mine[1].append((time.perf_counter() - t0) * 1000)
            hub_ms.append(mine[0][-1])
            raw_ms.append(mine[1][-1])
    # Diagnostic only (not in the ratio): the hub's time minus its own tenancy.scope() call,
    # i.e. what the logs area adds on top of the raw query.
    without_scope = [h - s for h, s in zip(hub_ms, timer.calls, strict=True)]
    print(
        f"    (tenancy.scope() inside the hub's searches: p50 {statistics.median(timer.calls):.2f} ms, "
        f"p95 {p(timer.calls, 0.95):.2f} ms; hub time minus that call: p50 {statistics.median(without_scope):.2f} ms, "
        f"p95 {p(without_scope, 0.95):.2f} ms)",
        flush=True,
    )
    if verbose:
        for (name, args_text), (h, r) in per_case.items():
            hub_p50, raw_p50 = statistics.median(h), statistics.median(r)
            print(f"    {name:6} {args_text:60} hub p50 {hub_p50:7.2f} ms  raw p50 {raw_p50:7.2f} ms")
    return hub_ms, raw_ms


class HubHttp:
    """``GET /api/v1/logs`` of a served hub on one keep-alive connection, decoded like
    :class:`RawEs` decodes Elasticsearch's answer (the same client code on both sides)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)

    def run(self, token: str, args: dict[str, str]) -> dict[str, Any]:
        self.conn.request(
            "GET", "/api/v1/logs?" + urllib.parse.urlencode(args), headers={"Authorization": f"Bearer {token}"}
        )
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"logs: bench: hub search failed with HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data)  # type: ignore[no-any-return]


def served_floor(hub_url: str, es_url: str, rounds: int = 300) -> tuple[float, float]:
    """p50 (ms) of ``GET /healthz`` of the served hub and of Elasticsearch's ``GET /``, interleaved,
    each on its own keep-alive connection and decoded: what one HTTP request through the hub's
    server (waitress, Flask, the request hooks) costs before any work, against the backend's own
    cheapest answer."""
    hub_parts, es_parts = urllib.parse.urlsplit(hub_url), urllib.parse.urlsplit(es_url)
    conns = (
        (http.client.HTTPConnection(hub_parts.hostname or "127.0.0.1", hub_parts.port or 80, timeout=30), "/healthz"),
        (http.client.HTTPConnection(es_parts.hostname or "127.0.0.1", es_parts.port or 9200, timeout=30), "/"),
    )
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds + 20):
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            conn, path = conns[which]
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            json.loads(resp.read())
            if i >= 20:  # the first requests warm both connections
                times[which].append((time.perf_counter() - t0) * 1000)
    for conn, _ in conns:
        conn.close()
    return statistics.median(times[0]), statistics.median(times[1])


def measure_served(
    hub: Hub,
    url: str,
    tenants: dict[str, Any],
    tokens: dict[str, str],
    reps: int,
    raw_for: Callable[[Any, dict[str, str]], Callable[[], Any]],
    vias_for: Sequence[Callable[[Any, dict[str, str]], Callable[[], Any]]],
    *,
    verbose: bool = False,
) -> list[list[float]]:
    """As :func:`measure`, with the hub's side an HTTP search of the hub served at ``url`` (its
    own process); ``hub`` (idle, same data directory) only compiles the raw side's DSL. Each of
    ``vias_for`` sends the raw side's very request through another process in front of
    Elasticsearch (bench/hubproc.py, Relay): the floor of any separate process on that path, and
    of any hub built on the same framework and server. All sides take turns in a rotating order.
    Returns the hub's times, the raw ones and each via's (ms), in that order."""
    client = HubHttp(url)
    cases = [(name, args) for name in tenants for args in query_mix()]
    raws: dict[tuple[str, str], Callable[[], Any]] = {}
    vias: dict[tuple[str, str], list[Callable[[], Any]]] = {}
    for name, args in cases:  # warm-up; and every side must agree before their speed means anything
        key = (name, json.dumps(args))
        raws[key] = raw_for(tenants[name], args)
        vias[key] = [via_for(tenants[name], args) for via_for in vias_for]
        mine = client.run(tokens[name], args)["total"]
        theirs = [side()["hits"]["total"]["value"] for side in (raws[key], *vias[key])]
        if any(total != mine for total in theirs):
            print(f"logs: bench: {name} {args}: hub total {mine}, raw and relayed {theirs}", file=sys.stderr)
    sides_n = 2 + len(vias_for)
    times: list[list[float]] = [[] for _ in range(sides_n)]
    per_case: dict[tuple[str, str], list[list[float]]] = {}
    for rep in range(reps):
        for name, args in cases:
            key = (name, json.dumps(args))
            sides = [
                lambda: client.run(tokens[name], args),  # noqa: B023 -- called in this iteration
                raws[key],
                *vias[key],
            ]
            mine_ms = per_case.setdefault((name, json.dumps(args, ensure_ascii=False)), [[] for _ in range(sides_n)])
            for step in range(sides_n):
                which = (step + rep) % sides_n
                t0 = time.perf_counter()
                sides[which]()
                mine_ms[which].append((time.perf_counter() - t0) * 1000)
                times[which].append(mine_ms[which][-1])
    if verbose:
        for (name, args_text), columns in per_case.items():
            medians = "  ".join(f"{statistics.median(c):7.2f}" for c in columns)
            print(f"    {name:6} {args_text:60} p50 ms (hub, raw, relayed...): {medians}")
    return times


def api_fixed_cost(hub: Hub, username: str, rounds: int = 200) -> tuple[float, float]:
    """The hub's own cost per log search, in process, with the store answering at once: (p50 of
    ``GET /api/v1/logs?q=...`` through the Flask app as ``username`` -- authentication, access
    check, parameters, scope, the audit entry, JSON -- and p50 of ``LogService.search`` alone for
    the same search), in ms. The store's ``search`` is swapped for an empty answer meanwhile."""
    from hub.collectors.logs.store import SearchResult
    from web import create_app

    app = create_app(hub=hub)
    client = app.test_client()
    token = hub.tenancy.issue_token(username, kind="named", name="fixed").token
    headers = {"Authorization": f"Bearer {token}"}
    store = hub.logs.store
    real = store.search
    store.search = lambda query: SearchResult(items=[], total=0)  # type: ignore[method-assign]
    try:
        url = "/api/v1/logs?q=timeout"
        first = client.get(url, headers=headers)
        assert first.status_code == 200, first.get_data(as_text=True)
        request_ms: list[float] = []
        service_ms: list[float] = []
        # The principal the requests carry: the tenancy service caches one scope per user for
        # one principal, so a principal built another way (principal_for) would rebuild the
        # 1,200-namespace scope on every call of this loop (~1 ms), which no single client does.
        principal = hub.tenancy.principal_from_token(token)
        for _ in range(rounds):
            t0 = time.perf_counter()
            client.get(url, headers=headers)
            request_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            hub.logs.search(hub.tenancy.scope(principal), log_params({"q": "timeout"}))
            service_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        store.search = real  # type: ignore[method-assign]
    return statistics.median(request_ms), statistics.median(service_ms)


def embedded_raw(hub: Hub) -> Callable[[Any, dict[str, str]], Callable[[], Any]]:
    service = hub.logs
    store = service.store
    raw = RawSql()

    def make(principal: Any, args: dict[str, str]) -> Callable[[], Any]:
        captured: list[tuple[str, str]] = []
        store.statement_log = lambda path, sql: captured.append((path, sql))
        try:
            service.search(hub.tenancy.scope(principal), log_params(args))
        finally:
            store.statement_log = None
        return lambda: raw.run(captured)

    return make


def es_raw(hub: Hub, url: str, *, via: str = "") -> Callable[[Any, dict[str, str]], Callable[[], Any]]:
    """The hub's own Elasticsearch requests, replayed raw against ``url`` (or ``via`` a relay
    in front of it, bench/hubproc.py's Relay) on one keep-alive connection."""
    service = hub.logs
    store = service.store
    raw = RawEs(via or url, store.pattern)

    def make(principal: Any, args: dict[str, str]) -> Callable[[], Any]:
        # The very bodies the hub's search sends (one per cluster asked; the scope, cluster and
        # keyword clauses included), captured from a search of this idle hub as the embedded
        # side captures its SQL: the raw side asks Elasticsearch exactly what the hub asks.
        bodies: list[bytes] = []
        encode = store.encode_search
        store.encode_search = lambda body: bodies.append(encode(body)) or bodies[-1]
        try:
            service.search(hub.tenancy.scope(principal), log_params(args))
        finally:
            del store.encode_search
        if not bodies:
            raise SystemExit(f"logs: bench: the hub's search {args} sent Elasticsearch nothing to replay")
        return lambda: [raw.run(body) for body in bodies][-1]

    return make


def sandbox_es_url() -> str | None:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "hub.cli", "sandbox", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )
        return json.loads(out.stdout).get("elasticsearch_url") or None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def postgres_database(server: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on ``server`` (``sandbox``: the sandbox's) and the function dropping it."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    if server == "sandbox":
        from sandbox.core import Sandbox

        server = Sandbox().ensure_postgresql()
    name = f"kh_bench_logs_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, "")), drop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200,000 lines instead of 1,000,000 (CI)")
    ap.add_argument("--lines", type=int, default=0, help="override the number of lines")
    ap.add_argument("--reps", type=int, default=0, help="repetitions of the query mix")
    ap.add_argument("--es-url", default="", help="Elasticsearch URL (default: the sandbox's)")
    ap.add_argument("--verbose", action="store_true", help="print each query's medians")
    ap.add_argument(
        "--hub",
        choices=("process", "inprocess"),
        default="process",
        help="Elasticsearch searches through the hub served as its own `kubehub serve` process over "
        "HTTP (default, as deployed), or LogService.search called in this process",
    )
    ap.add_argument(
        "--postgres",
        nargs="?",
        const="sandbox",
        metavar="URL",
        help="search the embedded store again through a hub with its state in PostgreSQL "
        "(a superuser URL of the server's postgres database; bare: the sandbox's server)",
    )
    args = ap.parse_args(argv)
    n = args.lines or (200_000 if args.quick else 1_000_000)
    # The p95 of 22 searches x 15 reps is the 17th slowest of 330 (at 5 reps, the 6th of 110):
    # one search that met a load spike moves it less. It takes a few seconds more.
    reps = args.reps or 15
    es_url = args.es_url or sandbox_es_url()
    if not es_url:
        print("logs: no Elasticsearch; start the sandbox (kubehub sandbox up) or pass --es-url", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="kubehub-bench-logs-"))
    prefix = f"kubehub-bench-{uuid.uuid4().hex[:8]}"
    hubs: list[Hub] = []
    try:
        t0 = time.perf_counter()
        sum(len(b) for b in generate(min(n, 50_000)))
        gen_rate = min(n, 50_000) / (time.perf_counter() - t0)
        print(f"logs: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus at the start", flush=True)
        print(
            f"logs: {n} synthetic lines over {SPAN / 86_400:g} days, {DATA_NAMESPACES} namespaces with data "
            f"(generator alone: {gen_rate:,.0f} lines/s, not counted below)",
            flush=True,
        )

        emb, emb_clock = make_hub(work / "embedded", {"backend": "embedded"})
        hubs.append(emb)
        emb_lps = ingest(emb, n)
        parts = emb.logs.store.partitions()
        size_mb = sum(p.bytes for p in parts) / 1e6
        print(
            f"logs: embedded ingest {emb_lps:,.0f} lines/s through LogService.write "
            f"({len(parts)} day files, {size_mb:.0f} MB)",
            flush=True,
        )
        emb_tenants = make_tenants(emb, emb_clock)

        es, es_clock = make_hub(
            work / "es", {"backend": "elasticsearch"}, {"url": es_url, "index_prefix": prefix, "timeout": 60.0}
        )
        hubs.append(es)
        es_lps = ingest(es, n)
        # Right after ingest and a refresh (segments not force-merged), as a store that was just
        # written holds them: the disk figure of docs/scale.md, per million lines.
        es_mb = sum(p.bytes for p in es.logs.store.partitions()) / 1e6
        print(
            f"logs: elasticsearch ingest {es_lps:,.0f} lines/s through LogService.write ({es_url}; {es_mb:.0f} MB)",
            flush=True,
        )
        es_tokens: dict[str, str] = {}
        es_tenants = make_tenants(es, es_clock, es_tokens)

        # The searches below run in this process beside everything the bench set up; a started
        # `kubehub serve` freezes what it made at start out of the collector's sight (web/serving.py
        # says why), and the in-process hub is given the same.
        settle_collector()
        emb_hub, emb_rawv = measure(emb, emb_tenants, reps, embedded_raw(emb), verbose=args.verbose)
        print(
            f"logs: embedded search ({len(emb_hub)} runs): hub p50={statistics.median(emb_hub):.2f}ms "
            f"p95={p(emb_hub, 0.95):.2f}ms max={max(emb_hub):.2f}ms; "
            f"same SQL raw p50={statistics.median(emb_rawv):.2f}ms "
            f"p95={p(emb_rawv, 0.95):.2f}ms",
            flush=True,
        )
        if args.hub == "process":
            from bench.hubproc import Relay, ServedHub

            # The same data directory (tenancy, floors, tokens) and index prefix; retention is
            # neither applied nor managed (the data is dated; the served hub's clock is real).
            served = ServedHub(
                work / "es",
                {
                    "LOGS_BACKEND": "elasticsearch",
                    "LOGS_RETENTION_DAYS": "3650",
                    "ELASTICSEARCH_URL": es_url,
                    "ELASTICSEARCH_INDEX_PREFIX": prefix,
                    "ELASTICSEARCH_TIMEOUT": "60",
                    "ELASTICSEARCH_MANAGE_RETENTION": "false",
                },
            )
            relay = Relay(es_url)
            framework = Relay(es_url, framework=True, threads=Settings().http.threads)
            how = f"the hub as its own process (kubehub serve, pid {served.pid}), GET /api/v1/logs over HTTP"
            try:
                es_hub, es_rawv, es_relayed, es_framework = measure_served(
                    es,
                    served.url,
                    es_tenants,
                    es_tokens,
                    reps,
                    es_raw(es, es_url),
                    [es_raw(es, es_url, via=relay.url), es_raw(es, es_url, via=framework.url)],
                    verbose=args.verbose,
                )
                floor = served_floor(served.url, es_url)
            finally:
                served.close()
                relay.close()
                framework.close()
            settle_collector()
            in_hub, in_raw = measure(es, es_tenants, reps, es_raw(es, es_url))
            print(
                f"logs: the same searches with LogService.search called in this process ({len(in_hub)} runs): "
                f"hub p50={statistics.median(in_hub):.2f}ms p95={p(in_hub, 0.95):.2f}ms; raw "
                f"p50={statistics.median(in_raw):.2f}ms p95={p(in_raw, 0.95):.2f}ms (ratio "
                f"{p(in_hub, 0.95) / p(in_raw, 0.95):.2f})",
                flush=True,
            )
            print(
                f"logs: the served floor: GET /healthz of the served hub p50={floor[0]:.2f}ms vs "
                f"Elasticsearch's GET / p50={floor[1]:.2f}ms on the same kind of connection: an HTTP "
                f"request through the hub's server and Flask costs {floor[0] - floor[1]:.2f} ms more "
                "before any search",
                flush=True,
            )
            print(
                f"logs: the same DSL through a do-nothing relay process (bench/hubproc.py Relay), interleaved with the "
                f"hub and the raw query: p50={statistics.median(es_relayed):.2f}ms p95={p(es_relayed, 0.95):.2f}ms, "
                f"i.e. {p(es_relayed, 0.95) / p(es_rawv, 0.95):.2f}x the raw p95 before any work; the served hub's p95 "
                f"is {p(es_hub, 0.95) / p(es_relayed, 0.95):.2f}x the relay's",
                flush=True,
            )
            print(
                f"logs: the same DSL forwarded by a Flask view on waitress with nothing else to do "
                f"(bench/hubproc.py serve_framework_relay), interleaved with the hub, the raw query and the relay: "
                f"p50={statistics.median(es_framework):.2f}ms p95={p(es_framework, 0.95):.2f}ms, i.e. "
                f"{p(es_framework, 0.95) / p(es_rawv, 0.95):.2f}x the raw p95: the floor of any hub on this framework "
                f"served as its own process; the served hub's p95 is {p(es_hub, 0.95) / p(es_framework, 0.95):.2f}x "
                f"it (p50 {statistics.median(es_hub) - statistics.median(es_framework):.2f} ms more)",
                flush=True,
            )
            served_fields = (
                f" inprocess_ratio={p(in_hub, 0.95) / p(in_raw, 0.95):.2f} served_floor_ms={floor[0] - floor[1]:.2f}"
                f" relay_ratio={p(es_relayed, 0.95) / p(es_rawv, 0.95):.2f}"
                f" over_relay={p(es_hub, 0.95) / p(es_relayed, 0.95):.2f}"
                f" framework_ratio={p(es_framework, 0.95) / p(es_rawv, 0.95):.2f}"
                f" over_framework={p(es_hub, 0.95) / p(es_framework, 0.95):.2f}"
            )
        else:
            served_fields = ""
            how = "LogService.search called in this process (no HTTP on the hub's side)"
            es_hub, es_rawv = measure(es, es_tenants, reps, es_raw(es, es_url), verbose=args.verbose)
        print(
            f"logs: elasticsearch search, {how} ({len(es_hub)} runs): hub p50={statistics.median(es_hub):.2f}ms "
            f"p95={p(es_hub, 0.95):.2f}ms; same DSL raw p50={statistics.median(es_rawv):.2f}ms "
            f"p95={p(es_rawv, 0.95):.2f}ms",
            flush=True,
        )
        pg_fields = ""
        if args.postgres:
            pg_url, drop = postgres_database(args.postgres)
            pg: Hub | None = None
            try:
                # The same log files as the SQLite-state hub's; only the hub's own state moves.
                pg, pg_clock = make_hub(work / "embedded", {"backend": "embedded"}, database_url=pg_url)
                pg_hub, _ = measure(pg, make_tenants(pg, pg_clock), reps, embedded_raw(pg), verbose=args.verbose)
                print(
                    f"logs: embedded search with the hub's state in PostgreSQL ({len(pg_hub)} runs): "
                    f"hub p50={statistics.median(pg_hub):.2f}ms p95={p(pg_hub, 0.95):.2f}ms "
                    f"(state in SQLite: p95={p(emb_hub, 0.95):.2f}ms)",
                    flush=True,
                )
                pg_api_ms, _ = api_fixed_cost(pg, "broad")
                print(
                    f"logs: the hub's fixed cost per API request with its state in PostgreSQL (as below): "
                    f"{pg_api_ms:.3f} ms",
                    flush=True,
                )
                pg_fields = f" pg_search_x={p(pg_hub, 0.95) / p(emb_hub, 0.95):.2f} fixed_ms_pg={pg_api_ms:.3f}"
            finally:
                if pg is not None:
                    pg.close()
                drop()
        api_ms, service_ms = api_fixed_cost(es, "broad")
        print(
            f"logs: the hub's fixed cost per API request (in process, store answering at once, tenant of "
            f"1,200 namespaces): {api_ms:.3f} ms (GET /api/v1/logs p50: auth, access, parameters, scope, audit, "
            f"JSON; of which LogService.search alone {service_ms:.3f} ms)",
            flush=True,
        )
        print(f"logs: load average {os.getloadavg()[0]:.1f} at the end", flush=True)
        ratio = p(es_hub, 0.95) / p(es_rawv, 0.95)
        # The hub's fixed cost per search: the median of (hub - raw) over the interleaved pairs
        # of the same case (scope from the cache, parameters, scope-to-query, the audit entry,
        # the answer's dicts), i.e. what the hub adds on top of the store's own query.
        fixed_emb = statistics.median(h - r for h, r in zip(emb_hub, emb_rawv, strict=True))
        fixed_es = statistics.median(h - r for h, r in zip(es_hub, es_rawv, strict=True))
        print(
            f"logs: the hub's fixed cost per search (median of hub - raw, same case): "
            f"embedded {fixed_emb:.2f} ms, elasticsearch {fixed_es:.2f} ms",
            flush=True,
        )
        print(
            f"logs: ratio={ratio:.2f} embedded_p95_ms={p(emb_hub, 0.95):.2f} "
            f"embedded_ingest_lps={emb_lps:.0f} es_ingest_lps={es_lps:.0f} "
            f"fixed_ms_embedded={fixed_emb:.2f} fixed_ms_es={fixed_es:.2f} fixed_ms={api_ms:.3f}{pg_fields} "
            f"embedded_mb_per_m={size_mb * 1e6 / n:.0f} es_mb_per_m={es_mb * 1e6 / n:.0f} hub={args.hub}{served_fields}"
        )
        return 0
    finally:
        for h in hubs:
            store = h.logs.store
            if h.settings.logs.backend == "elasticsearch":
                try:
                    store.drop_before("9999-12-31")
                    store._es.indices.delete_index_template(name=f"kubehub-{prefix}")
                except Exception as exc:  # cleanup is best effort; say what is left behind
                    print(f"logs: bench: could not remove {prefix}-* ({exc})", file=sys.stderr)
            h.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
