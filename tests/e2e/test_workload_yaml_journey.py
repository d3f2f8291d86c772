"""E2E journey (issue 19): a platform admin creates a StatefulSet from YAML in Chromium, sees
the dry run's diff before anything changes, applies it, changes its image the same way, then
rolls it back to the first revision from the workload page.

Everything happens in a namespace of the journey's own, deleted at the end (the seeded projects
stay as they are). Screenshots go to ``artifacts/e2e/8-workload-yaml/``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from hub.model import WORKSPACE_LABEL
from tests.e2e.conftest import Console

pytestmark = pytest.mark.e2e

ADMIN = "admin"


def statefulset(image: str) -> str:
    return f"""apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ledger
spec:
  serviceName: ledger
  replicas: 1
  selector:
    matchLabels: {{app: ledger}}
  template:
    metadata:
      labels: {{app: ledger}}
    spec:
      tolerations: [{{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}}]
      containers:
      - name: db
        image: "{image}"
"""


def _retry(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def test_admin_creates_a_statefulset_from_yaml_with_a_diff_preview_and_rolls_it_back(
    console: Console, journey: Any, sandbox: Any
) -> None:
    from sandbox import kube

    ns = f"e2e-yaml-{secrets.token_hex(3)}"
    console.hub.cluster.ensure_namespace(ns, {WORKSPACE_LABEL: "e2e-yaml"})
    rest = kube.KubeRest(sandbox.kubeconfig)
    path = kube.ns_path(ns, "statefulsets", group="apps", name="ledger")
    j = journey("8-workload-yaml")
    page = j.page
    try:
        j.login(ADMIN)
        j.goto(f"/projects/{ns}/apply")
        page.fill("#apply-yaml", statefulset("registry.example.com/e2e/ledger:1.0"))
        page.click("#apply-preview-button")
        page.wait_for_selector("#apply-preview")
        assert "+      - image: registry.example.com/e2e/ledger:1.0" in page.inner_text("#apply-preview .diff")
        j.shot("preview-create")
        with pytest.raises(Exception):  # noqa: B017 - the preview wrote nothing
            rest.get(path)
        page.click("#apply-button")
        page.wait_for_url(f"**/projects/{ns}/workloads/statefulset/ledger")
        assert "Applied StatefulSet/ledger" in page.inner_text(".flash.ok")
        j.shot("created")

        # Edit its YAML: the preview shows just the image line changing.
        page.click("#edit-yaml")
        page.wait_for_selector("#apply-yaml")
        text = page.input_value("#apply-yaml")
        page.fill("#apply-yaml", text.replace("ledger:1.0", "ledger:2.0"))
        page.click("#apply-preview-button")
        page.wait_for_selector("#apply-preview")
        diff = page.inner_text("#apply-preview .diff")
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        assert changed == [
            "-      - image: registry.example.com/e2e/ledger:1.0",
            "+      - image: registry.example.com/e2e/ledger:2.0",
        ]
        j.shot("preview-edit")
        page.click("#apply-button")
        page.wait_for_url(f"**/projects/{ns}/workloads/statefulset/ledger")

        url = f"/projects/{ns}/workloads/statefulset/ledger"
        _retry(
            lambda: j.goto(url) and page.locator("select[name=revision] option[value='1']").count() == 1,
            timeout=60,
            what="revision 1 offered for roll back",
        )
        j.shot("revisions")
        page.select_option("select[name=revision]", "1")
        page.locator("form[action$='/rollback'] button").click()
        j.confirm()
        assert "rolled back to revision 1" in page.inner_text(".flash.ok")
        live = rest.get(path)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert live == "registry.example.com/e2e/ledger:1.0"
        j.shot("rolled-back")
    finally:
        console.hub.cluster.delete_namespace(ns)
