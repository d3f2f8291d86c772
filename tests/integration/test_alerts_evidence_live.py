"""Issue 12 part 3, live: the log lines an alert email carries are the NEWEST lines of the
alert's own workload before the notice (error and warning lines first), and a repeat shows the
lines since the previous send.

End to end with real engines: a namespace of the test's own with a Deployment ``web`` and a
StatefulSet ``web`` (the same name: their lines must not mix), whose pods' logs KWOK serves from
CRI files the test keeps appending to (ClusterLogs), a hub with the shipper on for that
namespace and its embedded log store, a policy on the Deployment's CPU (its pods run hot by
annotation), and the sandbox's SMTP catcher. The outside reference is the list of lines the
test wrote, with their times: the email's lines must be exactly the selection the rule makes
from them up to the newest line the email shows, and that line must be at most a few seconds
older than the notice.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.notify.notice import Notice
from hub.settings import Settings
from sandbox import kube
from sandbox.core import Sandbox
from sandbox.kube import KubeError, KubeRest
from tests.conftest import world_database_url
from tests.integration.alerts_support import mails_to, start_hub, subject_of, text_of, wait_until

pytestmark = pytest.mark.integration

PERIOD = 20
LIMIT = 20  # lines an email shows (hub/alerts/notify/render.py MAX_LOG_LINES)
FRESH = 10.0  # seconds: the newest line shown is at most this much older than the notice


@dataclass(frozen=True)
class Written:
    t: float
    owner: str  # dep | sts
    message: str

    @property
    def problem(self) -> bool:
        return self.message.startswith(("ERROR", "WARN"))


class Writer:
    """Appends a CRI line to each container's file every 0.4 s: INFO mostly, an ERROR every
    29th line and a WARN every 37th (the StatefulSet's file too, so a mix would show): a
    minute's window holds fewer than 20 of them, so an email shows both groups."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.written: list[Written] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        seq = 0
        while not self.stop.wait(0.4):
            seq += 1
            level = "ERROR" if seq % 29 == 0 else "WARN" if seq % 37 == 0 else "INFO"
            now = time.time()
            stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
            for owner, path in self.files.items():
                message = f"{level} {owner}-{seq} request handled"
                with open(path, "a", encoding="utf-8") as f:
                    f.write(f"{stamp} stdout F {message}\n")
                self.written.append(Written(now, owner, message))


def workload(kind: str, ns: str, container: str, annotations: dict[str, str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": f"web-{kind.lower()}"}
    template = {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "containers": [{"name": container, "image": "registry.example.com/test/web:1"}],
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    spec: dict[str, Any] = {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": ns}, "spec": spec}


@pytest.fixture
def scene(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[str, Writer]]:
    run = uuid.uuid4().hex[:6]
    ns = f"evidence-{run}"
    api = KubeRest(sandbox.kubeconfig)
    files = {"dep": tmp_path / "web.log", "sts": tmp_path / "db.log"}
    for f in files.values():
        f.write_text("")
    logs_obj = {
        "apiVersion": f"{kube.KWOK_GROUP}/{kube.KWOK_VERSION_API}",
        "kind": "ClusterLogs",
        "metadata": {"name": ns},
        "spec": {
            "selector": {"matchNamespaces": [ns]},
            "logs": [
                {"containers": ["web"], "logsFile": str(files["dep"]), "follow": True},
                {"containers": ["db"], "logsFile": str(files["sts"]), "follow": True},
            ],
        },
    }
    writer = Writer(files)
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        kube.apply_cluster_object(api, logs_obj)
        # 4 cores: a new pod's 5-minute CPU rate is its samples so far over 300 s, so it passes the
        # policy's 300m after about 23 s of them (90 s at 1 core); the policy fires only on this.
        api.create(
            f"/apis/apps/v1/namespaces/{ns}/deployments", workload("Deployment", ns, "web", {"kubehub.io/cpu": "4"})
        )
        api.create(f"/apis/apps/v1/namespaces/{ns}/statefulsets", workload("StatefulSet", ns, "db", {}))

        def running() -> bool:
            pods = api.list(f"/api/v1/namespaces/{ns}/pods")
            return len([p for p in pods if p["status"].get("phase") == "Running"]) == 2

        wait_until(running, timeout=120, what="the Deployment's and StatefulSet's pods to run")
        writer.thread.start()
        yield ns, writer
    finally:
        writer.stop.set()
        for path in (kube.kwok_path("clusterlogs", ns), f"/api/v1/namespaces/{ns}"):
            try:
                api.delete(path)
            except KubeError:
                pass


LINE = re.compile(r"^\s+(\S+) (\S+) (.*)$")


def evidence_of(msg: Message) -> list[str]:
    """The messages of the log lines an email shows, in the order shown."""
    text = text_of(msg)
    start = text.index("Newest log lines of deployment/web")
    out = []
    for raw in text[start:].splitlines()[1:]:
        m = LINE.match(raw)
        if not m:
            break
        out.append(m.group(3))
    return out


def expected(written: list[Written], start: float, newest: float) -> list[str]:
    """The rule applied to the lines the test wrote (the outside reference): the Deployment's
    lines in [start, newest], the newest error/warning lines first, then the newest others."""
    mine = [w for w in written if w.owner == "dep" and start <= w.t <= newest]
    problems = [w for w in mine if w.problem][-LIMIT:]
    others = [w for w in mine if not w.problem][-(LIMIT - len(problems)) :] if len(problems) < LIMIT else []
    return [w.message for w in problems + others]


def test_evidence_lines_are_the_newest_before_the_notice_and_a_repeat_shows_newer_ones(
    sandbox: Sandbox, tmp_path: Path, scene: tuple[str, Writer]
) -> None:
    ns, writer = scene
    address = f"evidence-{ns}@example.com"
    settings = Settings(data_dir=tmp_path / "hub", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(sandbox.kubeconfig), "request_timeout": 20.0},
        logs={"ship": True, "ship_namespaces": ns, "ship_interval": 1.0, "retention_days": 3650},
        prometheus={"url": sandbox.prometheus_url, "timeout": 30.0},
        smtp={"host": sandbox.smtp_host, "port": sandbox.smtp_port, "sender": "kubehub-test@localhost"},
        alerts={"tick_seconds": 5.0, "delivery_seconds": 1.0},
    )
    hub = start_hub(settings)
    try:
        svc = hub.alerting
        svc.create_policy(
            {
                "name": "web-cpu",
                "level": "workload",
                "target": {"workloads": [{"kind": "deployment", "name": "web"}]},
                "rules": [
                    {
                        "name": "cpu-high",
                        "metric": "workload_cpu_usage",
                        "aggregation": "avg",
                        "comparator": ">",
                        "threshold": 300,
                        "unit": "millicores",
                        "period": f"{PERIOD}s",
                        "consecutive": 1,
                        "severity": "major",
                    }
                ],
                "notification": {"receivers": [{"email": address}]},
                "repeat": {"major": {"mode": "fixed", "interval": "1m", "max_sends": 3}},
            },
            level="workload",
            namespace=ns,
            actor="test",
        )

        def two_mails() -> list[Message]:
            got = mails_to(sandbox, address)
            return got if len(got) >= 2 else []

        first, repeat = wait_until(two_mails, timeout=300, interval=2, what="the firing email and its repeat")[:2]
        assert subject_of(first).startswith("[FIRING·major] deployment/web")
        assert subject_of(repeat).startswith("[STILL FIRING·major] deployment/web")
        notices = {
            n.kind: n
            for n in (
                Notice.from_json(r["payload"])
                for r in hub.db.query(
                    "SELECT payload FROM alert_notices WHERE kind IN ('firing', 'repeat') ORDER BY id"
                )
            )
        }
        fired, again = notices["firing"], notices["repeat"]
        assert again.since == fired.at  # the repeat's evidence starts at the previous send
        at_of = {w.message: w.t for w in writer.written}

        shown: dict[str, list[str]] = {}
        for name, msg, n, start in (
            ("firing", first, fired, fired.started_at - fired.period),
            ("repeat", repeat, again, fired.at),
        ):
            lines = evidence_of(msg)
            assert lines, f"the {name} email shows no log lines"
            assert all(" dep-" in x for x in lines), f"StatefulSet lines in the Deployment's evidence: {lines}"
            newest = max(at_of[x] for x in lines)
            assert newest <= n.at and newest >= n.at - FRESH, (name, n.at - newest)
            assert lines == expected(writer.written, start, newest), name
            shown[name] = lines
            problem = [x.startswith(("ERROR", "WARN")) for x in lines]
            assert problem == sorted(problem, reverse=True), lines  # errors/warnings first
        # the rule's two groups were both exercised
        assert any(x.startswith(("ERROR", "WARN")) for x in shown["firing"] + shown["repeat"])
        assert any(x.startswith("INFO") for x in shown["firing"] + shown["repeat"])
        # the repeat shows newer lines than the first email, none of the same
        assert min(at_of[x] for x in shown["repeat"]) > max(at_of[x] for x in shown["firing"])
        assert not set(shown["repeat"]) & set(shown["firing"])
    finally:
        hub.close()
