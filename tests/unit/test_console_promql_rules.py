"""The console's PromQL rule field and Prometheus rule upload (server side, tenancy world): a
tenant's refused expression comes back beside its field naming the construct; an upload shows
the import report and, asked to, creates the policies in the tenant's project."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest_tenancy import HOME_NAMESPACE, TenancyWorld, build_world

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("console-promql")))
    yield w
    w.hub.close()


def form(csrf: str, expr: str) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "mode": "form",
        "name": "restarts",
        "enabled": "on",
        "enabled_present": "1",
        "rules-0-name": "crash",
        "rules-0-expr": expr,
        "rules-0-for": "2m",
        "rules-0-summary": "{{ $labels.pod }} restarts",
        "rules-0-period": "1m",
        "rules-0-severity": "major",
        "receivers": "oncall@example.com",
    }


def test_a_refused_expression_is_shown_beside_its_field(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    url = f"/projects/{HOME_NAMESPACE}/alerting/policies"
    r = client.post(url, data=form(csrf, "absent(kube_pod_info)"), headers=HTML)
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'data-error-for="rules[0].expr">' in body and "absent()" in body
    r = client.post(url, data=form(csrf, "increase(kube_pod_container_status_restarts_total[5m]) > 2"), headers=HTML)
    assert r.status_code == 303
    (saved,) = world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE)
    assert saved["rules"][0]["expr"].startswith("increase(") and saved["rules"][0]["for"] == "2m"


def test_an_upload_shows_the_report_and_creates_the_policies(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    text = (
        "groups:\n  - name: uploaded\n    rules:\n"
        "      - alert: Up\n        expr: up == 0\n        labels: {severity: critical}\n"
        "      - alert: Forge\n        expr: absent(up)\n"
        "      - record: a:b\n        expr: sum by (namespace) (up)\n"
    )
    url = f"/projects/{HOME_NAMESPACE}/alerting/policies/import"
    status = client.get(url, headers=HTML).status_code
    assert status == 200
    r = client.post(
        url,
        data={"csrf_token": csrf, "apply": "1", "files": (io.BytesIO(text.encode()), "rules.yml")},
        headers=HTML,
        content_type="multipart/form-data",
    )
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'data-outcome="not_importable"' in body and "absent()" in body
    assert 'data-outcome="recording"' in body
    names = [p["name"] for p in world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE)]
    assert "uploaded" in names
    viewer, _ = world.session("project-viewer")
    assert viewer.get(url, headers=HTML).status_code == 403


def test_a_form_save_keeps_the_fields_the_form_does_not_show(world: TenancyWorld) -> None:
    """A PromQL rule's labels and description: set through the API, kept by the form (group_by has
    its own field now: tests/unit/test_console_policy_group_by.py)."""
    client, csrf = world.session("project-operator")
    created = world.hub.alerting.create_policy(
        {
            "name": "kept-fields",
            "level": "workload",
            "namespace": HOME_NAMESPACE,
            "target": {"workloads": [{"kind": "*", "name": "*"}]},
            "rules": [
                {
                    "name": "crash",
                    "expr": "increase(kube_pod_container_status_restarts_total[5m]) > 2",
                    "period": "1m",
                    "for": "2m",
                    "severity": "major",
                    "labels": {"team": "checkout"},
                    "description": "restarts of {{ $labels.pod }}",
                }
            ],
            "notification": {"receivers": [{"email": "oncall@example.com"}]},
        },
        level="workload",
        namespace=HOME_NAMESPACE,
        actor="test",
    )
    data = form(csrf, "increase(kube_pod_container_status_restarts_total[5m]) > 3") | {"name": "kept-fields"}
    r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies/{created['id']}", data=data, headers=HTML)
    assert r.status_code == 303, r.get_data(as_text=True)[:2000]
    saved = world.hub.alerting.get_policy(created["id"], level="workload", namespace=HOME_NAMESPACE)
    (rule,) = saved["rules"]
    assert rule["expr"].endswith("> 3")  # the form's change
    assert rule["labels"] == {"team": "checkout"} and rule["description"] == "restarts of {{ $labels.pod }}"
    assert rule["summary"] == "{{ $labels.pod }} restarts"  # shown by the form: the form's value
