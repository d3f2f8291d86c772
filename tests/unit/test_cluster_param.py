"""``?cluster=`` is read in one place (web.params.clusters, run on every request by
check_request): a cluster name by the registry's rule, given once, one per route except the log
search's comma list (at most MAX_CLUSTERS); anything else is 400 naming ``cluster``. A
well-formed name the hub does not know is 404 naming ``cluster`` for a platform admin, and for
a tenant the same refusal as a foreign cluster (an unknown name tells no tenant which exist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from hub.clusters.model import NAME_RE
from hub.errors import InvalidInput
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from web import params

pytestmark = pytest.mark.unit


def test_names_follow_the_registrys_rule_and_lists_are_bounded() -> None:
    assert params.clusters(MultiDict()) == ()
    assert params.clusters(MultiDict({"cluster": ""})) == ()
    assert params.clusters(MultiDict({"cluster": "cluster-2"}), many=False) == ("cluster-2",)
    assert params.clusters(MultiDict({"cluster": "a, b,a"})) == ("a", "b")
    assert params.clusters({"cluster": ["a", "b"]}) == ("a", "b")  # a plain mapping (the console's own)
    most = ",".join(f"c{i}" for i in range(params.MAX_CLUSTERS))
    assert len(params.clusters(MultiDict({"cluster": most}))) == params.MAX_CLUSTERS
    bad = [
        MultiDict({"cluster": most + ",one-more"}),  # too many
        MultiDict([("cluster", "a"), ("cluster", "b")]),  # given twice
        MultiDict({"cluster": "x" * 41}),  # longer than a name may be
        MultiDict({"cluster": "Prod"}),
        MultiDict({"cluster": "-a"}),
        MultiDict({"cluster": "a/b"}),
        MultiDict({"cluster": "nan,a b"}),
        MultiDict({"cluster": "é"}),
        MultiDict({"cluster": "a," * 5000}),
    ]
    for args in bad:
        with pytest.raises(InvalidInput) as refused:
            params.clusters(args)
        assert refused.value.field == "cluster" and refused.value.status == 400, args
    with pytest.raises(InvalidInput) as one:
        params.clusters(MultiDict({"cluster": "a,b"}), many=False)
    assert one.value.field == "cluster"
    with pytest.raises(InvalidInput) as other:
        params.clusters(MultiDict({"clusters": "A"}), name="clusters")
    assert other.value.field == "clusters"
    # The same rule as the registry's names (hub.clusters.model.parse_cluster).
    for name in ("a", "cluster-2", "x" * 40, "0-0"):
        assert NAME_RE.match(name) and params.clusters(MultiDict({"cluster": name})) == (name,)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("cluster-param")))
    yield w
    w.hub.close()


def test_the_list_endpoints_exist(world: TenancyWorld) -> None:
    endpoints = {rule.endpoint for rule in world.app.url_map.iter_rules()}
    assert endpoints >= params.CLUSTER_LIST_ENDPOINTS


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/nodes?cluster=Bad!",
        "/api/v1/nodes?cluster=default,cluster-2",  # one cluster on this route
        "/api/v1/nodes?cluster=default&cluster=x",
        "/api/v1/namespaces/ns-a1/workloads?cluster=" + "y" * 41,
        "/api/v1/namespaces/ns-a1/members?cluster=a%00",
        "/api/v1/namespaces/ns-a1/alerting/policies?cluster=..",
        "/api/v1/logs?cluster=" + ",".join(f"c{i}" for i in range(params.MAX_CLUSTERS + 1)),
        "/api/v1/logs?cluster=default,UPPER",
        "/logs?cluster=default,%20Bad",
    ],
)
def test_bad_values_are_400_naming_the_parameter(world: TenancyWorld, url: str) -> None:
    for role in ("platform-admin", "project-operator"):
        r = world.client(role).get(url, headers={"Accept": "application/json"})
        assert r.status_code == 400, (role, url, r.status_code, r.get_data(as_text=True)[:300])
        assert r.get_json()["field"] in ("cluster", "clusters"), r.get_json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/nodes?cluster=nope",
        "/api/v1/namespaces/ns-a1/workloads?cluster=nope",
        "/api/v1/namespaces/ns-a1/members?cluster=nope",
        "/api/v1/namespaces/ns-a1/alerting/policies?cluster=nope",
        "/api/v1/logs?cluster=default,nope",
        "/api/v1/monitoring/nodes?cluster=nope",
    ],
)
def test_an_unknown_cluster_is_404_for_an_admin_and_a_refusal_for_a_tenant(world: TenancyWorld, url: str) -> None:
    r = world.client("platform-admin").get(url)
    assert r.status_code == 404 and r.get_json()["field"] == "cluster", (url, r.get_data(as_text=True)[:300])
    r = world.client("project-operator").get(url)
    assert r.status_code == 403, (url, r.status_code, r.get_data(as_text=True)[:300])


def test_the_cross_cluster_tables_clusters_follow_the_same_rule(world: TenancyWorld) -> None:
    r = world.client("platform-admin").get("/api/v1/monitoring/nodes?clusters=a_b")
    assert r.status_code == 400 and r.get_json()["field"] == "clusters", r.get_data(as_text=True)[:300]


def test_the_implicit_cluster_by_name_is_as_no_name(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    assert admin.get("/api/v1/namespaces/ns-a1/members?cluster=default").status_code == 200
    assert admin.get("/api/v1/logs?cluster=default").status_code == admin.get("/api/v1/logs").status_code
