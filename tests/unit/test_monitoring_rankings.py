"""Ranking order, ties broken by name, missing values last, paging, and the topk shortcut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hub.collectors.rankings import entity_values, label_values, page_of, rank, select, topk_is_exact

pytestmark = pytest.mark.unit

KEYS = ["namespace", "pod"]


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*KEYS, "value"])


def names(ranked: pd.DataFrame) -> list[str]:
    return [f"{n}/{p}" for n, p in zip(ranked["namespace"], ranked["pod"], strict=True)]


def test_descending_order_breaks_ties_by_namespace_then_pod() -> None:
    values = frame([("b", "x", 2.0), ("a", "z", 5.0), ("a", "y", 2.0), ("a", "x", 2.0), ("c", "a", 9.0)])
    assert names(rank(values, KEYS)) == ["c/a", "a/z", "a/x", "a/y", "b/x"]


def test_ascending_order_also_breaks_ties_by_name() -> None:
    values = frame([("b", "x", 2.0), ("a", "z", 5.0), ("a", "y", 2.0), ("c", "a", -1.0)])
    assert names(rank(values, KEYS, descending=False)) == ["c/a", "a/y", "b/x", "a/z"]


def test_missing_values_come_last_in_name_order_whatever_the_direction() -> None:
    values = frame([("a", "nan", np.nan), ("a", "one", 1.0), ("a", "two", 2.0)])
    universe = pd.DataFrame({"namespace": ["a", "a", "z", "b"], "pod": ["one", "zzz", "q", "aaa"]})
    for descending in (True, False):
        ranked = rank(values, KEYS, descending=descending, universe=universe)
        tail = names(ranked)[2:]
        assert tail == ["a/nan", "a/zzz", "b/aaa", "z/q"]
        assert ranked["value"].iloc[2:].isna().all()
    assert names(rank(values, KEYS, universe=universe))[:2] == ["a/two", "a/one"]


def test_infinities_rank_as_values_not_as_missing() -> None:
    values = frame([("a", "inf", np.inf), ("a", "one", 1.0), ("a", "neg", -np.inf)])
    assert names(rank(values, KEYS)) == ["a/inf", "a/one", "a/neg"]


def test_paging_slices_the_ranking_and_an_empty_page_past_the_end() -> None:
    values = frame([("n", f"p{i:02d}", float(i)) for i in range(25)])
    ranked = rank(values, KEYS)
    assert names(page_of(ranked, page=1, limit=10))[0] == "n/p24"
    assert names(page_of(ranked, page=3, limit=10)) == [f"n/p{i:02d}" for i in range(4, -1, -1)]
    assert page_of(ranked, page=4, limit=10).empty


def test_entity_values_keep_one_row_per_entity() -> None:
    raw = pd.DataFrame(
        {
            "namespace": ["a", "a", "b"],
            "pod": ["p", "p", "q"],
            "series": [0, 1, 2],
            "timestamp": [1.0, 1.0, 1.0],
            "value": [1.0, 3.0, 2.0],
        }
    )
    out = entity_values(raw, KEYS)
    assert sorted(zip(out["pod"], out["value"], strict=True)) == [("p", 3.0), ("q", 2.0)]


def test_label_sets_give_one_entry_per_entity_as_frames_do() -> None:
    # an instant answer without a frame (the ranking's hot path): a duplicated entity keeps
    # its larger value, a NaN loses to any value, an absent key label is ""
    labels = [{"namespace": "a", "pod": "p"}, {"namespace": "a", "pod": "p"}, {"namespace": "b"}, {"pod": "r"}]
    out = label_values(labels, [np.nan, 3.0, 2.0, 1.0], KEYS)
    assert out.keys == (("a", "p"), ("b", ""), ("", "r"))
    assert out.values.tolist() == [3.0, 2.0, 1.0]
    assert label_values([], [], KEYS).keys == ()


@pytest.mark.parametrize(
    ("values", "needed", "fetched", "exact"),
    [
        ([9, 8, 7], 2, 5, True),  # fewer than asked: Prometheus returned everything
        ([9, 8, 7, 6, 5], 2, 5, True),  # the 2nd (8) beats the last fetched (5)
        ([9, 5, 5, 5, 5], 2, 5, False),  # a tie at the boundary may continue past what was fetched
        ([5, 5, 5, 5, 5], 1, 5, False),
        ([9, 8, 7, 6, np.nan], 2, 5, True),  # NaN means fewer real values than asked
    ],
)
def test_topk_is_exact_only_when_no_tie_can_cross_the_page_boundary(
    values: list[float], needed: int, fetched: int, exact: bool
) -> None:
    data = pd.DataFrame({"value": values})
    assert topk_is_exact(data, needed=needed, fetched=fetched) is exact


def test_topk_exactness_for_ascending_order() -> None:
    assert topk_is_exact(pd.DataFrame({"value": [1, 2, 3, 4, 5]}), needed=2, fetched=5, descending=False)
    assert not topk_is_exact(pd.DataFrame({"value": [1, 5, 5, 5, 5]}), needed=2, fetched=5, descending=False)


def test_select_joins_exact_pairs_not_the_cross_product() -> None:
    data = pd.DataFrame({"namespace": ["a", "a", "b", "b"], "pod": ["x", "y", "x", "y"], "value": [1, 2, 3, 4]})
    wanted = pd.DataFrame({"namespace": ["a", "b"], "pod": ["x", "y"]})
    out = select(data, KEYS, wanted)
    assert sorted(zip(out["namespace"], out["pod"], strict=True)) == [("a", "x"), ("b", "y")]
