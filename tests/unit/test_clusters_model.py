"""Clusters as configuration and objects: validation names fields, credentials are sealed at rest
(checked against the stored bytes and against ``cryptography``'s own Fernet, not only our
adapter), never shown back, never logged or audited; the implicit cluster comes from settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet  # the outside reference for the sealed bytes

from hub.clusters.model import parse_cluster
from hub.clusters.secretbox import SealError, SecretBox, new_key
from hub.clusters.service import ClusterRegistry, implicit_cluster
from hub.errors import ConfigError, Conflict, HubError, InvalidInput, NotFound, Unprocessable
from hub.settings import Settings, load_settings
from hub.store.audit import AuditFilter, AuditStore
from hub.store.clusters import ClusterStore
from hub.store.db import Database
from hub.timeutil import FakeClock

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443'}}]
users: [{name: u, user: {token: 'sekret-token-VALUE-1234'}}]
contexts: [{name: t, context: {cluster: c, user: u}}]
current-context: t
"""
SECRET_MARK = "sekret-token-VALUE-1234"


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "name": "prod-east",
        "connection": {"mode": "kubeconfig", "kubeconfig": KUBECONFIG, "context": "t"},
        "metrics": {"mode": "shared", "url": "http://thanos:10902", "label_value": "prod-east"},
        "logs": {"mode": "shared"},
    }
    b.update(over)
    return b


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "state.sqlite3")
    d.migrate()
    return d


def registry(db: Database, key: str | None, settings: Settings | None = None) -> ClusterRegistry:
    settings = settings or Settings(data_dir=db_path_parent(db))
    return ClusterRegistry(
        ClusterStore(db),
        implicit=implicit_cluster(settings),
        box=SecretBox(key) if key else None,
        clock=FakeClock(1_800_000_000),
        audit=AuditStore(db),
    )


def db_path_parent(db: Database) -> Path:
    return Path("/nonexistent-data-dir")


# ---- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"name": "Prod_East"}, "name", 422),
        ({"name": ""}, "name", 422),
        ({"name": 7}, "name", 400),
        ({"colour": "red"}, "colour", 400),
        ({"connection": {"mode": "ssh"}}, "connection.mode", 422),
        ({"connection": {"mode": "kubeconfig"}}, "connection.kubeconfig_path", 422),
        ({"connection": {"kubeconfig": KUBECONFIG, "token": "t", "server": "https://a"}}, "connection.token", 422),
        ({"connection": {"kubeconfig": KUBECONFIG, "kubeconfig_path": "/k"}}, "connection.kubeconfig", 422),
        ({"connection": {"token": "abc"}}, "connection.server", 422),
        ({"connection": {"token": "abc", "server": "http://plain:6443"}}, "connection.server", 422),
        ({"connection": {"token": "abc", "server": "https://a:6443", "ca_cert": "x"}}, "connection.ca_cert", 422),
        ({"connection": {"kubeconfig_path": "/k", "server": "https://a"}}, "connection.server", 422),
        ({"connection": {"mode": "in-cluster", "kubeconfig_path": "/k"}}, "connection.kubeconfig_path", 422),
        ({"connection": {"kubeconfig": "   "}}, "connection.kubeconfig", 422),
        ({"connection": {"kubeconfig": "x" * (300 * 1024)}}, "connection.kubeconfig", 422),
        ({"connection": {"kubeconfig_path": "/k", "credentials": "maybe"}}, "connection.credentials", 422),
        ({"connection": ["not", "an", "object"]}, "connection", 400),
        ({"metrics": {"mode": "shared", "url": "http://t"}}, "metrics.label_value", 422),
        ({"metrics": {"mode": "shared", "url": "http://t", "label_value": 'a"} or up{'}}, "metrics.label_value", 422),
        ({"metrics": {"mode": "own"}}, "metrics.url", 422),
        ({"metrics": {"mode": "own", "url": "ftp://x"}}, "metrics.url", 422),
        ({"metrics": {"mode": "own", "url": "http://p", "label_value": "x"}}, "metrics.label_value", 422),
        ({"metrics": {"mode": "none", "url": "http://p"}}, "metrics.mode", 422),
        ({"logs": {"mode": "own"}}, "logs.url", 422),
        ({"logs": {"mode": "shared", "url": "http://es"}}, "logs.url", 422),
        ({"logs": {"mode": "central"}}, "logs.mode", 422),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], field: str, status: int) -> None:
    with pytest.raises(HubError) as info:
        parse_cluster(body(**change))
    assert info.value.field == field, info.value.message
    assert info.value.status == status
    assert field.split(".")[-1] in info.value.message or field in info.value.message


def test_good_bodies_parse_into_typed_frozen_values() -> None:
    spec = parse_cluster(body())
    c = spec.cluster
    assert (c.name, c.connection.credential_kind, c.connection.context) == ("prod-east", "kubeconfig", "t")
    assert c.metrics.selector() == 'cluster="prod-east"'
    assert c.logs.label_value == "prod-east"  # a shared log store: lines labelled with the name
    assert spec.kubeconfig == KUBECONFIG and spec.token is None
    with pytest.raises(AttributeError):
        c.name = "other"  # type: ignore[misc]
    own = parse_cluster(
        body(metrics={"mode": "own", "url": "http://prom:9090/"}, logs={"mode": "own", "url": "http://es:9200"})
    )
    assert own.cluster.metrics.selector() == "" and own.cluster.metrics.url == "http://prom:9090"
    tok = parse_cluster(body(connection={"token": " abc ", "server": "https://k:6443"}))
    assert (tok.token, tok.cluster.connection.credential_kind, tok.cluster.connection.server) == (
        "abc", "token", "https://k:6443",
    )  # fmt: skip
    inc = parse_cluster(body(connection={"mode": "in-cluster"}))
    assert not inc.cluster.connection.has_credentials


def test_an_edit_cannot_rename_and_may_keep_or_drop_credentials() -> None:
    first = parse_cluster(body()).cluster
    with pytest.raises(Unprocessable) as info:
        parse_cluster(body(name="other"), name="prod-east", existing=first)
    assert info.value.field == "name"
    kept = parse_cluster(body(connection={"context": "t2"}), name="prod-east", existing=first)
    assert kept.cluster.connection.credential_kind == "kubeconfig" and not kept.new_credentials
    assert not kept.drop_credentials
    to_path = parse_cluster(body(connection={"kubeconfig_path": "/etc/k"}), name="prod-east", existing=first)
    assert to_path.drop_credentials and not to_path.cluster.connection.has_credentials
    none = body(connection={"credentials": "none"})
    with pytest.raises(Unprocessable) as info:  # dropping them leaves no way to connect
        parse_cluster(none, name="prod-east", existing=first)
    assert info.value.field == "connection.kubeconfig_path"


# ---- sealing --------------------------------------------------------------------------------------


def test_sealed_values_open_with_fernet_itself_and_are_bound_to_the_cluster() -> None:
    key = new_key()
    box = SecretBox(key)
    sealed = box.seal("prod-east", "token", "abc")
    assert b"abc" not in sealed
    assert Fernet(key.encode()).decrypt(sealed) == b"prod-east\ntoken\nabc"  # the library's own decryption
    assert box.open("prod-east", sealed) == ("token", "abc")
    with pytest.raises(SealError, match="another cluster"):
        box.open("prod-west", sealed)
    with pytest.raises(SealError):
        SecretBox(new_key()).open("prod-east", sealed)
    tampered = bytearray(sealed)
    tampered[-5] ^= 1
    with pytest.raises(SealError):
        box.open("prod-east", bytes(tampered))
    rotated = SecretBox(f"{new_key()},{key}")  # a new first key; the old one still opens
    again = rotated.rotate(sealed)
    assert rotated.open("prod-east", again) == ("token", "abc")
    with pytest.raises(SealError):
        box.open("prod-east", again)  # sealed with the new key now


def test_a_bad_key_is_a_config_error_naming_the_setting() -> None:
    for bad in ("", "not-a-key", "a" * 44):
        with pytest.raises(ConfigError) as info:
            SecretBox(bad)
        assert "KUBEHUB_CLUSTERS_SECRET_KEY" in str(info.value.field or info.value.message)


# ---- the registry ----------------------------------------------------------------------------------


def test_credentials_are_encrypted_at_rest_never_shown_logged_or_audited(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    reg = registry(db, new_key())
    caplog.set_level(logging.DEBUG)
    added = reg.add(body(), actor="admin")
    assert added.to_dict()["connection"]["credentials"] == "kubeconfig"
    raw = db.query("SELECT * FROM hub_clusters")
    assert len(raw) == 1
    for value in raw[0]:
        assert SECRET_MARK not in str(value)
    assert reg.credentials("prod-east") == ("kubeconfig", KUBECONFIG)
    views = json.dumps([c.to_dict() for c in reg.all()])
    assert SECRET_MARK not in views and "sekret" not in views
    entries, total = AuditStore(db).search(AuditFilter(action="cluster."))
    assert total == 1 and entries[0].target == "cluster/prod-east"
    assert SECRET_MARK not in json.dumps(entries[0].detail) and entries[0].detail["credentials"] == "replaced"
    assert SECRET_MARK not in caplog.text


def test_without_a_key_credentials_are_refused_and_paths_accepted(db: Database) -> None:
    reg = registry(db, None)
    with pytest.raises(Unprocessable) as info:
        reg.add(body(), actor="admin")
    assert info.value.field == "connection.kubeconfig" and "KUBEHUB_CLUSTERS_SECRET_KEY" in info.value.message
    assert db.query("SELECT count(*) AS n FROM hub_clusters")[0]["n"] == 0
    c = reg.add(body(connection={"kubeconfig_path": "/etc/kube/prod"}), actor="admin")
    assert c.connection.describe() == "kubeconfig /etc/kube/prod"


def test_add_edit_remove_and_the_implicit_cluster(db: Database) -> None:
    reg = registry(db, new_key())
    seen: list[tuple[str, str | None]] = []
    reg.subscribe(lambda name, c: seen.append((name, c.connection.describe() if c else None)))
    assert reg.names() == ["default"]
    assert reg.get("default").implicit
    reg.add(body(), actor="admin")
    with pytest.raises(Conflict) as info:
        reg.add(body(), actor="admin")
    assert info.value.field == "name"
    with pytest.raises(Conflict):
        reg.add(body(name="default"), actor="admin")
    edited = reg.edit("prod-east", body(display_name="Production (east)", connection={"context": "t"}), actor="a")
    assert edited.display_name == "Production (east)" and edited.connection.credential_kind == "kubeconfig"
    assert reg.credentials("prod-east") == ("kubeconfig", KUBECONFIG)  # kept
    reg.edit("prod-east", body(connection={"kubeconfig_path": "/k"}), actor="a")
    assert reg.credentials("prod-east") is None  # dropped from the store, not only hidden
    assert db.query("SELECT sealed FROM hub_clusters")[0]["sealed"] is None
    with pytest.raises(Unprocessable) as info:
        reg.edit("default", body(), actor="a")
    assert info.value.field == "cluster"
    with pytest.raises(Unprocessable):
        reg.remove("default", actor="a")
    reg.remove("prod-east", actor="a")
    with pytest.raises(NotFound):
        reg.get("prod-east")
    assert reg.names() == ["default"]
    assert [s[0] for s in seen] == ["prod-east"] * 4 and seen[-1][1] is None


def test_a_row_sealed_for_another_cluster_does_not_open(db: Database) -> None:
    key = new_key()
    reg = registry(db, key)
    reg.add(body(), actor="admin")
    reg.add(body(name="prod-west", connection={"kubeconfig_path": "/k"}), actor="admin")
    sealed = db.query("SELECT sealed FROM hub_clusters WHERE name = 'prod-east'")[0]["sealed"]
    db.execute("UPDATE hub_clusters SET sealed = ?, spec = replace(spec, '\"credentials\": \"\"', "
               "'\"credentials\": \"kubeconfig\"') WHERE name = 'prod-west'", (sealed,))  # fmt: skip
    with pytest.raises(HubError) as info:
        reg.credentials("prod-west")
    assert info.value.status == 503 and "another cluster" in info.value.message


def test_the_implicit_cluster_comes_from_settings_unchanged_for_single_cluster_installs(tmp_path: Path) -> None:
    plain = load_settings(env={"KUBEHUB_DATA_DIR": str(tmp_path), "KUBEHUB_PROMETHEUS_URL": "http://p:9090"})
    c = implicit_cluster(plain)
    assert (c.name, c.metrics.mode, c.metrics.selector(), c.connection.mode) == ("default", "own", "", "auto")
    shared = load_settings(
        env={
            "KUBEHUB_DATA_DIR": str(tmp_path),
            "KUBEHUB_PROMETHEUS_URL": "http://thanos:10902",
            "KUBEHUB_CLUSTERS_DEFAULT_NAME": "hub-home",
            "KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL": "home",
            "KUBEHUB_KUBERNETES_KUBECONFIG": "/etc/k",
        }
    )
    c = implicit_cluster(shared)
    assert (c.name, c.metrics.selector(), c.connection.describe()) == (
        "hub-home",
        'cluster="home"',
        "kubeconfig /etc/k",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(env={"KUBEHUB_DATA_DIR": str(tmp_path), "KUBEHUB_CLUSTERS_DEFAULT_NAME": "Bad Name"})
    assert "KUBEHUB_CLUSTERS_DEFAULT_NAME" in str(info.value.field or info.value)
    with pytest.raises(ConfigError):
        load_settings(env={"KUBEHUB_DATA_DIR": str(tmp_path), "KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL": "x"})


def test_invalid_input_is_400_not_422() -> None:
    with pytest.raises(InvalidInput):
        parse_cluster("not an object")
