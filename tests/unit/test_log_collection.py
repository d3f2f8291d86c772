"""Per-project log collection settings (issue 19): the rule, both ingest paths honouring it
(the API poller through a fake PodSource into a real embedded store; the node collector's
ingest route), the settings API (422 naming the field, retention within the platform's
maximum, project admins only) and its audit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs import nodewire
from hub.collectors.logs.collection import DEFAULT, CollectionRules, CollectionSettings, parse_settings
from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.errors import InvalidInput, Unprocessable
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from tests.unit.test_logs_shipper import T0, FakeCluster, make_shipper, stored
from tests.unit.test_node_collector_cri import post, record

pytestmark = pytest.mark.unit


# -- the rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "container", "collected"),
    [
        (DEFAULT, "app", True),
        (CollectionSettings(enabled=False), "app", False),
        (CollectionSettings(exclude=("istio-*",)), "istio-proxy", False),
        (CollectionSettings(exclude=("istio-*",)), "app", True),
        (CollectionSettings(include=("app", "worker-?")), "worker-1", True),
        (CollectionSettings(include=("app", "worker-?")), "worker-10", False),
        (CollectionSettings(include=("app",)), "sidecar", False),
        (CollectionSettings(include=("app*",), exclude=("app-debug",)), "app-debug", False),  # exclude wins
        (CollectionSettings(enabled=False, include=("app",)), "app", False),
    ],
)
def test_the_rule(settings: CollectionSettings, container: str, collected: bool) -> None:
    assert settings.collects(container) is collected


def test_a_project_without_settings_is_collected_whole() -> None:
    rules = CollectionRules({"quiet": CollectionSettings(enabled=False)})
    assert rules.admits("other", "anything") and not rules.admits("quiet", "anything")


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"retention_days": 8}, "retention_days", Unprocessable),
        ({"retention_days": 0}, "retention_days", Unprocessable),
        ({"retention_days": "3"}, "retention_days", InvalidInput),
        ({"enabled": "no"}, "enabled", InvalidInput),
        ({"exclude": ["Bad Name"]}, "exclude", Unprocessable),
        ({"include": "x" * 70}, "include", Unprocessable),
        ({"colour": 1}, "colour", InvalidInput),
    ],
)
def test_bad_settings_name_the_field(body: dict[str, Any], field: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse_settings(body, max_retention_days=7)
    assert getattr(info.value, "field", None) == field


def test_retention_up_to_the_maximum_is_accepted_and_patterns_may_be_a_string() -> None:
    s = parse_settings({"retention_days": 7, "exclude": "istio-proxy, debug-*"}, max_retention_days=7)
    assert s == CollectionSettings(retention_days=7, exclude=("istio-proxy", "debug-*"))


# -- the API poller ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedLogStore]:
    s = EmbeddedLogStore(tmp_path / "store")
    yield s
    s.close()


def test_the_shipper_stores_no_line_of_an_excluded_container_or_a_disabled_project(
    store: EmbeddedLogStore, tmp_path: Path
) -> None:
    cluster = FakeCluster()
    shop = cluster.add_pod("shop", "web-1", "app", "istio-proxy")
    quiet = cluster.add_pod("quiet", "job-1", "app")
    for i in range(3):  # logged in the seconds before the shipper's clock (T0)
        at = T0 - (3 - i) * 1_000_000_000
        cluster.emit(shop, "app", at, f"shop app {i}")
        cluster.emit(shop, "istio-proxy", at, f"shop proxy {i}")
        cluster.emit(quiet, "app", at, f"quiet app {i}")
    rules = CollectionRules(
        {"shop": CollectionSettings(exclude=("istio-*",)), "quiet": CollectionSettings(enabled=False)}
    )
    current = {"rules": rules}
    shipper = make_shipper(cluster, store.write, tmp_path / "ship", rules=lambda: current["rules"])
    assert shipper.poll_once() == 3
    shipper.drain()
    assert stored(store) == Counter(f"shop app {i}" for i in range(3))
    reads = cluster.reads
    shipper.poll_once()
    assert cluster.reads - reads == 1  # only shop/app is read at all

    # Collection turned back on: lines from then on are stored, never the ones logged while off.
    current["rules"] = CollectionRules({})
    shipper.clock.advance(5)  # type: ignore[attr-defined]
    cluster.emit(quiet, "app", T0 + 10 * 1_000_000_000, "quiet app later")
    shipper.poll_once()
    shipper.drain()
    got = stored(store)
    assert got["quiet app later"] == 1
    assert got["quiet app later"] == 1 and sum(got.values()) == 4  # shop's 3 app lines and this one
    assert not any(m.startswith(("quiet app ", "shop proxy")) and m != "quiet app later" for m in got)


# -- the node collector's ingest route -----------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TenancyWorld, str]]:
    token, digest = nodewire.new_collector_token()
    w = build_world(tmp_path, settings={"logs": {"collector_token_sha256": digest, "retention_days": 7}})
    yield w, token
    w.hub.close()


def test_ingest_drops_what_the_project_does_not_collect(world: tuple[TenancyWorld, str]) -> None:
    w, token = world
    admin = w.client("project-admin")
    r = admin.put("/api/v1/namespaces/ns-a1/log-collection", json={"exclude": ["istio-*"]})
    assert r.status_code == 200, r.get_json()
    body = {
        "node": "node-1",
        "records": [
            record(offset=0, container="app", message="kept"),
            record(offset=100, container="istio-proxy", message="dropped"),
        ],
    }
    r = post(w, body, token)
    assert r.get_json() == {"received": 2, "new": 1, "skipped": 1}
    found = w.client("platform-admin").get("/api/v1/logs", query_string={"namespaces": "ns-a1", "size": 100})
    assert [i["message"] for i in found.get_json()["items"]] == ["kept"]


# -- the settings API ------------------------------------------------------------------------------
def test_settings_round_trip_are_audited_and_retention_stays_within_the_maximum(
    world: tuple[TenancyWorld, str],
) -> None:
    w, _ = world
    admin = w.client("project-admin")
    path = "/api/v1/namespaces/ns-a1/log-collection"
    first = admin.get(path).get_json()
    assert first["enabled"] is True and first["max_retention_days"] == 7 and first["retention_days"] is None
    too_long = admin.put(path, json={"retention_days": 8})
    assert too_long.status_code == 422 and too_long.get_json()["field"] == "retention_days"
    ok = admin.put(path, json={"enabled": False, "retention_days": 3})
    assert ok.status_code == 200 and ok.get_json()["retention_days"] == 3
    assert admin.get(path).get_json()["enabled"] is False
    audit = w.client("platform-admin").get("/api/v1/audit", query_string={"action": "logs.collection"}).get_json()
    assert [(e["actor"], e["target"], e["detail"]["enabled"]) for e in audit["items"]] == [
        (w.user("project-admin"), "namespace/ns-a1", False)
    ]


@pytest.mark.parametrize("role", ["project-operator", "project-viewer", "tenant-b"])
def test_only_project_admins_change_the_settings(world: tuple[TenancyWorld, str], role: str) -> None:
    w, _ = world
    r = w.client(role).put("/api/v1/namespaces/ns-a1/log-collection", json={"enabled": False})
    assert r.status_code == 403


def test_the_console_form_saves_and_refuses_retention_beyond_the_maximum(world: tuple[TenancyWorld, str]) -> None:
    w, _ = world
    client, csrf = w.session("project-admin")
    page = client.get("/projects/ns-a1").get_data(as_text=True)
    assert 'id="log-collection"' in page and 'name="exclude"' in page
    url = "/projects/ns-a1/log-collection"
    client.post(url, data={"csrf_token": csrf, "enabled": "on", "exclude": "istio-*", "retention_days": "9"})
    assert w.client("project-admin").get("/api/v1/namespaces/ns-a1/log-collection").get_json()["exclude"] == []
    client.post(url, data={"csrf_token": csrf, "exclude": "istio-*", "retention_days": "5"})
    got = w.client("project-admin").get("/api/v1/namespaces/ns-a1/log-collection").get_json()
    assert (got["enabled"], got["exclude"], got["retention_days"]) == (False, ["istio-*"], 5)
    viewer, _ = w.session("project-viewer")
    shown = viewer.get("/projects/ns-a1").get_data(as_text=True)
    assert 'id="log-collection"' in shown and 'name="exclude"' not in shown
