"""The sandbox's Alertmanager: Debian's ``prometheus-alertmanager`` on ``BASE+93``.

It is what a policy's ``alertmanager`` receiver hands alerts to in the sandbox
(docs/alerting.md "Webhooks and Alertmanager"): one route grouping by ``alertname`` into a
receiver named ``sandbox`` with no integrations, so whatever arrives is seen through its API
(``GET /api/v2/alerts``, ``/api/v2/alerts/groups``) and its web page, and nothing leaves the
machine. A single instance: ``--cluster.listen-address=`` turns gossip off (no second port).
Its data (silences, notification log) lives in the sandbox's state; it runs as the
unprivileged user the sandbox uses for Elasticsearch and PostgreSQL when started as root.

Tests that stop or reconfigure an Alertmanager start their own
(``tests/integration/alertmanager_support.py``); this one is shared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BINARY = "prometheus-alertmanager"

CONFIG = """\
# Written by kubehub's sandbox (sandbox/alertmanager.py); rewritten on every `sandbox up`.
route:
  receiver: sandbox
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: sandbox
"""


def binary() -> str | None:
    return shutil.which(BINARY) or (f"/usr/bin/{BINARY}" if os.path.exists(f"/usr/bin/{BINARY}") else None)


def version() -> str:
    exe = binary()
    if exe is None:
        return "unknown"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    words = (out.stdout or out.stderr).split()
    # "alertmanager, version 0.25.0 (branch: ...)"
    return words[2] if len(words) > 2 and words[1] == "version" else "unknown"


def prepare(directory: Path, *, user: str | None) -> Path:
    """The config file and data directory (owned by ``user`` when given); returns the config."""
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = directory / "alertmanager.yml"
    config.write_text(CONFIG, encoding="utf-8")
    if user and os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam(user)
        for p in (directory, data, config, *data.iterdir()):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    return config


def argv(directory: Path, port: int) -> list[str]:
    exe = binary() or BINARY
    return [
        exe,
        f"--config.file={directory / 'alertmanager.yml'}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
