"""Private hub replicas for the failover tests and bench/failover.py: real ``kubehub serve``
processes on a PostgreSQL database of their own (on the sandbox's server), the sandbox's
Prometheus, and a private SMTP catcher that counts what each replica sent.

Nothing here touches the shared sandbox's hub or mailbox: the replicas are killed and paused
at will. Each replica logs at debug level; the lines the tests time their faults on are the
engine's ``alert cycle started`` / ``alert cycle committed``, the outbox's ``outbox: sending``
and the lease loop's ``replica <name> leads``. Every line is stamped with the monotonic time
the harness read it.

Each replica's database session carries its name (``kubehub.replica``, set through the URL's
``options``), so :func:`audit_writes` can record in the database itself who committed what
under which lease: the failover test judges a former leader by that record, not by when its
log lines happened to be read.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from aiosmtpd.controller import Controller

from hub.collectors.catalogue import default_catalogue
from hub.runtime import Hub, build_hub
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlowProxy:
    """A TCP proxy in front of Prometheus that holds every answer back ``delay`` seconds, so an
    alert cycle (its queries) lasts long enough for a kill to land inside it."""

    def __init__(self, target: str, delay: float) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay = delay
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = int(self._server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.requested = threading.Event()  # set when a request passes (only a leader's cycle asks)
        threading.Thread(target=self._accept, daemon=True, name="slow-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0, self.requested), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay, None), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, delay: float, seen: threading.Event | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if seen is not None:
                    seen.set()
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._server.close()


@dataclass(frozen=True)
class Caught:
    at: float  # monotonic
    message_id: str
    sender: str  # the envelope sender: which replica sent it
    recipient: str
    alerts: tuple[str, ...]


class Catcher:
    """A real SMTP server (aiosmtpd) that records every accepted message. ``mail_delay`` makes
    it answer MAIL FROM late, so a delivery round lasts long enough for a fault to land inside
    it (before any DATA of that message went out)."""

    def __init__(self, *, mail_delay: float = 0.0) -> None:
        self.port = free_port()
        self.mail_delay = mail_delay
        self.caught: list[Caught] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.mail_delay:
            await asyncio.sleep(self.mail_delay)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content)
        alerts = tuple(a.strip() for a in str(msg.get("X-Kubehub-Alerts", "")).split(",") if a.strip())
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.caught.append(
                    Caught(time.monotonic(), str(msg["Message-ID"]), str(envelope.mail_from), rcpt, alerts)
                )
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def snapshot(self) -> list[Caught]:
        with self.lock:
            return list(self.caught)


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[str]
    port: int
    stopped: bool = False  # SIGSTOPped


@dataclass(frozen=True)
class Line:
    at: float  # monotonic, when read
    replica: str
    text: str


@dataclass
class ReplicaSet:
    """Hub replicas on one database; ``lines`` is every replica's log in reading order."""

    database_url: str
    prometheus_url: str
    smtp_port: int
    workdir: Path
    lease_seconds: float = 3.0
    tick_seconds: float = 1.0
    delivery_seconds: float = 1.0
    kubeconfig: str = "none"  # a private API server's (test_replicas_apiserver_down.py), or none
    extra_env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(default_factory=dict)
    lines: queue.Queue[Line] = field(default_factory=queue.Queue)
    seen: list[Line] = field(default_factory=list)

    def env(self, name: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
        env.update(
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            KUBEHUB_DATA_DIR=str(self.workdir / name),
            KUBEHUB_DATABASE_URL=tagged_url(self.database_url, name),
            KUBEHUB_KUBERNETES_KUBECONFIG=self.kubeconfig,
            KUBEHUB_LOGS_SHIP="false",
            KUBEHUB_PROMETHEUS_URL=self.prometheus_url,
            KUBEHUB_SMTP_HOST="127.0.0.1",
            KUBEHUB_SMTP_PORT=str(self.smtp_port),
            KUBEHUB_SMTP_SENDER=f"{name}@replicas.test",
            KUBEHUB_ALERTS_TICK_SECONDS=str(self.tick_seconds),
            KUBEHUB_ALERTS_DELIVERY_SECONDS=str(self.delivery_seconds),
            KUBEHUB_ALERTS_RETRY_INITIAL_SECONDS="1",
            KUBEHUB_ALERTS_RETRY_MAX_SECONDS="2",
            KUBEHUB_LEADER_LEASE_SECONDS=str(self.lease_seconds),
            KUBEHUB_LEADER_REPLICA_ID=name,
            KUBEHUB_HTTP_PORT=str(port),
            KUBEHUB_LOG_LEVEL="debug",
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str) -> Replica:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--role", "all", "--host", "127.0.0.1"],
            env=self.env(name, port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

        def drain() -> None:  # always read the debug log, or a full pipe would stall the replica
            assert proc.stderr is not None
            for text in proc.stderr:
                self.lines.put(Line(time.monotonic(), name, text.rstrip("\n")))

        threading.Thread(target=drain, name=f"drain-{name}", daemon=True).start()
        replica = Replica(name, proc, port)
        self.replicas[name] = replica
        return replica

    # -- reading the logs ---------------------------------------------------------------------
    def wait_line(self, match: Callable[[Line], bool], *, timeout: float, what: str) -> Line:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            self.seen.append(line)
            if match(line):
                return line

    def drain_now(self) -> None:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def said(self, replica: str, text: str, *, after: float = 0.0) -> list[Line]:
        self.drain_now()
        return [ln for ln in self.seen if ln.replica == replica and text in ln.text and ln.at >= after]

    # -- the lease, as the database holds it --------------------------------------------------
    def lease(self) -> tuple[str, int, float] | None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT holder, token, expires_at FROM hub_leases WHERE name='background'").fetchone()
        return (str(row[0]), int(row[1]), float(row[2])) if row else None

    def leader(self, *, timeout: float = 30.0) -> Replica:
        """The replica that leads now: it holds the lease and has committed a cycle under it."""
        line = self.wait_line(
            lambda ln: "alert cycle committed" in ln.text and ln.replica in self.live(),
            timeout=timeout,
            what="a committed alert cycle",
        )
        lease = self.lease()
        assert lease is not None and lease[0] == line.replica, (lease, line)
        return self.replicas[line.replica]

    def live(self) -> set[str]:
        return {n for n, r in self.replicas.items() if r.proc.poll() is None and not r.stopped}

    # -- faults -------------------------------------------------------------------------------
    def kill(self, name: str) -> float:
        r = self.replicas[name]
        os.kill(r.proc.pid, signal.SIGKILL)
        at = time.monotonic()
        r.proc.wait()
        return at

    def pause(self, name: str) -> float:
        r = self.replicas[name]
        os.kill(r.proc.pid, signal.SIGSTOP)
        r.stopped = True
        return time.monotonic()

    def resume(self, name: str) -> float:
        r = self.replicas[name]
        os.kill(r.proc.pid, signal.SIGCONT)
        r.stopped = False
        return time.monotonic()

    def takeover(self, old: str, *, after: float, timeout: float) -> Line:
        """The first cycle another replica started after ``after`` (the fault): a cycle starts
        only under a valid lease, so this is the new leader at work."""
        return self.wait_line(
            lambda ln: ln.replica != old and ln.at >= after and "alert cycle started" in ln.text,
            timeout=timeout,
            what=f"another replica's first cycle after {old} went away",
        )

    def close(self) -> None:
        for r in self.replicas.values():
            if r.proc.poll() is None:
                if r.stopped:
                    os.kill(r.proc.pid, signal.SIGCONT)
                r.proc.send_signal(signal.SIGTERM)
        for r in self.replicas.values():
            try:
                r.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()


def tagged_url(url: str, replica: str) -> str:
    """``url`` whose sessions carry ``kubehub.replica=<replica>`` (a custom setting the hub's
    PostgreSQL adapter passes on with the URL's own ``options``), read by :func:`audit_writes`."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + f" -c kubehub.replica={replica}").strip()
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


@dataclass(frozen=True)
class Write:
    """One row an alerting table got, as the database recorded it in the writing transaction."""

    replica: str  # the writer's kubehub.replica ('' for a process that set none)
    table: str
    op: str
    holder: str | None  # the background lease as that transaction saw it
    token: int | None
    at: float  # the database server's clock (epoch seconds) when the row was written
    txid: int


def audit_writes(database_url: str) -> None:
    """Record every row written to the alerting tables (alert cycles, outbox, notices), with the
    writer's replica name and the lease as the writing transaction saw it, in ``fence_audit``.

    The record is written by a trigger inside the writer's own transaction: a write the fence
    refused rolls back with its record, a committed one keeps it. So a former leader's commit
    after another replica took the lease shows as a row whose writer is not the lease's
    holder (or holds an older token), whenever its log line was printed or read."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE fence_audit (replica TEXT NOT NULL, tbl TEXT NOT NULL, op TEXT NOT NULL,"
            " holder TEXT, token BIGINT, at DOUBLE PRECISION NOT NULL, txid BIGINT NOT NULL)"
        )
        conn.execute(
            """
            CREATE FUNCTION fence_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO fence_audit(replica, tbl, op, holder, token, at, txid)
                SELECT COALESCE(current_setting('kubehub.replica', true), ''), TG_TABLE_NAME, TG_OP,
                       l.holder, l.token, extract(epoch FROM clock_timestamp()), txid_current()
                FROM (SELECT 1) one LEFT JOIN hub_leases l ON l.name = 'background';
                RETURN NULL;
            END $$
            """
        )
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                " AND table_type = 'BASE TABLE' AND (table_name LIKE 'alert%' OR table_name = 'alerts')"
            ).fetchall()
        ]
        assert "alert_outbox" in tables and "alerts" in tables, tables
        for t in tables:
            conn.execute(
                f'CREATE TRIGGER fence_audit AFTER INSERT OR UPDATE OR DELETE ON "{t}"'
                " FOR EACH ROW EXECUTE FUNCTION fence_audit_row()"
            )


def audited(database_url: str, replica: str) -> list[Write]:
    """Every audited row ``replica`` committed, in the order written."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT replica, tbl, op, holder, token, at, txid FROM fence_audit WHERE replica = %s ORDER BY at",
            (replica,),
        ).fetchall()
    return [Write(str(r[0]), str(r[1]), str(r[2]), r[3], None if r[4] is None else int(r[4]), float(r[5]), int(r[6]))
            for r in rows]  # fmt: skip


def readyz(port: int) -> dict[str, Any] | None:
    """A replica's /readyz body (200 or 503 alike), None while it does not listen yet."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except OSError:
        return None


def memory_policy(name: str, receiver: str, *, consecutive: int = 2) -> dict[str, Any]:
    """Fires for every workload of the project (its working set is above one byte) after
    ``consecutive`` 10-second periods."""
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
                "period": "10s",
                "consecutive": consecutive,
                "severity": "minor",
            }
        ],
        "notification": {"receivers": [{"email": receiver}], "send_resolved": False},
        "repeat": {"minor": {"mode": "none"}},
    }


def prometheus_workloads_above(prometheus_url: str, namespace: str) -> int:
    """How many workloads of ``namespace`` Prometheus itself finds above one byte of memory: the
    outside reference for how many alerts a memory_policy must raise there."""
    import json
    import urllib.parse
    import urllib.request

    promql, _labels = default_catalogue().alert_query("workloads", "workload_memory_usage", "last", 10.0, namespace)
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': f'({promql}) > 1'})}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        data = json.loads(resp.read())
    assert data["status"] == "success", data
    return len(data["data"]["result"])


NAMESPACES = ("retail-web", "retail-api", "analytics-etl", "analytics-db")  # seeded, with workloads


def web_side_hub(database_url: str, data_dir: Path, prometheus_url: str, smtp_port: int) -> Hub:
    """A hub in the test process on the replicas' database: it migrates it and writes policies
    as the web side of a deployment would, and never leads (it runs no alert loop)."""
    settings = Settings(data_dir=data_dir, database_url=database_url).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        prometheus={"url": prometheus_url},
        smtp={"host": "127.0.0.1", "port": smtp_port},
    )
    return build_hub(settings)


class PolicyFeed:
    """New memory policies arriving while the replicas run, one per call of :meth:`add`, each in
    the next of :data:`NAMESPACES` and named ``<prefix>-<run>-<i>``; :meth:`settled` says whether
    each one raised as many firing alerts as Prometheus finds workloads above the threshold
    there (the outside reference) and every queued message is sent."""

    def __init__(self, web: Hub, prefix: str, run: str, *, consecutive: int) -> None:
        self.web, self.prefix, self.run, self.consecutive = web, prefix, run, consecutive
        self.created: list[str] = []  # the namespace of each policy added, in order
        self._lock = threading.Lock()  # the test's thread and a feeder thread may both add

    def add(self) -> str:
        with self._lock:
            i = len(self.created)
            ns = NAMESPACES[i % len(NAMESPACES)]
            self.web.alerting.create_policy(
                memory_policy(f"{self.prefix}-{self.run}-{i}", f"oncall-{self.run}-{i}@example.com",
                              consecutive=self.consecutive),
                level="workload",
                namespace=ns,
                actor="test",
            )  # fmt: skip
            self.created.append(ns)
            return f"{self.prefix}-{self.run}-{i}"

    def settled(self, database_url: str, reference: dict[str, int]) -> bool:
        """``reference``: Prometheus's count of workloads above the threshold per namespace."""
        with psycopg.connect(database_url, autocommit=True) as conn:
            firing = dict(
                conn.execute(
                    "SELECT policy_id, COUNT(*) FROM alerts WHERE state='firing' GROUP BY policy_id"
                ).fetchall()
            )
            waiting = conn.execute("SELECT COUNT(*) FROM alert_outbox WHERE status<>'sent'").fetchone()
        with self._lock:
            created = list(self.created)
        policies = {p["name"]: p for p in self.web.alerting.store.policies()}
        counts = [firing.get(policies[f"{self.prefix}-{self.run}-{i}"]["id"], 0) for i in range(len(created))]
        return counts == [reference[ns] for ns in created] and waiting is not None and waiting[0] == 0


@dataclass
class Tally:
    """What the hub decided to send (its outbox) against what the catcher got."""

    expected: int
    delivered: int
    lost: int
    duplicated: int
    detail: dict[str, Any]

    def line(self) -> str:
        return f"expected={self.expected} delivered={self.delivered} lost={self.lost} duplicated={self.duplicated}"


def tally(database_url: str, catcher: Catcher) -> Tally:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT message_id, status FROM alert_outbox").fetchall()
    expected = {str(mid) for mid, _ in rows}
    caught = [c.message_id for c in catcher.snapshot()]
    got = set(caught)
    return Tally(
        expected=len(expected),
        delivered=len(got & expected),
        lost=len(expected - got),
        duplicated=len(caught) - len(got),
        detail={
            "unsent": sorted(str(mid) for mid, status in rows if status != "sent"),
            "unknown": sorted(got - expected),
        },
    )
