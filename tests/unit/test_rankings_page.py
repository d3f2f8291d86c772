"""The console's rankings page while a window ranking's table is still being built.

At 20,000 pods the first 24 h table takes Prometheus minutes (docs/scale.md). The page used to
wait the request's whole timeout and then show Prometheus as unavailable (a 503 page), though
nothing was down and the build went on. It now waits a moment, says the ranking is being
computed, and reloads itself; the API still answers 503 naming Prometheus meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.collectors.catalogue import Catalogue
from hub.collectors.monitoring import MonitoringService
from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import build_world
from tests.unit.monitoring_fakes import FakeBackend

pytestmark = pytest.mark.unit

CPU = "container_cpu_usage_seconds_total"
PODS = [("ns-a1", "api-1"), ("ns-a1", "api-2"), ("ns-b1", "etl-1")]
PAGE = "/rankings?level=pods&window=24h&stat=max"
API = "/api/v1/monitoring/pods?metrics=pod_cpu_usage&sort_metric=pod_cpu_usage&window=24h&stat=max"


def test_a_window_ranking_being_built_is_a_page_that_says_so_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.views.monitoring as views

    world = build_world(tmp_path)
    try:
        builds: list[Callable[[], None]] = []  # the table builds, run when the test says
        backend = FakeBackend({CPU: {pod: float(n) for n, pod in enumerate(PODS)}}, PODS)
        world.hub.monitoring = MonitoringService(
            Catalogue(),
            backend,
            clock=FakeClock(1_800_000_000.0),
            timeout=3.0,
            max_points=1000,
            share_seconds=5.0,
            spawn=builds.append,
        )
        monkeypatch.setattr(views, "WINDOW_PAGE_WAIT", 0.05)
        client, _ = world.session("platform-admin")

        started = time.monotonic()
        page = client.get(PAGE)
        text = page.get_data(as_text=True)
        assert page.status_code == 200, text
        assert time.monotonic() - started < 2  # not the request's whole 3 s timeout
        assert 'id="ranking-computing"' in text and f'http-equiv="refresh" content="{views.RELOAD_SECONDS}"' in text
        assert 'data-backend="prometheus"' not in text and 'id="ranking-table"' not in text  # no outage banner
        assert len(builds) == 1 and backend.sent == []  # the build is under way, not abandoned

        api = client.get(API)  # the API answers what it always did: 503 naming Prometheus
        assert api.status_code == 503 and api.get_json()["backend"] == "prometheus"
        assert len(builds) == 1  # the same build, not another one

        builds.pop()()
        page = client.get(PAGE)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and 'id="ranking-table"' in text
        assert 'id="ranking-computing"' not in text and "http-equiv" not in text
        assert "etl-1" in text and "api-2" in text
    finally:
        world.hub.close()
