"""The console's pages in the tenancy world (no cluster, no Prometheus): who is sent where,
what each role is offered, language switching, banners, and the policy editor's round trip.

The browser journeys against the real sandbox are in tests/e2e; these pin the server-side
behaviour that does not need engines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest_tenancy import FOREIGN_NAMESPACE, HOME_NAMESPACE, TenancyWorld, assert_no_leak, build_world
from web.views.alerting import document_from_form
from web.views.logs import highlight, keyword_terms

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("console")))
    yield w
    w.hub.close()


def page(client: Any, url: str) -> tuple[int, str]:
    r = client.get(url, headers=HTML)
    return r.status_code, r.get_data(as_text=True)


def nav_links(body: str) -> list[str]:
    nav = re.search(r"<nav aria-label=[^>]*>(.*?)</nav>", body, re.S)
    return re.findall(r'href="([^"]+)"', nav.group(1)) if nav else []


# -- who is sent where ------------------------------------------------------------------------------
def test_a_browser_that_is_not_logged_in_is_sent_to_the_login_page_and_back(world: TenancyWorld) -> None:
    r = world.app.test_client().get("/logs?q=timeout", headers=HTML)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")
    assert r.headers["Location"].endswith("next=/logs?q%3Dtimeout")


def test_a_non_browser_caller_without_credentials_gets_a_plain_401(world: TenancyWorld) -> None:
    r = world.app.test_client().get("/logs")
    assert r.status_code == 401


def test_the_login_page_carries_the_csrf_token_and_names_a_failed_login_without_saying_why(
    world: TenancyWorld,
) -> None:
    status, body = page(world.app.test_client(), "/login?error=invalid&next=/alerting")
    assert status == 200
    assert 'name="csrf_token" value="' in body and 'name="next" value="/alerting"' in body
    assert "User name or password is wrong." in body


def test_the_login_page_refuses_to_send_people_to_another_site_afterwards(world: TenancyWorld) -> None:
    _, body = page(world.app.test_client(), "/login?next=//evil.example/x")
    assert 'name="next" value="/"' in body


def test_a_logged_in_user_asking_for_the_login_page_goes_where_they_were_heading(world: TenancyWorld) -> None:
    client, _ = world.session("project-viewer")
    r = client.get("/login?next=/logs", headers=HTML)
    assert r.status_code == 303 and r.headers["Location"].endswith("/logs")


# -- role awareness ---------------------------------------------------------------------------------
def test_the_navigation_offers_nodes_users_and_audit_only_to_platform_admins(world: TenancyWorld) -> None:
    admin, _ = world.session("platform-admin")
    viewer, _ = world.session("project-viewer")
    admin_links = nav_links(page(admin, "/workspaces")[1])
    viewer_links = nav_links(page(viewer, "/workspaces")[1])
    for link in ("/nodes", "/users", "/audit"):
        assert link in admin_links
        assert link not in viewer_links
    assert "/logs" in viewer_links and "/alerting" in viewer_links


def test_a_project_viewer_is_not_offered_member_changes_but_a_project_admin_is(world: TenancyWorld) -> None:
    viewer, _ = world.session("project-viewer")
    admin, _ = world.session("project-admin")
    _, as_viewer = page(viewer, f"/projects/{HOME_NAMESPACE}")
    _, as_admin = page(admin, f"/projects/{HOME_NAMESPACE}")
    action = f'action="/projects/{HOME_NAMESPACE}/members"'
    assert action not in as_viewer
    assert action in as_admin


def test_new_policy_is_offered_only_where_the_user_may_write_policies(world: TenancyWorld) -> None:
    viewer, _ = world.session("project-viewer")
    operator, _ = world.session("project-operator")
    assert "data-new-policy" not in page(viewer, "/alerting/policies")[1]
    assert f'data-new-policy="{HOME_NAMESPACE}"' in page(operator, "/alerting/policies")[1]


def test_an_action_that_is_hidden_is_still_refused_by_the_server(world: TenancyWorld) -> None:
    viewer, csrf = world.session("project-viewer")
    r = viewer.post(
        f"/projects/{HOME_NAMESPACE}/members",
        data={"csrf_token": csrf, "user": "regular", "role": "admin"},
        headers=HTML,
    )
    assert r.status_code == 403
    assert ("regular", "admin") not in [(u, r.value) for u, r in world.tenancy.project_members(HOME_NAMESPACE)]


def test_a_console_form_without_its_csrf_token_is_refused(world: TenancyWorld) -> None:
    admin, _ = world.session("project-admin")
    r = admin.post(f"/projects/{HOME_NAMESPACE}/members", data={"user": "regular", "role": "viewer"}, headers=HTML)
    assert r.status_code == 403


def test_a_tenant_opening_another_tenants_project_by_url_gets_a_403_page_naming_nothing_of_theirs(
    world: TenancyWorld,
) -> None:
    client, _ = world.session("project-operator")
    for url in (
        f"/projects/{FOREIGN_NAMESPACE}",
        f"/workloads?ns={FOREIGN_NAMESPACE}",
        f"/logs?namespaces={FOREIGN_NAMESPACE}&search=1",
        f"/projects/{FOREIGN_NAMESPACE}/alerting/policies/new",
    ):
        r = client.get(url, headers=HTML)
        assert r.status_code == 403, url
        assert "<html" in r.get_data(as_text=True)
        assert_no_leak(r, requested=FOREIGN_NAMESPACE)


# -- language, time, banners ------------------------------------------------------------------------
def test_lang_query_switches_to_chinese_and_a_cookie_keeps_it(world: TenancyWorld) -> None:
    client, _ = world.session("project-viewer")
    r = client.get("/alerting?lang=zh", headers=HTML)
    body = r.get_data(as_text=True)
    assert '<html lang="zh-CN">' in body and "告警消息" in body
    assert "kubehub_lang=zh" in r.headers.get("Set-Cookie", "")
    _, later = page(client, "/logs")
    assert "日志查询" in later


def test_the_browser_language_is_used_when_nothing_was_chosen(world: TenancyWorld) -> None:
    client, _ = world.session("project-viewer")
    r = client.get("/logs", headers={**HTML, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "日志查询" in r.get_data(as_text=True)


def test_times_are_sent_as_machine_readable_utc_for_the_browser_to_show_in_the_users_zone(
    world: TenancyWorld,
) -> None:
    client, _ = world.session("platform-admin")
    _, body = page(client, "/users")
    assert re.search(r'<time datetime="[0-9.]+" data-epoch>', body)


def test_every_page_reports_its_server_time(world: TenancyWorld) -> None:
    client, _ = world.session("project-viewer")
    r = client.get("/workspaces", headers=HTML)
    assert re.match(r"app;dur=[0-9.]+", r.headers["Server-Timing"])


def test_a_missing_backend_is_a_503_page_with_a_banner_naming_it(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    status, body = page(client, "/nodes")
    assert status == 503
    assert re.search(r'class="banner error"[^>]*data-backend="kubernetes API server"', body)


def test_empty_states_say_what_to_do(world: TenancyWorld) -> None:
    client, _ = world.session("platform-regular")
    _, body = page(client, "/workloads")
    assert 'class="empty"' in body and "not a member of any project" in body


# -- the policy editor ----------------------------------------------------------------------------
def policy_form(csrf: str, threshold: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "mode": "form",
        "name": "api-cpu",
        "enabled": "on",
        "enabled_present": "1",
        "target_workloads": "deployment/api",
        "rules-0-name": "cpu-high",
        "rules-0-metric": "workload_cpu_usage",
        "rules-0-aggregation": "avg",
        "rules-0-comparator": ">",
        "rules-0-threshold": threshold,
        "rules-0-unit": "cores",
        "rules-0-period": "1m",
        "rules-0-consecutive": "3",
        "rules-0-severity": "major",
        "receivers": "oncall@example.com\nuser:poperator",
        "send_resolved": "on",
        "repeat-major-mode": "fixed",
        "repeat-major-interval": "10m",
        "repeat-major-max_sends": "5",
    }


def test_the_editor_turns_its_fields_into_the_api_policy_document() -> None:
    doc = document_from_form(policy_form("x", "1.5"), level="workload", namespace="ns-a1")
    assert doc["target"] == {"workloads": [{"kind": "deployment", "name": "api"}]}
    assert doc["rules"][0]["threshold"] == 1.5 and doc["rules"][0]["consecutive"] == 3
    assert doc["notification"]["receivers"] == [{"email": "oncall@example.com"}, {"user": "poperator"}]
    assert doc["repeat"] == {"major": {"mode": "fixed", "interval": "10m", "max_sends": 5}}
    assert doc["namespace"] == "ns-a1" and doc["enabled"] is True


def test_an_invalid_threshold_comes_back_beside_its_field_and_nothing_is_saved(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies", data=policy_form(csrf, "-2"), headers=HTML)
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'data-error-for="rules[0].threshold">' in body and "negative threshold" in body
    assert 'value="-2"' in body  # the user's input is kept for fixing
    assert world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE) == []


def test_live_validation_answers_problems_by_field_and_the_yaml_of_a_valid_policy(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    url = f"/projects/{HOME_NAMESPACE}/alerting/policies/check"
    bad = client.post(url, data=policy_form(csrf, "lots"), headers={"X-CSRF-Token": csrf}).get_json()
    assert bad["valid"] is False and "rules[0].threshold" in bad["problems"]
    good = client.post(url, data=policy_form(csrf, "2"), headers={"X-CSRF-Token": csrf}).get_json()
    assert good["valid"] is True and good["problems"] == {}
    assert "threshold: 2" in good["yaml"] and "namespace: ns-a1" in good["yaml"]


def test_a_fixed_policy_is_saved_and_its_page_shows_it_back(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies", data=policy_form(csrf, "2"), headers=HTML)
    assert r.status_code == 303
    status, body = page(client, r.headers["Location"])
    assert status == 200
    assert "Policy api-cpu is saved." in body
    assert 'name="rules-0-threshold" value="2"' in body


def test_a_policy_in_yaml_is_saved_as_written(world: TenancyWorld) -> None:
    client, csrf = world.session("project-operator")
    text = (
        "name: api-memory\nlevel: workload\ntarget: {workloads: [{kind: deployment, name: api}]}\n"
        "rules:\n  - {name: mem, metric: workload_memory_usage, aggregation: max, comparator: '>',"
        " threshold: 512, unit: MiB, period: 1m, consecutive: 2, severity: minor}\n"
    )
    r = client.post(
        f"/projects/{HOME_NAMESPACE}/alerting/policies",
        data={"csrf_token": csrf, "mode": "yaml", "yaml": text},
        headers=HTML,
    )
    assert r.status_code == 303
    names = [p["name"] for p in world.hub.alerting.list_policies(level="workload", namespace=HOME_NAMESPACE)]
    assert "api-memory" in names


# -- log highlighting -------------------------------------------------------------------------------
def test_keyword_terms_keep_phrases_whole_and_drop_operators() -> None:
    assert keyword_terms('error "connection refused" OR 超时') == ["connection refused", "error", "超时"]


def test_highlighting_marks_chinese_as_substrings_and_latin_as_whole_words_and_escapes_html() -> None:
    out = str(highlight("<b>ERROR</b> 调用支付服务超时 errors timeout", ["error", "超时"]))
    assert "&lt;b&gt;<mark>ERROR</mark>&lt;/b&gt;" in out
    assert "服务<mark>超时</mark>" in out
    assert "<mark>error</mark>s" not in out  # "errors" is another word


def test_highlighting_marks_what_the_word_rule_matches() -> None:
    out = str(highlight("fetched git:amd64 オフセット404 指定。版本控制 user_id=1", ["amd64", "404", "定版本", "user"]))
    assert out == "fetched git:<mark>amd64</mark> オフセット<mark>404</mark> 指定。版本控制 <mark>user</mark>_id=1"
    out = str(highlight("数据库连接超时 after 30s; 超时间 after", ["超时 after"]))
    assert out == "数据库连接<mark>超时 after</mark> 30s; 超时间 after"  # the CJK word must end its run


def test_highlighting_a_phrase_marks_it_across_the_space() -> None:
    out = str(highlight("upstream connection refused now", ["connection refused"]))
    assert "<mark>connection refused</mark>" in out


# -- cluster outages and staleness (our own cluster service, faked at its interface) ---------------
class StaleCluster:
    """The cluster service's read interface, answering from a cache that lost the API server."""

    def list_nodes(self, query: Any) -> Any:
        node = {
            "name": "node-1",
            "ready": True,
            "unschedulable": False,
            "roles": ["worker"],
            "allocation": {"cpu_ratio": 0.5, "memory_ratio": 0.25, "pods": 3, "allocatable_pods": 110},
        }
        return type("Page", (), {"to_dict": lambda self: {"items": [node], "total": 1, "stale_since": STALE}})()


class DownCluster:
    def list_nodes(self, query: Any) -> Any:
        from hub.errors import BackendUnavailable

        raise BackendUnavailable("kubernetes API server", "connection refused (https://10.0.0.1:6443)")


STALE = "2026-11-22T01:00:00Z"


def test_a_stale_cluster_cache_is_shown_with_its_data_and_the_time_it_went_stale(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    world.hub.cluster = StaleCluster()
    try:
        status, body = page(client, "/nodes")
    finally:
        world.hub.cluster = None
    assert status == 200
    assert f'data-stale-since="{STALE}"' in body and "node-1" in body


def test_an_api_server_outage_is_a_503_page_naming_it_and_its_reason(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    world.hub.cluster = DownCluster()
    try:
        status, body = page(client, "/nodes")
    finally:
        world.hub.cluster = None
    assert status == 503
    assert 'data-backend="kubernetes API server"' in body and "connection refused" in body


def test_the_audit_page_shows_a_chinese_search_keyword_as_written(world: TenancyWorld) -> None:
    world.tenancy.audit("poperator", "logs.search", "logs", "ok", {"namespaces": [HOME_NAMESPACE], "q": "超时"})
    client, _ = world.session("platform-admin")
    _, body = page(client, "/audit?action=logs.")
    assert "&#34;q&#34;: &#34;超时&#34;" in body or '"q": "超时"' in body


# -- workspaces, projects, tokens ----------------------------------------------------------------------
def test_an_admin_creates_a_workspace_and_a_project_in_it_from_the_console(world: TenancyWorld) -> None:
    client, csrf = world.session("platform-admin")
    r = client.post("/workspaces", data={"csrf_token": csrf, "name": "ws-new", "description": "payments"}, headers=HTML)
    assert r.status_code == 303 and r.headers["Location"].endswith("/workspaces/ws-new")
    r = client.post("/workspaces/ws-new/projects", data={"csrf_token": csrf, "namespace": "ns-new"}, headers=HTML)
    assert r.status_code == 303
    status, body = page(client, r.headers["Location"])
    assert status == 200 and "Project ns-new is created." in body
    assert world.tenancy.project("ns-new").workspace == "ws-new"


def test_a_bad_workspace_name_is_refused_with_the_field_named(world: TenancyWorld) -> None:
    client, csrf = world.session("platform-admin")
    r = client.post("/workspaces", data={"csrf_token": csrf, "name": "Not A Label"}, headers=HTML)
    _, body = page(client, r.headers["Location"])
    assert 'class="flash error"' in body and "(name)" in body


def test_a_new_api_token_is_shown_once_and_then_only_by_its_hint(world: TenancyWorld) -> None:
    client, csrf = world.session("project-viewer")
    r = client.post("/tokens", data={"csrf_token": csrf, "name": "ci deploys", "expires_in": "30d"}, headers=HTML)
    body = r.get_data(as_text=True)
    token = re.search(r'id="new-token">(khub_[^<]+)<', body)
    assert r.status_code == 200 and token is not None
    assert (
        world.app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code
        == 200
    )
    _, later = page(client, "/tokens")
    assert token.group(1) not in later and "ci deploys" in later


def test_the_users_page_shows_a_hundred_users_at_a_time_with_links_to_the_others(tmp_path: Path) -> None:
    """A platform of 1,000 users took 0.7 s of server time as one page (docs/scale.md): the
    page holds 100, by name, and says where the others are."""
    from web.views.tenancy import USERS_PAGE

    w = build_world(tmp_path)
    try:
        for i in range(USERS_PAGE + 30):
            w.hub.tenancy.create_user(f"bulk-{i:04d}", "Bulk-password-1")
        everyone = [u.name for u in w.hub.tenancy.users()]
        client, _ = w.session("platform-admin")
        status, first = page(client, "/users")
        assert status == 200
        shown = re.findall(r'<tr class="[^"]*"><td>([^<\s]+)', first)
        assert shown == everyone[:USERS_PAGE]
        assert 'href="/users?from=100"' in first and "← " not in first
        status, second = page(client, "/users?from=100")
        assert status == 200
        assert re.findall(r'<tr class="[^"]*"><td>([^<\s]+)', second) == everyone[USERS_PAGE:]
        assert 'href="/users?from=0"' in second and "/users?from=200" not in second
        assert f"101–{len(everyone)} / {len(everyone)}" in second
        _, odd = page(client, "/users?from=abc")  # hand-edited links fall back to the first page
        assert re.findall(r'<tr class="[^"]*"><td>([^<\s]+)', odd) == everyone[:USERS_PAGE]
    finally:
        w.hub.close()


def test_serve_compiles_every_console_template_before_the_first_request(world: TenancyWorld) -> None:
    """``kubehub serve`` compiles the templates at start (web/serving.py), so no page's first
    visit after a restart pays for it; each one must compile (a broken one fails here)."""
    from web.serving import compile_templates

    env = world.app.jinja_env
    on_disk = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "web" / "templates").rglob("*.html"))
    assert compile_templates(world.app) == len(on_disk) > 40
    loaded = env.cache
    assert loaded is not None and {key[1] for key in loaded} >= set(on_disk)
