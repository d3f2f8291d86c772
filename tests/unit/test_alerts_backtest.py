"""The backtest's chunked fetch: the pieces cover exactly the points of the whole range."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from hub.alerts.backtest import _fetch_in_chunks

T0 = 1_800_000_000.0


def grid(start: float, end: float, step: float) -> pd.DataFrame:
    ts = start + step * np.arange(round((end - start) / step) + 1)
    return pd.DataFrame({"series": 0, "timestamp": ts, "value": ts % 7})


@pytest.mark.parametrize(("slots", "period", "step"), [(1440, 60.0, 15.0), (288, 300.0, 75.0), (10, 60.0, 15.0)])
def test_the_pieces_together_are_the_points_of_one_range_query(slots: int, period: float, step: float) -> None:
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()

    def range_query(promql: str, start: float, end: float, step_: float) -> pd.DataFrame:
        with lock:
            calls.append((start, end))
        return grid(start, end, step_)

    first, last = T0, T0 + (slots - 1) * period
    got = _fetch_in_chunks(range_query, "m", first=first, last=last, period=period, step=step)
    whole = grid(first - period + step, last, step)
    assert sorted(got["timestamp"]) == list(whole["timestamp"])
    assert len(calls) == (1 if slots < 60 else min(4, slots // 60))
