"""The console's policy list (``/alerting/policies``) at scale: 1,191 policies of 300 projects,
read project by project and rendered as one page, took 0.6 s of server time on the scale
sandbox (docs/scale.md). The page holds 100 workload policies, by project and name, read in one
call to the alerting service, which applies the caller's scope: a tenant's pages never hold
another tenant's policy, whatever ``?from=`` says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.scope import Scope
from tests.unit.conftest_tenancy import (
    FOREIGN_NAMESPACE,
    HOME_NAMESPACE,
    SIBLING_NAMESPACE,
    TenancyWorld,
    assert_no_leak,
    build_world,
)
from web.views.alerting_alerts import POLICIES_PAGE

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}
HOME_COUNT, FOREIGN_COUNT = 70, 65  # 135 in all: two pages for a platform admin, one for a tenant
ODD_OFFSETS = ("100", "135", "1000000", "99999999999999999999", "-5", "abc", "1e3", "")
FIRST_PAGE = ("0", "-5", "abc", "1e3", "", "99999999999999999999")  # lenient: wrong or past any id: the first


def policy(name: str, level: str = "workload") -> dict[str, Any]:
    rule = {"name": "cpu", "metric": f"{level}_cpu_usage", "comparator": ">", "threshold": 500,
            "unit": "millicores", "period": "1m", "consecutive": 1, "severity": "major"}  # fmt: skip
    return {"name": name, "level": level, "rules": [rule], "notification": {"receivers": [{"email": "x@example.com"}]}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("console-policies")))
    svc = w.hub.alerting
    for ns, count in ((HOME_NAMESPACE, HOME_COUNT), (FOREIGN_NAMESPACE, FOREIGN_COUNT)):
        for i in range(count):
            svc.create_policy(policy(f"p{i:03d}"), level="workload", namespace=ns, actor="test")
    svc.create_policy(policy("node-p", "node"), level="node", actor="test")
    yield w
    w.hub.close()


def listed(body: str) -> list[tuple[str, str]]:
    """The workload policies a page lists, in its order: (namespace, policy id)."""
    return re.findall(r'href="/projects/([^/"]+)/alerting/policies/(pol-[0-9a-f]+)"', body)


def everyone(world: TenancyWorld, *namespaces: str) -> list[tuple[str, str]]:
    return [
        (ns, p["id"])
        for ns in sorted(namespaces)
        for p in world.hub.alerting.list_policies(level="workload", namespace=ns)  # by name
    ]


def get(client: Any, url: str) -> tuple[int, str]:
    r = client.get(url, headers=HTML)
    return r.status_code, r.get_data(as_text=True)


def test_a_platform_admin_sees_a_hundred_policies_a_page_by_project_and_name(world: TenancyWorld) -> None:
    all_of_them = everyone(world, HOME_NAMESPACE, FOREIGN_NAMESPACE)
    assert len(all_of_them) == HOME_COUNT + FOREIGN_COUNT
    client, _ = world.session("platform-admin")
    status, first = get(client, "/alerting/policies")
    assert status == 200
    assert listed(first) == all_of_them[:POLICIES_PAGE]
    assert 'href="/alerting/policies?from=100"' in first and "← " not in first
    assert f"1–{POLICIES_PAGE} / {len(all_of_them)}" in first
    assert 'id="node-policies"' in first and "node-p" in first  # node policies: the first page
    # the projects without a policy are offered a first one on the first page
    assert 'id="projects-without-policies"' in first and f'data-new-policy="{SIBLING_NAMESPACE}"' in first
    status, second = get(client, "/alerting/policies?from=100")
    assert status == 200
    assert listed(second) == all_of_them[POLICIES_PAGE:]
    assert 'href="/alerting/policies?from=0"' in second and "from=200" not in second
    assert f"101–{len(all_of_them)} / {len(all_of_them)}" in second
    assert 'id="node-policies"' not in second and 'id="projects-without-policies"' not in second
    # a project split over two pages has its heading (and its actions) on both
    assert f'id="ns-{FOREIGN_NAMESPACE}"' in first and f'id="ns-{FOREIGN_NAMESPACE}"' in second
    _, beyond = get(client, "/alerting/policies?from=1000000")
    assert listed(beyond) == [] and 'href="/alerting/policies?from=100"' in beyond  # back to the last page
    for odd in ("abc", "-5", ""):  # hand-edited links: the first page
        assert listed(get(client, f"/alerting/policies?from={odd}")[1]) == all_of_them[:POLICIES_PAGE]


def test_the_pager_speaks_chinese_too(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    _, body = get(client, "/alerting/policies?lang=zh")
    assert "下一页 →" in body and "没有告警策略的项目" in body


@pytest.mark.parametrize("role", ["project-viewer", "workspace-admin"])
def test_a_tenant_never_sees_another_tenants_policy_on_any_page(world: TenancyWorld, role: str) -> None:
    own = everyone(world, HOME_NAMESPACE)
    client, _ = world.session(role)
    for offset in ("0", *ODD_OFFSETS):
        status, body = get(client, f"/alerting/policies?from={offset}")
        assert status == 200, (role, offset)
        shown = listed(body)
        assert {ns for ns, _ in shown} <= {HOME_NAMESPACE}, (role, offset)
        if offset in FIRST_PAGE:  # 70 policies: one page, no pager
            assert shown == own and 'id="policies-pager"' not in body, (role, offset)
        else:  # beyond the end: nothing, and "previous" is their one page
            assert shown == [] and 'href="/alerting/policies?from=0"' in body, (role, offset)
        assert 'id="node-policies"' not in body
        r = client.get(f"/alerting/policies?from={offset}", headers=HTML)
        assert_no_leak(r)


def test_the_other_tenant_sees_only_theirs(world: TenancyWorld) -> None:
    client, _ = world.session("tenant-b")
    _, body = get(client, "/alerting/policies")
    assert listed(body) == everyone(world, FOREIGN_NAMESPACE)
    assert HOME_NAMESPACE not in body


def test_the_service_lists_only_what_the_scope_reads_policies_in(world: TenancyWorld) -> None:
    svc, t = world.hub.alerting, world.tenancy
    viewer = t.scope(t.principal_for(world.user("project-viewer"))).keyed
    page = svc.workload_policy_page(viewer, offset=0, limit=1000)
    assert [(p["namespace"], p["id"]) for p in page["items"]] == everyone(world, HOME_NAMESPACE)
    assert page["total"] == HOME_COUNT and page["empty"] == []
    beyond = svc.workload_policy_page(viewer, offset=HOME_COUNT, limit=10)
    assert beyond["items"] == [] and beyond["total"] == HOME_COUNT
    # a project reached without policies:read (a custom role of alerts only), or not at all, lists nothing
    t.create_user("alertwatch", "Test-password-9x")
    t.create_custom_role({"name": "alerts-only", "level": "project", "permissions": ["alerts:read"]}, actor="admin")
    t.bind_custom_role("alerts-only", "alertwatch", FOREIGN_NAMESPACE, actor="admin")
    blind = t.scope(t.principal_for("alertwatch")).keyed
    assert blind.may("alerts:read", FOREIGN_NAMESPACE)
    assert svc.workload_policy_page(blind) == {"items": [], "total": 0, "empty": []}
    t.create_custom_role({"name": "policy-reader", "level": "project", "permissions": ["policies:read"]}, actor="admin")
    t.bind_custom_role("policy-reader", "alertwatch", FOREIGN_NAMESPACE, actor="admin")
    reader = t.scope(t.principal_for("alertwatch")).keyed
    theirs = [i for _, i in everyone(world, FOREIGN_NAMESPACE)]
    assert [p["id"] for p in svc.workload_policy_page(reader)["items"]] == theirs
    nobody = Scope(all_namespaces=False, namespaces={})
    assert svc.workload_policy_page(nobody) == {"items": [], "total": 0, "empty": []}
    admin = t.scope(t.principal_for(world.user("platform-admin"))).keyed
    whole = svc.workload_policy_page(admin, offset=0, limit=1000)
    assert whole["total"] == HOME_COUNT + FOREIGN_COUNT
    assert whole["empty"] == sorted(["ns-a2", "ns-b2"])
