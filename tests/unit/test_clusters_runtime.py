"""The runtime keeps one cluster service per added cluster in step with the stored clusters, also
when another process (another replica on the same database) changed them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.runtime import build_hub
from hub.settings import Settings
from tests.conftest import world_database_url
from tests.unit.cluster_fakes import unreachable_kubeconfig

pytestmark = pytest.mark.unit


def test_a_cluster_added_by_one_replica_is_built_by_the_other_and_removed_alike(tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path / "edge.kubeconfig")
    settings = Settings(data_dir=tmp_path / "data", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"}, logs={"ship": False}
    )
    a, b = build_hub(settings), build_hub(settings)
    try:
        a.clusters.add({"name": "edge", "connection": {"kubeconfig_path": str(kubeconfig)}}, actor="admin")
        a.clusters.add({"name": "broken", "connection": {"kubeconfig_path": str(tmp_path / "missing")}}, actor="x")
        assert set(a.added_clusters) == {"edge"} and "does not exist" in a.cluster_errors["broken"]
        assert b.added_clusters == {}  # b has not looked yet
        assert b.cluster_reconciler is not None
        b.cluster_reconciler.reconcile()
        assert set(b.added_clusters) == {"edge"} and "broken" in b.cluster_errors
        first = b.added_clusters["edge"]
        b.cluster_reconciler.reconcile()
        assert b.added_clusters["edge"] is first  # unchanged: not rebuilt
        a.clusters.edit("edge", {"connection": {"kubeconfig_path": str(kubeconfig), "context": "t"}}, actor="admin")
        b.cluster_reconciler.reconcile()
        assert b.added_clusters["edge"] is not first  # its stored time moved: rebuilt
        a.clusters.remove("edge", actor="admin")
        a.clusters.remove("broken", actor="admin")
        assert a.added_clusters == {} and a.cluster_errors == {}
        b.cluster_reconciler.reconcile()
        assert b.added_clusters == {} and b.cluster_errors == {}
    finally:
        a.close()
        b.close()
