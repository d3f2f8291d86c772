"""The hub's typed lookups of services an area may not have built yet (``Hub.built_*``), and the
callers that used to look them up by name: /readyz, the background lists and close() of a hub
whose areas are not built, the component probes, the lazily read cluster registry of tenancy and
monitoring, and the alert store's fence. Real state store (SQLite, or the run's PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.metrics import HubMetrics
from hub.runtime import Hub, _leadership, build_hub
from hub.runtime.components import collector_probes, readyz_probe
from hub.runtime.monitoring import sources
from hub.runtime.tenancy import _cluster_names
from hub.settings import Settings
from hub.store import open_state_store
from hub.store.alerts import AlertStore
from hub.store.leases import Fence, FencedStore
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit


@pytest.fixture
def bare(settings: Settings) -> Iterator[Hub]:
    """A hub with its state store and lease loop, none of its areas built."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_state_store(settings)
    db.migrate()
    metrics, clock = HubMetrics(), FakeClock(1_795_219_200.0)
    hub = Hub(
        settings=settings, db=db, metrics=metrics, leadership=_leadership(settings, db, metrics, clock), clock=clock
    )
    yield hub
    hub.close()


def test_a_hub_before_its_areas_are_built_answers_without_them(bare: Hub) -> None:
    assert bare.built_clusters() is None and bare.built_logs() is None
    assert bare.built_backtest_jobs() is None and bare.built_alert_engine() is None
    assert [st.name for st in bare.readiness()] == ["state"]
    assert [name for name, _ in bare._background()] == ["leadership"]
    assert bare._leader_work() == []
    # the lookups handed to earlier areas: no registry yet is no cluster names, no metrics source
    assert _cluster_names(bare)() == []
    assert sources(bare, None)("cluster-2") == (None, "")
    # the component probes: no cluster, no log shipping
    assert readyz_probe(bare).configured is False
    assert [(p.name, p.configured) for p in collector_probes(bare)] == [("inventory", False), ("log-shipper", False)]


def test_a_built_hub_without_cluster_or_prometheus_answers_its_services(settings: Settings) -> None:
    hub = build_hub(settings)
    try:
        assert hub.built_clusters() is hub.clusters and hub.built_logs() is hub.logs
        assert hub.built_backtest_jobs() is hub.backtest_jobs and hub.built_alert_engine() is hub.alert_engine
        assert [st.name for st in hub.readiness()] == ["state", "logs", "alert-engine"]
        assert [name for name, _ in hub._background()] == [
            "clusters",
            "backtest-jobs",
            "component-probes",
            "leadership",
        ]
        assert [name for name, _ in hub._leader_work()] == ["logs", "alert-engine"]
        assert _cluster_names(hub)() == [settings.clusters.default_name]
        assert hub.monitoring.sources is not None
        assert hub.monitoring.sources(settings.clusters.default_name) == (None, "")  # no Prometheus
        assert readyz_probe(hub).detail == "no cluster configured"
        shipper = collector_probes(hub)[1]
        assert (shipper.name, shipper.configured) == ("log-shipper", False)  # logs.ship is off here
        hub.alert_engine.last_ok = 1_795_219_100.0  # its last good cycle, shown with its probe
        names = {p.name: p for p in hub.components.probes()}
        assert names["alert-engine"].last_ok == 1_795_219_100.0 and names["logs"].last_ok is None
    finally:
        hub.close()


def test_the_alert_store_names_the_fence_only_over_a_fenced_store(tmp_path: Path, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_state_store(settings)
    try:
        db.migrate()
        assert AlertStore(db).bound_fence() is None
        fenced = FencedStore(db)
        store = AlertStore(fenced)
        assert store.bound_fence() is None  # no unit of work acting
        fence = Fence("leader", "replica-a", 7)
        with fenced.acting(fence):
            assert store.bound_fence() == fence
        assert store.bound_fence() is None
    finally:
        db.close()
