"""Component health (GET /api/v1/components) against real engines.

* Live: the sandbox's Prometheus, API server, SMTP catcher and the hub's own stores. Each
  scraped component's state and target counts are compared with Prometheus's own answer to
  ``up`` fetched here with plain HTTP, and its history with Prometheus's range answer.
* One component stopped: a PRIVATE Prometheus (never the shared sandbox's) scraping a private
  target as job ``etcd`` every second; the target is stopped and the answer shows etcd "down"
  with a since after the stop, and SMTP pointed at a dead port shows "down" naming it.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.collectors.components import STEP, WINDOW, scrape_state
from hub.settings import Settings
from sandbox.core import Sandbox
from tests.conftest import world_database_url

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-9"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
FAST_HASH = {"password_hash_memory_kib": 8, "password_hash_time_cost": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _app(settings: Settings) -> tuple[Any, dict[str, str]]:
    from web import create_app

    app = create_app(settings, testing=True)
    tenancy = app.extensions["kubehub"].tenancy
    tenancy.create_user("root", PASSWORD, platform_role="admin")
    tenancy.create_user("someone", PASSWORD)
    headers = {u: {"Authorization": f"Bearer {tenancy.issue_token(u).token}"} for u in ("root", "someone")}
    return app, headers


def _get(app: Any, headers: dict[str, str]) -> tuple[int, Any]:
    response = app.test_client().get("/api/v1/components", headers=headers)
    return response.status_code, response.get_json()


def _prom(url: str, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/{path}", params=params, timeout=60).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_live_components_agree_with_prometheus_and_the_engines(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "hub", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(sandbox.kubeconfig), "request_timeout": 20.0},
        logs={"ship": False},
        alerts={"evaluate": False},
        # components_wait = timeout: always the live reading, as it is compared with Prometheus
        prometheus={"url": sandbox.prometheus_url, "timeout": 30.0, "components_wait": 30.0},
        smtp={"host": sandbox.smtp_host, "port": sandbox.smtp_port},
        auth=FAST_HASH,
    )
    app, headers = _app(settings)
    hub = app.extensions["kubehub"]
    try:
        hub.start_background()
        deadline = time.monotonic() + 30
        while not hub.leader_status().get("leader") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hub.cluster.cache.wait_synced(list(hub.cluster.cache.stores), 60) == []
        assert _get(app, headers["someone"])[0] == 403
        status, body = _get(app, headers["root"])
        assert status == 200, body
        got = {c["name"]: c for c in body["components"]}
        at = body["time"]
        # Prometheus's own answer, fetched here: targets up and total per job, now and over 24 h
        ups = {
            r["metric"]["job"]: float(r["value"][1])
            for r in _prom(sandbox.prometheus_url, "query", query="sum by (job) (up)", time=at)
        }
        counts = {
            r["metric"]["job"]: float(r["value"][1])
            for r in _prom(sandbox.prometheus_url, "query", query="count by (job) (up)", time=at)
        }
        for name in (
            "apiserver",
            "etcd",
            "kube-scheduler",
            "kube-controller-manager",
            "kubelet",
            "kube-state-metrics",
            "node-exporter",
        ):
            comp = got[name]
            check = comp["checks"][0]
            assert check["source"] == "prometheus"
            assert (check["targets_up"], check["targets"]) == (int(ups[comp["job"]]), int(counts[comp["job"]])), name
            assert check["state"] == scrape_state(ups[comp["job"]], counts[comp["job"]]) == "up", (name, check)
            history = comp["history"]
            assert history and history[-1]["to"] == pytest.approx(at) and history[-1]["state"] == "up"
            assert comp["since"] == history[-1]["from"] or history[-2]["state"] == "up"
            # the service's own points: the minute grid (multiples of STEP) over the window
            params = {"start": (at - WINDOW) // STEP * STEP, "end": at, "step": STEP}
            sums = _prom(sandbox.prometheus_url, "query_range", query=f'sum(up{{job="{comp["job"]}"}})', **params)
            totals = _prom(sandbox.prometheus_url, "query_range", query=f'count(up{{job="{comp["job"]}"}})', **params)
            total_at = {float(t): float(v) for t, v in totals[0]["values"]}
            for t, v in sums[0]["values"]:
                expected = scrape_state(float(v), total_at[float(t)])
                t = max(float(t), at - WINDOW)  # the first point's step begins before the window
                covering = [s for s in history if s["from"] <= t <= s["to"]]
                assert covering and covering[-1]["state"] == expected, (name, t)
            # seconds without a point are "unknown": exactly the steps Prometheus has no answer for
            unknown = sum(s["to"] - s["from"] for s in history if s["state"] == "unknown")
            assert unknown == pytest.approx(max(0.0, WINDOW - len(total_at) * STEP), abs=STEP + 1)
        # scraped, reached by the hub, and its own /readyz?verbose all checks ok
        assert [(c["source"], c["state"]) for c in got["apiserver"]["checks"]] == [
            ("prometheus", "up"),
            ("hub", "up"),
            ("readyz", "up"),
        ]
        assert re.fullmatch(r"readyz: all \d+ checks ok", got["apiserver"]["checks"][2]["detail"])
        for name in ("prometheus", "state-store", "log-store", "smtp", "leader-lease", "inventory-collector"):
            assert got[name]["state"] == "up", got[name]
            assert got[name]["since"] is not None and got[name]["since"] <= at
        assert str(sandbox.smtp_port) in got["smtp"]["checks"][0]["detail"]
        assert got["alert-engine"]["state"] == "up"
        assert got["log-shipper"]["state"] == "disabled"  # logs.ship is off for this hub
    finally:
        hub.close()


class _Target(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE private_target_up gauge\nprivate_target_up 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture()
def private_prometheus(tmp_path: Path) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: apt-get install prometheus")
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: etcd\n    static_configs: [{{targets: ['127.0.0.1:{target.server_address[1]}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, target
    finally:
        target.shutdown()
        target.server_close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_up(url: str, value: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            rows = _prom(url, "query", query='up{job="etcd"}')
            if rows and float(rows[0]["value"][1]) == value:
                time.sleep(1.5)  # the answer's time is the whole second before now: let it pass
                return
        except (requests.RequestException, ValueError, AssertionError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the private Prometheus never saw up == {value}")


def test_a_stopped_component_is_down_with_since(
    private_prometheus: tuple[str, ThreadingHTTPServer], tmp_path: Path
) -> None:
    url, target = private_prometheus
    dead = _free_port()  # nothing listens there
    settings = Settings(data_dir=tmp_path / "hub", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        alerts={"evaluate": False},
        # components_wait = timeout: always the live reading, as it is compared with Prometheus
        prometheus={"url": url, "timeout": 20.0, "components_wait": 20.0},
        smtp={"host": "127.0.0.1", "port": dead, "timeout": 2.0},
        auth=FAST_HASH,
    )
    app, headers = _app(settings)
    try:
        _wait_up(url, 1.0, time.monotonic() + 60)
        got = {c["name"]: c for c in _get(app, headers["root"])[1]["components"]}
        assert got["etcd"]["state"] == "up"
        assert got["smtp"]["state"] == "down" and f"127.0.0.1:{dead}" in got["smtp"]["checks"][0]["detail"]
        assert got["kube-scheduler"]["state"] == "unknown"
        assert "no target of job kube-scheduler" in got["kube-scheduler"]["checks"][0]["detail"]
        assert got["apiserver"]["checks"][1]["state"] == "disabled"

        target.shutdown()
        target.server_close()
        stopped = time.time()
        _wait_up(url, 0.0, time.monotonic() + 30)
        status, body = _get(app, headers["root"])
        assert status == 200
        etcd = {c["name"]: c for c in body["components"]}["etcd"]
        assert etcd["state"] == "down", etcd
        assert etcd["checks"][0]["targets_up"] == 0 and etcd["checks"][0]["targets"] == 1
        assert stopped - 1 <= etcd["since"] <= body["time"], (stopped, etcd["since"])
        assert etcd["since_before_history"] is False
        states = [s["state"] for s in etcd["history"]]
        # one point a minute: the seconds of "up" before the stop fall between points; before
        # the private Prometheus started it has no answer at all ("unknown")
        assert states[-1] == "down" and set(states[:-1]) <= {"unknown", "up"}, etcd["history"]
    finally:
        app.extensions["kubehub"].close()


def test_every_component_template_is_a_query_the_sandbox_prometheus_answers(sandbox: Sandbox) -> None:
    """The templates of rules/component-*.yaml: each expression is accepted by the real
    Prometheus, and each scrape job they watch is one the sandbox scrapes."""
    import yaml

    from hub.collectors.components import COMPONENTS

    files = sorted((Path(__file__).resolve().parents[2] / "rules").glob("component-*.yaml"))
    assert {f.stem.removeprefix("component-") for f in files} == {c.name for c in COMPONENTS}
    jobs = {r["metric"]["job"] for r in _prom(sandbox.prometheus_url, "query", query="count by (job) (up)")}
    for path in files:
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            _prom(sandbox.prometheus_url, "query", query=rule["expr"])  # asserts status success
            for job in re.findall(r'job="([^"]+)"', rule["expr"]):
                assert job in jobs, (path.name, job)
