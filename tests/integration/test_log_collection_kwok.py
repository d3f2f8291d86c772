"""Per-project log collection (issue 19) with the shipper the runtime builds, against the
sandbox's real kube-apiserver (KWOK serves the seeded pod logs): what lands in the store is
exactly what the API serves for the containers the project collects (the outside reference is
the pod log API itself), nothing of an excluded container, nothing of a disabled project."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.collectors.logs.collection import CollectionSettings
from hub.collectors.logs.collection_store import LogCollectionStore
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from tests.conftest import world_database_url
from tests.integration.logs_support import sandbox_status
from tests.integration.test_logs_shipper_kwok import NAMESPACE, assert_exactly_once, served_lines, stored_lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    kubeconfig = sandbox_status(request).get("kubeconfig")
    if not kubeconfig:
        pytest.fail("the sandbox reports no kubeconfig")
    settings = Settings(data_dir=tmp_path / "data", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(kubeconfig), "request_timeout": 20.0},
        logs={"ship": True, "ship_namespaces": NAMESPACE, "retention_days": 3650},
    )
    the_hub = build_hub(settings)
    yield the_hub
    the_hub.close()


def test_an_excluded_container_and_a_disabled_project_are_not_stored(hub: Hub) -> None:
    shipper = hub.logs.shipper
    assert shipper is not None
    served = served_lines(shipper.source)
    containers = sorted({c for _, c, _ in served})
    assert served and containers
    excluded = containers[0]
    expected = Counter({k: n for k, n in served.items() if k[1] != excluded})
    # The seeded namespace has several container names (api, gateway, migrate, postgres): the
    # kept lines are a real part of what is served, neither all nor nothing.
    assert 0 < sum(expected.values()) < sum(served.values())

    settings = LogCollectionStore(hub.db)
    settings.put(NAMESPACE, CollectionSettings(exclude=(excluded,)), actor="test", now=hub.clock.now())
    shipper.poll_once()
    shipper.drain()
    got, _ = stored_lines(hub)
    now_served = Counter({k: n for k, n in served_lines(shipper.source).items() if k[1] != excluded})
    assert_exactly_once(got, expected, now_served)
    assert not any(c == excluded for _, c, _ in got)

    # The project turned off: a later poll reads and stores nothing more, whatever is served.
    settings.put(NAMESPACE, CollectionSettings(enabled=False), actor="test", now=hub.clock.now())
    before = sum(got.values())
    assert shipper.poll_once() == 0 and shipper.followed == 0
    shipper.drain()
    assert sum(stored_lines(hub)[0].values()) == before
