"""Renders deploy/prometheus/prometheus-sandbox.yml for one sandbox.

With several clusters (``kubehub sandbox up --clusters 2``) the one Prometheus scrapes them all
and keeps them apart by a ``cluster`` target label, as one Thanos or Mimir endpoint holding every
cluster's series does: the per-cluster jobs of the template are rendered again with each other
cluster's ports and certificates, keep their ``job`` name (so every query the hub makes reads the
same) and get ``cluster="<name>"``; the first cluster's jobs get ``cluster="default"``. This was
chosen over a second Prometheus because it exercises the shared-endpoint mode of the hub's
metrics source, which is the harder one (every query must carry the label), and costs no second
Prometheus process. A one-cluster sandbox gets no ``cluster`` label at all, exactly as before.

Rule files are every ``deploy/prometheus/*rules*.yaml`` of the source tree that ``promtool check
rules`` accepts: a rule file another area is still working on must not keep the sandbox's
Prometheus from starting, so a broken one is left out with a warning.
"""

from __future__ import annotations

import hashlib
import string
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.config import SCRAPE_INTERVAL_SECONDS

if TYPE_CHECKING:
    from sandbox.clusters import ClusterSite
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


# The template's jobs that belong to one cluster (the others are the sandbox's own).
CLUSTER_JOBS = (
    "etcd", "apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "node-exporter", "kube-state-metrics",
)  # fmt: skip


def _cluster_values(site: ClusterSite) -> dict[str, str]:
    return {
        "PORT_ETCD": str(site.port("etcd")),
        "PORT_APISERVER": str(site.port("kube-apiserver")),
        "PORT_KCM": str(site.port("kube-controller-manager")),
        "PORT_SCHEDULER": str(site.port("kube-scheduler")),
        "PORT_KWOK": str(site.port("kwok")),
        "PORT_NODESIM": str(site.port("nodesim")),
        "PORT_KSM": str(site.port("kube-state-metrics")),
        "PKI": str(site.pki_dir),
    }


def _with_cluster_labels(text: str, sites: list[ClusterSite], values: dict[str, str]) -> str:
    """The rendered one-cluster text, its cluster jobs labelled and repeated for every other cluster."""
    import yaml

    doc = yaml.safe_load(text)
    jobs = doc["scrape_configs"]

    def label(job: dict[str, Any], cluster: str, job_name: str) -> dict[str, Any]:
        relabel = list(job.get("relabel_configs") or [])
        relabel.append({"target_label": "cluster", "replacement": cluster})
        if job["job_name"] != job_name:  # the job label stays the template's name
            relabel.append({"target_label": "job", "replacement": job_name})
        return {**job, "relabel_configs": relabel}

    out = [label(j, sites[0].name, j["job_name"]) if j["job_name"] in CLUSTER_JOBS else j for j in jobs]
    for site in sites[1:]:
        other = yaml.safe_load(string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
            {**values, **_cluster_values(site)}
        ))  # fmt: skip
        for j in other["scrape_configs"]:
            if j["job_name"] in CLUSTER_JOBS:
                name = j["job_name"]
                out.append(label({**j, "job_name": f"{name}@{site.name}"}, site.name, name))
    doc["scrape_configs"] = out
    return "# rendered by sandbox/promcfg.py for several clusters\n" + yaml.safe_dump(doc, sort_keys=False)


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
    sites = sb.sites
    if len(sites) > 1:
        text = _with_cluster_labels(text.replace("rule_files:\n  []", "rule_files: []"), sites, values)
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


# Prometheus answers its readiness check only after it has replayed its write-ahead log and
# head chunks. At the large profile (1,000 nodes, 20,000 pods) they hold about 2 GB and a
# restart took over 120 s of CPU before Prometheus was ready (2026-12-06), so a fixed wait
# failed an `up` that would have succeeded: the wait grows with what there is to replay.
START_SECONDS = 120.0
REPLAY_BYTES_PER_SECOND = 4 * 1024 * 1024  # a slow replay: 2 cores under load
MAX_START_SECONDS = 1800.0


def replay_bytes(data_dir: Path) -> int:
    """Bytes of write-ahead log and head chunks Prometheus replays at start (0 when new)."""
    total = 0
    for part in ("wal", "chunks_head"):
        folder = data_dir / part
        if folder.is_dir():
            total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return total


def start_timeout(replay: int) -> float:
    """Seconds to wait for Prometheus to be ready with ``replay`` bytes to replay."""
    return min(MAX_START_SECONDS, START_SECONDS + replay / REPLAY_BYTES_PER_SECOND)
