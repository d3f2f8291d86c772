"""PromQL building: escaping, name validation, and the namespace scope in every selector."""

from __future__ import annotations

import re

import pytest

from hub.collectors.catalogue import (
    ENTITY_LABELS,
    LEVELS,
    SERIES_LABELS,
    TENANT_LEVELS,
    Catalogue,
    EmptyScope,
    Filters,
)
from hub.collectors.monitoring import parse_request
from hub.collectors.promql import Matcher, one_of, quote, regex_literal, validate_name
from hub.errors import InvalidInput

pytestmark = pytest.mark.unit

HOSTILE = [
    'a"}or{x=~".*',
    'team-a"} or vector(1) or {x="',
    ".*",
    "team-a|team-b",
    "team-\\a",
    "team-a\n",
    "Team-A",
    "",
    "a" * 254,
]

CATALOGUE = Catalogue()


# -- a tiny PromQL lexer: enough to find selectors and decode their string literals ---------


def _decode(literal: str) -> str:
    """Decode a PromQL double-quoted string (the escapes quote() writes)."""
    body = literal[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def selectors(promql: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Every ``name{matchers}`` of an expression, with matchers as (label, op, value).

    Strings are lexed properly, so a quote or brace inside a value cannot end a selector
    early: if escaping failed, the matcher count or values would come out wrong here.
    """
    found = []
    i = 0
    while i < len(promql):
        m = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{").match(promql, i)
        if m and (i == 0 or not re.match(r"[a-zA-Z0-9_:]", promql[i - 1])):
            name = m.group(1)
            j = m.end()
            matchers = []
            while promql[j] != "}":
                lm = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"').match(promql, j)
                assert lm, f"cannot lex matcher at {promql[j : j + 40]!r}"
                k = lm.end()
                while promql[k] != '"':
                    k += 2 if promql[k] == "\\" else 1
                matchers.append((lm.group(1), lm.group(2), _decode(promql[lm.end() - 1 : k + 1])))
                j = k + 1
                if promql[j] == ",":
                    j += 1
            found.append((name, matchers))
            i = j + 1
            continue
        if promql[i] == '"':
            i += 1
            while promql[i] != '"':
                i += 2 if promql[i] == "\\" else 1
        i += 1
    return found


# -- escaping -------------------------------------------------------------------------------


def test_quote_escapes_everything_that_could_end_the_string() -> None:
    assert quote('a"b') == '"a\\"b"'
    assert quote("a\\b") == '"a\\\\b"'
    assert quote("a\nb") == '"a\\nb"'
    assert quote("a\x01b") == '"a\\x01b"'
    for text in HOSTILE:
        assert _decode(quote(text)) == text


def test_regex_literal_matches_exactly_the_literal_and_nothing_wider() -> None:
    for text in ["a.b", ".*", "a|b", "x+y", "(a)", "[a-z]", "^a$", "a{2}", "a\\b"]:
        pattern = regex_literal(text)
        assert re.fullmatch(pattern, text)
    assert not re.fullmatch(regex_literal("a.b"), "axb")
    assert not re.fullmatch(regex_literal(".*"), "anything")
    assert not re.fullmatch(regex_literal("a|b"), "a")


def test_one_name_is_an_equality_matcher_and_several_an_alternation_of_literals() -> None:
    assert one_of("namespace", ["team-a"]).render() == 'namespace="team-a"'
    rendered = one_of("pod", ["web-1.x", "api-0"]).render()
    assert rendered == 'pod=~"api-0|web-1\\\\.x"'
    regex = _decode(rendered.split("=~", 1)[1])
    assert re.fullmatch(regex, "web-1.x") and re.fullmatch(regex, "api-0")
    assert not re.fullmatch(regex, "web-1yx")


def test_an_empty_matcher_set_is_refused_rather_than_rendered() -> None:
    with pytest.raises(ValueError):
        Matcher("namespace", ())


@pytest.mark.parametrize(
    ("grammar", "name"),
    [
        (g, n)
        for g in ("label", "subdomain", "label_value")
        for n in HOSTILE
        if not (g == "label_value" and n == "Team-A")  # upper case is a valid label value
    ],
)
def test_hostile_names_are_rejected_by_every_grammar(grammar: str, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_name(name, grammar=grammar, field="namespaces")
    assert info.value.field == "namespaces"


def test_kubernetes_names_are_accepted() -> None:
    assert validate_name("team-a", grammar="label", field="f") == "team-a"
    assert validate_name("web-5d8f7.x-1", grammar="subdomain", field="f") == "web-5d8f7.x-1"
    assert validate_name("Retail_2", grammar="label_value", field="f") == "Retail_2"


@pytest.mark.parametrize("param", ["namespaces", "pods", "workloads", "nodes", "workspace", "containers"])
def test_a_hostile_filter_value_is_a_400_naming_the_parameter(param: str) -> None:
    level = "nodes" if param == "nodes" else "containers"
    if param == "workspace":
        level = "namespaces"
    with pytest.raises(InvalidInput) as info:
        parse_request(CATALOGUE, level, {param: 'a"}or{x=~".*'}, now=0, max_points=100)
    assert info.value.field == param


def test_a_hostile_name_that_slipped_past_validation_still_stays_one_literal() -> None:
    """Defence in depth: even unvalidated, the value decodes to itself and adds no matcher."""
    hostile = 'a"}or{x=~".*'
    expr = CATALOGUE.expr("pods", "pod_cpu_usage", Filters(namespaces=(hostile,)))
    found = selectors(expr)
    assert found
    for _name, matchers in found:
        ns = [m for m in matchers if m[0] == "namespace"]
        assert ns == [("namespace", "=", hostile)]
        assert all(m[0] in ("namespace", "container") for m in matchers)


# -- the scope reaches every selector -----------------------------------------------------


def _tenant_expressions(filters: Filters) -> list[tuple[str, str, str]]:
    out = []
    for level in sorted(TENANT_LEVELS):
        for metric in CATALOGUE.metrics(level):
            out.append((level, metric.name, CATALOGUE.expr(level, metric.name, filters)))
        entities = CATALOGUE.entities_expr(level, filters)
        assert entities is not None
        out.append((level, "<entities>", entities))
        for metric in CATALOGUE.metrics(level)[:3]:
            for stat in ("p95", "max"):
                out.append(
                    (
                        level,
                        metric.name,
                        CATALOGUE.window_expr(level, metric.name, stat=stat, window_seconds=86400, filters=filters),
                    )
                )
    return out


@pytest.mark.parametrize("scope", [("team-a",), ("team-a", "team-b.x")])
def test_every_selector_of_every_tenant_level_query_carries_the_namespace_scope(scope: tuple[str, ...]) -> None:
    wanted = one_of("namespace", scope).render()
    op, value = ("=", scope[0]) if len(scope) == 1 else ("=~", _decode(wanted.split("=~", 1)[1]))
    for level, name, expr in _tenant_expressions(Filters(namespaces=scope)):
        found = selectors(expr)
        assert found, (level, name)
        for series, matchers in found:
            assert "namespace" in SERIES_LABELS[series], f"{level}/{name} reads cluster-wide {series}"
            assert ("namespace", op, value) in matchers, f"{level}/{name}: {series} lacks the scope"


def test_tenant_queries_with_filters_still_carry_the_scope_everywhere() -> None:
    filters = Filters(
        namespaces=("team-a",),
        workspaces=("ws",),
        nodes=("n1",),
        kinds=("deployment",),
        workloads=("api",),
        pods=("p",),
    )
    for level in ("pods", "containers"):
        for metric in CATALOGUE.metrics(level):
            for series, matchers in selectors(CATALOGUE.expr(level, metric.name, filters)):
                assert ("namespace", "=", "team-a") in matchers, (metric.name, series)


def test_an_empty_scope_renders_nothing() -> None:
    with pytest.raises(EmptyScope):
        CATALOGUE.expr("pods", "pod_cpu_usage", Filters(namespaces=()))


def test_admin_levels_need_no_namespace_and_only_read_cluster_series() -> None:
    for level in ("cluster", "nodes", "components"):
        for metric in CATALOGUE.metrics(level):
            for series, _ in selectors(CATALOGUE.expr(level, metric.name)):
                assert series in SERIES_LABELS


def test_every_level_has_metrics_and_entity_labels_are_the_metric_labels() -> None:
    for level in LEVELS:
        metrics = CATALOGUE.metrics(level)
        assert metrics, level
        for m in metrics:
            if level != "components":
                assert m.labels == ENTITY_LABELS[level]
            assert m.unit and m.description


# -- the alerting interface -----------------------------------------------------------------


def test_alert_query_aggregates_over_the_period_with_a_subquery() -> None:
    promql, labels = CATALOGUE.alert_query("node", "node_cpu_utilisation", "avg", 60)
    assert promql.startswith("avg_over_time((") and promql.endswith(")[59999ms:15s])")
    assert labels == ["node"]
    promql, labels = CATALOGUE.alert_query("workload", "workload_cpu_usage", "max", 300)
    assert promql.startswith("max_over_time(") and promql.endswith("[299999ms:75s])")
    promql, _ = CATALOGUE.alert_query("workload", "workload_cpu_usage", "min", 30)
    assert promql.endswith("[29999ms:6s])")  # the step divides the period (issue 12)
    assert labels == ["namespace", "kind", "workload"]


def test_alert_query_last_is_the_metric_at_the_evaluation_time() -> None:
    promql, _ = CATALOGUE.alert_query("nodes", "node_load5", "last", 60)
    assert promql == CATALOGUE.expr("nodes", "node_load5")


def test_alert_query_for_one_namespace_puts_an_exact_matcher_in_every_selector() -> None:
    promql, _ = CATALOGUE.alert_query("workload", "workload_memory_usage", "avg", 120, namespace="team-a")
    for _series, matchers in selectors(promql):
        assert ("namespace", "=", "team-a") in matchers


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"namespace": 'a"}or{x=~".*'}, "namespace"),
        ({"aggregation": "median"}, "aggregation"),
        ({"metric": "node_cpu_utilisation"}, "metric"),
        ({"period_seconds": 0}, "period"),
    ],
)
def test_alert_query_rejects_bad_input_naming_the_field(kwargs: dict, field: str) -> None:
    args = {"level": "workload", "metric": "workload_cpu_usage", "aggregation": "avg", "period_seconds": 60.0}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as info:
        CATALOGUE.alert_query(**args)
    assert info.value.field == field


def test_metric_names_accept_singular_levels_and_unknown_levels_list_the_valid_ones() -> None:
    assert "node_cpu_utilisation" in CATALOGUE.metric_names("node")
    assert CATALOGUE.metric_names("workload") == CATALOGUE.metric_names("workloads")
    with pytest.raises(InvalidInput) as info:
        CATALOGUE.metric_names("galaxy")
    assert "cluster, nodes, workspaces" in info.value.message
