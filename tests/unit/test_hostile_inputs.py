"""Hostile input against every endpoint family: never a 5xx, always the field at fault.

Regression tests for the twelve root causes an outside fuzzer found (issue 20) and the classes
around them: numbers (NaN, infinities, 10^400, -0.0, 2^63), times (year 0 and 9999, a leap
second, a DST gap), strings (NUL, lone surrogates, bidi marks, 1 MB), structures (depth,
width, YAML aliases). Every refusal must be a 400/404/413/422 that names the field, must not
echo the input back at length, and must be a status the served OpenAPI document declares for
that operation. The app is the real one over the repo's own fakes (tenancy world, fake
Kubernetes API); nothing here needs a backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.cluster import RESOURCE_KINDS, ClusterService
from hub.collectors.watchcache import WatchCache
from hub.timeutil import FakeClock
from tests.unit.cluster_fakes import FakeKube, deployment_json, namespace_json, node_json
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from web.openapi import _CONVERTER

pytestmark = pytest.mark.unit

NOW = 1_795_000_000.0
BIG = str(2**63)  # one past SQLite's INTEGER
HUGE_DURATION = "9" * 400 + "s"  # float infinity once multiplied out
NON_FINITE = ["inf", "-inf", "nan", "NaN", "1e20", "-1e20", "1e400"]


# -- the world and the checks -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    # Rate limits off: this module sends hundreds of refused requests as one user.
    no_limits = {"rate_limits": {"log_exports": 0, "backtests": 0, "long_queries": 0}}
    w = build_world(Path(tmp_path_factory.mktemp("hostile")), clock=FakeClock(NOW), settings=no_limits)
    kube = FakeKube()
    kube.put("namespaces", namespace_json("ns-a1", {"kubesphere.io/workspace": "ws-a"}))
    kube.put("nodes", node_json("node-0"))
    kube.put("deployments", deployment_json("ns-a1", "web", replicas=2, ready=2))
    cache = WatchCache(kube, RESOURCE_KINDS, clock=FakeClock(NOW))
    service = ClusterService(kube, clock=FakeClock(NOW), cache=cache, autostart=False, initial_wait=0.05)
    for name in service.cache.stores:
        service.cache.step(name)
    w.hub.cluster = service
    yield w
    w.hub.close()


@pytest.fixture(scope="module")
def spec(world: TenancyWorld) -> dict[str, Any]:
    return world.client().get("/api/v1/openapi.json").get_json()


def declared(world: TenancyWorld, spec: dict[str, Any], method: str, url: str) -> set[str]:
    """The statuses the served OpenAPI declares for the operation ``url`` reaches."""
    adapter = world.app.url_map.bind("localhost")
    rule, _ = adapter.match(url.split("?")[0], method=method, return_rule=True)
    path = _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
    return set(spec["paths"][path][method.lower()]["responses"])


def refused(
    response: Any,
    field: str | None,
    *,
    world: TenancyWorld,
    spec: dict[str, Any],
    statuses: tuple[int, ...] = (400, 413, 422),
) -> dict[str, Any]:
    """Assert a clean refusal: an expected status, JSON naming ``field``, short, declared."""
    text = response.get_data(as_text=True)
    assert response.status_code in statuses, f"{response.status_code}: {text[:300]}"
    body = json.loads(text)
    assert isinstance(body.get("error"), str) and body["error"]
    if field is not None:
        fields = {body.get("field")} | {p.get("field") for p in body.get("problems", [])}
        assert field in fields, f"expected field {field!r}, got {fields}: {text[:300]}"
    assert len(text) < 4000, f"the error echoes too much ({len(text)} bytes)"
    assert str(response.status_code) in declared(world, spec, response.request.method, response.request.path)
    return body


def check(world: TenancyWorld, spec: dict[str, Any]) -> Any:
    return lambda response, field, **kw: refused(response, field, world=world, spec=spec, **kw)


def node_policy(**rule: Any) -> dict[str, Any]:
    r = {
        "name": "cpu-high",
        "metric": "node_cpu_utilisation",
        "comparator": ">",
        "threshold": 90,
        "unit": "percent",
        "period": "1m",
        "consecutive": 1,
        "severity": "critical",
    }
    r.update(rule)
    return {
        "name": "node-pressure",
        "level": "node",
        "rules": [r],
        "notification": {"receivers": [{"email": "oncall@example.com"}]},
    }


# -- 1. paging numbers past SQLite's INTEGER ------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/api/v1/alerting/alerts?offset={BIG}", "offset"),
        (f"/api/v1/alerting/history?offset={BIG}", "offset"),
        (f"/api/v1/alerting/outbox?offset={BIG}", "offset"),
        (f"/api/v1/alerting/alerts?limit={BIG}", "limit"),
        (f"/api/v1/audit?from={BIG}", "from"),
        (f"/api/v1/audit?size={BIG}", "size"),
        (f"/api/v1/logs?from={BIG}", "from"),
        ("/api/v1/alerting/alerts?offset=-1", "offset"),
        ("/api/v1/alerting/alerts?offset=1e3", "offset"),
        ("/api/v1/alerting/alerts?offset=1_000", "offset"),
        ("/api/v1/alerting/alerts?offset=%D9%A3", "offset"),  # an Arabic-Indic digit three
        (f"/api/v1/alerting/alerts?offset={'9' * 5000}", "offset"),
        (f"/api/v1/namespaces?limit={BIG}", "limit"),
        (f"/api/v1/monitoring/pods?page={BIG}", "page"),
    ],
)
def test_paging_numbers_beyond_64_bits_are_a_400(world: TenancyWorld, spec: dict, url: str, field: str) -> None:
    check(world, spec)(world.client("platform-admin").get(url), field)


def test_minus_zero_is_just_zero(world: TenancyWorld) -> None:
    assert world.client("platform-admin").get("/api/v1/alerting/alerts?offset=-0").status_code == 200


def test_a_token_id_beyond_sqlite_is_a_404(world: TenancyWorld, spec: dict) -> None:
    r = world.client("platform-admin").delete(f"/api/v1/auth/tokens/{BIG}")
    check(world, spec)(r, None, statuses=(404,))


# -- 2./4. time ranges --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [*NON_FINITE, "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "-1", "4102444801"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/logs?{p}={v}",
        "/api/v1/logs/histogram?{p}={v}",
        "/api/v1/logs/export?{p}={v}",
        "/api/v1/monitoring/nodes?{p}={v}",
        "/api/v1/audit?{p}={v}",
    ],
)
@pytest.mark.parametrize("param", ["start", "end"])
def test_times_outside_1970_to_2100_are_a_400(
    world: TenancyWorld, spec: dict, url: str, param: str, value: str
) -> None:
    if "monitoring" in url and param == "end":
        url = "/api/v1/monitoring/nodes?start=1795000000&{p}={v}"
    r = world.client("platform-admin").get(url.format(p=param, v=value))
    check(world, spec)(r, param)


@pytest.mark.parametrize("value", ["nan", "-inf", "inf", "1e20", "9999-01-01T00:00:00Z"])
def test_monitoring_instant_time_is_checked_not_answered_empty(world: TenancyWorld, spec: dict, value: str) -> None:
    r = world.client("platform-admin").get(f"/api/v1/monitoring/nodes?time={value}")
    check(world, spec)(r, "time")


@pytest.mark.parametrize(
    "value",
    [
        "2016-12-31T23:59:60Z",
        "2024-03-10T02:30:00-05:00",
        "2024-03-31T02:30:00+01:00",
        "2026-11-22T00:00:00.123456789Z",
    ],
)
def test_valid_rfc3339_edge_times_are_accepted(world: TenancyWorld, value: str) -> None:
    """A leap second, and wall-clock times inside a DST gap given with an explicit offset."""
    from urllib.parse import quote

    r = world.client("platform-admin").get(f"/api/v1/logs?start={quote(value)}")
    assert r.status_code == 200, r.get_data(as_text=True)


def test_a_leap_second_is_the_next_minutes_first_instant() -> None:
    from hub.timeutil import parse_time

    assert parse_time("2016-12-31T23:59:60Z") == parse_time("2017-01-01T00:00:00Z")


# -- 3. durations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [HUGE_DURATION, "nan", "inf", "-5m", "0s", "5mins", "1e3s", "99999d", "-0"])
@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/logs/histogram?start=1795000000&end=1795003600&interval={v}", "interval"),
        ("/api/v1/monitoring/nodes?start=1794990000&step={v}", "step"),
        ("/api/v1/monitoring/nodes?sort_metric=node_cpu_utilisation&window={v}", "window"),
    ],
)
def test_durations_in_query_strings_are_bounded(
    world: TenancyWorld, spec: dict, url: str, field: str, value: str
) -> None:
    r = world.client("platform-admin").get(url.format(v=value))
    check(world, spec)(r, field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rules": [{**node_policy()["rules"][0], "period": HUGE_DURATION}]}, "rules[0].period"),
        ({"repeat": {"critical": {"mode": "fixed", "interval": HUGE_DURATION}}}, "repeat.critical.interval"),
        ({"flap": {"changes": 6, "window": HUGE_DURATION}}, "flap.window"),
        ({"flap": {"changes": 6, "window": "nan"}}, "flap.window"),
        ({"rules": [{**node_policy()["rules"][0], "period": -0.0}]}, "rules[0].period"),
    ],
)
def test_durations_in_policies_are_bounded(world: TenancyWorld, spec: dict, change: dict, field: str) -> None:
    doc = {**node_policy(), **change}
    r = world.client("platform-admin").post("/api/v1/alerting/policies", json=doc)
    body = check(world, spec)(r, field)
    assert "9" * 100 not in json.dumps(body)


# -- 5. deep JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "url", "role"),
    [
        ("post", "/api/v1/auth/login", None),
        ("post", "/api/v1/auth/token", None),
        ("post", "/api/v1/auth/tokens", "platform-regular"),
        ("post", "/api/v1/workspaces", "platform-admin"),
        ("put", "/api/v1/namespaces/ns-a1/members/pviewer", "platform-admin"),
        ("post", "/api/v1/alerting/policies", "platform-admin"),
        ("post", "/api/v1/alerting/silences", "platform-admin"),
        ("post", "/api/v1/namespaces/ns-a1/workloads/deployment/web/scale", "platform-admin"),
    ],
)
@pytest.mark.parametrize("depth", [65, 100_000])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(
    world: TenancyWorld, spec: dict, method: str, url: str, role: str | None, depth: int
) -> None:
    body = "[" * depth + "]" * depth
    r = getattr(world.client(role), method)(url, data=body, content_type="application/json")
    check(world, spec)(r, "body")


def test_nesting_within_the_limit_is_read() -> None:
    from web.params import MAX_JSON_DEPTH, load_json

    doc = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert load_json(doc) is not None
    assert load_json('{"a": "[[[[[[ brackets in a string do not count ]]"}')["a"].startswith("[")


@pytest.mark.parametrize(
    ("raw", "field"),
    [('{"name": "t", "expires_in": NaN}', "expires_in"), ('{"name": "t", "expires_in": Infinity}', "expires_in"),
     ('{"name": "t", "expires_in": -Infinity}', "expires_in"), ('{"name": "t", "expires_in": 1e400}', "expires_in"),
     ('{"name": "t", "expires_in": ' + "9" * 401 + "}", "expires_in"), ('{"name": "a\\u0000b"}', "name"),
     ('{"name": "\\ud800"}', "name"), ('{"name": "\\udfff\\ud800"}', "name"), ('{"name\\u0000": 1}', "name\x00"),
     ('{"name": "x"', "body"), (b'{"name": "\xff"}', "body")],
)  # fmt: skip
def test_json_bodies_with_non_numbers_nul_or_surrogates_are_a_400(
    world: TenancyWorld, spec: dict, raw: Any, field: str
) -> None:
    r = world.client("platform-regular").post("/api/v1/auth/tokens", data=raw, content_type="application/json")
    check(world, spec)(r, field, statuses=(400,))


# -- 6. policy documents with extreme numbers and structures -------------------------------------------
@pytest.mark.parametrize(
    ("threshold", "status"),
    [(10**400, 400), (float("nan"), 400), (float("inf"), 400), (1e300, 422), (-1e300, 422), (10**19, 422)],
)
def test_extreme_json_thresholds(world: TenancyWorld, spec: dict, threshold: Any, status: int) -> None:
    text = json.dumps(node_policy(threshold=threshold))  # NaN/Infinity are written as Python's json does
    r = world.client("platform-admin").post("/api/v1/alerting/policies", data=text, content_type="application/json")
    check(world, spec)(r, "rules[0].threshold", statuses=(status,))


def _yaml_policy(threshold: str) -> str:
    return (
        "name: big\nlevel: node\nrules:\n  - name: r\n    metric: node_cpu_utilisation\n    comparator: '>'\n"
        f"    threshold: {threshold}\n    unit: percent\n    period: 1m\n    severity: critical\n"
        "notification:\n  receivers: [{email: a@example.com}]\n"
    )


@pytest.mark.parametrize(
    ("threshold", "status", "field"),
    [
        ("1" + "0" * 400, 400, "(document)"),
        ("9" * 5000, 400, "(document)"),
        ("1e400", 422, "rules[0].threshold"),
        ("-1e400", 422, "rules[0].threshold"),
        (".nan", 422, "rules[0].threshold"),
        ("1" + "0" * 25, 422, "rules[0].threshold"),
    ],
)
def test_extreme_yaml_thresholds(world: TenancyWorld, spec: dict, threshold: str, status: int, field: str) -> None:
    r = world.client("platform-admin").post(
        "/api/v1/alerting/policies", data=_yaml_policy(threshold), content_type="application/yaml"
    )
    check(world, spec)(r, field, statuses=(status,))


@pytest.mark.parametrize("depth", [33, 20_000])
def test_deeply_nested_yaml_is_a_400(world: TenancyWorld, spec: dict, depth: int) -> None:
    text = "name: " + "[" * depth + "]" * depth + "\n"
    for url in ("/api/v1/alerting/policies", "/api/v1/alerting/policies/validate"):
        r = world.client("platform-admin").post(url, data=text, content_type="application/yaml")
        check(world, spec)(r, "(document)", statuses=(400,))


def _alias_bomb(levels: int = 7) -> str:
    text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text + f"name: *a{levels - 1}\nlevel: *a{levels - 1}\nrules: *a{levels - 1}\n"


def test_a_yaml_alias_bomb_gets_a_short_400(world: TenancyWorld, spec: dict) -> None:
    text = _alias_bomb()
    assert len(text) < 400
    for url in ("/api/v1/alerting/policies", "/api/v1/namespaces/ns-a1/alerting/policies/validate"):
        r = world.client("platform-admin").post(url, data=text, content_type="application/yaml")
        body = check(world, spec)(r, "(document)", statuses=(400,))
        assert "lol" not in json.dumps(body)


def test_a_small_alias_use_is_still_fine(world: TenancyWorld) -> None:
    text = _yaml_policy("90").replace("receivers: [{email: a@example.com}]", "receivers: [&r {email: a@example.com}]")
    text += "repeat:\n  critical: &rep {mode: fixed, interval: 5m}\n  major: *rep\n"
    r = world.client("platform-admin").post(
        "/api/v1/alerting/policies/validate", data=text, content_type="application/yaml"
    )
    assert r.status_code == 200, r.get_data(as_text=True)


def test_a_recursive_yaml_alias_is_refused() -> None:
    from hub.alerts.policy import PolicySyntaxError, load_documents

    with pytest.raises(PolicySyntaxError):
        load_documents("a: &a [*a]\n")


def test_error_messages_quote_values_shortly(world: TenancyWorld, spec: dict) -> None:
    long_name = "x" * 100_000
    doc = {**node_policy(metric=long_name), "name": long_name}
    r = world.client("platform-admin").post("/api/v1/alerting/policies", json=doc)
    body = check(world, spec)(r, "name", statuses=(422,))
    assert long_name[:200] not in json.dumps(body)


def test_a_document_with_thousands_of_problems_reports_a_bounded_list(world: TenancyWorld, spec: dict) -> None:
    doc = {**node_policy(), **{f"unknown-{i}": i for i in range(5000)}}
    r = world.client("platform-admin").post("/api/v1/alerting/policies", json=doc)
    assert r.status_code == 422
    assert len(r.get_json()["problems"]) <= 101


# -- 7./8. tokens, silences, backtests ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", HUGE_DURATION, 1e300, -1, 0, -0.0, True, [], "1e3s"])
def test_token_expiry_is_a_bounded_duration(world: TenancyWorld, spec: dict, value: Any) -> None:
    r = world.client("platform-regular").post("/api/v1/auth/tokens", json={"name": "x", "expires_in": value})
    check(world, spec)(r, "expires_in")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration": "nan"}, "duration"),
        ({"duration": HUGE_DURATION}, "duration"),
        ({"starts_at": "nan", "duration": "1h"}, "starts_at"),
        ({"starts_at": 1e15, "duration": "1h"}, "starts_at"),
        ({"starts_at": "9999-12-31T00:00:00Z", "duration": "1h"}, "starts_at"),
        ({"starts_at": NOW + 2 * 365 * 86400, "duration": "1h"}, "starts_at"),
        ({"ends_at": "inf"}, "ends_at"),
        ({"ends_at": 10**400}, "ends_at"),
        ({"duration": "1h", "comment": "x" * 1_000_000}, "comment"),
        ({"duration": "1h", "comment": "\ud800"}, "comment"),
    ],
)
def test_silence_times_are_bounded_and_nothing_unreadable_is_stored(
    world: TenancyWorld, spec: dict, body: dict, field: str
) -> None:
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/alerting/silences", json={"matchers": {"policy": "x"}, **body})
    check(world, spec)(r, field)
    for role in ("platform-admin", "project-operator"):
        listing = world.client(role).get("/api/v1/alerting/silences")
        assert listing.status_code == 200
        assert all(s["matchers"] != {"policy": "x"} for s in listing.get_json()["items"])


def test_a_silence_a_year_ahead_is_stored_and_listed(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    r = admin.post(
        "/api/v1/alerting/silences",
        json={"matchers": {"policy": "later"}, "starts_at": NOW + 300 * 86400, "duration": "90d"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert admin.get("/api/v1/alerting/silences").status_code == 200
    admin.delete(f"/api/v1/alerting/silences/{r.get_json()['id']}")


@pytest.mark.parametrize(("start", "end"), [("nan", "now"), ("-inf", "now"), ("1e20", "now"), ("0", "1e400")])
def test_backtest_times_are_bounded(world: TenancyWorld, spec: dict, start: str, end: str) -> None:
    r = world.client("platform-admin").post(
        "/api/v1/alerting/policies/backtest", json={"policy": node_policy(), "start": start, "end": end}
    )
    refused(r, None, world=world, spec=spec, statuses=(400, 422, 503))
    if r.status_code != 503:
        assert r.get_json()["field"] in ("start", "end")


# -- 9. memberships -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "", 5, ["admin"], {"role": "admin"}, "emperor"])
def test_a_membership_put_without_a_real_role_changes_nothing(world: TenancyWorld, spec: dict, role: Any) -> None:
    admin = world.client("platform-admin")
    r = admin.put("/api/v1/namespaces/ns-a1/members/pviewer", json={"role": role})
    check(world, spec)(r, "role")
    members = dict((m["user"], m["role"]) for m in admin.get("/api/v1/namespaces/ns-a1/members").get_json()["items"])
    assert members["pviewer"] == "viewer"
    r = admin.put("/api/v1/workspaces/ws-a/members/wsviewer", json={"role": role})
    check(world, spec)(r, "role")


# -- 10. strings: NUL, surrogates, bidi marks, size ----------------------------------------------------
@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/logs?q=a%00b", "q"),
        ("/api/v1/logs/histogram?q=%00", "q"),
        ("/api/v1/logs/export?q=%00", "q"),
        ("/api/v1/logs?namespaces=ns-a1%00", "namespaces"),
        ("/api/v1/monitoring/pods?pods=web%00", "pods"),
        ("/api/v1/audit?actor=adm%00in", "actor"),
        ("/api/v1/alerting/alerts?policy=%00", "policy"),
        ("/api/v1/namespaces/ns-a1/pods?name=%00", "name"),
    ],
)
def test_nul_in_a_parameter_is_the_callers_400_not_a_backend_outage(
    world: TenancyWorld, spec: dict, url: str, field: str
) -> None:
    r = world.client("platform-admin").get(url)
    body = check(world, spec)(r, field, statuses=(400,))
    assert "unavailable" not in body["error"] and "backend" not in body


def test_nul_in_a_path_is_a_400(world: TenancyWorld) -> None:
    r = world.client("platform-admin").get("/api/v1/namespaces/ns-a1%00/pods")
    assert r.status_code == 400 and r.get_json()["field"] == "path"


def test_a_megabyte_parameter_is_a_400_naming_it(world: TenancyWorld, spec: dict) -> None:
    r = world.client("platform-admin").get("/api/v1/logs?q=" + "a" * 1_000_000)
    check(world, spec)(r, "q", statuses=(400,))


def test_a_body_over_the_limit_is_a_413(world: TenancyWorld, spec: dict) -> None:
    body = json.dumps({"name": "x", "pad": "a" * (5 * 1024 * 1024)})
    r = world.client("platform-regular").post("/api/v1/auth/tokens", data=body, content_type="application/json")
    check(world, spec)(r, None, statuses=(413,))


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/workspaces", {"name": "ws-x\n"}, "name"),
        ("/api/v1/workspaces", {"name": "ws\u202ex"}, "name"),  # RIGHT-TO-LEFT OVERRIDE
        ("/api/v1/workspaces", {"name": "ws\u200fx"}, "name"),  # RIGHT-TO-LEFT MARK
        ("/api/v1/users", {"name": "eve\n", "password": "Long-enough-pw-1"}, "name"),
        ("/api/v1/users", {"name": "mallory", "password": "Long-enough-pw-1", "email": "m@example.com\n"}, "email"),
    ],
)
def test_names_with_trailing_newlines_or_bidi_marks_are_refused(
    world: TenancyWorld, spec: dict, url: str, body: dict, field: str
) -> None:
    r = world.client("platform-admin").post(url, json=body)
    if r.status_code == 201:  # the service may trim surrounding white space: then the stored name is clean
        stored = r.get_json()["name"]
        assert stored == stored.strip() and "\n" not in stored and "\u202e" not in stored
        return
    check(world, spec)(r, field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "node-pressure\n"}, "name"),
        ({"rules": [{**node_policy()["rules"][0], "name": "cpu-high\n"}]}, "rules[0].name"),
        ({"target": {"nodes": ["node-*\n"]}}, "target.nodes[0]"),
        ({"notification": {"receivers": [{"email": "a@example.com\n"}]}}, "notification.receivers[0].email"),
        ({"notification": {"receivers": [{"email": "a@example.com"}], "window": {"start": "09:00\n", "end": "17:00"}}},
         "notification.window.start"),
    ],
)  # fmt: skip
def test_policy_names_and_globs_refuse_a_trailing_newline(
    world: TenancyWorld, spec: dict, change: dict, field: str
) -> None:
    r = world.client("platform-admin").post("/api/v1/alerting/policies/validate", json={**node_policy(), **change})
    if r.status_code == 200 and field.endswith(("start", "email")):
        # Times of day and addresses are trimmed before they are read: the policy keeps none.
        assert "\\n" not in json.dumps(r.get_json()["policy"])
        return
    check(world, spec)(r, field, statuses=(422,))


def test_a_bidi_mark_in_a_free_text_field_is_kept_as_text(world: TenancyWorld) -> None:
    r = world.client("platform-admin").post(
        "/api/v1/alerting/silences", json={"matchers": {"policy": "bidi"}, "duration": "1h", "comment": "\u202eabc"}
    )
    assert r.status_code == 201
    assert r.get_json()["comment"] == "\u202eabc"


# -- a policy window in a DST gap ----------------------------------------------------------------------
@pytest.mark.parametrize("tz", ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"])
def test_a_notification_window_starting_in_a_dst_gap_is_accepted(world: TenancyWorld, tz: str) -> None:
    doc = node_policy()
    doc["notification"]["window"] = {"start": "02:30", "end": "03:15", "timezone": tz}
    r = world.client("platform-admin").post("/api/v1/alerting/policies/validate", json=doc)
    assert r.status_code == 200, r.get_data(as_text=True)


def test_release_times_around_a_dst_gap_match_a_minute_by_minute_scan() -> None:
    """A 02:30-03:15 window in New York on the spring-forward day (02:00-03:00 does not exist)
    and on the fall-back day (01:00-02:00 happens twice): the release time the pipeline uses is
    open, and a scan minute by minute from the start finds no earlier open instant."""
    from hub.alerts.policy import TimeWindow
    from hub.alerts.windows import is_open, release_time

    window = TimeWindow(start=150, end=195, timezone="America/New_York")
    for day_start in (1_772_946_000.0, 1_793_505_600.0):  # 2026-03-08 and 2026-11-01, 05:00 UTC
        for t in (day_start + s for s in range(0, 6 * 3600, 1800)):
            released = release_time(window, None, t)
            assert released >= t and is_open(window, released)
            assert not any(is_open(window, x) for x in range(int(t) + 1, int(released) - 1, 60))


# -- cluster family ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ('{"replicas": NaN}', 400),
        ('{"replicas": 1e400}', 400),
        ('{"replicas": ' + "9" * 400 + "}", 400),
        ('{"replicas": 9223372036854775808}', 400),
        ('{"replicas": -0.0}', 400),
        ('{"replicas": 2.5}', 400),
        ('{"replicas": "3"}', 400),
    ],
)
def test_scale_refuses_numbers_that_are_not_replica_counts(
    world: TenancyWorld, spec: dict, raw: str, status: int
) -> None:
    r = world.client("platform-admin").post(
        "/api/v1/namespaces/ns-a1/workloads/deployment/web/scale", data=raw, content_type="application/json"
    )
    body = check(world, spec)(r, None, statuses=(status, 422))
    assert body["field"] in ("replicas", "body")


@pytest.mark.parametrize("revision", [2**63, -1, float("nan"), "1"])
def test_rollback_refuses_revisions_beyond_range(world: TenancyWorld, spec: dict, revision: Any) -> None:
    raw = json.dumps({"revision": revision})
    r = world.client("platform-admin").post(
        "/api/v1/namespaces/ns-a1/workloads/deployment/web/rollback", data=raw, content_type="application/json"
    )
    refused(r, None, world=world, spec=spec, statuses=(400, 404, 422))
    assert r.get_json().get("field") in ("revision", "body", None)


@pytest.mark.parametrize("tail", [BIG, "-1", "nan", "1e3"])
def test_pod_log_tail_is_a_bounded_whole_number(world: TenancyWorld, spec: dict, tail: str) -> None:
    r = world.client("platform-admin").get(f"/api/v1/namespaces/ns-a1/pods/web-0/log?tail={tail}")
    check(world, spec)(r, "tail", statuses=(400,))


# -- anonymous health and the schema -----------------------------------------------------------------
def test_anonymous_readiness_shows_no_paths(world: TenancyWorld) -> None:
    r = world.client().get("/readyz")
    text = r.get_data(as_text=True)
    assert r.status_code in (200, 503)
    assert str(world.hub.settings.data_dir) not in text and "sqlite" not in text and "/" not in text
    full = world.client("platform-admin").get("/readyz").get_data(as_text=True)
    assert str(world.hub.settings.data_dir) in full  # admins still get the details


def test_every_201_and_204_is_declared_and_204s_have_no_body(world: TenancyWorld, spec: dict) -> None:
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/workspaces", json={"name": "ws-created"})
    assert r.status_code == 201 and "201" in declared(world, spec, "POST", "/api/v1/workspaces")
    assert spec["paths"]["/api/v1/workspaces"]["post"]["responses"]["201"]["content"]["application/json"]
    r = admin.delete("/api/v1/workspaces/ws-created")
    assert r.status_code == 204
    assert r.data == b"" and "Content-Type" not in r.headers
    op = spec["paths"]["/api/v1/workspaces/{ws}"]["delete"]["responses"]
    assert "204" in op and "content" not in op["204"]
    for path, ops in spec["paths"].items():
        for method, operation in ops.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)


# -- the console (HTML pages and forms): lenient pages, never a 5xx -----------------------------------
@pytest.mark.parametrize(
    "path",
    [
        f"/alerting/history?from={BIG}",
        f"/audit?from={BIG}",
        "/audit?start=nan&end=1e400",
        f"/logs?from={BIG}&q=x",
        "/logs?start=inf&end=nan&search=1",
        "/logs?start=9999-12-31T00:00:00Z&search=1",
        "/logs?q=%22unclosed&search=1",
        f"/rankings?page={BIG}",
        "/rankings?page=nan&window=" + HUGE_DURATION,
        "/monitoring?start=-inf",
        f"/projects/ns-a1/pods/web-0?tail={BIG}",
        "/alerting/silences?active=%F0%9F%92%A9",
        "/projects/ns-a1/alerting/policies/new?x=" + "y" * 70_000,
    ],
)
def test_console_pages_with_hostile_parameters_never_fail(world: TenancyWorld, path: str) -> None:
    client, _ = world.session("platform-admin")
    r = client.get(path)
    text = r.get_data(as_text=True)
    if r.status_code == 503:  # this world has no Prometheus: a page of metrics says so, and only that
        assert "monitoring" in path or "rankings" in path
        assert 'data-backend="prometheus"' in text
        return
    assert r.status_code < 500, f"{r.status_code}: {text[:300]}"


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/projects/ns-a1/workloads/deployment/web/scale", {"replicas": "9" * 5000}),
        ("/projects/ns-a1/workloads/deployment/web/scale", {"replicas": "\u0663"}),
        ("/projects/ns-a1/workloads/deployment/web/rollback", {"revision": BIG}),
        ("/alerting/silences", {"matchers-policy": "x", "duration": HUGE_DURATION, "starts_at": "1e15"}),
        ("/tokens", {"name": "t", "expires_in": HUGE_DURATION}),
        ("/alerting/node-policies/check", {"name": "p", "rules-0-threshold": "1e400", "rules-0-period": "nan"}),
        ("/alerting/node-policies/check", {"mode": "yaml", "yaml": _alias_bomb()}),
        ("/alerting/node-policies/check", {"mode": "yaml", "yaml": "a: " + "[" * 20_000}),
        ("/workspaces", {"name": "ws\x00x"}),
        (f"/tokens/{BIG}/revoke", {}),
    ],
)
def test_console_forms_with_hostile_values_never_fail(world: TenancyWorld, path: str, form: dict) -> None:
    client, csrf = world.session("platform-admin")
    r = client.post(path, data={**form, "csrf_token": csrf})
    assert r.status_code < 500, f"{r.status_code}: {r.get_data(as_text=True)[:300]}"
    assert len(r.get_data()) < 200_000


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/monitoring/workloads?kind=" + "x" * 60_000,
        "/api/v1/monitoring/pods?metrics=" + "x" * 60_000,
        "/api/v1/alerting/alerts?state=" + "x" * 60_000,
        "/api/v1/logs?sort=" + "x" * 60_000,
    ],
)
def test_no_error_echoes_a_long_input(world: TenancyWorld, spec: dict, url: str) -> None:
    r = world.client("platform-admin").get(url)
    check(world, spec)(r, None, statuses=(400,))
    assert len(r.get_data()) < 1200


# -- auth and tenancy bodies ----------------------------------------------------------------------
MEGABYTE = "p" * 1_000_000


@pytest.mark.parametrize(
    ("method", "url", "role", "body", "statuses", "field"),
    [
        ("post", "/api/v1/auth/login", None, {"username": "admin", "password": MEGABYTE}, (401,), None),
        ("post", "/api/v1/auth/token", None, {"username": MEGABYTE, "password": "x"}, (401,), None),
        ("post", "/api/v1/auth/token", None, {"username": ["admin"], "password": 5}, (400,), "username"),
        ("post", "/api/v1/users", "platform-admin", {"name": "zed", "password": MEGABYTE}, (422,), "password"),
        ("post", "/api/v1/users", "platform-admin", {"name": "zed", "password": "Long-pw-99x", "platform_role": None},
         (422,), "platform_role"),
        ("patch", "/api/v1/users/regular", "platform-admin", {"email": 5}, (400,), "email"),
        ("patch", "/api/v1/users/regular", "platform-admin", {"disabled": "yes"}, (400,), "disabled"),
        ("post", "/api/v1/workspaces", "platform-admin", {"name": "wsq", "description": MEGABYTE}, (422,),
         "description"),
        ("post", "/api/v1/auth/tokens", "platform-regular", {"name": MEGABYTE}, (400,), "name"),
        ("post", "/api/v1/workspaces/ws-a/projects", "platform-admin", {"namespace": "x" * 300}, (400, 422),
         "namespace"),
        ("post", "/api/v1/workspaces/ws-a/projects", "platform-admin", {"namespace": None}, (400, 422), "namespace"),
    ],
)  # fmt: skip
def test_auth_and_tenancy_bodies(
    world: TenancyWorld,
    spec: dict,
    method: str,
    url: str,
    role: str | None,
    body: dict,
    statuses: tuple[int, ...],
    field: str | None,
) -> None:
    r = getattr(world.client(role), method)(url, json=body)
    refused(r, field, world=world, spec=spec, statuses=statuses)


# -- a sweep over every operation ---------------------------------------------------------------------
PATH_VALUES = {
    "ns": "ns-a1",
    "ws": "ws-a",
    "user": "pviewer",
    "name": "pviewer",
    "kind": "deployment",
    "node": "node-0",
    "pod": "web-0",
    "level": "pods",
    "token_id": "1",
    "mapping_id": "1",  # an int converter: "x" would not route at all
    "cluster": "default",
}
QUERY_NAMES = [
    "offset",
    "limit",
    "from",
    "size",
    "page",
    "start",
    "end",
    "time",
    "step",
    "interval",
    "window",
    "since",
    "until",
    "tail",
    "q",
    "namespaces",
    "workloads",
    "pods",
    "metrics",
    "sort_metric",
    "sort_type",
    "stat",
    "state",
    "active",
    "alert",
    "policy",
    "format",
    "kind",
    "name",
    "label_selector",
    "continue",
    "propagation",
    "container",
    "actor",
    "action",
    "target",
    "result",
    "namespace",
    "node",
    "status",
    "type",
    "object",
    "level",
]
QUERY_VALUES = [BIG, "nan", "-inf", "1e400", HUGE_DURATION, "9999-12-31T23:59:59Z", "-0", "\u202e\u200f", "x" * 5000]
BODY_FIELDS = [
    "name",
    "role",
    "replicas",
    "revision",
    "image",
    "container",
    "expires_in",
    "duration",
    "starts_at",
    "ends_at",
    "matchers",
    "comment",
    "text",
    "start",
    "end",
    "policy",
    "rules",
    "level",
    "password",
    "email",
    "description",
    "namespace",
    "admin",
    "platform_role",
    "disabled",
    "current_password",
    "new_password",
    "username",
    "threshold",
    "display_name",
    "overrides",
]
BODY_VALUES: list[str] = [
    "[" * 5000 + "]" * 5000,
    json.dumps(dict.fromkeys(BODY_FIELDS, "nan")),
    json.dumps(dict.fromkeys(BODY_FIELDS, HUGE_DURATION)),
    json.dumps(dict.fromkeys(BODY_FIELDS, 2**63)),
    json.dumps(dict.fromkeys(BODY_FIELDS, -0.0)),
    json.dumps(dict.fromkeys(BODY_FIELDS)),
    json.dumps({key: [[[]]] for key in BODY_FIELDS}),
    json.dumps({key: {"a": {"b": 1e300}} for key in BODY_FIELDS}),
    '{"name": NaN, "duration": Infinity}',
]


def _operations(world: TenancyWorld) -> list[tuple[str, str]]:
    out = []
    for rule in world.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/auth/logout":  # it revokes our token
            continue
        url = _CONVERTER.sub(lambda m: PATH_VALUES.get(m.group("name"), "x"), rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS", "DELETE"}):
            out.append((method, url))
    return out


def _acceptable(world: TenancyWorld, spec: dict, method: str, url: str, response: Any) -> str | None:
    """None when the answer is fine: not a 5xx unless a backend is named, and declared."""
    status = response.status_code
    if status >= 500 and not (status == 503 and "backend" in (response.get_json(silent=True) or {})):
        return f"{method} {url}: {status} {response.get_data(as_text=True)[:200]}"
    if str(status) not in declared(world, spec, method, url.split("?")[0]):
        return f"{method} {url}: {status} is not declared in the OpenAPI document"
    if len(response.get_data()) > 200_000 and status >= 400:
        return f"{method} {url}: a {len(response.get_data())}-byte error"
    return None


def test_every_operation_survives_hostile_query_parameters_and_bodies(tmp_path: Path) -> None:
    from urllib.parse import urlencode

    no_limits = {"rate_limits": {"log_exports": 0, "backtests": 0, "long_queries": 0}}
    world = build_world(tmp_path, clock=FakeClock(NOW), settings=no_limits)
    try:
        spec = world.client().get("/api/v1/openapi.json").get_json()
        client = world.client("platform-admin")
        failures, sent = [], 0
        for method, url in _operations(world):
            if method == "GET":
                for value in QUERY_VALUES:
                    r = client.get(f"{url}?{urlencode(dict.fromkeys(QUERY_NAMES, value))}")
                    sent += 1
                    failures.append(_acceptable(world, spec, method, url, r))
            else:
                for body in BODY_VALUES:
                    r = client.open(url, method=method, data=body, content_type="application/json")
                    sent += 1
                    failures.append(_acceptable(world, spec, method, url, r))
        problems = [f for f in failures if f]
        assert sent > 500
        assert client.get("/api/v1/me").status_code == 200, "the sweep must run signed in to the end"
        assert problems == [], "\n".join(problems[:30])
    finally:
        world.hub.close()


def test_every_operation_survives_hostile_path_segments(tmp_path: Path) -> None:
    from urllib.parse import quote

    no_limits = {"rate_limits": {"log_exports": 0, "backtests": 0, "long_queries": 0}}
    world = build_world(tmp_path, clock=FakeClock(NOW), settings=no_limits)
    try:
        spec = world.client().get("/api/v1/openapi.json").get_json()
        client = world.client("platform-admin")
        failures, sent = [], 0
        for value in ["x" * 5000, "\u202eabc", "..", "a b", "名字", "-1", BIG, "ns-a1\n", "%00"]:
            segment = quote(value, safe="")
            for rule in world.app.url_map.iter_rules():
                if not rule.rule.startswith("/api/v1/") or "<" not in rule.rule or rule.rule.endswith("/logout"):
                    continue
                url = _CONVERTER.sub(lambda m: "1" if m.group("conv") == "int" else segment, rule.rule)  # noqa: B023
                for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS", "DELETE"}):
                    r = client.open(url, method=method, json=None if method == "GET" else {})
                    sent += 1
                    failures.append(_acceptable(world, spec, method, url, r))
        problems = [f for f in failures if f]
        assert sent > 300
        assert problems == [], "\n".join(problems[:30])
    finally:
        world.hub.close()


def test_a_silence_stored_before_the_bounds_still_lists(tmp_path: Path) -> None:
    """A database written by an earlier version may hold a silence starting at 1e15 s (year
    31,690,708): the listing renders it at the end of the calendar instead of failing."""
    from hub.store.alerts import AlertStore

    world = build_world(tmp_path, clock=FakeClock(NOW))
    try:
        AlertStore(world.hub.db).insert_silence(
            silence_id="sil-legacy",
            namespace=None,
            matchers={"policy": "legacy"},
            starts_at=1e15,
            ends_at=1e15 + 3600,
            comment="",
            actor="admin",
            now=NOW,
        )
        for role in ("platform-admin", "project-operator"):
            r = world.client(role).get("/api/v1/alerting/silences")
            assert r.status_code == 200, r.get_data(as_text=True)
        legacy = world.client("platform-admin").get("/api/v1/alerting/silences").get_json()["items"]
        assert any(s["starts_at"].startswith("9999-12-31") for s in legacy)
    finally:
        world.hub.close()
