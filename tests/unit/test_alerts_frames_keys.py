"""Entity keys and values of a prepared query frame, against pandas' own rendering of the
labels (the engine joins them in plain Python for speed; the keys must not change, since the
tracked states are stored under them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hub.alerts.engine_eval import aggregate
from hub.alerts.engine_frames import prepare_frame
from hub.alerts.engine_model import FetchKey, PlannedQuery

pytestmark = pytest.mark.unit


def test_entity_keys_are_the_labels_as_pandas_renders_them_joined_by_slashes() -> None:
    frame = pd.DataFrame(
        {
            "namespace": ["a", "b", None, "d", "e"],
            "pod": ["p1", float("nan"), "p3", "", "p/5"],
            "n": [1, 2, 3, 4, 5],
            "value": ["1.5", "x", "NaN", 2, "+Inf"],
        },
        index=[10, 11, 12, 13, 14],
    )
    prepared = prepare_frame(frame, ("namespace", "pod", "n"), "node")
    expected = frame["namespace"].astype(str) + "/" + frame["pod"].astype(str) + "/" + frame["n"].astype(str)
    assert list(prepared.keys) == expected.tolist()
    assert prepared.keys.dtype == object
    np.testing.assert_array_equal(prepared.values, pd.to_numeric(frame["value"], errors="coerce").to_numpy(float))
    single = prepare_frame(frame, ("pod",), "node")
    assert list(single.keys) == frame["pod"].astype(str).tolist()
    assert list(prepared.labels.index) == [0, 1, 2, 3, 4]  # rows numbered from 0 whatever the index


def test_a_one_point_fetch_keeps_every_row_at_the_slot_end_and_only_those() -> None:
    q = PlannedQuery(
        key=FetchKey("node", "promql:up", 60.0), at=600.0, start=600.0, step=60.0, promql="up",
        entity_labels=("*",), aggregations=("last",),
    )  # fmt: skip
    frame = pd.DataFrame({"node": ["a", "b"], "series": [0, 1], "timestamp": [600.0, 600.0], "value": [1.0, 2.0]})
    got = aggregate(frame, q)["last"]
    assert got.to_dict("list") == {"node": ["a", "b"], "value": [1.0, 2.0]}
    mixed = pd.DataFrame(
        {"node": ["a", "b", "c"], "series": [0, 1, 2], "timestamp": [600.0, 570.0, 600.0], "value": [1.0, 2.0, 3.0]}
    )
    got = aggregate(mixed, q)["last"]
    assert got.to_dict("list") == {"node": ["a", "c"], "value": [1.0, 3.0]}
    assert list(got.index) == [0, 1]
