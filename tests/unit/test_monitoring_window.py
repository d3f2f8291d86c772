"""Window statistics from kept points (hub/collectors/monitoring_window.py): the grid is the
subquery's, the statistics follow PromQL's rules, and a table asks only for the points it does
not hold for good. Prometheus itself is the reference in
tests/integration/test_monitoring_sandbox.py; these pin the rules with hand-computed values."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from hub.collectors.catalogue import Catalogue, Filters
from hub.collectors.monitoring_window import CHUNK_STEPS, SETTLE_SECONDS, SteppedWindows, grid, over_time
from hub.collectors.prometheus import Vector
from hub.errors import BackendUnavailable

pytestmark = pytest.mark.unit

DAY = 86_400.0
T0 = 1_800_000_000  # a multiple of 300


def test_the_grid_is_the_multiples_of_the_step_in_the_window_both_ends_included() -> None:
    inside = grid(T0 + 120.5, DAY, 300)
    assert len(inside) == 288 and inside[0] == T0 - DAY + 300 and inside[-1] == T0
    on_a_step = grid(float(T0), DAY, 300)  # a window ending on a step holds both ends
    assert len(on_a_step) == 289 and on_a_step[0] == T0 - DAY and on_a_step[-1] == T0
    assert grid(T0 + 14.999, 3600.0, 15) == list(range(T0 - 3600 + 15, T0 + 1, 15))


def rows(*cells: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """A matrix from rows of points, None where the series has no point at that time."""
    matrix = np.array([[np.nan if c is None else c for c in row] for row in cells], dtype=float)
    present = np.array([[c is not None for c in row] for row in cells])
    return matrix, present


def test_statistics_follow_promql_rules_for_nan_and_missing_points() -> None:
    matrix, present = rows(
        [1.0, 2.0, None, 6.0],  # plain
        [1.0, math.nan, 3.0, None],  # one NaN point
        [math.nan, math.nan, None, None],  # only NaN
        [None, None, None, None],  # no point in the window
    )
    avg = over_time(matrix, present, "avg")
    assert avg[0] == 3.0 and math.isnan(avg[1]) and math.isnan(avg[2]) and math.isnan(avg[3])
    assert over_time(matrix, present, "max")[:2].tolist() == [6.0, 3.0]
    assert over_time(matrix, present, "min")[:2].tolist() == [1.0, 1.0]
    assert math.isnan(over_time(matrix, present, "max")[2]) and math.isnan(over_time(matrix, present, "min")[3])
    # quantile: rank q*(n-1) between the two nearest ranks, NaN sorted first
    p50 = over_time(matrix, present, "p50")
    assert p50[0] == 2.0  # ranks 0..2 of (1, 2, 6): rank 1
    assert p50[1] == 1.0  # (NaN, 1, 3): rank 1 is 1
    p90 = over_time(matrix, present, "p90")
    assert p90[0] == pytest.approx(2.0 * 0.2 + 6.0 * 0.8)
    assert math.isnan(p90[3])


class RangeBackend:
    """Answers range queries with ``value(series, t)`` for every series at every step, and
    records them; ``fail_at`` makes that call (0-based) fail."""

    def __init__(
        self, series: Sequence[dict[str, str]], value: Callable[[int, int], float | None], fail_at: int | None = None
    ) -> None:
        self.series = list(series)
        self.value = value
        self.calls: list[tuple[int, int, float]] = []
        self.fail_at = fail_at

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame:
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            self.calls.append((int(start), int(end), step))
            raise BackendUnavailable("prometheus", "timed out")
        self.calls.append((int(start), int(end), step))
        data: dict[str, list] = {"namespace": [], "workload": [], "series": [], "timestamp": [], "value": []}
        for i, labels in enumerate(self.series):
            for t in range(int(start), int(end) + 1, int(step)):
                v = self.value(i, t)
                if v is None:
                    continue
                data["namespace"].append(labels["namespace"])
                data["workload"].append(labels["workload"])
                data["series"].append(i)
                data["timestamp"].append(float(t))
                data["value"].append(v)
        return pd.DataFrame(data)

    def instant(self, *args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("a stepped window asks for ranges only")

    many = vectors = instant


SERIES = [{"namespace": "a", "workload": "api"}, {"namespace": "b", "workload": "db"}]


def value(i: int, t: int) -> float | None:
    if i == 1 and t < T0 - 6 * 3600:
        return None  # db exists only for the last six hours
    return float((t // 300) % 7 + 10 * i)


def expected(at: float, stat: str) -> dict[str, float]:
    out = {}
    for i, labels in enumerate(SERIES):
        points = [v for t in grid(at, DAY, 300) if (v := value(i, t)) is not None]
        out[labels["workload"]] = {"avg": np.mean, "max": np.max}[stat](points)
    return out


def as_dict(vector: Vector) -> dict[str, float]:
    return {m["workload"]: v for m, v in zip(vector.metrics, vector.values, strict=True)}


def ask(
    windows: SteppedWindows, backend: RangeBackend, at: float, stat: str = "avg", now: float | None = None
) -> Vector:
    key = ("default", "", "workloads", "workload_cpu_usage", DAY)
    return windows.statistic(
        key, Catalogue(), backend, Filters(), stat=stat, at=at,  # type: ignore[arg-type]
        remaining=lambda: 9.0, now=lambda: at if now is None else now,
    )  # fmt: skip


def test_the_first_table_asks_for_the_window_in_chunks_newest_first_and_the_next_step_for_its_new_points() -> None:
    backend = RangeBackend(SERIES, value)
    windows = SteppedWindows()
    at = T0 + 200.0
    first = ask(windows, backend, at)
    assert as_dict(first) == pytest.approx(expected(at, "avg"), rel=1e-12)
    assert len(backend.calls) == 288 // CHUNK_STEPS
    assert backend.calls[0] == (T0 - (CHUNK_STEPS - 1) * 300, T0, 300)  # the newest points first
    assert all(end - start == (CHUNK_STEPS - 1) * 300 for start, end, _ in backend.calls)
    assert first.timestamps == (at, at)
    # The same window's other statistic, within the step: nothing asked.
    assert as_dict(ask(windows, backend, at, "max")) == pytest.approx(expected(at, "max"))
    assert len(backend.calls) == 288 // CHUNK_STEPS
    # The next step: its one new point only (the newest point before it was evaluated 200 s
    # after its time, long enough to be final).
    assert SETTLE_SECONDS <= 200.0
    later = T0 + 300 + 30.0
    assert as_dict(ask(windows, backend, later)) == pytest.approx(expected(later, "avg"), rel=1e-12)
    assert backend.calls[-1] == (T0 + 300, T0 + 300, 300) and len(backend.calls) == 288 // CHUNK_STEPS + 1
    # Evaluated only 30 s after its time, the newest point is not final: within its step (a
    # table of another statistic) it serves as it is, and the next step asks for it again.
    within = later + 60.0
    assert as_dict(ask(windows, backend, within, "max")) == pytest.approx(expected(within, "max"), rel=1e-12)
    assert len(backend.calls) == 288 // CHUNK_STEPS + 1
    again = later + 300.0
    assert as_dict(ask(windows, backend, again)) == pytest.approx(expected(again, "avg"), rel=1e-12)
    assert backend.calls[-1] == (T0 + 300, T0 + 600, 300) and len(backend.calls) == 288 // CHUNK_STEPS + 2


def test_a_chunk_that_fails_raises_and_the_chunks_before_it_are_kept() -> None:
    backend = RangeBackend(SERIES, value, fail_at=2)
    windows = SteppedWindows()
    at = T0 + 200.0
    with pytest.raises(BackendUnavailable):
        ask(windows, backend, at)
    assert len(backend.calls) == 3
    backend.fail_at = None
    assert as_dict(ask(windows, backend, at)) == pytest.approx(expected(at, "avg"), rel=1e-12)
    assert len(backend.calls) == 3 + 288 // CHUNK_STEPS - 2  # the two kept chunks were not asked again


def test_a_series_with_a_nan_point_is_left_out_of_an_average_and_kept_in_a_maximum() -> None:
    def with_nan(i: int, t: int) -> float | None:
        return math.nan if (i == 0 and t == T0) else value(i, t)

    windows = SteppedWindows()
    backend = RangeBackend(SERIES, with_nan)
    avg = as_dict(ask(windows, backend, T0 + 200.0))
    assert set(avg) == {"db"}  # api's average is NaN: dropped, as `>= -Inf` drops it
    assert set(as_dict(ask(windows, backend, T0 + 200.0, "max"))) == {"api", "db"}


def snapshot_bytes(windows: SteppedWindows) -> bytes:
    out = io.BytesIO()
    windows.snapshot(out)
    return out.getvalue()


def test_a_snapshot_brings_back_the_final_points_so_a_restarted_hub_asks_for_none_of_them() -> None:
    at = T0 + 200.0  # every point evaluated at least 200 s after its time: all final
    first = SteppedWindows()
    ask(first, RangeBackend(SERIES, value), at)
    data = snapshot_bytes(first)
    restarted, backend = SteppedWindows(), RangeBackend(SERIES, value)
    assert restarted.restore(data) == 288
    for stat in ("avg", "max"):
        assert as_dict(ask(restarted, backend, at, stat)) == pytest.approx(expected(at, stat), rel=1e-12)
    assert backend.calls == []
    later = T0 + 300 + 200.0  # the next step: its new point only
    assert as_dict(ask(restarted, backend, later)) == pytest.approx(expected(later, "avg"), rel=1e-12)
    assert backend.calls == [(T0 + 300, T0 + 300, 300)]


def test_a_point_not_yet_final_is_left_out_of_the_snapshot_and_asked_for_after_the_restart() -> None:
    at = T0 + 200.0
    first = SteppedWindows()
    ask(first, RangeBackend(SERIES, value), at, now=T0 + 30.0)  # the newest point only 30 s old
    restarted, backend = SteppedWindows(), RangeBackend(SERIES, value)
    assert restarted.restore(snapshot_bytes(first)) == 287
    assert as_dict(ask(restarted, backend, at)) == pytest.approx(expected(at, "avg"), rel=1e-12)
    assert backend.calls == [(T0, T0, 300)]


def test_catching_up_after_a_restore_asks_for_the_points_since_the_stop_and_the_next_table_for_none() -> None:
    """What ``kubehub serve`` does after reading the points back (hub/runtime/monitoring.py):
    the first ranking after a restart no longer waits for the points since the stop."""
    at = T0 + 200.0
    first = SteppedWindows()
    ask(first, RangeBackend(SERIES, value), at)
    restarted, backend = SteppedWindows(), RangeBackend(SERIES, value)
    restarted.restore(snapshot_bytes(first))
    later = T0 + 600 + 200.0  # restarted two steps after the stop
    clusters: list[str] = []

    def backend_of(cluster: str) -> RangeBackend:
        clusters.append(cluster)
        return backend

    caught = restarted.catch_up(Catalogue(), backend_of, at=later, now=lambda: later, budget=9.0)  # type: ignore[arg-type]
    assert caught == (1, []) and clusters == ["default"]
    assert backend.calls == [(T0 + 300, T0 + 600, 300)]  # the two new points, nothing before
    backend.calls.clear()
    assert as_dict(ask(restarted, backend, later)) == pytest.approx(expected(later, "avg"), rel=1e-12)
    assert backend.calls == []


def test_a_catch_up_early_in_a_step_serves_that_steps_first_table_without_a_query() -> None:
    """At 20,000 pods the first table after a restart waited ~25 s for the one point the catch-up
    had asked for 30 s after its time (not final, so asked for again). Within its step it is as
    good as a point asked for now; the next step asks for it again."""
    first = SteppedWindows()
    ask(first, RangeBackend(SERIES, value), T0 + 200.0)
    restarted, backend = SteppedWindows(), RangeBackend(SERIES, value)
    restarted.restore(snapshot_bytes(first))
    caught_at = T0 + 600 + 30.0
    restarted.catch_up(Catalogue(), lambda _: backend, at=caught_at, now=lambda: caught_at, budget=9.0)  # type: ignore[arg-type,return-value]
    assert backend.calls == [(T0 + 300, T0 + 600, 300)]
    table_at = T0 + 600 + 100.0
    assert as_dict(ask(restarted, backend, table_at)) == pytest.approx(expected(table_at, "avg"), rel=1e-12)
    assert len(backend.calls) == 1
    next_step = T0 + 900 + 10.0
    ask(restarted, backend, next_step)
    assert backend.calls[1:] == [(T0 + 600, T0 + 900, 300)]


def test_a_set_that_cannot_be_caught_up_is_reported_and_the_others_are_caught_up() -> None:
    at = T0 + 200.0
    windows, backend = SteppedWindows(), RangeBackend(SERIES, value)
    ask(windows, backend, at)
    east = ("east", "", "nodes", "node_load1", DAY)
    windows.points(east, 300, "x")  # a set of a cluster whose Prometheus is gone

    def backend_of(cluster: str) -> RangeBackend:
        if cluster == "east":
            raise BackendUnavailable("prometheus of cluster east", "the cluster has no metrics source")
        return backend

    later = T0 + 300 + 200.0
    whole, problems = windows.catch_up(Catalogue(), backend_of, at=later, now=lambda: later, budget=9.0)  # type: ignore[arg-type]
    assert whole == 1 and len(problems) == 1
    assert problems[0].startswith("nodes/node_load1 over 86400 s: prometheus of cluster east is unavailable")


def test_points_kept_for_another_expression_are_not_used() -> None:
    key = ("default", "", "workloads", "workload_cpu_usage", DAY)
    first = SteppedWindows()
    ask(first, RangeBackend(SERIES, value), T0 + 200.0)
    restarted = SteppedWindows()
    restarted.restore(snapshot_bytes(first))
    times = grid(T0 + 200.0, DAY, 300)
    # The catalogue now gives another inner expression (say, a recorded series): a new set.
    assert restarted.points(key, 300, "sum by (workload) (recorded:cpu)").wanted(times) != []
    backend = RangeBackend(SERIES, value)
    ask(restarted, backend, T0 + 200.0)  # and back to the first expression: asked again as well
    assert len(backend.calls) == 288 // CHUNK_STEPS


MISMATCHED = {
    "key": ["c", "", "nodes", "m", 3600.0],
    "step": 15,
    "expr": "e",
    "series": [[["node", "n1"]]],
    "times": [15],
    "counts": [2],  # two points said, one in the arrays
    "arrays": 0,
}


@pytest.mark.parametrize(
    "data",
    [b"", b"not a snapshot", b"PK\x03\x04 truncated zip"],
    ids=["empty", "text", "broken-zip"],
)
def test_bytes_that_are_not_a_snapshot_are_refused_and_change_nothing(data: bytes) -> None:
    windows = SteppedWindows()
    ask(windows, RangeBackend(SERIES, value), T0 + 200.0)
    before = snapshot_bytes(windows)
    with pytest.raises(ValueError, match="not a window snapshot"):
        windows.restore(data)
    assert snapshot_bytes(windows) == before


def test_an_archive_of_another_shape_or_with_pickled_objects_is_refused() -> None:
    import json

    def archive(**arrays: np.ndarray) -> bytes:
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    def head(doc: object) -> np.ndarray:
        return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)

    refused = [
        archive(other=np.zeros(3)),  # no manifest
        archive(manifest=head({"format": 999, "sets": []})),  # another format
        archive(manifest=np.array([{"format": 1}], dtype=object)),  # a pickle
        archive(  # a manifest whose counts do not match its arrays
            manifest=head({"format": 1, "sets": [MISMATCHED]}),
            rows0=np.zeros(1, dtype=np.int64),
            values0=np.zeros(1),
        ),
    ]
    for data in refused:
        with pytest.raises(ValueError, match="snapshot"):
            SteppedWindows().restore(data)
