"""A private Alertmanager (Debian's ``prometheus-alertmanager``) for tests: its own port, data
directory and config, a loopback webhook it notifies (so a test sees what Alertmanager itself
grouped and resolved), and its v2 API read with urllib (no hub code involved)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.loopback_http import LoopbackServer, QuietHandler

BINARY = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Notifications:
    """The webhook Alertmanager posts its grouped notifications to."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.body()
                sink.received.append(json.loads(body))
                self.answer(200, content_type=None)

        self.server = LoopbackServer(Handler)
        self.url = f"{self.server.url}/notify"

    def stop(self) -> None:
        self.server.close()


class CountingProxy:
    """Between the hub and Alertmanager: forwards each POST and counts, per X-Kubehub-Message-Id,
    the ones Alertmanager accepted (how a test sees "delivered once" from outside the hub). When
    Alertmanager is down it drops the connection unanswered, as a dead server would."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.accepted: list[str] = []  # message ids ("" for the per-cycle re-posts)
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.body()
                req = urllib.request.Request(
                    proxy.target + self.path, data=body, headers={"Content-Type": "application/json"}, method="POST"
                )
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        status, answer = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, answer = exc.code, exc.read()
                except OSError:
                    self.close_connection = True
                    self.connection.close()  # no answer at all
                    return
                if 200 <= status < 300:
                    proxy.accepted.append(self.headers.get("X-Kubehub-Message-Id", ""))
                self.answer(status, answer, content_type=None)

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.close()


CONFIG = """\
route:
  receiver: hub-test
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hub-test
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


class PrivateAlertmanager:
    def __init__(self, root: Path, notify_url: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "alertmanager.yml").write_text(CONFIG.format(url=notify_url), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which(BINARY) is not None

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.root / "alertmanager.log", "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={self.root / 'alertmanager.yml'}",
                f"--storage.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # a single instance: no gossip port
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        tail = (self.root / "alertmanager.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"Alertmanager did not become ready on {self.url}: {tail}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts?active=true&silenced=false&inhibited=false"))

    def groups(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts/groups"))
