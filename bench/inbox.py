"""Benchmark: alert-to-inbox delay of the live engine (issue 15, "email": p95 <= period x
consecutive + 2 s, measured from the slot's end to the catcher's receipt).

What "the slot's end" is in kubehub's engine (``hub/alerts/engine_model.py``): a rule of period
``P`` is evaluated on epoch-aligned slots ``(T - P, T]`` with ``T`` a multiple of ``P``; a
PromQL rule reads one point per slot, the expression's value AT ``T``. A scheduler tick (every
``alerts.tick_seconds``, on the epoch grid of the tick 1 s past each multiple; before 20da4b7 at
the phase of the process's start) evaluates the latest slot that closed since the last cycle.
``consecutive = c`` means c evaluated slots in a row breach. So the reference instant of an
alert is **the first slot end T_c at which the expression has returned the entity at c
consecutive slot ends** — read afterwards from Prometheus's own answer (a range query of the
same expression at the slot ends, step P), not from the hub. The delay is the catcher's
receipt (the mtime of the message's Maildir file, written by the catcher as it accepts DATA)
minus T_c.

Setting, all private and on loopback (port base 27000 by default): a synthetic exporter (a
thread of this process) serves ``kubehub_inbox_level{node=...}`` for N "nodes"; a private
Prometheus (Debian's 2.42) scrapes it every second; the sandbox's own mail catcher
(``python -m sandbox.smtp``, aiosmtpd writing a Maildir) on a private port and Maildir; the
hub as deployed (``kubehub serve``, bench/hubproc.py) on a private data dir with
``alerts.evaluate`` on, its APScheduler cycles, outbox and aiosmtplib sender, and otherwise
the hub's DEFAULT alert settings (tick 15 s, delivery round 5 s, grouping on with group_wait
30 s) unless ``--tick/--group-wait/--delivery`` say otherwise. Four node-level policies with
staggered thresholds (``kubehub_inbox_level > 0.5``, ``> 1.5``, ...), each mailing its own
unique address, period P and ``consecutive`` c. Each node's level is a staircase that climbs by
one per period, starting half a period after a slot end (so no step is near a slot end where a
scrape's timing could decide the answer), nodes starting a few periods apart: every (policy,
node) fires once, a few dozen alerts at different instants relative to the scheduler's phase.

Baseline in the same run: the budget itself (what Prometheus's own rule with ``for = (c-1) x P``
at ``evaluation_interval = P`` promises from the condition's first evaluation, plus 2 s of
delivery), and the raw floor of the delivery step: ``aiosmtplib.send`` of one rendered-sized
message on a new connection to the same catcher, from the call to the catcher's Maildir file.

Last line: ``inbox: p95_s=<...> budget_s=<P x c + 2> alerts=<n> lost=<n> p50_s=... max_s=...
raw_send_p95_s=... load=<1-min load average before/after>``.

Over 400 lines because the exporter, the private stack, the hub's preparation, the catcher's
Maildir reader and the Prometheus reference belong to this one measurement and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.policy import default as default_policy
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.exposition import exposition_server  # noqa: E402
from bench.hubproc import ServedHub, stop_processes  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
METRIC = "kubehub_inbox_level"
PASSWORD = "correct-horse-staple-7193"
THRESHOLDS = (0.5, 1.5, 2.5, 3.5)  # one policy each: policy j breaches from the j-th step on
SLACK = 2.0  # seconds the budget allows beyond period x consecutive


@dataclass(frozen=True)
class Node:
    name: str
    start: float  # the level is 0 before, then 1, 2, ... one more each period (start: mid-slot)


def load1() -> float:
    return os.getloadavg()[0]


def http_json(url: str, *, data: bytes | None = None, token: str = "", timeout: float = 30) -> Any:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def level(node: Node, t: float, period: float, top: int) -> int:
    return 0 if t < node.start else min(top, int((t - node.start) // period) + 1)


def serve_exporter(port: int, nodes: list[Node], period: float, top: int) -> ThreadingHTTPServer:
    """The synthetic exporter: each node's staircase at the moment of the scrape."""

    def body() -> bytes:
        now = time.time()
        text = f"# TYPE {METRIC} gauge\n" + "".join(
            f'{METRIC}{{node="{n.name}"}} {level(n, now, period, top)}\n' for n in nodes
        )
        return text.encode()

    server = exposition_server(port, body)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Stack:
    """The private Prometheus and mail catcher (ordinary processes), stopped by ``stop``."""

    def __init__(self, work: Path, port_base: int) -> None:
        self.work = work
        self.exporter_port = port_base + 91
        self.prom_port = port_base + 90
        self.smtp_port = port_base + 25
        self.maildir = work / "maildir"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    def start(self) -> None:
        config = self.work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: inbox\n    static_configs: [{{targets: ['127.0.0.1:{self.exporter_port}']}}]\n"
        )
        log = (self.work / "procs.log").open("ab")
        for argv in (
            [sys.executable, "-m", "sandbox.smtp", "--port", str(self.smtp_port), "--maildir", str(self.maildir)],
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.work / 'prom'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--log.level=warn",
            ],
        ):
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                up = http_json(f"{self.prom_url}/api/v1/query?query=up")["data"]["result"]
                if up and up[0]["value"][1] == "1" and (self.maildir / "new").is_dir():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"inbox bench: Prometheus or the catcher did not start; see {self.work / 'procs.log'}")

    def stop(self) -> None:
        stop_processes(self.procs)


def prepare_hub(data_dir: Path, prom_url: str) -> str:
    """An admin and its API token in ``data_dir`` (an in-process hub, closed before serving)."""
    from hub.runtime import build_hub
    from hub.settings import Settings

    settings = Settings(data_dir=data_dir).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        alerts={"evaluate": False},
        prometheus={"url": prom_url},
        auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1},
    )
    hub = build_hub(settings)
    try:
        hub.tenancy.create_user("bench", PASSWORD, platform_role="admin")
        return str(hub.tenancy.issue_token("bench").token)
    finally:
        hub.close()


def policy_document(j: int, threshold: float, period: int, consecutive: int, address: str) -> dict[str, Any]:
    return {
        "name": f"inbox-{j}",
        "level": "node",
        "rules": [
            {
                "name": "level",
                "expr": f"{METRIC} > {threshold}",
                "period": f"{period}s",
                "consecutive": consecutive,
                "severity": "critical",
            }
        ],
        "notification": {"receivers": [{"email": address}]},
    }


def raw_sends(port: int, maildir: Path, count: int) -> list[tuple[float, float]]:
    """The delivery floor: ``aiosmtplib.send`` of a ~10 KB message on a new connection each time;
    returns (seconds until send() returned, seconds until the catcher's Maildir file)."""
    import aiosmtplib

    body = ("x" * 76 + "\r\n") * 130
    out: list[tuple[float, float]] = []

    async def one(i: int) -> tuple[float, float]:
        marker = f"raw-{os.getpid()}-{i}"
        msg = f"From: bench@example.com\r\nTo: raw@example.com\r\nSubject: {marker}\r\n\r\n{body}"
        t0 = time.time()
        await aiosmtplib.send(
            msg.encode(), sender="bench@example.com", recipients=["raw@example.com"], hostname="127.0.0.1", port=port
        )
        t1 = time.time()
        for f in (maildir / "new").iterdir():
            if marker.encode() in f.read_bytes()[:400]:
                return t1 - t0, f.stat().st_mtime - t0
        raise SystemExit("inbox bench: a raw message did not reach the catcher's Maildir")

    for i in range(count):
        out.append(asyncio.run(one(i)))
        time.sleep(0.2)
    return out


def receipts(maildir: Path, addresses: dict[str, int], names: list[str]) -> dict[tuple[int, str], float]:
    """(policy index, node) -> the earliest receipt of a FIRING message naming the node, from
    the catcher's Maildir (file mtime: written as the catcher accepted the message)."""
    found: dict[tuple[int, str], float] = {}
    pattern = re.compile("|".join(re.escape(n) for n in names))
    for sub in ("new", "cur"):
        for f in (maildir / sub).iterdir():
            msg = email.message_from_bytes(f.read_bytes(), policy=default_policy)
            rcpt = str(msg.get("X-Sandbox-Rcpt-To", ""))
            j = addresses.get(rcpt)
            if j is None or "FIRING" not in str(msg.get("Subject", "")):
                continue
            part = msg.get_body(preferencelist=("plain",))
            text = part.get_content() if part is not None else ""
            at = f.stat().st_mtime
            for node in set(pattern.findall(text + str(msg.get("Subject", "")))):
                found[(j, node)] = min(at, found.get((j, node), math.inf))
    return found


def reference(
    prom_url: str, threshold: float, period: int, consecutive: int, since: float, until: float
) -> dict[str, float]:
    """node -> T_c: the first slot end at which Prometheus's own answer to the rule's expression
    has the node at ``consecutive`` slot ends in a row (the slot ends are the multiples of P)."""
    start = math.ceil(since / period) * period
    end = math.floor(until / period) * period
    q = urllib.parse.urlencode({"query": f"{METRIC} > {threshold}", "start": start, "end": end, "step": period})
    rows = http_json(f"{prom_url}/api/v1/query_range?{q}")["data"]["result"]
    out: dict[str, float] = {}
    for row in rows:
        ends = sorted(float(t) for t, _ in row["values"])
        run = 0
        for i, t in enumerate(ends):
            run = run + 1 if i and t - ends[i - 1] == period else 1
            if run == consecutive:
                out[row["metric"]["node"]] = t
                break
    return out


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 32 values is the 31st smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 nodes instead of 8 (16 alerts, about 5 minutes)")
    parser.add_argument("--period", type=int, default=30, help="rule period in seconds (default 30)")
    parser.add_argument("--consecutive", type=int, default=2, help="breaching periods before firing (default 2)")
    parser.add_argument("--tick", type=float, default=None, help="alerts.tick_seconds (default: the hub's, 15)")
    parser.add_argument("--group-wait", type=float, default=None, help="alerts.group_wait_seconds (default: 30)")
    parser.add_argument("--delivery", type=float, default=None, help="alerts.delivery_seconds (default: 5)")
    parser.add_argument("--port-base", type=int, default=27000)
    parser.add_argument("--work", default="", help="working directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    if not Path(PROMETHEUS).exists():
        raise SystemExit("inbox bench: needs the prometheus binary (apt-get install prometheus)")
    period, consecutive = args.period, args.consecutive
    budget = period * consecutive + SLACK
    load_before = os.getloadavg()
    print(f"inbox: load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)

    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="kubehub-inbox-"))
    run_id = f"{int(time.time()) % 100000}"
    stack = Stack(work, args.port_base)
    count = 4 if args.quick else 8
    top = len(THRESHOLDS) + 1
    # Starts half a period after a slot end, nodes a third of the way round the phases of a
    # 15 s scheduler apart in whole periods; the first start leaves time for the hub to boot.
    first = (math.ceil((time.time() + 60) / period) + 0.5) * period
    nodes = [Node(f"ibx{run_id}n{k:02d}", first + (k % 4) * period + (k // 4) * 2 * period) for k in range(count)]
    exporter = serve_exporter(stack.exporter_port, nodes, period, top)
    served: ServedHub | None = None
    try:
        stack.start()
        token = prepare_hub(work / "hub", stack.prom_url)
        settings = {
            "ALERTS_EVALUATE": "true",
            "PROMETHEUS_URL": stack.prom_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(stack.smtp_port),
            "AUTH_PASSWORD_HASH_MEMORY_KIB": "8",
            "AUTH_PASSWORD_HASH_TIME_COST": "1",
        }
        for name, value in (
            ("ALERTS_TICK_SECONDS", args.tick),
            ("ALERTS_GROUP_WAIT_SECONDS", args.group_wait),
            ("ALERTS_DELIVERY_SECONDS", args.delivery),
        ):
            if value is not None:
                settings[name] = f"{value:g}"
        served = ServedHub(work / "hub", settings)
        addresses: dict[str, int] = {}
        for j, threshold in enumerate(THRESHOLDS):
            address = f"inbox-{run_id}-{j}@example.com"
            addresses[address] = j
            doc = policy_document(j, threshold, period, consecutive, address)
            try:
                http_json(f"{served.url}/api/v1/alerting/policies", data=json.dumps(doc).encode(), token=token)
            except urllib.error.HTTPError as exc:
                raise SystemExit(f"inbox bench: policy refused ({exc.code}): {exc.read()[:500]!r}") from exc
        print(
            f"inbox: hub pid {served.pid} at {served.url}; {len(THRESHOLDS)} policies x {count} nodes, period "
            f"{period}s, consecutive {consecutive}; first step at {time.strftime('%H:%M:%S', time.gmtime(first))}",
            flush=True,
        )
        raw = raw_sends(stack.smtp_port, stack.maildir, 10)
        # Expected firing instants from the schedule (the reference below is Prometheus's own).
        expected = {
            (j, n.name): n.start + period / 2 + (j + consecutive - 1) * period
            for j in range(len(THRESHOLDS))
            for n in nodes
        }
        deadline = max(expected.values()) + budget + 60
        while time.time() < deadline:
            got = receipts(stack.maildir, addresses, [n.name for n in nodes])
            if len(got) >= len(expected):
                break
            time.sleep(2)
        got = receipts(stack.maildir, addresses, [n.name for n in nodes])
        delays: list[float] = []
        lost = 0
        mismatched = 0
        for j, threshold in enumerate(THRESHOLDS):
            ref = reference(stack.prom_url, threshold, period, consecutive, first - 3 * period, time.time())
            mine: list[float] = []
            for n in nodes:
                t_c = ref.get(n.name)
                if t_c is None:
                    mismatched += 1
                    continue
                if t_c != expected[(j, n.name)]:
                    mismatched += 1
                if (j, n.name) not in got:
                    lost += 1
                    continue
                mine.append(got[(j, n.name)] - t_c)
            delays += mine
            if mine:
                print(
                    f"inbox: policy inbox-{j} (> {threshold}): {len(mine)} alerts, delay from slot end "
                    f"min {min(mine):.2f} median {statistics.median(mine):.2f} max {max(mine):.2f} s",
                    flush=True,
                )
        raw_call = [r[0] for r in raw]
        raw_catch = [r[1] for r in raw]
        load_after = os.getloadavg()
        print(
            f"inbox: raw aiosmtplib.send (new connection, ~10 KB) to the same catcher: call p50 "
            f"{statistics.median(raw_call) * 1000:.1f} ms, to the Maildir file p50 "
            f"{statistics.median(raw_catch) * 1000:.1f} ms p95 {pct(raw_catch, 0.95) * 1000:.1f} ms",
            flush=True,
        )
        if mismatched:
            print(f"inbox: {mismatched} alert(s) where Prometheus's answer differs from the schedule", flush=True)
        print(
            f"inbox: load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; settings "
            + " ".join(f"{k}={v}" for k, v in settings.items() if k.startswith("ALERTS_") and k != "ALERTS_EVALUATE"),
            flush=True,
        )
        if not delays:
            raise SystemExit("inbox bench: no alert reached the catcher")
        print(
            f"inbox: p95_s={pct(delays, 0.95):.2f} budget_s={budget:g} alerts={len(delays)} lost={lost} "
            f"p50_s={statistics.median(delays):.2f} max_s={max(delays):.2f} "
            f"over_budget={sum(d > budget for d in delays)} "
            f"raw_send_p95_s={pct(raw_catch, 0.95):.3f} mismatched={mismatched} period_s={period} "
            f"consecutive={consecutive} load={load_before[0]:.2f}/{load_after[0]:.2f}",
            flush=True,
        )
        return 0 if lost == 0 and mismatched == 0 else 1
    finally:
        if served is not None:
            served.close()
        exporter.shutdown()
        stack.stop()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
