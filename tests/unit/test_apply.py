"""Apply from YAML (hub/collectors/apply.py) without a cluster: the manifest bounds, the tenancy
checks made by the service itself, and Secret masking against a careless server that ignores
the metadata-only Accept header. The API server's own behaviour (dry run, field errors, 409s)
is tested against the real one in tests/integration/test_workload_apply.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.collectors.apply import Applier, ManifestTooLarge, field_problems, parse_manifest
from hub.errors import Forbidden, InvalidInput, Unprocessable
from hub.scope import Scope

pytestmark = pytest.mark.unit

TENANT = Scope(
    all_namespaces=False,
    namespaces={"team-a": 0.0, "team-b": 0.0},
    username="alice",
    grants={"team-a": frozenset({"workloads:read", "workloads:write"}), "team-b": frozenset({"workloads:read"})},
)
VALUE = "careless-server-value-17"


class CarelessServer:
    """Answers every call with the full Secret, values and last-applied annotation included."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *, body: Any = None, **kwargs: Any) -> Any:
        self.calls.append((method, path, body))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "db",
                "namespace": "team-a",
                "resourceVersion": "7",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": VALUE})},
            },
            "data": {"password": VALUE, "other": VALUE},
        }
        return {"items": [secret]} if "fieldSelector" in (kwargs.get("query") or {}) else secret


def secret_text(value: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {value}}}\n"


def test_a_careless_server_still_never_gets_a_value_into_the_answer() -> None:
    server = CarelessServer()
    out = Applier(server).apply(TENANT, "team-a", secret_text("new-value-5"), dry_run=False)
    text = json.dumps(out)
    assert VALUE not in text and "new-value-5" not in text
    assert "password: (hidden)" in out["objects"][0]["diff"]
    assert any(m == "PATCH" and b["stringData"] == {"password": "new-value-5"} for m, _, b in server.calls)


def test_the_service_checks_the_scope_itself() -> None:
    server = CarelessServer()
    with pytest.raises(Forbidden):  # read-only there: refused before any call
        Applier(server).apply(TENANT, "team-b", secret_text("x"))
    with pytest.raises(Forbidden):
        Applier(server).apply(TENANT, "team-z", secret_text("x"))
    escape = secret_text("x").replace("name: db}", "name: db, namespace: team-b}")
    with pytest.raises(Forbidden) as exc:
        Applier(server).apply(TENANT, "team-a", escape)
    assert exc.value.field == "metadata.namespace"
    with pytest.raises(Forbidden) as exc:
        Applier(server).apply(TENANT, "team-a", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    assert exc.value.field == "kind"
    with pytest.raises(Unprocessable) as bad:
        Applier(server).apply(TENANT, "team-a", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    assert bad.value.field == "kind"
    assert server.calls == []


@pytest.mark.parametrize(
    ("text", "error", "field"),
    [
        ("", InvalidInput, "yaml"),
        ("a: [1", InvalidInput, "yaml"),
        ("- 1\n- 2\n", InvalidInput, "yaml"),
        ("a: &x [1]\nb: *x\n", InvalidInput, "yaml"),
        ("a: 1\n---\nb: 2\n", InvalidInput, "yaml"),
        ("a: " + "[" * 60 + "]" * 60, InvalidInput, "yaml"),
        ("x: " + "y" * (300 * 1024), ManifestTooLarge, "yaml"),
        ("kind: List\nitems: []\n", Unprocessable, "items"),
        ("kind: List\nitems:\n" + "- {kind: ConfigMap}\n" * 21, ManifestTooLarge, "items"),
    ],
)
def test_manifest_bounds(text: str, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as exc:
        parse_manifest(text)
    assert exc.value.field == field  # type: ignore[attr-defined]


def test_field_paths_are_read_from_the_api_servers_message() -> None:
    class Cause(Exception):
        body = json.dumps(
            {
                "message": "failed to create typed patch object (ns/x; apps/v1, Kind=Deployment): "
                ".spec.replica: field not declared in schema"
            }
        )

    exc = Unprocessable("x")
    exc.__cause__ = Cause()
    assert field_problems(exc) == [{"field": "spec.replica", "message": "field not declared in schema"}]
