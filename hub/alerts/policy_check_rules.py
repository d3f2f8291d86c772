"""Validating what a policy watches and when it fires: the target (nodes, workloads, label
selector) and the threshold rules, checked against the injected metric catalogue and units.
Pure (the catalogue comes in as a mapping); PromQL rules are ``policy_expr``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.alerts.policy_checker import _Check, _closest, _kind
from hub.alerts.policy_model import (
    _CATALOGUE_UNIT_ALIASES,
    _GLOB,
    _LABEL,
    _NAME,
    AGGREGATIONS,
    CATALOGUE_LEVEL,
    COMPARATORS,
    MAX_CONSECUTIVE,
    MAX_PERIOD,
    MAX_TARGETS,
    MAX_THRESHOLD,
    MIN_PERIOD,
    SEVERITIES,
    UNITS,
    WORKLOAD_KINDS,
    Rule,
    Target,
    WorkloadRef,
)
from hub.alerts.policy_yaml import _r
from hub.timeutil import format_duration


def _metric_table(metrics: Mapping[str, Any] | None, level: str) -> dict[str, str | None] | None:
    """Normalise the injected catalogue to {metric: unit or None} for one policy level."""
    if metrics is None:
        return None
    table = metrics.get(level)
    if table is None:
        table = metrics.get(CATALOGUE_LEVEL[level])
    if table is None:
        return {}
    if isinstance(table, Mapping):
        out: dict[str, str | None] = {}
        for name, unit in table.items():
            alias = _CATALOGUE_UNIT_ALIASES.get(str(unit).strip()) if isinstance(unit, str) else None
            out[str(name)] = alias
        return out
    return {str(name): None for name in table}


_RULE_FIELDS = ("name", "metric", "aggregation", "comparator", "threshold", "unit", "period", "consecutive", "severity")


def _parse_target(c: _Check, value: Any, level: str) -> Target:
    t = c.mapping(value, "target", ("nodes", "workloads", "selector"))
    nodes: list[str] = []
    workloads: list[WorkloadRef] = []
    if level == "node":
        if "workloads" in t:
            c.add("target.workloads", "a node-level policy targets nodes; use target.nodes")
        for i, item in enumerate(c.seq(t.get("nodes"), "target.nodes", limit=MAX_TARGETS)):
            text = c.string(item, f"target.nodes[{i}]", required=True)
            if text and not _GLOB.match(text):
                c.add(f"target.nodes[{i}]", f"{_r(text)} is not a node name or glob")
            elif text:
                nodes.append(text)
    else:
        if "nodes" in t:
            c.add("target.nodes", "a workload-level policy targets workloads of its namespace; use target.workloads")
        raw = t.get("workloads")
        if raw == "*" or raw == ["*"]:
            raw = []
        for i, item in enumerate(c.seq(raw, "target.workloads", limit=MAX_TARGETS)):
            path = f"target.workloads[{i}]"
            w = c.mapping(item, path, ("kind", "name"))
            if not w:
                if not isinstance(item, dict):
                    continue
                c.add(path, "needs a kind and a name")
                continue
            kind = c.choice(w.get("kind"), f"{path}.kind", (*WORKLOAD_KINDS, "*"))
            wname = c.string(w.get("name"), f"{path}.name", required=True)
            if wname and not _GLOB.match(wname):
                c.add(f"{path}.name", f"{_r(wname)} is not a workload name or glob")
            workloads.append(WorkloadRef(kind=kind, name=wname))
    if "*" in nodes:  # "every node" is one canonical form, the empty tuple
        nodes = []
    selector: list[tuple[str, str]] = []
    sel = t.get("selector")
    if sel is not None:
        if not isinstance(sel, dict):
            c.add("target.selector", f"must map label names to values or globs, got {_kind(sel)}")
        else:
            for key, val in sel.items():
                path = f"target.selector.{key}"
                if not isinstance(key, str) or not _LABEL.match(key):
                    c.add(path, f"{_r(key)} is not a label name")
                    continue
                text = c.string(val, path, required=True)
                if text:
                    selector.append((key, text))
    return Target(nodes=tuple(nodes), workloads=tuple(workloads), selector=tuple(sorted(selector)))


def _parse_rule(c: _Check, raw: Any, path: str, metric_table: dict[str, str | None] | None, level: str) -> Rule | None:
    if not isinstance(raw, dict):
        c.add(path, f"a rule must be a mapping of fields, got {_kind(raw)}")
        return None
    r = c.mapping(raw, path, _RULE_FIELDS)
    name = c.string(r.get("name"), f"{path}.name", required=True)
    if name and not _NAME.match(name):
        c.add(f"{path}.name", f"{_r(name)} must be lower-case letters, digits and '-', 1-63 characters")
    metric = c.string(r.get("metric"), f"{path}.metric", required=True)
    metric_unit: str | None = None
    if metric and metric_table is not None:
        if metric not in metric_table:
            known = sorted(metric_table)
            hint = _closest(metric, known)
            listing = f"; did you mean {_r(hint)}?" if hint else (f"; known: {', '.join(known[:12])}" if known else "")
            c.add(f"{path}.metric", f"unknown {level}-level metric {_r(metric)}{listing}")
        else:
            metric_unit = metric_table[metric]
    aggregation = c.choice(r.get("aggregation"), f"{path}.aggregation", AGGREGATIONS, default="avg")
    comparator = c.choice(r.get("comparator"), f"{path}.comparator", COMPARATORS)
    severity = c.choice(r.get("severity"), f"{path}.severity", SEVERITIES)

    unit_name = c.string(r.get("unit"), f"{path}.unit", default=metric_unit or "raw")
    unit = UNITS.get(unit_name)
    if unit is None:
        c.add(f"{path}.unit", f"{_r(unit_name)} is not a unit; known: {', '.join(UNITS)}")
    elif metric_unit and metric_unit in UNITS and UNITS[metric_unit].dimension != unit.dimension:
        c.add(f"{path}.unit", f"{metric} is measured in {metric_unit}; {_r(unit_name)} cannot be converted to it")

    threshold = 0.0
    raw_threshold = r.get("threshold")
    if raw_threshold is None:
        c.add(f"{path}.threshold", "is required")
    elif isinstance(raw_threshold, bool) or not isinstance(raw_threshold, int | float):
        c.add(f"{path}.threshold", f"must be a number, got {_kind(raw_threshold)}")
    elif not abs(raw_threshold) <= MAX_THRESHOLD:  # also NaN, infinities and 10**400 (no float)
        c.add(f"{path}.threshold", f"must be a finite number between {-MAX_THRESHOLD:g} and {MAX_THRESHOLD:g}")
    else:
        threshold = float(raw_threshold)
        if unit is not None and unit.nonnegative and threshold < 0:
            c.add(f"{path}.threshold", f"a negative threshold is meaningless for a value in {unit.name}")
        elif unit is not None and unit.upper is not None and threshold > unit.upper:
            hint = " (did you mean unit: percent?)" if unit.name == "ratio" else ""
            c.add(f"{path}.threshold", f"a {unit.name} threshold above {unit.upper:g} can never be reached{hint}")

    period = c.duration(r.get("period"), f"{path}.period", default=60.0)
    if r.get("period") is not None and not MIN_PERIOD <= period <= MAX_PERIOD and period > 0:
        c.add(
            f"{path}.period",
            f"must be between {format_duration(MIN_PERIOD)} and {format_duration(MAX_PERIOD)}, "
            f"got {format_duration(period)}",
        )
    elif period and period % 1:
        c.add(f"{path}.period", "must be a whole number of seconds")
    consecutive = c.integer(r.get("consecutive"), f"{path}.consecutive", low=1, high=MAX_CONSECUTIVE, default=1)
    return Rule(
        name=name,
        metric=metric,
        aggregation=aggregation,
        comparator=comparator,
        threshold=threshold,
        unit=unit_name if unit is not None else "raw",
        period=period,
        consecutive=consecutive,
        severity=severity,
    )
