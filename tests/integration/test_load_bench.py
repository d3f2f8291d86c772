"""The quick load test (bench/load.py --quick) runs clean: every request answered as expected.

A timing-free check of the load bench in CI: the sandbox there may run without its hub, so the
test seeds a hub of its own the way `kubehub sandbox up` does (the demo users and policies,
through `Seeder.seed_hub`), serves it with `kubehub serve` as a real process (its RSS is what
the bench reads) on the sandbox's cluster and Prometheus, and runs the bench against it with
fewer sessions. Asserted: the last line's form, errors=0, every session's requests were sent,
and the policies the editor sessions created are gone afterwards.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.core import Sandbox
from sandbox.kube import KubeRest
from sandbox.seed import Seeder, complete_credentials, load_credentials
from tests.conftest import world_database_url

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"^load: sessions=(?P<sessions>\d+) requests=(?P<requests>\d+) p95_ms=(?P<p95>[0-9.]+) "
    r"errors=(?P<errors>\d+) rss_growth_pct=(?P<rss>-?[0-9.]+)$"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_hub(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    state = tmp_path / "state"
    state.mkdir()
    creds, _ = complete_credentials(load_credentials(sandbox.state_dir))
    credentials = state / "credentials.json"
    credentials.write_text(json.dumps(creds))
    seeder = Seeder(sandbox, KubeRest(sandbox.kubeconfig))
    seeder.say = lambda *a, **k: None  # type: ignore[method-assign]
    database_url = world_database_url()  # the run's state store: the seed writes where the hub reads
    seeder.seed_hub(data_dir=tmp_path / "hub", state_dir=state, database_url=database_url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
    env.update(
        KUBEHUB_DATA_DIR=str(tmp_path / "hub"),
        KUBEHUB_DATABASE_URL=database_url,  # '': SQLite in the data directory
        KUBEHUB_HTTP_PORT=str(port),
        KUBEHUB_KUBERNETES_KUBECONFIG=str(sandbox.kubeconfig),
        KUBEHUB_PROMETHEUS_URL=sandbox.prometheus_url,
        KUBEHUB_ALERTS_EVALUATE="false",  # the seeded policies would mail the demo users
        KUBEHUB_LOGS_SHIP="false",
        KUBEHUB_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("kubehub serve did not come up: " + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.3)
    try:
        yield base, proc.pid, credentials
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_quick_load_test_has_no_errors(own_hub: tuple[str, int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, pid, credentials = own_hub
    target = ["--url", base, "--credentials", str(credentials), "--pid", str(pid)]
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--quick", "--sessions", "12", "--rounds", "2", *target],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    last = run.stdout.strip().splitlines()[-1]
    match = LAST_LINE.match(last)
    assert match, last
    with capsys.disabled():  # CI's log shows the load test's figures, as it shows the soak's
        print(f"\n{last}")
    assert int(match["sessions"]) == 12
    assert int(match["errors"]) == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "still running" not in run.stderr
    # 12 sessions x 2 rounds: the tenants' 9 requests a round at least (healthz included).
    assert int(match["requests"]) >= 9 * 2 * 8

    admin = json.loads(credentials.read_text())
    admin_cred = next(c for c in admin if c.get("platform_role") == "admin")
    token_req = urllib.request.Request(
        base + "/api/v1/auth/token",
        data=json.dumps({"username": admin_cred["username"], "password": admin_cred["password"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(token_req, timeout=30) as r:
        token = json.loads(r.read())["token"]
    me = urllib.request.Request(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(me, timeout=30) as r:
        namespaces = [p["namespace"] for p in json.loads(r.read())["projects"]]
    for ns in namespaces:
        req = urllib.request.Request(
            f"{base}/api/v1/namespaces/{ns}/alerting/policies", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            names = [p["name"] for p in json.loads(r.read())["items"]]
        assert not [n for n in names if n.startswith("load-")], (ns, names)
