"""Volume log files (落盘日志) end to end: a pod on the sandbox's real kube-apiserver asks for its
files with ``kubehub.io/log-files``; a real ``kubehub serve`` (watching that API server) tells a
real ``kubehub collect-node`` which files to read; the collector reads them from the kubelet's
layout (``<kubelet root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>/``) on disk and
ships them to the hub, across a rename (logrotate), a collector killed with SIGKILL and the hub
down for a while. The oracle is what the test wrote; a pod without the annotation, and a file the
glob does not match, must add nothing.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hub.collectors.logs.nodewire import new_collector_token
from tests.integration.logs_support import sandbox_status
from tests.integration.test_node_collector import Hub, collector, stored_embedded

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def pods(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    status = sandbox_status(request)
    api_client = k8s_config.new_client_from_config(config_file=str(status["kubeconfig"]))
    core = k8s.CoreV1Api(api_client)
    ns = f"kh-volfiles-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    made = {}
    try:
        for name, annotation in (("asks", "app:logs/*.log"), ("silent", "")):
            body = {
                "metadata": {"name": name, "annotations": {"kubehub.io/log-files": annotation} if annotation else {}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "busybox", "volumeMounts": [{"name": "logs", "mountPath": "/l"}]}
                    ],
                    "volumes": [{"name": "logs", "emptyDir": {}}],
                },
            }
            core.create_namespaced_pod(ns, body)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(made) < 2:
            for p in core.list_namespaced_pod(ns).items:
                if p.spec.node_name:
                    made[p.metadata.name] = (p.metadata.uid, p.spec.node_name)
            time.sleep(0.5)
        assert len(made) == 2, f"KWOK did not schedule the pods: {made}"
        yield {"status": status, "ns": ns, "pods": made}
    finally:
        core.delete_namespace(ns)
        api_client.close()


def test_volume_files_reach_the_hub_once_and_only_where_asked(pods: dict[str, Any], tmp_path: Path) -> None:
    ns = pods["ns"]
    uid, node = pods["pods"]["asks"]
    silent_uid, silent_node = pods["pods"]["silent"]
    root = tmp_path / "kubelet"
    logs = root / "pods" / uid / "volumes" / "kubernetes.io~empty-dir" / "logs"
    logs.mkdir(parents=True)
    quiet = root / "pods" / silent_uid / "volumes" / "kubernetes.io~empty-dir" / "logs"
    quiet.mkdir(parents=True)
    (quiet / "app.log").write_text("a pod that did not ask\n")
    (logs / "notes.txt").write_text("not matched by the glob\n")
    written: list[str] = []

    app = open(logs / "app.log", "a", encoding="utf-8")  # noqa: SIM115

    def burst(n: int, label: str) -> None:
        for i in range(n):
            line = f"{label} {i} 订单 ok"
            app.write(line + "\n")
            written.append(line)
        app.flush()

    token, digest = new_collector_token()
    hub = Hub(tmp_path / "hub", digest, str(pods["status"]["kubeconfig"]))
    hub.start()
    env = {"KUBEHUB_COLLECTOR_TOKEN": token}
    args = [f"--hub-url={hub.url}", f"--kubelet-root={root}", "--volume-refresh=1"]
    cri_root = tmp_path / "cri"  # no container files here: only the volume files count
    state = tmp_path / "state" / node

    def start() -> subprocess.Popen:
        return collector(cri_root, state, node, *args, env=env)

    procs = [start()]
    if silent_node != node:
        procs.append(collector(cri_root, tmp_path / "state" / silent_node, silent_node, *args, env=env))
    try:
        burst(20, "first")
        time.sleep(4)
        # logrotate: renamed out of the glob while the writer still appends, then a new file
        (logs / "app.log").rename(logs / "app.log.1")
        burst(5, "late")
        app.close()
        app = open(logs / "app.log", "a", encoding="utf-8")  # noqa: SIM115
        burst(10, "second")
        time.sleep(1)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        burst(10, "while killed")
        procs[0] = start()
        time.sleep(3)
        hub.stop()
        burst(10, "hub down")
        time.sleep(2)
        hub.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and hub.stored_lines() < len(written):
            time.sleep(0.5)
        time.sleep(2)  # anything more would be a duplicate or an unasked-for file
    finally:
        app.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        hub.stop()
    stored = stored_embedded(tmp_path / "hub")
    mine = [m for who, m in stored if who == f"{ns}/asks/app"]
    print(f"volume files: written={len(written)} stored={len(stored)}")
    assert sorted(mine) == sorted(written)
    assert len(stored) == len(written), [s for s in stored if s[1] not in written][:5]
