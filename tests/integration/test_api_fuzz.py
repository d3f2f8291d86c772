"""The served OpenAPI, fuzzed: every operation, as a platform admin and as a tenant.

Schemathesis reads ``/api/v1/openapi.json`` from an in-process hub of the test's own (a fresh
data dir, SQLite state, the embedded log store) and generates requests for every operation
it lists; each answer must pass: no 5xx (Schemathesis's ``not_a_server_error``), the body
matches the schema declared for its status (``response_schema_conformance``), the status is
one the operation declares (``status_code_conformance``), and, ours, a 503 names the backend
it waited for (``"backend"`` in the body): 503 is only for a backend that is really down; a
429 (the login throttle) carries ``Retry-After``; and an answer to the tenant (ws-a's
workspace admin) never names the other tenant's workspace, projects or user, unless the
request did.

Backends. Prometheus is the sandbox's, read-only (monitoring answers, backtests); alert
evaluation is off. The cluster is a private control plane of the test's own (etcd and
kube-apiserver from the cached engines, no controllers; tests/integration/cluster_support.py)
holding the projects' namespaces, a Deployment ``api``, a Pod ``p-0`` and a Node
``kwok-node-0``: the fuzzer scales, restarts, cordons and deletes whatever its path parameters
name, which must never be the sandbox's shared cluster. What it deletes is re-created after
the request. Rate limits are off (thousands of requests a minute from one user would
turn most exports and backtests into 429s before their parsers run; the limits have their own
tests).

What is fuzzed beyond the document. The served document lists paths, methods, path
parameters, statuses and "a JSON object" (or YAML text) as body; it does not list query
parameters or body fields. So that the fuzz reaches the parsers behind them:
- query names are learned from the hub itself: a probe request per operation records which
  query parameters the view reads (a recording ``request.args``), and cases then carry one to
  three of them with hostile or plausible values;
- bodies are, besides Schemathesis's own, valid documents (``_seed``: a policy from the
  built-in templates, a silence, a member role...) with one node replaced by a hostile value,
  removed, or joined by an unknown key; and raw texts Python's encoder would not write (100,000
  nested brackets, NaN, duplicate keys, cut short), plus hostile YAML for policy operations;
- path parameters name real things of the test's world (``ns-a1``, ``ws-a``, a user, a saved
  policy and silence) on half of the draws, instead of random text that stops at the 404.

Destructive operations are not excluded: deleting users, workspaces, projects, members and
tokens, logging out and changing roles are part of the surface. After every state-changing
request the world is put back (users re-created and re-enabled, platform roles, workspaces,
projects and memberships restored, a revoked token replaced), so that the next case runs as
the same admin or tenant. This costs a few SQLite reads per write.

Two phases per operation and role. A deterministic sweep first, one fault per request (as
Schemathesis's coverage phase does for declared parameters): each path parameter, learned
query name and node of the valid body gets each value of a short hostile list, and each raw
body text is sent. Then Hypothesis, derandomized, no example database, no shrinking:
``FUZZ_EXAMPLES`` cases (default 40) mixing Schemathesis's generation with the above. About 75 s
per role on 2 cores; against fb6b0dc (before the issue 20 hardening) this run reports
5xx in 36 operations as the admin and 26 as the tenant. A run reports every failing
(operation, check) once, with a count and its first request, and then fails.

Why one module of this length: the vocabulary (hostile values, valid bodies), the probe, the
sweep, the random phase and the world's restoration are one harness that only this test uses;
split up, each piece would be read without the others that explain it.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask, request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from werkzeug.datastructures import ImmutableMultiDict

from sandbox.prereqs import ensure_engines
from tests.integration.cluster_support import ControlPlane
from tests.unit.conftest_tenancy import FOREIGN_NAMES, PASSWORD, ROLE_USERS, WORKSPACES, TenancyWorld, build_world

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
ROLES = {"admin": "platform-admin", "tenant": "workspace-admin"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# Query names tried where the probe learned none (docs/api.md, docs/logs.md, docs/alerting.md).
QUERY_NAMES = [
    "from", "size", "limit", "offset", "page", "continue", "start", "end", "time", "step", "since",
    "until", "interval", "window", "stat", "sort", "metrics", "q", "namespaces", "kind", "state",
    "active", "level", "format", "tail", "container", "label_selector", "name", "propagation", "user",
]  # fmt: skip
BODY_NAMES = [
    "username", "password", "name", "role", "expires_in", "display_name", "email", "platform_role",
    "disabled", "current_password", "new_password", "replicas", "revision", "container", "image",
    "start", "end", "policy", "namespace", "matchers", "duration", "starts_at", "ends_at", "comment",
    "text", "level", "target", "rules", "notification", "repeat", "enabled", "description", "admin",
]  # fmt: skip
HOSTILE_TEXT = [
    "", " ", "0", "-1", "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "1e-320",
    "99999999999999999999", "9" * 400, "-9223372036854775809", "9223372036854775808", "0x10", "1_000",
    "-5m", "0s", "100000d", "9999999999w", "1.5s", "P1D", "now", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z", "1e12", "253402300800", "\x00", "a\x00b", "ns-a1,ns-b1", "null", "[]", "a OR",
    '"', "*", "%", "\n", "name\n", "ns-a1\n", "é中文", "a" * 5000,
]  # fmt: skip
PLAUSIBLE_TEXT = ["1", "10", "1h", "24h", "1m", "ns-a1", "ws-a", "true", "2026-12-05T07:00:00Z", "desc", "p95"]


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


HOSTILE_JSON: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**63, -(2**63) - 1, 10**25, 10**400, 1e308, -1e308, 5e-324, -0.0,
    [], {}, [None], {"": None}, _nested(40), _nested(200), *HOSTILE_TEXT,
]  # fmt: skip
# The deterministic sweep: every learned query name and every node of a valid body gets each of
# these, one fault per request (what Schemathesis's coverage phase does for declared parameters).
SWEEP_QUERY = [
    "nan", "inf", "1e309", "99999999999999999999", "-9223372036854775809", "-1", "0", "", "\x00", "x\n",
    "9" * 400, "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", "a" * 5000,
]  # fmt: skip
SWEEP_BODY: list[Any] = [None, True, -1, 10**25, 1e308, "nan", "", "a\x00b", "x\n", [], {}, _nested(100)]
SWEEP_PATH = ["0", "-1", "99999999999999999999", "9" * 400, "x\n", "a\x00b", "é中", "..", "a" * 1000]
# Bodies Python's own encoder cannot or would not write, sent as raw text.
RAW_JSON = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 20_000 + "1" + "}" * 20_000,
    '{"name": NaN, "threshold": Infinity, "replicas": -Infinity}',
    '{"replicas": 1e999, "revision": 123456789012345678901234567890}',
    '{"name": "a\\u0000b", "role": "\\ud800"}',
    '{"name": "x", "name": "y"}',
    '{"name": "x"',
    "\ufeff{}",
]
YAML_TEXTS = [
    "a: &a [*a, *a]\n",  # a recursive alias
    "a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    "[" * 5000 + "]" * 5000,
    "name: x\n" * 3,
    "!!python/object/apply:os.system ['true']\n",
    "name: !!binary AAAA\n",
    "rules: [{threshold: .nan}]\nname: x\n",
    "rules: [{threshold: .inf, period: 1e999m}]\nname: x\n",
    "\t- x",
    'name: "\\0"\n',
    "",
]


def _hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE_JSON),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )


def _query(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    value = st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(PLAUSIBLE_TEXT),
        st.integers().map(str),
        st.text(max_size=12),
    )
    return st.dictionaries(st.sampled_from(names), value, min_size=1, max_size=3)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a JSON document, as the keys and indices that lead to it."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "drop":
        del parent[last]
    elif action == "extra" and isinstance(parent[last], dict):
        parent[last]["unknown_field"] = value
    else:
        parent[last] = value
    return doc


def _mutations(example: dict[str, Any], *, top_level: bool = False) -> st.SearchStrategy[Any]:
    """The valid document with one node replaced by a hostile value, removed, or given a stranger."""
    paths = [p for p in _paths(example) if len(p) <= 1] if top_level else _paths(example)
    return st.builds(
        _mutate,
        st.just(example),
        st.sampled_from(paths),
        st.sampled_from(["replace", "replace", "drop", "extra"]),
        _hostile_value(),
    )


@dataclass
class Failure:
    operation: str
    role: str
    check: str
    status: int
    request: str
    count: int = 1


@dataclass
class FuzzWorld:
    world: TenancyWorld
    cluster_restore: Callable[[], None] = lambda: None
    alerting_ids: dict[str, str] = field(default_factory=dict)  # node, workload, silence
    pinned: dict[str, list[Any]] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    query_names: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    requests: int = 0


class _RecordingArgs(ImmutableMultiDict):  # type: ignore[type-arg]
    """``request.args`` that notes the names a view asks for (the probe's source of query names)."""

    reads: set[str] = set()

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:
        _RecordingArgs.reads.add(key)
        return super().get(key, default, type)

    def getlist(self, key: Any, type: Any = None) -> Any:
        _RecordingArgs.reads.add(key)
        return super().getlist(key, type)

    def __getitem__(self, key: Any) -> Any:
        _RecordingArgs.reads.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        _RecordingArgs.reads.add(key)
        return super().__contains__(key)


def _record_args(app: Flask) -> None:
    @app.before_request
    def _wrap_args() -> None:
        request.__dict__["args"] = _RecordingArgs(request.args)  # werkzeug caches args in the instance dict


def _restore(world: TenancyWorld) -> None:
    """Put the users, roles, workspaces, projects, memberships and tokens back as built."""
    t = world.tenancy
    for spec in ROLE_USERS.values():
        user = t.user(spec.name)
        if user is None:
            t.create_user(spec.name, PASSWORD, platform_role=spec.platform_role)
        elif user.disabled or user.platform_role != spec.platform_role:
            t.update_user(spec.name, disabled=False, platform_role=spec.platform_role)
    for ws, namespaces in WORKSPACES.items():
        if t.workspace(ws) is None:
            t.create_workspace(ws)
        for ns in namespaces:
            if t.project(ns) is None:
                t.create_project(ws, ns)
    for spec in ROLE_USERS.values():
        workspaces, projects = t.memberships_of(spec.name)
        if spec.workspace and workspaces.get(spec.workspace[0], None) != spec.workspace[1]:
            t.set_workspace_member(spec.workspace[0], spec.name, spec.workspace[1])
        if spec.project and projects.get(spec.project[0], None) != spec.project[1]:
            t.set_project_member(spec.project[0], spec.name, spec.project[1])
    for role in ROLES.values():
        if t.principal_from_token(world.tokens[role]) is None:
            world.tokens[role] = t.issue_token(ROLE_USERS[role].name, kind="named", name="fuzz").token


_POLICY_WRITE = re.compile(r"/alerting/policies(/\{pid\}|/templates/\{name\})?$")
_SERVER_FIELDS = {"id", "version", "created_by", "created_at", "updated_by", "updated_at", "status", "warnings"}
_SERVER_FIELDS |= {"effects"}  # PUT's answer: what happened to the policy's alerts


def _round_trip(fz: FuzzWorld, role: str, saved: dict[str, Any]) -> None:
    """A policy the API accepted and answered with must be accepted back as it is, and stay
    deletable: the fuzz once saved a policy (``rules: null``) that DELETE then refused."""
    home = (
        f"/api/v1/namespaces/{saved['namespace']}/alerting/policies"
        if saved.get("level") == "workload"
        else "/api/v1/alerting/policies"
    )
    client = fz.world.client(ROLES[role])
    doc = {k: v for k, v in saved.items() if k not in _SERVER_FIELDS}
    again = client.put(f"{home}/{saved['id']}", json=doc)
    if again.status_code != 200:
        raise AssertionError(f"Round trip: PUT of the saved document answered {again.status_code}: {again.text[:160]}")
    if saved.get("name", "").startswith("fuzz-"):
        return  # the pinned policies stay
    gone = client.delete(f"{home}/{saved['id']}")
    if gone.status_code != 200:
        raise AssertionError(f"Round trip: DELETE of a saved policy answered {gone.status_code}: {gone.text[:160]}")


def _after_write(fz: FuzzWorld, label: str) -> None:
    """Put back what a state-changing request may have taken away."""
    _restore(fz.world)
    if "/workloads/" in label or "/nodes/" in label:
        fz.cluster_restore()
    if "/alerting/" in label:
        _ensure_alerting_objects(fz)


def _ensure_alerting_objects(fz: FuzzWorld) -> None:
    """The node policy, workload policy and silence the path parameters name: (re-)created when
    missing (the fuzzer deletes them too), their ids kept in ``fz``."""
    admin = fz.world.client("platform-admin")
    wanted = {
        "node": ("/api/v1/alerting/policies", "/api/v1/alerting/policies/templates/node-cpu", {"name": "fuzz-node"}),
        "workload": (
            "/api/v1/namespaces/ns-a1/alerting/policies",
            "/api/v1/namespaces/ns-a1/alerting/policies/templates/workload-cpu",
            {"name": "fuzz-wl"},
        ),
    }
    for key, (home, template, body) in wanted.items():
        known = fz.alerting_ids.get(key)
        if known and admin.get(f"{home}/{known}").status_code == 200:
            continue
        r = admin.post(template, json={**body, "name": f"{body['name']}-{fz.requests}"})
        assert r.status_code == 201, (template, r.status_code, r.get_data(as_text=True))
        fz.alerting_ids[key] = r.get_json()["id"]
    active = {x["id"] for x in admin.get("/api/v1/alerting/silences?active=true").get_json()["items"]}
    if fz.alerting_ids.get("silence") not in active:
        r = admin.post(
            "/api/v1/alerting/silences", json={"namespace": "ns-a1", "matchers": {"policy": "*"}, "duration": "1h"}
        )
        assert r.status_code == 201, r.get_data(as_text=True)
        fz.alerting_ids["silence"] = r.get_json()["id"]


def _pins(fz: FuzzWorld, label: str) -> dict[str, list[Any]]:
    """Real names for the path parameters of ``label``, the likeliest to get far first."""
    pins = {k: list(v) for k, v in fz.pinned.items()}
    ids = fz.alerting_ids
    workload_home = "/namespaces/{ns}/alerting" in label
    pins["pid"] = [ids["workload"], ids["node"]] if workload_home else [ids["node"], ids["workload"]]
    pins["sid"] = [ids["silence"]]
    if "templates/{name}" in label:
        pins["name"] = ["workload-cpu", "node-cpu"] if workload_home else ["node-cpu", "workload-cpu"]
    elif "/workloads/" in label:
        pins["name"] = ["api", "pviewer"]
    return pins


def _seed(fz: FuzzWorld) -> None:
    """Things for path parameters to name (a policy at each level, a silence, a token) and
    a valid body for each operation that takes one."""
    world = fz.world
    admin = world.client("platform-admin")

    def template(name: str) -> dict[str, Any]:
        items = admin.get("/api/v1/alerting/templates").get_json()["items"]
        doc = next(t for t in items if t["template"] == name)
        return {k: v for k, v in doc.items() if k != "template"}

    _ensure_alerting_objects(fz)
    world.tenancy.issue_token("pviewer", kind="named", name="fuzz-target")
    token_id = next(r.id for r in world.tenancy.tokens("pviewer") if r.name == "fuzz-target")
    fz.pinned = {
        "ns": ["ns-a1", "ns-a2"],
        "ws": ["ws-a"],
        "user": ["pviewer", "wsregular", "bob"],
        "name": ["pviewer", "regular", "node-cpu", "workload-cpu", "api"],
        "aid": [1],
        "token_id": [token_id],
        "level": ["namespaces", "workloads", "pods", "containers", "workspaces", "cluster", "nodes"],
        "kind": ["deployment", "statefulset"],
        "node": ["kwok-node-0"],
        "pod": ["p-0"],
    }
    node_doc, workload_doc = template("node-cpu"), {**template("workload-cpu"), "namespace": "ns-a1"}
    replay = {"start": "2026-12-04T00:00:00Z", "end": "2026-12-04T01:00:00Z"}  # short: each valid one replays
    policies = "/api/v1/alerting/policies"
    ns_policies = "/api/v1/namespaces/{ns}/alerting/policies"
    fz.bodies = {
        "POST /api/v1/auth/token": {"username": "pviewer", "password": PASSWORD, "expires_in": "1h"},
        "POST /api/v1/auth/login": {"username": "pviewer", "password": PASSWORD},
        "POST /api/v1/auth/tokens": {"name": "ci", "expires_in": "30d"},
        "PUT /api/v1/me/password": {"current_password": PASSWORD, "new_password": PASSWORD},
        "POST /api/v1/users": {
            "name": "fuzzed",
            "password": "Fuzz-password-9",
            "platform_role": "regular",
            "display_name": "F",
            "email": "f@example.com",
        },
        "PATCH /api/v1/users/{name}": {"display_name": "P", "email": "p@example.com", "disabled": False},
        "POST /api/v1/workspaces": {"name": "ws-fuzz", "description": "d", "admin": "pviewer"},
        "POST /api/v1/workspaces/{ws}/projects": {"namespace": "ns-fuzz", "display_name": "F"},
        "PUT /api/v1/workspaces/{ws}/members/{user}": {"role": "viewer"},
        "PUT /api/v1/namespaces/{ns}/members/{user}": {"role": "viewer"},
        "POST /api/v1/alerting/silences": {
            "namespace": "ns-a1",
            "matchers": {"policy": "fuzz-*", "severity": "major"},
            "starts_at": "2026-12-05T00:00:00Z",
            "duration": "2h",
            "comment": "c",
        },
        "POST /api/v1/alerting/alerts/{aid}/comments": {"text": "looking"},
        f"POST {policies}": node_doc,
        f"PUT {policies}/{{pid}}": {**node_doc, "name": "fuzz-put-node"},  # a name no POST takes first
        f"POST {policies}/validate": node_doc,
        f"POST {policies}/backtest": {"policy": node_doc, **replay},
        f"POST {policies}/{{pid}}/backtest": replay,
        f"POST {policies}/templates/{{name}}": {"name": "from-template", "enabled": False},
        f"POST {ns_policies}": workload_doc,
        f"PUT {ns_policies}/{{pid}}": {**workload_doc, "name": "fuzz-put-wl"},
        f"POST {ns_policies}/validate": workload_doc,
        f"POST {ns_policies}/backtest": {"policy": workload_doc, **replay},
        f"POST {ns_policies}/{{pid}}/backtest": replay,
        f"POST {ns_policies}/templates/{{name}}": {"name": "from-template"},
        "POST /api/v1/namespaces/{ns}/workloads/{kind}/{name}/scale": {"replicas": 2},
        "POST /api/v1/namespaces/{ns}/workloads/{kind}/{name}/rollback": {"revision": 1},
        "POST /api/v1/namespaces/{ns}/workloads/{kind}/{name}/image": {"container": "app", "image": "nginx:1.27"},
    }


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _probe(fz: FuzzWorld, operations: list[Any]) -> None:
    """Ask each operation once, as the admin, and note the query parameters its view reads."""
    for operation in operations:
        label = _label(operation)
        pins = _pins(fz, label)
        path = {p.name: pins.get(p.name, ["x"])[0] for p in operation.path_parameters}
        kwargs: dict[str, Any] = {"path_parameters": path}
        if label in fz.bodies:
            kwargs.update(body=fz.bodies[label], media_type="application/json")
        _RecordingArgs.reads = set()
        operation.Case(**kwargs).call(headers=fz.world.headers("platform-admin"))
        if operation.method.upper() in UNSAFE:
            _after_write(fz, label)
        fz.query_names[label] = sorted(name for name in _RecordingArgs.reads if isinstance(name, str))
    everywhere = set.intersection(*(set(names) for names in fz.query_names.values()))
    for label, names in fz.query_names.items():  # e.g. "lang", read by a hook on every request
        fz.query_names[label] = [n for n in names if n not in everywhere]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    ensure_engines(lambda line: print(f"[engines] {line}", flush=True))  # cached after the first build
    cp = ControlPlane(tmp_path_factory.mktemp("fuzz-control-plane"))
    try:
        cp.start()
        yield cp
    finally:
        cp.close()


DEPLOYMENT = {
    "metadata": {"name": "api", "labels": {"app": "api"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
    },
}
POD = {
    "metadata": {"name": "p-0", "labels": {"app": "api"}},
    "spec": {"automountServiceAccountToken": False, "containers": [{"name": "app", "image": "nginx:1.27"}]},
}


def _cluster_objects(kubeconfig: Path) -> Callable[[], None]:
    """Create what the pinned path parameters name; returns the function that re-creates it."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)

    def ensure(read: Callable[[], Any], create: Callable[[], Any]) -> None:
        try:
            read()
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            create()

    def restore() -> None:
        ensure(lambda: apps.read_namespaced_deployment("api", "ns-a1"),
               lambda: apps.create_namespaced_deployment("ns-a1", DEPLOYMENT))  # fmt: skip
        ensure(lambda: core.read_node("kwok-node-0"), lambda: core.create_node({"metadata": {"name": "kwok-node-0"}}))

    # No controllers: the ServiceAccount a Pod needs is made by hand.
    core.create_namespaced_service_account("ns-a1", {"metadata": {"name": "default"}})
    core.create_namespaced_pod("ns-a1", POD)
    restore()
    return restore


@pytest.fixture(scope="module")
def fuzz(
    sandbox: Any, plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FuzzWorld, list[Any]]]:
    world = build_world(
        Path(tmp_path_factory.mktemp("fuzz")),
        settings={
            "kubernetes": {"kubeconfig": str(plane.kubeconfig), "request_timeout": 5.0},
            "prometheus": {"url": sandbox.prometheus_url},
            "alerts": {"evaluate": False},
            "rate_limits": {"log_exports": 0, "backtests": 0, "long_queries": 0},
        },
        prepare=_record_args,
    )  # the projects' namespaces are created in the private cluster here
    fz = FuzzWorld(world=world, cluster_restore=_cluster_objects(plane.kubeconfig))
    _seed(fz)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    _probe(fz, operations)
    yield fz, operations
    world.hub.close()


def _backend_named(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 503 is for a backend that is down, and says which one."""
    if response.status_code != 503:
        return None
    body = response.json()
    if not (isinstance(body, dict) and isinstance(body.get("backend"), str) and body["backend"]):
        raise AssertionError(f"503 without the backend it waited for: {response.text[:200]}")
    return True


def _no_foreign_names(request_text: str, response_text: str) -> list[str]:
    """Names of the other tenant (ws-b, its projects, its admin) in an answer to ws-a's admin,
    except those the request itself carried (echoing them back tells nothing new)."""
    return [
        name
        for name in FOREIGN_NAMES
        if name not in request_text and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", response_text)
    ]


def _retry_after(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 429 says when to come back: ``Retry-After`` in whole seconds, at least 1 (docs/api.md)."""
    if response.status_code != 429:
        return None
    value = response.headers.get("Retry-After") or response.headers.get("retry-after")
    value = value[0] if isinstance(value, list) else value
    if not (value and value.isdigit() and int(value) >= 1):
        raise AssertionError(f"429 without a Retry-After of whole seconds: {value!r}")
    return True


def _server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's 5xx check, except for the 503s that ``_backend_named`` judges."""
    if response.status_code == 503:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS: list[Callable[..., Any]] = [
    _server_error,
    response_schema_conformance,
    status_code_conformance,
    _backend_named,
    _retry_after,
]


def _summary(exc: BaseException) -> str:
    """One line per failed check: its title and the first line of its message."""
    parts = []
    for sub in getattr(exc, "exceptions", None) or [exc]:
        title = getattr(sub, "title", type(sub).__name__)
        message = (getattr(sub, "message", None) or str(sub)).strip().splitlines()
        parts.append(f"{title}: {message[0][:160] if message else ''}")
    return "; ".join(parts)


def _describe(case: Any, raw: tuple[str, str] | None = None) -> str:
    text = f"{case.method} {case.formatted_path}"
    if case.query:
        text += f" query={case.query!r}"
    body = f"{raw[1]}: {raw[0][:200]!r}" if raw is not None else case.body
    if body is not None and type(body).__name__ != "NotSet":
        text += f" body={body!r}"
    return text[:400]


def _exchange(fz: FuzzWorld, operation: Any, role: str, case: Any, raw: tuple[str, str] | None = None) -> None:
    """Send one case as ``role``, run the checks, record a failure; put the world back after a write.

    ``raw`` is (text, media type) of a body sent as it is: Schemathesis would serialise a string
    (quote it as a YAML scalar or a JSON string)."""
    label = _label(operation)
    headers = fz.world.headers(ROLES[role])
    fz.requests += 1
    try:
        if raw is not None:
            response = fz.world.app.test_client().open(
                case.formatted_path,
                method=case.method,
                query_string=case.query,
                data=raw[0].encode("utf-8", "surrogatepass"),
                headers={**headers, "Content-Type": raw[1]},
            )
        else:
            response = case.call(headers=headers)
    except RecursionError:  # a body too deep for the client's own JSON encoder: nothing was sent
        return
    fz.statuses[(label, response.status_code)] += 1
    try:
        case.validate_response(response, checks=CHECKS)
        if role == "tenant":
            body = response.get_data(as_text=True) if raw is not None else response.text
            sent = _describe(case, raw) + repr(case.path_parameters) + repr(case.query) + repr(case.body)
            leaked = _no_foreign_names(sent, body)
            if leaked:
                raise AssertionError(f"Tenant isolation: the answer names {leaked}")
        if response.status_code in (200, 201) and case.method in ("POST", "PUT") and _POLICY_WRITE.search(label):
            _round_trip(fz, role, response.get_json() if raw is not None else response.json())
    except (AssertionError, BaseExceptionGroup) as exc:  # each failure is recorded; the run goes on
        key = (label, _summary(exc))
        if key in fz.failures:
            fz.failures[key].count += 1
        else:
            fz.failures[key] = Failure(label, role, key[1], response.status_code, _describe(case, raw))
    finally:
        if operation.method.upper() in UNSAFE:
            _after_write(fz, label)


def _sweep(fz: FuzzWorld, operation: Any, role: str) -> None:
    """One fault per request: each path parameter, each learned query name and each node of the
    valid body gets each of the sweep values; bodies also come as hostile raw JSON text, and
    policy operations as hostile YAML text."""
    label = _label(operation)
    pins = _pins(fz, label)
    path = {p.name: pins.get(p.name, ["x"])[0] for p in operation.path_parameters}
    body = fz.bodies.get(label)
    base: dict[str, Any] = {"path_parameters": path}
    if body is not None:
        base.update(body=body, media_type="application/json")
    _exchange(fz, operation, role, operation.Case(**base))  # the valid request itself, first
    for name in path:
        for value in SWEEP_PATH:
            _exchange(fz, operation, role, operation.Case(**{**base, "path_parameters": {**path, name: value}}))
    for name in fz.query_names.get(label, []):
        for value in SWEEP_QUERY:
            _exchange(fz, operation, role, operation.Case(**base, query={name: value}))
    if body is not None:
        # A backtest replays hours of history per valid document: its sweep stays at the top level.
        nodes = [p for p in _paths(body) if p and (len(p) == 1 or "backtest" not in label)]
        for node in nodes:
            for value in SWEEP_BODY:
                mutated = _mutate(body, node, "replace", value)
                _exchange(fz, operation, role, operation.Case(**{**base, "body": mutated}))
            _exchange(fz, operation, role, operation.Case(**{**base, "body": _mutate(body, node, "drop", None)}))
    content = (operation.definition.raw.get("requestBody") or {}).get("content", {})
    if "application/json" in content:
        for text in RAW_JSON:
            _exchange(fz, operation, role, operation.Case(path_parameters=path), raw=(text, "application/json"))
    if "application/yaml" in content:
        for text in YAML_TEXTS:
            _exchange(fz, operation, role, operation.Case(path_parameters=path), raw=(text, "application/yaml"))


def _fuzz_operation(fz: FuzzWorld, operation: Any, role: str) -> None:
    """Hypothesis's part: EXAMPLES random cases mixing Schemathesis's generation with ours."""
    label = _label(operation)
    pins = _pins(fz, label)
    pinned = {
        p.name: st.sampled_from(pins[p.name]) if p.name in pins else st.just("missing")
        for p in operation.path_parameters
    }
    cases = st.one_of(
        operation.as_strategy(),
        st.fixed_dictionaries(pinned).flatmap(lambda p: operation.as_strategy(path_parameters=p)),
    )
    names = fz.query_names.get(label) or QUERY_NAMES
    queries = st.one_of(st.none(), _query(names))
    bodies: st.SearchStrategy[Any] = st.none()
    if operation.method.upper() in {"POST", "PUT", "PATCH"}:
        choices = [st.none(), st.dictionaries(st.sampled_from(BODY_NAMES), _hostile_value(), min_size=1, max_size=4)]
        if label in fz.bodies:
            # A backtest replays history for every valid document: its mutations stay at the top level.
            choices += [_mutations(fz.bodies[label], top_level="backtest" in label)] * 3
        bodies = st.one_of(*choices)

    @given(case=cases, query=queries, body=bodies)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, query: dict[str, str] | None, body: Any) -> None:
        if query:
            case.query = {**(case.query or {}), **query}
        if body is not None:
            case.body, case.media_type = body, "application/json"
        _exchange(fz, operation, role, case)

    run()


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_operation_survives_the_fuzzer(fuzz: tuple[FuzzWorld, list[Any]], role: str) -> None:
    fz, operations = fuzz
    assert len(operations) > 60, "the served OpenAPI lost its operations"
    fz.failures.clear()
    fz.statuses.clear()
    started, before = time.monotonic(), fz.requests
    for operation in operations:
        _sweep(fz, operation, role)
        _fuzz_operation(fz, operation, role)
    took = time.monotonic() - started
    answered = {label for (label, status), _ in fz.statuses.items() if status < 300}
    print(
        f"fuzz[{role}]: {len(operations)} operations, {fz.requests - before} requests in {took:.0f} s; "
        f"{len(answered)} operations answered 2xx at least once; never: "
        + ", ".join(sorted(_label(op) for op in operations if _label(op) not in answered))
    )
    report = "\n".join(
        f"  {f.operation} [{f.role}] {f.status} x{f.count}: {f.check}\n      e.g. {f.request}"
        for f in sorted(fz.failures.values(), key=lambda f: f.operation)
    )
    assert not fz.failures, f"{len(fz.failures)} failing (operation, check) pairs as {role}:\n{report}"
    # The fuzz must get past the front door: a run where (nearly) everything is refused tests little.
    assert len(answered) >= (60 if role == "admin" else 40), sorted(answered)  # today 77 and 53
