"""Projects against the sandbox's real kube-apiserver (with its controller-manager).

A project created over the API becomes a real namespace carrying its workspace's label, with
the namespace's creationTimestamp as its log floor and its metadata.uid as the UID its lines
are told apart by; deleting and recreating the namespace moves both (through the cluster
watch), so the tenant stops seeing the first namespace's lines while an admin still does; a
namespace already labelled for another workspace is refused without naming that workspace.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.store import LogParams, LogRecord
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from hub.tenancy.service import WORKSPACE_LABEL
from tests.conftest import world_database_url
from tests.integration.cluster_support import wait_until
from tests.unit.conftest_tenancy import FAST_AUTH, assert_no_leak

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "Integration-pass-3"


def _kubeconfig(request: pytest.FixtureRequest) -> Path:
    """The sandbox's kubeconfig: from the session ``sandbox`` fixture when there is one, else
    from the sandbox already running (never a second copy)."""
    try:
        sb: Any = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        from sandbox.core import Sandbox

        sb = Sandbox(quiet=True)
        up = {c["name"] for c in sb.status()["components"] if c["state"] == "up"}
        if not {"kube-apiserver", "kube-controller-manager"} <= up:
            pytest.fail("the sandbox's API server and controller-manager must be up: run `make sandbox`")
    path = sb["kubeconfig"] if isinstance(sb, dict) else sb.kubeconfig
    return Path(path)


@pytest.fixture(scope="module")
def hub_and_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("tenancy-it") / "data", database_url=world_database_url()
    ).replace(
        kubernetes={"kubeconfig": str(_kubeconfig(request)), "request_timeout": 10.0},
        logs={"ship": False},
        alerts={"evaluate": False},
        prometheus={"url": ""},
        auth=dict(FAST_AUTH),
    )
    hub = build_hub(settings, background=True)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    tenancy = hub.tenancy
    tenancy.create_user("root", ADMIN_PASSWORD, platform_role="admin")
    tenancy.create_user("wsowner", ADMIN_PASSWORD)
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "root", "password": ADMIN_PASSWORD}).get_json()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token['token']}"
    created: list[str] = []
    yield hub, client, created
    for ns in created:
        try:
            _api(hub, "DELETE", f"/api/v1/namespaces/{ns}", verb="delete", name=ns)
        except Exception:  # cleanup of the shared sandbox: best effort, the test result stands
            pass
    hub.close()


def _api(hub: Hub, method: str, path: str, **kwargs: Any) -> Any:
    return hub.cluster.api.request(method, path, resource="namespaces", **kwargs)


def _namespace(hub: Hub, name: str) -> dict[str, Any] | None:
    try:
        return _api(hub, "GET", f"/api/v1/namespaces/{name}", verb="get", name=name)  # type: ignore[no-any-return]
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise


def _tenant_lines(hub: Hub, username: str, ns: str) -> set[str]:
    principal = hub.tenancy.principal_for(username)
    assert principal is not None
    body = hub.logs.search(hub.tenancy.scope(principal), LogParams(namespaces=(ns,), size=100))
    return {item["message"] for item in body["items"]}


def _created(obj: dict[str, Any]) -> float:
    from hub.timeutil import parse_time

    return parse_time(obj["metadata"]["creationTimestamp"])


def test_a_project_is_a_labelled_namespace_whose_creation_time_is_the_log_floor(hub_and_client: Any) -> None:
    hub, client, created = hub_and_client
    suffix = secrets.token_hex(3)
    ws, ns = f"it-ws-{suffix}", f"it-tenancy-{suffix}"
    assert client.post("/api/v1/workspaces", json={"name": ws, "admin": "wsowner"}).status_code == 201
    r = client.post(f"/api/v1/workspaces/{ws}/projects", json={"namespace": ns})
    assert r.status_code == 201, r.get_data(as_text=True)
    created.append(ns)

    obj = _namespace(hub, ns)
    assert obj is not None
    assert obj["metadata"]["labels"][WORKSPACE_LABEL] == ws
    tenancy = hub.tenancy
    first = _created(obj)
    assert tenancy.project(ns).created == first
    owner = tenancy.principal_for("wsowner")
    assert tenancy.scope(owner).floor(ns) == first
    first_uid = obj["metadata"]["uid"]
    assert tenancy.project(ns).uid == first_uid and first_uid

    # Lines as the shipper writes them, stamped with the namespace's UID: its pods' history from
    # before the namespace object (seeded or backfilled) is the tenant's, and so is the rest.
    logs = hub.logs
    old = [
        LogRecord(time=first - 3600, namespace=ns, pod="app-0", container="c", message="old-1 before the namespace"),
        LogRecord(time=first + 1, namespace=ns, pod="app-0", container="c", message="old-2 after it"),
    ]
    assert logs.write([replace(r, namespace_uid=first_uid) for r in old]) == 2
    assert _tenant_lines(hub, "wsowner", ns) == {"old-1 before the namespace", "old-2 after it"}

    # Delete the namespace and make it again: the new namespace has a new UID and floor, seen by
    # the watch; the first namespace's lines are hidden from the tenant, whatever their time.
    _api(hub, "DELETE", f"/api/v1/namespaces/{ns}", verb="delete", name=ns)
    wait_until(lambda: _namespace(hub, ns) is None, timeout=120, what=f"namespace {ns} to be deleted")
    again = hub.cluster.ensure_namespace(ns, {WORKSPACE_LABEL: ws})
    assert again > first
    second_uid = _namespace(hub, ns)["metadata"]["uid"]
    assert second_uid != first_uid
    wait_until(lambda: tenancy.project(ns).created == again, timeout=60, what="the log floor to move")
    wait_until(lambda: tenancy.project(ns).uid == second_uid, timeout=60, what="the project's UID to move")
    assert tenancy.scope(owner).floor(ns) == again
    assert _tenant_lines(hub, "wsowner", ns) == set()
    new = LogRecord(time=again + 1, namespace=ns, pod="app-0", container="c", message="new-1", namespace_uid=second_uid)
    assert logs.write([new]) == 1
    assert _tenant_lines(hub, "wsowner", ns) == {"new-1"}
    # a platform admin investigates the cluster as a whole: both namespaces' lines
    assert _tenant_lines(hub, "root", ns) == {"old-1 before the namespace", "old-2 after it", "new-1"}


def test_a_namespace_labelled_for_another_workspace_is_refused_without_naming_it(hub_and_client: Any) -> None:
    hub, client, created = hub_and_client
    suffix = secrets.token_hex(3)
    ws, ns, other = f"it-ws2-{suffix}", f"it-foreign-{suffix}", f"secret-ws-{suffix}"
    _api(
        hub,
        "POST",
        "/api/v1/namespaces",
        verb="create",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {WORKSPACE_LABEL: other}}},
    )
    created.append(ns)
    assert client.post("/api/v1/workspaces", json={"name": ws}).status_code == 201
    r = client.post(f"/api/v1/workspaces/{ws}/projects", json={"namespace": ns})
    assert r.status_code == 409
    assert_no_leak(r, requested=(ns, ws), names=(other,))
    assert hub.tenancy.project(ns) is None
    assert _namespace(hub, ns)["metadata"]["labels"][WORKSPACE_LABEL] == other
