"""One log store per cluster on the sandbox's real Elasticsearch 8: a hub whose shared store is one
index prefix, with cluster-2 registered through the API with ``logs.mode own`` (the same
Elasticsearch, another index prefix: two stores that share nothing but the server).

The references are outside kubehub: where the lines landed is counted by Elasticsearch itself
(``_count`` on each prefix's indices), and every search answer is compared with a brute-force
sort of the lines actually written. Then cluster-2's store is pointed at a closed port: a search
of cluster-2 alone is the 503 naming its store, a search across clusters stands on the shared
store and names cluster-2 under ``unavailable``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.store import LogRecord
from hub.errors import HubError
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from hub.tenancy.roles import ProjectRole
from hub.tenancy.scope import Principal, Project, scope_for
from tests.conftest import world_database_url
from tests.integration.cluster_support import FAST_AUTH, PASSWORD
from tests.integration.logs_support import elasticsearch_url, es_request
from web.params import log_params

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
PROJECTS = [Project("team-a", "w"), Project("cluster-2/team-a", "w2"), Project("cluster-2/team-b", "w2")]


class Tenant:
    """A tenant's reads through the logs service with the scope the tenancy rules give them,
    answered as the API answers (status, body)."""

    def __init__(self, hub: Hub, scope: Any) -> None:
        self.hub, self.scope = hub, scope

    def get(self, path: str, query_string: dict[str, Any]) -> Any:
        assert path == "/api/v1/logs"
        args = {k: str(v) for k, v in query_string.items()}
        try:
            return Answer(200, self.hub.logs.search(self.scope, log_params(args)))
        except HubError as exc:
            return Answer(exc.status, exc.to_dict())


class Answer:
    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code, self.body = status_code, body

    def get_json(self) -> dict[str, Any]:
        return self.body

    def get_data(self, as_text: bool = True) -> str:
        return str(self.body)


NOW = time.time()
CLUSTERS = ("default", "cluster-2")


def records(marker: str) -> list[LogRecord]:
    """Lines of team-a in both clusters (two tenants) and of team-b in cluster-2, spread over an
    hour, no two at the same time (a merge by time has one right order)."""
    out = []
    for i in range(150):
        cluster, ns = [("default", "team-a"), ("cluster-2", "team-a"), ("cluster-2", "team-b")][i % 3]
        out.append(
            LogRecord(
                time=round(NOW - 3600 + i * 23.0 + 0.001 * i, 3),
                namespace=ns,
                pod=f"{ns}-0",
                container="app",
                message=f"{marker} {cluster} {ns} line {i:03d}" + (" needle" if i % 4 == 0 else ""),
                pod_uid=f"uid-{cluster}-{ns}",
                cluster="" if cluster == "default" and i % 2 else cluster,  # some written without a label
            )
        )
    return out


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Hub, dict[str, Any], str, str]]:
    es = elasticsearch_url(request)
    tag = uuid.uuid4().hex[:8]
    shared, own = f"kh-test-shared-{tag}", f"kh-test-own-{tag}"
    settings = Settings(data_dir=tmp_path, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"backend": "elasticsearch", "ship": False, "retention_days": 3650},
        elasticsearch={"url": es, "index_prefix": shared, "timeout": 2.0},
        prometheus={"url": ""},
        auth=dict(FAST_AUTH),
    )
    hub = build_hub(settings)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    t = hub.tenancy
    t.create_user("admin", PASSWORD, platform_role="admin", email="admin@example.com")
    clients: dict[str, Any] = {}
    admin = clients["admin"] = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {t.issue_token('admin', kind='named', name='t').token}"
    r = admin.post(
        "/api/v1/clusters",
        json={
            "name": "cluster-2",
            "connection": {"mode": "kubeconfig", "kubeconfig_path": str(tmp_path / "absent")},
            "logs": {"mode": "own", "url": es, "index_prefix": own},
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["logs"] == {"mode": "own", "url": es, "label_value": "", "index_prefix": own}
    # Tenants as the tenancy rules scope them (cluster-2 has no API server here to place
    # projects in): one of team-a in both clusters, one of cluster-2's team-a only.
    for user, held in (("both", ["team-a", "cluster-2/team-a"]), ("second", ["cluster-2/team-a"])):
        principal = Principal(user, projects={p: ProjectRole.VIEWER for p in held})
        clients[user] = Tenant(hub, scope_for(principal, PROJECTS))
    try:
        yield hub, clients, shared, own
    finally:
        hub.close()
        for prefix in (shared, own):
            es_request(es, "DELETE", f"/{prefix}-*?ignore_unavailable=true&allow_no_indices=true")
            try:
                es_request(es, "DELETE", f"/_index_template/kubehub-{prefix}")
            except Exception:  # nothing written under it: no template
                pass


def test_a_search_across_two_stores_equals_the_lines_written(world: tuple[Hub, dict[str, Any], str, str]) -> None:
    hub, clients, shared, own = world
    es = hub.settings.elasticsearch.url
    marker = f"cs{uuid.uuid4().hex[:8]}"
    written = records(marker)
    assert hub.logs.write(written) == len(written)  # the shipper's and the ingest's write path
    hub.logs.store.refresh()
    hub.logs.own_stores()["cluster-2"].refresh()

    # Elasticsearch's own count: each line in its cluster's store only
    second = [r for r in written if r.cluster == "cluster-2"]
    count = lambda prefix: es_request(es, "GET", f"/{prefix}-*/_count")["count"]  # noqa: E731
    assert (count(shared), count(own)) == (len(written) - len(second), len(second))

    def oracle(pairs: set[tuple[str, str]], *, needle: bool = False, desc: bool = True) -> list[tuple[str, str]]:
        picked = [
            r
            for r in written
            if ((r.cluster or "default"), r.namespace) in pairs and (not needle or r.message.endswith("needle"))
        ]
        return [(r.cluster or "default", r.message) for r in sorted(picked, key=lambda r: r.time, reverse=desc)]

    everything = {("default", "team-a"), ("cluster-2", "team-a"), ("cluster-2", "team-b")}

    def pages(client: Any, size: int, **query: Any) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        offset = 0
        while True:
            r = client.get("/api/v1/logs", query_string={"q": marker, "from": offset, "size": size, **query})
            assert r.status_code == 200, r.get_data(as_text=True)
            body = r.get_json()
            assert body["partial"] is False and body["unavailable"] == []
            items = [(i["cluster"], i["message"]) for i in body["items"]]
            if not items:
                return got
            got += items
            offset += size

    admin, both, second_tenant = clients["admin"], clients["both"], clients["second"]
    assert pages(admin, 40) == oracle(everything)
    assert pages(admin, 33, sort="asc") == oracle(everything, desc=False)
    assert pages(admin, 1000, q=f"{marker} needle") == oracle(everything, needle=True)
    assert pages(admin, 17, cluster="cluster-2") == oracle({("cluster-2", "team-a"), ("cluster-2", "team-b")})
    assert pages(admin, 17, cluster="default") == oracle({("default", "team-a")})
    assert pages(both, 21) == oracle({("default", "team-a"), ("cluster-2", "team-a")})
    assert pages(second_tenant, 50) == oracle({("cluster-2", "team-a")})
    r = admin.get("/api/v1/logs", query_string={"q": marker, "size": 10})
    assert r.get_json()["total"] == len(written)
    start, end = int(NOW) - 3601, int(NOW) + 1
    hist = admin.get(
        "/api/v1/logs/histogram", query_string={"q": marker, "start": start, "end": end, "interval": "10m"}
    ).get_json()
    # the oracle's buckets: aligned to the epoch, empty ones included, from start's to end's
    want = {b: 0 for b in range(start // 600, (end - 1) // 600 + 1)}
    for rec in written:
        want[int(rec.time // 600)] += 1
    assert [(b["time"], b["count"]) for b in hist["buckets"]] == [
        (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(b * 600)), n) for b, n in sorted(want.items())
    ]
    assert hist["total"] == len(written) and hist["partial"] is False
    export = admin.get("/api/v1/logs/export", query_string={"q": marker, "format": "jsonl", "sort": "asc"})
    assert export.status_code == 200
    assert len(export.get_data(as_text=True).strip().splitlines()) == len(written)

    # cluster-2's store goes away (its URL now a closed port)
    r = admin.put(
        "/api/v1/clusters/cluster-2",
        json={
            "connection": {"mode": "kubeconfig", "kubeconfig_path": "/nonexistent"},
            "logs": {"mode": "own", "url": "http://127.0.0.1:9", "index_prefix": own},
        },
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    r = admin.get("/api/v1/logs", query_string={"q": marker, "cluster": "cluster-2"})
    assert r.status_code == 503 and r.get_json()["backend"] == "log store of cluster cluster-2", r.get_json()
    r = second_tenant.get("/api/v1/logs", query_string={"q": marker})
    assert r.status_code == 503  # the only store this tenant may read
    for client, pairs in ((admin, {("default", "team-a")}), (both, {("default", "team-a")})):
        body = client.get("/api/v1/logs", query_string={"q": marker, "size": 1000}).get_json()
        assert [(i["cluster"], i["message"]) for i in body["items"]] == oracle(pairs)
        assert body["partial"] is True
        assert [(u["cluster"], u["backend"]) for u in body["unavailable"]] == [
            ("cluster-2", "log store of cluster cluster-2")
        ]
    r = admin.get("/api/v1/logs/export", query_string={"q": marker})
    assert r.status_code == 503
