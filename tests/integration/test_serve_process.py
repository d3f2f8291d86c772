"""`kubehub serve` as a real process: what a new user sees on first start."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KUBEHUB = [sys.executable, "-m", "hub.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
    env.update(
        KUBEHUB_DATA_DIR=str(data_dir),
        KUBEHUB_HTTP_PORT=str(port),
        KUBEHUB_KUBERNETES_KUBECONFIG="none",
        KUBEHUB_LOG_LEVEL="warning",
    )
    env.update(extra)  # the caller's settings win
    return env


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def _serve(data_dir: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    """``kubehub serve`` on ``data_dir`` and a free port, once it answers /healthz (the test
    fails with its output if it does not within 60 s): the process and its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [*KUBEHUB, "serve"],
        env=_env(data_dir, port, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _get(base + "/healthz")[0] == 200:
                return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    output, _ = proc.communicate(timeout=30)
    pytest.fail("kubehub serve did not answer /healthz: " + output)


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc, base = _serve(tmp_path / "data", KUBEHUB_PROMETHEUS_URL="http://127.0.0.1:9")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_a_fresh_data_dir_serves_health_readiness_metrics_and_openapi(served: str) -> None:
    assert _get(served + "/healthz")[0] == 200
    status, ctype, body = _get(served + "/readyz")
    backends = {b["name"]: b for b in json.loads(body)["backends"]}
    assert backends["state"]["state"] == "ok"
    status, ctype, body = _get(served + "/metrics")
    assert status == 200 and ctype.startswith("text/plain") and "kubehub_http_requests_total" in body
    status, ctype, body = _get(served + "/api/v1/openapi.json")
    from openapi_spec_validator import validate

    validate(json.loads(body))


def test_an_unreachable_optional_backend_shows_in_readyz_without_stopping_the_hub(served: str) -> None:
    status, _, body = _get(served + "/readyz")
    backends = {b["name"]: b for b in json.loads(body)["backends"]}
    if "prometheus" not in backends:
        pytest.fail("the prometheus backend should be listed once configured")
    assert backends["prometheus"]["state"] == "unreachable"
    assert status == 503
    assert _get(served + "/healthz")[0] == 200


def test_an_unwritable_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = subprocess.run(
        [*KUBEHUB, "serve"],
        env=_env(blocker / "data", _free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("kubehub:") and "preparing" not in ln]
    assert lines and "KUBEHUB_DATA_DIR" in lines[-1]
    assert "Traceback" not in done.stderr


def test_a_port_in_use_says_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(
            [*KUBEHUB, "serve"], env=_env(tmp_path / "data", port), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert "--port" in done.stderr and "Traceback" not in done.stderr


def test_window_points_are_restored_at_start_and_written_again_at_a_clean_stop(tmp_path: Path) -> None:
    """The window tables' kept points outlive a restart (hub/runtime/monitoring.py): the served
    process reads the file at start and writes it again when SIGTERM stops it."""
    from hub.collectors.monitoring_window import SteppedWindows
    from hub.runtime.monitoring import WINDOWS_FILE
    from tests.unit.test_monitoring_window import SERIES, T0, RangeBackend, ask, snapshot_bytes, value

    kept = SteppedWindows()
    ask(kept, RangeBackend(SERIES, value), T0 + 200.0)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / WINDOWS_FILE
    path.write_bytes(snapshot_bytes(kept))
    os.utime(path, ns=(0, 0))
    written = path.stat().st_mtime_ns
    proc, _ = _serve(data_dir, KUBEHUB_LOG_LEVEL="info")
    proc.terminate()
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "restored 288 window points" in output
    assert path.stat().st_mtime_ns != written  # written again at the stop
    again = SteppedWindows()
    assert again.restore(path.read_bytes()) == 288


def test_an_idle_keep_alive_connection_does_not_hold_a_stopping_hub(tmp_path: Path) -> None:
    """SIGTERM stops the hub while a client keeps an idle connection open (a browser, a scraper):
    waitress's loop ran while any connection was open, so this hub never exited (web/serving.py
    ``drain``), and under Kubernetes it would have been killed before it kept its state."""
    proc, base = _serve(tmp_path / "data", KUBEHUB_PROMETHEUS_URL="http://127.0.0.1:9", KUBEHUB_LOG_LEVEL="info")
    idle = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read()  # answered; the connection stays open
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=25)  # the drain closes idle connections at once
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("kubehub serve still ran 25 s after SIGTERM with one idle connection open")
    assert proc.returncode == 0, output
    assert "kept the window points" in output  # its clean stop ran
    assert idle.sock is not None and idle.sock.recv(1) == b""
