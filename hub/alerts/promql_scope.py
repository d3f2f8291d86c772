"""PromQL in policy rules: parsing with a real PromQL parser (``promql-parser``, the Python
binding of the Rust parser) and, for a tenant's (workload-level) rule, forcing every vector
selector to the project's namespace. Pure: text in, text out; the only vendor library here is
``promql_parser``.

Why an AST printer and not a rewrite of the text: the scoped query is PRINTED from the parsed
tree, node by node, by this module; a node type it does not know is refused, never passed
through. So a construct the parser accepts but this module has not thought about cannot reach
Prometheus. Every selector it prints carries ``namespace="<ns>"`` (any namespace matcher the
tenant wrote is replaced), inside functions, subqueries, aggregations and both sides of binary
operations. Reading only the namespace's series, no value can carry another namespace's data;
the refusals below stop expressions that would forge or drop the ``namespace`` label of a row
(the engine still filters result rows by namespace after the query, and a row without the
label is an error, not a leak). Each refusal names the construct.

Refused for tenants: ``label_replace``/``label_join`` writing ``namespace``; ``count_values``
into ``namespace``; ``absent``/``absent_over_time`` (they invent a row from the selector's
matchers); ``vector()``, ``time()``-like and other series-less sides of ``or``/``and``/``unless``
and of vector-vector operations; a result without the namespace label (``sum by (pod)``,
``without (namespace)``, ``on(...)`` lacking ``namespace``, ``ignoring(namespace)``,
``group_left(namespace)``); ``@`` modifiers; negative offsets and offsets or subquery ranges
beyond a week; selectors without a metric name (``{__name__=~"..."}``) or with
``__name__`` matchers besides the name; Prometheus 3's ``or`` inside braces; functions not on
the allow-list (``info``, experimental ones); expressions over the length and depth limits.

Over 400 lines because the printer must handle every node type of the PromQL tree and each
refusal above in one place; split, a construct could slip through between modules.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import promql_parser as pp

MAX_EXPR_CHARS = 4096  # a rule's expression; an imported file's longest real rules are ~1 KB


MAX_DEPTH = 64  # nesting of the parsed tree (the printer recurses)


MAX_RANGE = dt.timedelta(days=7)  # offsets, ranges and subquery ranges a tenant may use


MAX_SUBQUERY_POINTS = 11_000  # Prometheus's own limit for a range query's points per series


_LABEL_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class PromQLRefused(ValueError):
    """An expression that does not parse or is not allowed; ``construct`` names the culprit."""

    def __init__(self, construct: str, message: str) -> None:
        super().__init__(f"{construct}: {message}")
        self.construct = construct
        self.reason = message


@dataclass(frozen=True)
class _Kind:
    """What a sub-expression yields: ``scalar``, ``string``, ``vector`` or ``matrix``, and for
    the last two whether every row keeps the ``namespace`` label of the series it was read from."""

    type: str
    namespaced: bool = False
    culprit: str = ""  # the construct that dropped the namespace label, for the refusal


_SCALAR = _Kind("scalar")


_STRING = _Kind("string")


# Functions whose result keeps the labels of their vector or matrix argument.
_KEEP = frozenset(
    {
        "abs",
        "ceil",
        "floor",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
        "round",
        "clamp",
        "clamp_max",
        "clamp_min",
        "sgn",
        "sort",
        "sort_desc",
        "timestamp",
        "histogram_quantile",
        "histogram_count",
        "histogram_sum",
        "histogram_fraction",
        "histogram_stddev",
        "histogram_stdvar",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "cos",
        "cosh",
        "sin",
        "sinh",
        "tan",
        "tanh",
        "deg",
        "rad",
        "label_replace",
        "label_join",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "predict_linear",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "quantile_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "last_over_time",
        "present_over_time",
        "mad_over_time",
        "holt_winters",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "hour",
        "minute",
        "month",
        "year",
        "sort_by_label",
        "sort_by_label_desc",
    }
)


_SCALAR_FUNCS = frozenset({"scalar", "time", "pi"})


_FORGING = {
    "absent": "invents a row from the selector's matchers when the series is missing",
    "absent_over_time": "invents a row from the selector's matchers when the series is missing",
}


_SET_OPS = frozenset({"and", "or", "unless"})


_COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})


_DROPS = "its rows would have no namespace label; group by namespace (e.g. by (namespace, pod))"


def parse_check(expr: str) -> None:
    """An admin's expression: it must parse (any construct is allowed at node level)."""
    _parse(expr)


def scope_expression(expr: str, namespace: str, cluster_label: str = "") -> str:
    """The expression with every selector forced to ``namespace``, printed from the parsed tree;
    raises :class:`PromQLRefused` naming the construct otherwise. ``cluster_label``: the value
    of the ``cluster`` label of the project's cluster on an endpoint shared by clusters; every
    selector then also carries ``cluster="<value>"`` (a same-named namespace of another cluster
    is never read), and a tenant's own matcher on ``cluster`` is refused (it could only try to
    point the rule at another cluster)."""
    tree = _parse(expr)
    text, kind = _Printer(namespace, cluster_label).node(tree, 0)
    if kind.type != "vector":
        raise PromQLRefused(
            "expression", f"returns a {kind.type}; an alerting expression must return series (an instant vector)"
        )
    if not kind.namespaced:
        raise PromQLRefused(kind.culprit or "expression", _DROPS)
    return text


def _parse(expr: str) -> object:
    if not isinstance(expr, str) or not expr.strip():
        raise PromQLRefused("expr", "is empty")
    if len(expr) > MAX_EXPR_CHARS:
        raise PromQLRefused("expr", f"has {len(expr)} characters; at most {MAX_EXPR_CHARS} are accepted")
    try:
        return pp.parse(expr)
    except (ValueError, RuntimeError) as exc:  # the parser's syntax errors
        raise PromQLRefused("syntax", str(exc)[:300]) from exc


def quote(value: str) -> str:
    """A PromQL double-quoted string (Go escapes; JSON's are a subset Prometheus reads)."""
    return json.dumps(value, ensure_ascii=False)


def _duration(value: dt.timedelta) -> str:
    return str(pp.display_duration(value))


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label(name: str, construct: str) -> str:
    if not name or name[0].isdigit() or any(ch not in _LABEL_OK for ch in name):
        raise PromQLRefused(construct, f"label name {name!r} is not a plain label name")
    return name


class _Printer:
    """Prints a parsed tree back to PromQL with each selector scoped to one namespace."""

    def __init__(self, namespace: str, cluster_label: str = "") -> None:
        self.ns = namespace
        self.cluster = cluster_label

    def node(self, e: object, depth: int) -> tuple[str, _Kind]:
        if depth > MAX_DEPTH:
            raise PromQLRefused("expression", f"is nested more than {MAX_DEPTH} levels deep")
        d = depth + 1
        if isinstance(e, pp.NumberLiteral):
            return _number(e.val), _SCALAR
        if isinstance(e, pp.StringLiteral):
            return quote(e.val), _STRING
        if isinstance(e, pp.ParenExpr):
            text, kind = self.node(e.expr, d)
            return f"({text})", kind
        if isinstance(e, pp.UnaryExpr):
            text, kind = self.node(e.expr, d)
            return f"-({text})", kind
        if isinstance(e, pp.VectorSelector):
            return self.selector(e), _Kind("vector", True)
        if isinstance(e, pp.MatrixSelector):
            return self.matrix(e), _Kind("matrix", True)
        if isinstance(e, pp.SubqueryExpr):
            return self.subquery(e, d)
        if isinstance(e, pp.Call):
            return self.call(e, d)
        if isinstance(e, pp.AggregateExpr):
            return self.aggregate(e, d)
        if isinstance(e, pp.BinaryExpr):
            return self.binary(e, d)
        raise PromQLRefused(type(e).__name__, "this kind of expression is not supported in a tenant's rule")

    # -- selectors ---------------------------------------------------------------------------

    def selector(self, e: pp.VectorSelector) -> str:
        matchers = e.matchers
        if matchers.or_matchers:
            raise PromQLRefused("or in a selector", "alternatives inside braces are not supported; write two rules")
        name = e.name
        parts: list[str] = []
        for m in matchers.matchers:
            label = _label(m.name, "selector")
            if label == "namespace":
                continue  # replaced by the project's namespace below
            if label == "cluster" and self.cluster:
                raise PromQLRefused(
                    "cluster matcher", "the project's cluster is matched by the hub; a rule may not match cluster"
                )
            if label == "__name__":
                if m.op == pp.MatchOp.Equal and name is None:
                    name = m.value
                    continue
                raise PromQLRefused(
                    "{__name__=~...}",
                    "selecting series by a pattern over metric names could widen the query; name the metric",
                )
            parts.append(f"{label}{_match_op(m.op)}{quote(m.value)}")
        if not name:
            raise PromQLRefused("selector without a metric name", "name the metric (e.g. kube_pod_info{...})")
        if any(ch not in _LABEL_OK and ch != ":" for ch in name) or name[0].isdigit():
            raise PromQLRefused("selector", f"metric name {name!r} is not a plain metric name")
        parts.insert(0, f"namespace={quote(self.ns)}")
        if self.cluster:
            parts.insert(1, f"cluster={quote(self.cluster)}")
        return f"{name}{{{','.join(parts)}}}" + self.modifiers(e.offset, e.at)

    def modifiers(self, offset: dt.timedelta | None, at: object) -> str:
        if at is not None:
            raise PromQLRefused("@ modifier", "evaluating at a fixed time is not allowed in alert rules")
        if offset is None:
            return ""
        if offset < dt.timedelta(0):
            raise PromQLRefused("offset", "negative offsets are not allowed")
        if offset > MAX_RANGE:
            raise PromQLRefused("offset", "offsets beyond 7d are not allowed")
        return f" offset {_duration(offset)}" if offset else ""

    def matrix(self, e: pp.MatrixSelector) -> str:
        vs = e.vector_selector
        if e.range > MAX_RANGE:
            raise PromQLRefused("range", "ranges beyond 7d are not allowed")
        # The modifiers of a range selector follow its range: x[5m] offset 1m.
        text = self.selector(_Stripped(vs))  # type: ignore[arg-type]
        return f"{text}[{_duration(e.range)}]" + self.modifiers(vs.offset, vs.at)

    def subquery(self, e: pp.SubqueryExpr, depth: int) -> tuple[str, _Kind]:
        rng = e.range or dt.timedelta(0)
        if rng > MAX_RANGE:
            raise PromQLRefused("subquery", "subquery ranges beyond 7d are not allowed")
        if e.step is not None and (e.step < dt.timedelta(seconds=1) or rng / e.step > MAX_SUBQUERY_POINTS):
            raise PromQLRefused("subquery", f"a step under 1s or more than {MAX_SUBQUERY_POINTS} points per series")
        text, kind = self.node(e.expr, depth)
        if kind.type != "vector":
            raise PromQLRefused("subquery", f"a subquery needs an instant vector inside, got a {kind.type}")
        if kind.culprit:
            raise PromQLRefused(kind.culprit, _DROPS)
        step = _duration(e.step) if e.step else ""
        return f"({text})[{_duration(rng)}:{step}]" + self.modifiers(e.offset, e.at), _Kind("matrix", kind.namespaced)

    # -- functions and aggregations -----------------------------------------------------------

    def call(self, e: pp.Call, depth: int) -> tuple[str, _Kind]:
        name = e.func.name
        if name in _FORGING:
            raise PromQLRefused(f"{name}()", _FORGING[name])
        args = [self.node(a, depth) for a in e.args]
        texts = ", ".join(t for t, _ in args)
        if name in ("label_replace", "label_join"):
            if len(e.args) < 2 or not isinstance(e.args[1], pp.StringLiteral):
                raise PromQLRefused(f"{name}()", "the destination label must be a plain string")
            if e.args[1].val == "namespace":
                raise PromQLRefused(f"{name}()", "writing the namespace label would forge a row's namespace")
        if name == "vector":
            return f"vector({texts})", _Kind("vector", False)
        if name in _SCALAR_FUNCS:
            return f"{name}({texts})", _SCALAR
        if name not in _KEEP:
            raise PromQLRefused(f"{name}()", "this function is not allowed in a tenant's rule")
        series = [k for _, k in args if k.type in ("vector", "matrix")]
        for k in series:
            if k.culprit:
                raise PromQLRefused(k.culprit, _DROPS)
        if not series:  # day_of_week() and friends without an argument read vector(time())
            return f"{name}({texts})", _Kind("vector", False)
        return f"{name}({texts})", _Kind("vector", all(k.namespaced for k in series))

    def aggregate(self, e: pp.AggregateExpr, depth: int) -> tuple[str, _Kind]:
        op = str(e.op)
        text, kind = self.node(e.expr, depth)
        if kind.type != "vector":
            raise PromQLRefused(f"{op}()", f"aggregates an instant vector, got a {kind.type}")
        if kind.culprit:
            raise PromQLRefused(kind.culprit, _DROPS)
        params = ""
        if e.param is not None:
            ptext, _ = self.node(e.param, depth)
            params = f"{ptext}, "
            if op == "count_values" and (not isinstance(e.param, pp.StringLiteral) or e.param.val == "namespace"):
                raise PromQLRefused("count_values()", "writing values into the namespace label would forge rows")
        mod = e.modifier
        keeps = kind.namespaced
        grouping = ""
        if mod is None:
            if op not in ("topk", "bottomk", "limitk", "limit_ratio"):  # these keep the series' labels
                keeps = False
        else:
            labels = [_label(x, f"{op}()") for x in mod.labels]
            if mod.type == pp.AggModifierType.By:
                grouping = f" by ({', '.join(labels)})"
                if op not in ("topk", "bottomk") and "namespace" not in labels:
                    keeps = False
            else:
                grouping = f" without ({', '.join(labels)})"
                if "namespace" in labels:
                    keeps = False
        # A result without the label is fine inside scalar() (one number of the namespace's
        # own series); anywhere a row could come out of it, it is refused (binary, top level).
        return f"{op}{grouping} ({params}{text})", _Kind("vector", keeps, "" if keeps else f"{op}()")

    # -- binary operations ---------------------------------------------------------------------

    def binary(self, e: pp.BinaryExpr, depth: int) -> tuple[str, _Kind]:
        op = str(e.op)
        lt, lk = self.node(e.lhs, depth)
        rt, rk = self.node(e.rhs, depth)
        mod = e.modifier
        vv = lk.type == "vector" and rk.type == "vector"
        if op in _SET_OPS or vv:
            for side, kind in (("left", lk), ("right", rk)):
                if kind.type == "vector" and kind.culprit:
                    raise PromQLRefused(kind.culprit, _DROPS)
                if kind.type != "vector" or not kind.namespaced:
                    what = "vector()/a scalar" if kind.type != "vector" or not kind.namespaced else kind.type
                    raise PromQLRefused(
                        f"{op} with a side without series",
                        f"its {side} side ({what}) has no namespace label: it could add or match rows of no namespace",
                    )
        text = ""
        if mod is not None:
            if mod.return_bool:
                text += " bool"
            matching = mod.matching
            if matching is not None:
                labels = [_label(x, f"{op} on()/ignoring()") for x in matching.labels]
                if matching.type == pp.LabelModifierType.Include:
                    if "namespace" not in labels:
                        raise PromQLRefused(
                            f"on({', '.join(labels)})",
                            "matching without namespace joins series of different namespaces",
                        )
                    text += f" on ({', '.join(labels)})"
                else:
                    if "namespace" in labels:
                        raise PromQLRefused("ignoring(namespace)", "matching that ignores namespace joins namespaces")
                    text += f" ignoring ({', '.join(labels)})"
            card = mod.card
            if card in (pp.VectorMatchCardinality.ManyToOne, pp.VectorMatchCardinality.OneToMany):
                group = [_label(x, "group_left()/group_right()") for x in mod.group_labels or ()]
                if "namespace" in group:
                    raise PromQLRefused("group_left(namespace)", "copying the namespace label from the other side")
                word = "group_left" if card == pp.VectorMatchCardinality.ManyToOne else "group_right"
                text += f" {word} ({', '.join(group)})"
        if lk.type == "scalar" and rk.type == "scalar":
            kind = _SCALAR
        elif lk.type == "vector" and rk.type == "vector":
            kind = _Kind("vector", True)
        else:
            vec = lk if lk.type == "vector" else rk
            if vec.type != "vector":
                raise PromQLRefused(op, f"cannot combine a {lk.type} and a {rk.type}")
            kind = vec
        return f"{lt} {op}{text} {rt}", kind


class _Stripped:
    """A selector's name and matchers without its offset and ``@`` (printed after a range)."""

    def __init__(self, vs: pp.VectorSelector) -> None:
        self.name = vs.name
        self.matchers = vs.matchers
        self.offset = None
        self.at = None


def _match_op(op: object) -> str:
    ops = ((pp.MatchOp.Equal, "="), (pp.MatchOp.NotEqual, "!="), (pp.MatchOp.Re, "=~"), (pp.MatchOp.NotRe, "!~"))
    for k, v in ops:
        if op == k:
            return v
    raise PromQLRefused("selector", f"unknown matcher {op!r}")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression's selectors read (for the import report: which alerts
    read series a recording rule makes)."""
    found: set[str] = set()
    stack: list[object] = [_parse(expr)]
    while stack:
        e = stack.pop()
        if isinstance(e, pp.MatrixSelector):
            e = e.vector_selector
        if isinstance(e, pp.VectorSelector):
            name = e.name or next((m.value for m in e.matchers.matchers if m.name == "__name__"), None)
            if name:
                found.add(name)
            continue
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(e, attr, None)
            if child is not None:
                stack.append(child)
        stack.extend(getattr(e, "args", None) or [])
    return found
