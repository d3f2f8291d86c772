"""Renders deploy/prometheus/prometheus-sandbox.yml for one sandbox.

Rule files are every ``deploy/prometheus/*rules*.yaml`` of the source tree that ``promtool check
rules`` accepts: a rule file another area is still working on must not keep the sandbox's
Prometheus from starting, so a broken one is left out with a warning.
"""

from __future__ import annotations

import hashlib
import string
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.config import SCRAPE_INTERVAL_SECONDS

if TYPE_CHECKING:
    from sandbox.core import Sandbox

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deploy" / "prometheus" / "prometheus-sandbox.yml"


def rule_files(say: object = None) -> list[Path]:
    found = []
    for f in sorted((REPO / "deploy" / "prometheus").glob("*rules*.y*ml")):
        proc = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            found.append(f)
        elif callable(say):
            reason = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
            say(f"prometheus: leaving out {f.name}: promtool check rules failed: {reason}")
    return found


def render(sb: Sandbox) -> str:
    rules = rule_files(sb.say)
    hub_job = ""
    # Only a hub that runs is a target: a sandbox brought up by the test fixture (hub skipped)
    # must still have every target up.
    if sb.sup.alive("hub"):
        hub_job = f"""
  - job_name: kubehub
    static_configs:
      - targets: ["127.0.0.1:{sb.port("hub")}"]
"""
    values = {
        "SCRAPE_INTERVAL": str(SCRAPE_INTERVAL_SECONDS),
        "SCRAPE_TIMEOUT": str(SCRAPE_INTERVAL_SECONDS - 2),
        "RULE_FILES": "\n".join(f"  - {f}" for f in rules) if rules else "  []",
        "PORT_PROMETHEUS": str(sb.port("prometheus")),
        "PORT_ETCD": str(sb.port("etcd")),
        "PORT_APISERVER": str(sb.port("kube-apiserver")),
        "PORT_KCM": str(sb.port("kube-controller-manager")),
        "PORT_SCHEDULER": str(sb.port("kube-scheduler")),
        "PORT_KWOK": str(sb.port("kwok")),
        "PORT_NODESIM": str(sb.port("nodesim")),
        "PORT_KSM": str(sb.port("kube-state-metrics")),
        "PORT_NODE_EXPORTER": str(sb.port("node-exporter")),
        "PKI": str(sb.pki_dir),
        "HUB_JOB": hub_job,
    }
    text = string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)
    # The rule files' content is part of the configuration as far as `up` is concerned: a change
    # makes the text differ, and `up` reloads Prometheus.
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in rules)).hexdigest()[:16]
    text += f"\n# rule files digest: {digest}\n"
    if not rules:
        text = text.replace("rule_files:\n  []", "rule_files: []")
    return text


def write_config(sb: Sandbox, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(sb), encoding="utf-8")
    proc = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        from sandbox.procs import ComponentError

        raise ComponentError(
            "prometheus", f"generated configuration invalid: {proc.stdout + proc.stderr}".strip(), path
        )
    return path
