"""A fake of OUR query-backend protocol (hub.collectors.prometheus.QueryBackend) for unit tests.

It knows a few per-pod values per raw series and answers the query shapes the monitoring
service sends, honouring the namespace and pod matchers it finds in the PromQL the way
Prometheus would. Every query is recorded so tests can assert on what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hub.collectors.prometheus import QuerySpec, Vector, frame_vector
from hub.errors import BackendUnavailable

_MATCHER = re.compile(r'\b(namespace|pod)(=~|=)"((?:[^"\\]|\\.)*)"')


def _allowed(promql: str, label: str) -> set[str] | None:
    for name, op, raw in _MATCHER.findall(promql):
        if name != label:
            continue
        text = raw.replace("\\\\", "\\")
        if op == "=":
            return {text}
        return {alt.replace("\\.", ".") for alt in text.split("|")}
    return None


class FakeBackend:
    """``values[series_name][(namespace, pod)] = value``; ``pods`` is the inventory."""

    def __init__(self, values: dict[str, dict[tuple[str, str], float]], pods: Sequence[tuple[str, str]]) -> None:
        self.values = values
        self.pods = list(pods)
        self.sent: list[QuerySpec] = []
        self.fail: BaseException | None = None

    # -- protocol ------------------------------------------------------------------------
    def instant(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> pd.DataFrame:
        return self._answer(QuerySpec(promql, time=time))

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame:
        return self._answer(QuerySpec(promql, start=start, end=end, step=step))

    def many(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[pd.DataFrame]:
        return [self._answer(s) for s in specs]

    def vectors(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[Vector]:
        return [frame_vector(self._answer(s)) for s in specs]

    # -- evaluation ----------------------------------------------------------------------
    def _answer(self, spec: QuerySpec) -> pd.DataFrame:
        self.sent.append(spec)
        if self.fail is not None:
            raise self.fail
        q = spec.promql
        namespaces, pods = _allowed(q, "namespace"), _allowed(q, "pod")

        def visible(key: tuple[str, str]) -> bool:
            return (namespaces is None or key[0] in namespaces) and (pods is None or key[1] in pods)

        inventory = [k for k in self.pods if visible(k)]
        if q.startswith("count("):
            return _frame([((), float(len(inventory)))], [], spec)
        series = next((name for name in self.values if name in q), None)
        if series is None:  # the inventory itself (the ranking's universe)
            return _frame([(k, 1.0) for k in inventory], ["namespace", "pod"], spec)
        rows = [(k, v) for k, v in self.values[series].items() if visible(k)]
        bound = re.search(r"\) (>=|<=) ([-+0-9.eE]+|[-+]Inf)$", q)
        if bound and not q.startswith(("topk(", "bottomk(")):
            limit = float(bound.group(2))
            keep = (lambda v: v >= limit) if bound.group(1) == ">=" else (lambda v: v <= limit)
            rows = [r for r in rows if keep(r[1])]
        top = re.match(r"(topk|bottomk)\((\d+),", q)
        if top:
            rows = [r for r in rows if not np.isnan(r[1])]
            rows.sort(key=lambda r: r[1], reverse=top.group(1) == "topk")
            rows = rows[: int(top.group(2))]  # like Prometheus: which of equal values is unspecified
        return _frame(rows, ["namespace", "pod"], spec)


def _frame(rows: list[tuple[tuple[str, ...], float]], labels: list[str], spec: QuerySpec) -> pd.DataFrame:
    if spec.start is None:
        times = [spec.time or 1000.0]
    else:
        assert spec.end is not None and spec.step is not None
        times = [spec.start + i * spec.step for i in range(int((spec.end - spec.start) // spec.step) + 1)]
    data: dict[str, list] = {name: [] for name in labels}
    data.update(series=[], timestamp=[], value=[])
    for i, (key, value) in enumerate(rows):
        for t in times:
            for name, part in zip(labels, key, strict=True):
                data[name].append(part)
            data["series"].append(i)
            data["timestamp"].append(float(t))
            data["value"].append(float(value))
    frame = pd.DataFrame(data)
    return frame.astype({"series": np.int64, "timestamp": np.float64, "value": np.float64})


def unavailable() -> BackendUnavailable:
    return BackendUnavailable("prometheus", "cannot connect to http://127.0.0.1:1")
