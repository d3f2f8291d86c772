"""Three `kubehub serve` replicas on one PostgreSQL database, requests going round-robin.

The replicas are real processes on free ports sharing a database on a PostgreSQL server of
this module's own (a private sandbox directory that starts only the ``postgresql``
component), so stopping and restarting that server disturbs nobody else. They read the shared
sandbox's cluster and Prometheus (read-only; no log shipping, no rule engine, no SMTP), and
their users and projects are the sandbox's, seeded into the private database.

What a client behind a round-robin balancer must never notice:
- the form login on replica 1 (its CSRF token from the login page of replica 3), then every
  console page of the tour (docs/console.md) and the main API calls, each on the next
  replica, with the same cookie and CSRF token, and a logout on one ending the session on all;
- the per-user limit of log exports and the failed-login throttle count across replicas;
- a backtest started on one replica is followed to its result on the others;
- PostgreSQL stopped: every replica answers 503 naming the state store (pages and API), /healthz
  stays 200, /readyz says the state is unreachable; restarted: the same session works again on
  every replica without restarting any, and what was written before is there.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hub.settings import Settings
from sandbox.core import Sandbox
from tests.integration.test_sandbox_lifecycle import free_port_base

pytestmark = pytest.mark.integration

KUBEHUB = [sys.executable, "-m", "hub.cli"]
REPLICAS = 3
NS = "retail-api"  # a seeded project with workloads and pods in the sandbox cluster
LOGIN_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class Answer:
    status: int
    headers: Any
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """One browser: its cookie, sent to whichever replica the balancer picks."""

    cookie: str = ""
    csrf: str = ""
    seen: list[tuple[int, str, int]] = field(default_factory=list)  # (replica, path, status)

    def call(
        self, base: str, method: str, path: str, *, body: Any = None, form: dict[str, str] | None = None
    ) -> Answer:
        headers = {"Accept": "application/json" if path.startswith("/api/") else "text/html"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
        try:
            with _opener.open(request, timeout=60) as r:
                answer = Answer(r.status, r.headers, r.read().decode())
        except urllib.error.HTTPError as e:
            answer = Answer(e.code, e.headers, e.read().decode())
        for raw in answer.headers.get_all("Set-Cookie") or []:
            pair = raw.split(";", 1)[0]
            if pair.startswith("kubehub_session="):
                self.cookie = "" if pair == "kubehub_session=" else pair
        return answer


@dataclass
class Replicas:
    bases: list[str]
    procs: list[subprocess.Popen[str]]
    logs: list[Path]
    admin_url: str
    database_url: str
    sandbox: Sandbox
    credentials: dict[str, str]
    _turn: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(REPLICAS)))

    def next(self) -> int:
        return next(self._turn)

    def call(self, client: Client, method: str, path: str, **kw: Any) -> Answer:
        """The request on the next replica in turn (a round-robin balancer)."""
        i = self.next()
        answer = client.call(self.bases[i], method, path, **kw)
        client.seen.append((i, path, answer.status))
        return answer

    def alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            assert proc.poll() is None, f"a replica exited: {log.read_text()[-2000:]}"


def _wait_healthy(base: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"kubehub serve exited: {log.read_text()[-3000:]}")
        try:
            if Client().call(base, "GET", "/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"kubehub serve did not answer /healthz: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def replicas(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    from sandbox.hub_seed import seed_tenancy
    from sandbox.seed import WORKSPACES

    work = tmp_path_factory.mktemp("replicas")
    private = Sandbox(work / "pg-sandbox", port_base=free_port_base(), quiet=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        admin_url = private.ensure_postgresql()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "kh_replicas"')
        database_url = admin_url.rsplit("/", 1)[0] + "/kh_replicas"
        credentials = sandbox.credentials
        seed_tenancy(
            Settings(data_dir=work / "seed", database_url=database_url).replace(
                kubernetes={"kubeconfig": "none"}, logs={"ship": False}
            ),
            {"credentials": credentials, "workspaces": {ws: list(p) for ws, p in WORKSPACES.items()}},
        )
        bases, logs = [], []
        for n in range(REPLICAS):
            port = _free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
            env.update(
                KUBEHUB_DATA_DIR=str(work / f"replica-{n + 1}"),
                KUBEHUB_HTTP_PORT=str(port),
                KUBEHUB_DATABASE_URL=database_url,
                KUBEHUB_KUBERNETES_KUBECONFIG=str(sandbox.kubeconfig),
                KUBEHUB_PROMETHEUS_URL=sandbox.prometheus_url,
                KUBEHUB_LOGS_SHIP="false",
                KUBEHUB_ALERTS_EVALUATE="false",
                KUBEHUB_AUTH_LOGIN_ATTEMPTS=str(LOGIN_ATTEMPTS),
                KUBEHUB_RATE_LIMITS_LOG_EXPORTS="2",
                KUBEHUB_LOG_LEVEL="warning",
            )
            log = work / f"replica-{n + 1}.log"
            out = open(log, "w")  # noqa: SIM115 (the process writes to it until the end of the module)
            procs.append(
                subprocess.Popen([*KUBEHUB, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
            )
            bases.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        for base, proc, log in zip(bases, procs, logs, strict=True):
            _wait_healthy(base, proc, log)
        yield Replicas(
            bases=bases,
            procs=procs,
            logs=logs,
            admin_url=admin_url,
            database_url=database_url,
            sandbox=private,
            credentials={c["username"]: c["password"] for c in credentials},
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        private.reset()


def _login(replicas: Replicas, user: str) -> Client:
    """The console's form login, its two requests on two replicas."""
    client = Client()
    page = replicas.call(client, "GET", "/login")
    assert page.status == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.body)
    assert token, "the login page has no CSRF field"
    done = replicas.call(
        client,
        "POST",
        "/login",
        form={"username": user, "password": replicas.credentials[user], "csrf_token": token.group(1)},
    )
    assert done.status == 303 and "error=" not in done.headers["Location"], done.headers.get("Location")
    me = replicas.call(client, "GET", "/api/v1/me")
    assert me.status == 200 and me.json()["user"] == user and me.json()["auth"] == "session", me.body
    client.csrf = me.json()["csrf_token"]
    return client


def _csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def _first_name(answer: Answer, **match: str) -> str:
    assert answer.status == 200, answer.body[:500]
    for item in answer.json()["items"]:
        if all(item.get(k) == v for k, v in match.items()):
            return str(item["name"])
    raise AssertionError(f"nothing matching {match} in {answer.body[:500]}")


def test_login_on_one_replica_then_every_page_and_api_call_round_robin(replicas: Replicas) -> None:
    admin = _login(replicas, "admin")
    overview = replicas.call(admin, "GET", "/")
    assert overview.status == 200, overview.body[:500]
    # The token on a page of one replica is the token every replica expects (it derives from the session).
    assert _csrf_of(replicas.call(admin, "GET", "/tokens").body) == admin.csrf

    node = _first_name(replicas.call(admin, "GET", "/api/v1/nodes"))
    workload = _first_name(replicas.call(admin, "GET", f"/api/v1/namespaces/{NS}/workloads"), kind="deployment")
    pod = _first_name(replicas.call(admin, "GET", f"/api/v1/namespaces/{NS}/pods"))
    # A policy made through the API on one replica, changed on the next, read on the third.
    document = {
        "name": "replicas-cpu",
        "level": "workload",
        "target": {"workloads": [{"kind": "deployment", "name": workload}]},
        "rules": [
            {
                "name": "cpu-high",
                "metric": "workload_cpu_usage",
                "aggregation": "avg",
                "comparator": ">",
                "threshold": 1,
                "unit": "millicores",
                "period": "1m",
                "consecutive": 1,
                "severity": "minor",
            }
        ],
        "notification": {"receivers": [{"email": "oncall@example.com"}]},
    }
    policy = replicas.call(admin, "POST", f"/api/v1/namespaces/{NS}/alerting/policies", body=document)
    assert policy.status == 201, policy.body
    pid = policy.json()["id"]
    changed = replicas.call(
        admin,
        "PUT",
        f"/api/v1/namespaces/{NS}/alerting/policies/{pid}",
        body={**document, "description": "round robin"},
    )
    assert changed.status == 200, changed.body
    assert replicas.call(admin, "GET", f"/api/v1/namespaces/{NS}/alerting/policies/{pid}").json()["description"] == (
        "round robin"
    )

    tour = [
        "/?lang=en",
        "/?lang=zh",
        "/nodes",
        f"/nodes/{node}",
        "/workspaces",
        "/workspaces/retail",
        f"/projects/{NS}",
        f"/workloads?ns={NS}",
        f"/projects/{NS}/workloads/deployment/{workload}",
        f"/projects/{NS}/pods/{pod}",
        "/monitoring?level=nodes&metric=node_cpu_utilisation&metric=node_memory_utilisation&range=6h",
        "/monitoring?level=components&metric=apiserver_request_rate&range=1h",
        "/rankings?level=workloads&window=24h&stat=max",
        "/alerting",
        "/alerting/policies",
        f"/projects/{NS}/alerting/policies/{pid}",
        "/alerting/history",
        "/alerting/silences",
        "/logs",
        "/users",
        "/tokens",
        "/audit",
    ]
    for path in tour:
        page = replicas.call(admin, "GET", path)
        assert page.status == 200, (path, page.status, page.body[:300])
        assert 'action="/login"' not in page.body, f"{path}: sent back to the login form"

    api = [
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/workspaces",
        f"/api/v1/namespaces/{NS}/workloads",
        "/api/v1/alerting/alerts",
        f"/api/v1/namespaces/{NS}/alerting/policies",
        "/api/v1/alerting/history",
        "/api/v1/alerting/silences",
        "/api/v1/audit",
        "/api/v1/auth/tokens",
    ]
    for path in api:
        answer = replicas.call(admin, "GET", path)
        assert answer.status == 200, (path, answer.status, answer.body[:300])

    # Writes with the CSRF token on replicas that did not issue it, and their effects everywhere.
    token = replicas.call(admin, "POST", "/api/v1/auth/tokens", body={"name": "round-robin", "expires_in": "1h"})
    assert token.status == 201, token.body
    for base in replicas.bases:  # the token made on one replica works on each
        assert Client().call(base, "GET", "/api/v1/me").status == 401
        request = urllib.request.Request(
            base + "/api/v1/me", headers={"Authorization": f"Bearer {token.json()['token']}"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["auth"] == "token"
    forged = Client(cookie=admin.cookie, csrf="0" * 64)
    refused = replicas.call(forged, "POST", "/api/v1/auth/tokens", body={"name": "forged"})
    assert refused.status == 403 and "CSRF" in refused.body
    listed = replicas.call(admin, "GET", "/api/v1/auth/tokens").json()["items"]
    assert [t["name"] for t in listed] == ["round-robin"]

    # The audit log, written by whichever replica served each write, is one log.
    audit = replicas.call(admin, "GET", "/api/v1/audit?limit=200")
    assert audit.status == 200, audit.body[:300]
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"auth.login", "policy.create", "policy.update", "token.create"} <= actions, actions

    # Logout on one replica: the cookie is dead on every replica.
    cookie = admin.cookie
    out = replicas.call(admin, "POST", "/api/v1/auth/logout")
    assert out.status == 204
    for base in replicas.bases:
        assert Client(cookie=cookie).call(base, "GET", "/api/v1/me").status == 401
    replicas.alive()
    assert {i for i, _, _ in admin.seen} == set(range(REPLICAS))


def test_limits_count_across_replicas(replicas: Replicas) -> None:
    """Log exports are limited to 2 per minute per user: one on each of two replicas uses
    them up, and the third replica refuses the next with 429 and a Retry-After."""
    operator = _login(replicas, "api-operator")
    url = f"/api/v1/logs/export?namespaces={NS}&format=jsonl"
    first, second, third = (replicas.call(operator, "GET", url) for _ in range(3))
    assert [first.status, second.status] == [200, 200], (first.body[:200], second.body[:200])
    assert third.status == 429 and "log exports" in third.body, third.body
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert len({i for i, path, _ in operator.seen if path == url}) == 3  # three different replicas


def test_a_backtest_started_on_one_replica_is_followed_on_the_others(replicas: Replicas) -> None:
    admin = _login(replicas, "admin")
    policies = replicas.call(admin, "GET", f"/api/v1/namespaces/{NS}/alerting/policies").json()["items"]
    pid = next(p["id"] for p in policies if p["name"] == "replicas-cpu")
    started = replicas.call(
        admin,
        "POST",
        f"/projects/{NS}/alerting/policies/{pid}/backtest",
        form={"window": "6h", "csrf_token": admin.csrf},
    )
    assert started.status == 303, started.body[:500]
    job_url = urllib.parse.urlsplit(started.headers["Location"]).path
    started_on = admin.seen[-1][0]
    deadline = time.monotonic() + 120
    pages: list[tuple[int, int]] = []
    while True:
        page = replicas.call(admin, "GET", job_url)
        assert page.status == 200, page.body[:500]
        pages.append((admin.seen[-1][0], page.status))
        if "<progress" not in page.body:
            break
        assert time.monotonic() < deadline, "the backtest never finished"
        time.sleep(0.5)
    assert {i for i, _ in pages} - {started_on}, "the job page was never read on another replica"
    assert 'id="backtest-summary"' in page.body and "state store" not in page.body, page.body[:2000]
    # The store holds one job, run by the replica that accepted the form, with its result.
    with psycopg.connect(replicas.database_url) as conn:
        rows = conn.execute("SELECT owner, replica, finished, error, result FROM backtest_jobs").fetchall()
    assert len(rows) == 1, rows
    owner, ran_on, ended, error, result = rows[0]
    assert (owner, error) == ("admin", None) and ended is not None and "summary" in json.loads(result)
    pids = {proc.pid for proc in replicas.procs}
    assert int(ran_on.split(":")[1]) == replicas.procs[started_on].pid and int(ran_on.split(":")[1]) in pids
    other = _login(replicas, "retail-admin")
    assert replicas.call(other, "GET", job_url).status == 404  # another user never sees it


def test_postgresql_restart_is_a_503_naming_the_state_store_then_everything_is_back(replicas: Replicas) -> None:
    admin = _login(replicas, "admin")
    before = replicas.call(admin, "GET", "/api/v1/users").json()["items"]
    replicas.sandbox.sup.stop("postgresql")
    try:
        for base in replicas.bases:
            api = admin.call(base, "GET", "/api/v1/users")
            assert api.status == 503 and api.json()["backend"] == "state store (PostgreSQL)", api.body
            page = admin.call(base, "GET", "/alerting")
            assert page.status == 503 and "state store (PostgreSQL)" in page.body, page.body[:500]
            write = admin.call(base, "POST", "/api/v1/auth/tokens", body={"name": "during-outage"})
            assert write.status == 503, write.body
            assert Client().call(base, "GET", "/healthz").status == 200  # alive: no restart wanted
            ready = Client().call(base, "GET", "/readyz")
            state = next(b for b in ready.json()["backends"] if b["name"] == "state")
            assert ready.status == 503 and state["state"] == "unreachable", ready.body
    finally:
        replicas.sandbox.ensure_postgresql()
    # Back: no replica restarted, the same session works on each, nothing written before is lost.
    for base in replicas.bases:
        assert admin.call(base, "GET", "/api/v1/users").json()["items"] == before
        ready = Client().call(base, "GET", "/readyz")
        assert ready.status == 200 or all(b["name"] != "state" or b["state"] == "ok" for b in ready.json()["backends"])
    made = replicas.call(admin, "POST", "/api/v1/auth/tokens", body={"name": "after-restart"})
    assert made.status == 201, made.body
    names = [t["name"] for t in replicas.call(admin, "GET", "/api/v1/auth/tokens").json()["items"]]
    assert "after-restart" in names and "during-outage" not in names
    replicas.alive()


def test_a_throttled_login_is_throttled_on_every_replica(replicas: Replicas) -> None:
    """Failed logins for one user name counted on three replicas lock it on all of them, even
    for the right password. (Last in the module: the client address is locked too.)"""
    user = "etl-viewer"
    for n in range(LOGIN_ATTEMPTS):
        failed = replicas.call(
            Client(), "POST", "/api/v1/auth/login", body={"username": user, "password": f"wrong-{n}"}
        )
        assert failed.status == 401, failed.body
    for base in replicas.bases:
        right = Client().call(
            base, "POST", "/api/v1/auth/login", body={"username": user, "password": replicas.credentials[user]}
        )
        assert right.status == 429 and int(right.headers["Retry-After"]) >= 1, right.body
