"""E2E journey (issue 19): a platform admin sets a project's quota on the project page in
Chromium, sees its usage, and a scale-up beyond it is refused on the workload page with the
quota named (nothing changes in the cluster).

The project, its namespace and its workload are the journey's own and are deleted at the end.
Screenshots go to ``artifacts/e2e/9-project-quota/``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from tests.e2e.conftest import Console

pytestmark = pytest.mark.e2e

ADMIN = "admin"


def _retry(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def test_admin_sets_a_project_quota_and_sees_a_scale_up_refused(console: Console, journey: Any, sandbox: Any) -> None:
    from sandbox import kube

    suffix = secrets.token_hex(3)
    ws, ns = f"e2e-quota-{suffix}", f"e2e-quota-{suffix}"
    tenancy = console.hub.tenancy
    tenancy.create_workspace(ws)
    tenancy.create_project(ws, ns)
    rest = kube.KubeRest(sandbox.kubeconfig)
    labels = {"app": "meter"}
    j = journey("9-project-quota")
    page = j.page
    try:
        j.login(ADMIN)
        j.goto(f"/projects/{ns}")
        page.fill("#quota-form input[name=cpu]", "1")
        page.fill("#quota-form input[name=pods]", "3")
        page.fill("#quota-form input[name=default_cpu]", "100m")
        page.fill("#quota-form input[name=default_memory]", "64Mi")
        j.shot("quota-form")
        with page.expect_navigation():
            page.click("#quota-form button[type=submit]")
        assert f"The quota of {ns} is set." in page.inner_text(".flash.ok")
        quota = rest.get(kube.ns_path(ns, "resourcequotas", name="kubehub-quota"))
        assert quota["spec"]["hard"] == {"requests.cpu": "1", "pods": "3"}

        rest.create(
            kube.ns_path(ns, "deployments", group="apps"),
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "meter", "namespace": ns},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {"name": "m", "image": "busybox:1.36", "resources": {"requests": {"cpu": "300m"}}}
                            ],
                            "tolerations": [
                                {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                            ],
                        },
                    },
                },
            },
        )
        _retry(
            lambda: j.goto(f"/projects/{ns}") and "600m" in page.inner_text("#project-quota"),
            timeout=120,
            what="the quota to count two pods",
        )
        j.shot("quota-usage")

        j.goto(f"/projects/{ns}/workloads/deployment/meter")
        page.fill("#scale-replicas", "4")
        page.click("#scale-submit")
        j.confirm()
        refusal = page.inner_text(".flash.error")
        assert "kubehub-quota" in refusal and "requests.cpu" in refusal
        j.shot("scale-refused")
        deployment = rest.get(kube.ns_path(ns, "deployments", group="apps", name="meter"))
        assert deployment["spec"]["replicas"] == 2
    finally:
        tenancy.delete_project(ns, confirm=ns)
        tenancy.delete_workspace(ws)
        console.hub.cluster.delete_namespace(ns)
