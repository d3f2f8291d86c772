"""The console policy editor's ``group_by`` field (docs/alerting.md "Grouping across
policies"): typed labels become the policy's ``notification.group_by``, the stored value is
shown back, and a form save sets, changes and clears it (blank = the level's default, ``[]`` =
no labels); a bad label name comes back beside the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest_tenancy import HOME_NAMESPACE, TenancyWorld, build_world
from web.views.policy_form import _form_value, document_from_form, keep_what_the_form_does_not_show

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("console-group-by")))
    yield w
    w.hub.close()


def form(csrf: str, group_by: str) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "mode": "form",
        "name": "grouped",
        "enabled": "on",
        "enabled_present": "1",
        "target_workloads": "deployment/api",
        "rules-0-name": "cpu-high",
        "rules-0-metric": "workload_cpu_usage",
        "rules-0-aggregation": "avg",
        "rules-0-comparator": ">",
        "rules-0-threshold": "2",
        "rules-0-unit": "cores",
        "rules-0-period": "1m",
        "rules-0-consecutive": "3",
        "rules-0-severity": "major",
        "receivers": "oncall@example.com",
        "send_resolved": "on",
        "group_by": group_by,
    }


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("namespace, workload", ["namespace", "workload"]),
        ("namespace\nworkload", ["namespace", "workload"]),
        ("policy", ["policy"]),
        ("[]", []),
        ("   ", None),
    ],
)
def test_typed_labels_become_the_documents_group_by_and_are_shown_back(typed: str, expected: Any) -> None:
    doc = document_from_form(form("x", typed), level="workload", namespace="ns-a1")
    assert doc["notification"].get("group_by") == expected
    assert ("group_by" in doc["notification"]) == (expected is not None)
    shown = _form_value(doc)["group_by"]
    again = document_from_form(form("x", shown), level="workload", namespace="ns-a1")
    assert again["notification"].get("group_by") == expected


def test_a_blank_field_clears_the_stored_group_by_instead_of_keeping_it() -> None:
    stored = {"name": "grouped", "notification": {"receivers": [], "group_by": ["namespace"], "later": 1}}
    doc = document_from_form(form("x", ""), level="workload", namespace="ns-a1")
    merged = keep_what_the_form_does_not_show(doc, stored)
    assert "group_by" not in merged["notification"]
    assert merged["notification"]["later"] == 1  # a field the form does not show is still kept


def test_the_form_sets_changes_and_clears_a_policys_group_by(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    base = f"/projects/{HOME_NAMESPACE}/alerting/policies"
    r = client.post(base, data=form(csrf, "namespace, workload"), headers=HTML)
    assert r.status_code == 303, r.get_data(as_text=True)[:2000]
    url = r.headers["Location"]
    pid = url.rstrip("/").rsplit("/", 1)[-1]

    def stored() -> dict[str, Any]:
        policy: dict[str, Any] = world.hub.alerting.get_policy(pid, level="workload", namespace=HOME_NAMESPACE)
        return policy["notification"]

    assert stored()["group_by"] == ["namespace", "workload"]
    body = client.get(url, headers=HTML).get_data(as_text=True)
    assert 'name="group_by" value="namespace, workload"' in body

    assert client.post(url, data=form(csrf, "policy"), headers=HTML).status_code == 303
    assert stored()["group_by"] == ["policy"]

    assert client.post(url, data=form(csrf, "[]"), headers=HTML).status_code == 303
    assert stored()["group_by"] == []
    assert 'name="group_by" value="[]"' in client.get(url, headers=HTML).get_data(as_text=True)

    assert client.post(url, data=form(csrf, ""), headers=HTML).status_code == 303
    assert "group_by" not in stored()


def test_a_bad_label_name_comes_back_beside_the_field_and_nothing_changes(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    data = form(csrf, "node, 9lives") | {"name": "grouped-bad"}
    r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies", data=data, headers=HTML)
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'data-error-for="notification.group_by[1]">[1] must be a label name' in body
    assert 'value="node, 9lives"' in body  # kept for fixing
    names = [p["name"] for p in world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE)]
    assert "grouped-bad" not in names
