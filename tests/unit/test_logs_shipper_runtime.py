"""The runtime's wiring of the log shipper with several clusters: which clusters it follows (every
cluster with a service, minus logs.ship_skip_clusters, in step with the registry), which
namespaces in each, and a stale pod list stopping that cluster's round."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hub.errors import BackendUnavailable
from hub.runtime import Hub, build_hub
from hub.runtime.logs import ClusterPodSource, cluster_namespaces
from hub.settings import Settings
from hub.tenancy.scope import Project
from tests.conftest import world_database_url
from tests.unit.cluster_fakes import unreachable_kubeconfig

pytestmark = pytest.mark.unit


def shipping_hub(tmp_path: Path, skip_clusters: str) -> Hub:
    """A hub shipping logs, its own cluster an unreachable one, leaving ``skip_clusters`` out."""
    kubeconfig = unreachable_kubeconfig(tmp_path / "k.kubeconfig")
    settings = Settings(data_dir=tmp_path / "data", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(kubeconfig)}, logs={"ship": True, "ship_skip_clusters": skip_clusters}
    )
    return build_hub(settings)


def test_the_shipper_follows_every_cluster_but_those_node_collectors_serve(tmp_path: Path) -> None:
    hub = shipping_hub(tmp_path, "collected")
    kubeconfig = tmp_path / "k.kubeconfig"
    try:
        shipper = hub.logs.shipper
        assert shipper is not None
        assert set(shipper.sources()) == {""}
        for name in ("edge", "collected"):
            hub.clusters.add({"name": name, "connection": {"kubeconfig_path": str(kubeconfig)}}, actor="admin")
        sources = shipper.sources()
        assert set(sources) == {"", "edge"}
        assert isinstance(sources["edge"], ClusterPodSource) and sources["edge"].name == "edge"
        hub.clusters.remove("edge", actor="admin")
        assert set(shipper.sources()) == {""}
    finally:
        hub.close()


def test_the_implicit_cluster_can_be_left_to_node_collectors_too(tmp_path: Path) -> None:
    hub = shipping_hub(tmp_path, "default")
    try:
        assert hub.logs.shipper is not None and set(hub.logs.shipper.sources()) == set()
    finally:
        hub.close()


class FakeTenancy:
    def projects(self) -> list[Project]:
        return [Project("shop", "retail"), Project("edge/shop", "logistics"), Project("edge/routing", "logistics")]


def test_each_cluster_follows_its_own_projects_namespaces() -> None:
    namespaces = cluster_namespaces(Settings(), FakeTenancy())  # type: ignore[arg-type]
    assert namespaces("") == ["shop"]
    assert namespaces("default") == ["shop"]
    assert namespaces("edge") == ["routing", "shop"]
    assert namespaces("other") == []
    configured = cluster_namespaces(Settings().replace(logs={"ship_namespaces": "a, b"}), FakeTenancy())  # type: ignore[arg-type]
    assert configured("edge") == ["a", "b"] and configured("") == ["a", "b"]


def test_a_stale_pod_list_stops_the_round_naming_the_cluster() -> None:
    stale: dict[str, Any] = {"since": 1_795_305_600.0}
    service = SimpleNamespace(
        cache=SimpleNamespace(stale_since=lambda names: stale["since"]),
        namespaces=lambda: [],
        pods=lambda namespaces: [],
    )
    source = ClusterPodSource(lambda: service, name="edge")
    with pytest.raises(BackendUnavailable) as err:
        source.list_pods(None)
    assert "cluster edge's pod list is stale since 2026-11-22T00:00:00Z" in str(err.value.message)
    stale["since"] = None
    assert source.list_pods(None) == []
    with pytest.raises(BackendUnavailable, match="cluster gone is not connected"):
        ClusterPodSource(lambda: None, name="gone").list_pods(None)
