"""Rate limits: the window rule against a brute-force oracle, the limiter, and 429s over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import ConfigError, RateLimited
from hub.ratelimit import retry_after
from hub.settings import load_settings
from hub.store.ratelimit import SharedRateLimiter
from hub.timeutil import FakeClock
from tests.conftest import open_test_store
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from web.ratelimit import ALWAYS, BY_SPAN

pytestmark = pytest.mark.unit

NOW = 1_795_000_000.0


def _oracle(events: list[float], limit: int, window: float, now: float) -> float | None:
    """Try every instant at which the count can change; the first with room is the answer."""
    if limit <= 0:
        return None
    for t in sorted({now, *(e + window for e in events if e + window >= now)}):
        if sum(1 for e in events if e > t - window) < limit:
            return None if t == now else t - now
    raise AssertionError("unreachable: every event leaves the window eventually")


@given(
    ages=st.lists(st.integers(min_value=0, max_value=120), max_size=12),
    limit=st.integers(min_value=0, max_value=6),
    window=st.integers(min_value=1, max_value=120),
)
def test_retry_after_agrees_with_a_brute_force_oracle(ages: list[int], limit: int, window: int) -> None:
    events = sorted(NOW - a for a in ages if NOW - a > NOW - window)  # what a store returns: within the window
    expected = _oracle(events, limit, float(window), NOW)
    got = retry_after(events, limit, float(window), NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    yield db
    db.close()


def test_limiter_refuses_the_extra_event_without_counting_it_and_frees_up_as_events_age(store: Any) -> None:
    clock = FakeClock(NOW)
    limiter = SharedRateLimiter(store, 60.0, clock=clock)
    for _ in range(3):
        limiter.hit("exports", "alice", 3, what="log exports")
        clock.advance(10)
    with pytest.raises(RateLimited) as info:
        limiter.hit("exports", "alice", 3, what="log exports")
    assert info.value.status == 429 and info.value.retry_after == 30  # the first left at NOW+60, now NOW+30
    assert "log exports" in info.value.message and "30 seconds" in info.value.message
    limiter.hit("exports", "bob", 3, what="log exports")  # another user has its own count
    limiter.hit("backtests", "alice", 3, what="backtests")  # and another kind
    clock.advance(29.5)
    with pytest.raises(RateLimited) as info:  # refused attempts did not extend the wait
        limiter.hit("exports", "alice", 3, what="log exports")
    assert info.value.retry_after == 1  # 0.5 s rounds up: a client retrying at the floor would be refused
    clock.advance(0.5)
    limiter.hit("exports", "alice", 3, what="log exports")
    limiter.hit("anything", "alice", 0, what="unlimited")  # 0: no limit


def test_replicas_share_one_window_and_old_events_are_swept(store: Any, tmp_path: Path) -> None:
    """Two limiters over one store are two replicas: a user cannot get the limit from each."""
    clock = FakeClock(NOW)
    first, second = SharedRateLimiter(store, 60.0, clock=clock), SharedRateLimiter(store, 60.0, clock=clock)
    first.hit("exports", "alice", 2, what="log exports")
    second.hit("exports", "alice", 2, what="log exports")
    for limiter in (first, second):
        with pytest.raises(RateLimited):
            limiter.hit("exports", "alice", 2, what="log exports")
    for n in range(20):
        first.hit("exports", f"once-{n}", 2, what="log exports")
    assert store.query_one("SELECT COUNT(*) FROM rate_events")[0] == 22
    clock.advance(61)
    second.hit("exports", "alice", 2, what="log exports")  # a minute on, the old rows go, whoever they were
    assert [tuple(r) for r in store.query("SELECT kind, subject FROM rate_events")] == [("exports", "alice")]


def test_settings_refuse_limits_that_make_no_sense() -> None:
    assert load_settings({}).rate_limits.log_exports > 0
    with pytest.raises(ConfigError) as info:
        load_settings({"KUBEHUB_RATE_LIMITS_WINDOW": "0"})
    assert info.value.setting == "KUBEHUB_RATE_LIMITS_WINDOW"
    with pytest.raises(ConfigError):
        load_settings({"KUBEHUB_RATE_LIMITS_BACKTESTS": "-1"})


@pytest.fixture
def limited(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = FakeClock(NOW)
    world = build_world(
        tmp_path,
        clock=clock,
        settings={
            "rate_limits": {"window": 60.0, "log_exports": 2, "backtests": 1, "long_queries": 2, "long_range_hours": 6},
            "alerts": {"evaluate": False},
        },
    )
    yield world, clock
    world.hub.close()


def test_the_limited_endpoints_exist(limited: tuple[TenancyWorld, FakeClock]) -> None:
    world, _ = limited
    endpoints = {rule.endpoint for rule in world.app.url_map.iter_rules()}
    assert set(ALWAYS) | set(BY_SPAN) <= endpoints


def test_exports_are_limited_per_user_with_429_and_retry_after(limited: tuple[TenancyWorld, FakeClock]) -> None:
    world, clock = limited
    alice, other = world.client("project-admin"), world.client("project-viewer")
    url = "/api/v1/logs/export?namespaces=ns-a1&format=jsonl"
    assert [alice.get(url).status_code for _ in range(2)] == [200, 200]
    r = alice.get(url)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "60"
    assert "log exports" in r.get_json()["error"]
    assert other.get(url).status_code == 200  # per user
    clock.advance(60)
    assert alice.get(url).status_code == 200


def test_long_histograms_count_and_short_ones_do_not(limited: tuple[TenancyWorld, FakeClock]) -> None:
    world, _ = limited
    client = world.client("project-admin")
    short = f"/api/v1/logs/histogram?namespaces=ns-a1&start={NOW - 3600:.0f}&end={NOW:.0f}"
    assert {client.get(short).status_code for _ in range(5)} == {200}
    week = f"/api/v1/logs/histogram?namespaces=ns-a1&start={NOW - 7 * 86400:.0f}"
    unbounded = "/api/v1/logs/histogram?namespaces=ns-a1"  # no start: the whole retention
    assert [client.get(week).status_code, client.get(unbounded).status_code] == [200, 200]
    r = client.get(week)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert client.get(short).status_code == 200  # short ones stay free
    malformed = "/api/v1/logs/histogram?namespaces=ns-a1&start=yesterday"
    assert client.get(malformed).status_code == 400  # not counted, refused by the view


def test_rankings_over_long_windows_are_limited_before_any_backend_is_asked(
    limited: tuple[TenancyWorld, FakeClock],
) -> None:
    world, _ = limited
    client = world.client("project-admin")
    url = "/api/v1/monitoring/workloads?metrics=workload_cpu_usage&sort_metric=workload_cpu_usage&window=24h&stat=p95"
    first = [client.get(url).status_code for _ in range(2)]
    assert 429 not in first  # (no Prometheus here: 503 naming it)
    assert client.get(url).status_code == 429
    assert client.get(url.replace("window=24h", "window=1h")).status_code != 429


def test_backtests_are_limited_at_the_api_and_the_console(limited: tuple[TenancyWorld, FakeClock]) -> None:
    world, clock = limited
    client = world.client("project-admin")
    url = "/api/v1/namespaces/ns-a1/alerting/policies/backtest"
    body = {"policy": {"name": "x"}, "start": NOW - 3600, "end": NOW}
    assert client.post(url, json=body).status_code != 429
    r = client.post(url, json=body)
    assert r.status_code == 429 and r.headers["Retry-After"] == "60" and "backtests" in r.get_json()["error"]
    session, csrf = world.session("project-admin")
    page = session.post(
        "/projects/ns-a1/alerting/policies/pol-x/backtest",
        data={"csrf_token": csrf, "start": "1h"},
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 429 and page.headers["Retry-After"] == "60"
    assert "text/html" in page.content_type
    clock.advance(61)
    assert client.post(url, json=body).status_code != 429


def test_failed_logins_answer_through_the_same_rate_limit_error(limited: tuple[TenancyWorld, FakeClock]) -> None:
    world, _ = limited
    client = world.client()
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"username": "padmin", "password": "wrong-password-1"})
    r = client.post("/api/v1/auth/token", json={"username": "padmin", "password": "wrong-password-1"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
