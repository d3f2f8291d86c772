"""The sandbox's pure parts: usage model, replica plan, log generation, backfill arithmetic."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pytest

from sandbox import backfill, model
from sandbox.nodesim import NodeSim, integrate, key_parse, key_str
from sandbox.seed import WORKLOADS, generate_logs, plan_replicas, write_cri

pytestmark = pytest.mark.unit


def at(hour: float) -> float:
    return dt.datetime(2026, 11, 22, tzinfo=dt.UTC).timestamp() + hour * 3600


def test_the_daily_curve_is_lowest_at_two_and_highest_at_fourteen_utc() -> None:
    assert model.tri(at(2)) == 0.0
    assert model.tri(at(14)) == 1.0
    assert model.tri(at(8)) == pytest.approx(0.5)
    assert model.tri(at(20)) == pytest.approx(0.5)
    values = [model.tri(at(h / 4)) for h in range(96)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(abs(a - b) for a, b in itertools.pairwise(values)) < 0.03  # no jumps


def test_the_numpy_curve_of_the_backfill_equals_the_model() -> None:
    grid = np.array([at(h / 3) for h in range(72)])
    assert np.allclose(backfill._tri(grid), [model.tri(t) for t in grid])


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", 0.25), ("1.5", 1.5), ("128Mi", 128 * 2**20), ("2G", 2e9), ("1Gi", 2**30), ("0", 0.0)],
)
def test_quantities_parse_like_kubernetes(text: str, value: float) -> None:
    assert model.parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "lots", "12Q"])
def test_bad_quantities_parse_to_none(text: str | None) -> None:
    assert model.parse_quantity(text) is None


def test_a_fixed_cpu_annotation_wins_over_the_curve() -> None:
    ann = {model.ANN_CPU: "1.7", model.ANN_CPU_BASE: "0.1"}
    assert model.container_cpu(ann, at(2)) == model.container_cpu(ann, at(14)) == 1.7
    assert model.container_cpu({model.ANN_CPU_BASE: "0.2"}, at(14)) == pytest.approx(0.2)
    assert model.container_cpu({model.ANN_CPU_BASE: "0.2"}, at(2)) == pytest.approx(0.2 * 0.55)
    assert model.container_cpu({}, at(14)) == pytest.approx(model.DEFAULT_CPU_BASE)
    assert model.container_memory({model.ANN_MEMORY: "128Mi"}, at(3)) == 128 * 2**20


def test_the_kwok_expressions_carry_the_model_constants() -> None:
    cel = model.kwok_usage_cel()
    assert set(cel) == {"cpu", "memory", "network-rx", "network-tx"}
    assert str(model.TROUGH_OFFSET) in cel["cpu"] and "0.55 + 0.45" in cel["cpu"]
    assert f'"{model.ANN_CPU}" in pod.metadata.annotations' in cel["cpu"]
    assert "0.85 + 0.15" in cel["memory"]


def test_node_profiles_are_deterministic_and_differ_between_nodes() -> None:
    a1 = model.NodeProfile.of("kwok-node-1", 8, 32 * 2**30)
    a2 = model.NodeProfile.of("kwok-node-1", 8, 32 * 2**30)
    b = model.NodeProfile.of("kwok-node-2", 8, 32 * 2**30)
    assert a1 == a2
    assert a1.cpu_base != b.cpu_base
    assert 0.12 <= a1.cpu_base <= 0.5


def test_node_cpu_modes_add_up_to_one_second_per_core_per_second() -> None:
    p = model.NodeProfile.of("n", 4, 16 * 2**30)
    rates = model.node_rates(p, 0.37)
    per_core = [v for (name, labels), v in rates.items() if name == "node_cpu_seconds_total" and ("cpu", "2") in labels]
    assert sum(per_core) == pytest.approx(1.0)
    assert rates[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle")))] == pytest.approx(0.63)


def test_a_node_annotation_overrides_the_simulated_utilisation() -> None:
    p = model.NodeProfile.of("n", 4, 16 * 2**30)
    assert model.node_cpu_util(p, at(5), 0.95) == 0.95
    gauges = model.node_gauges(p, at(5), memory_override=0.9)
    assert gauges[("node_memory_MemAvailable_bytes", ())] == pytest.approx(p.memory_bytes * 0.1, rel=1e-6)


def test_node_counters_only_grow() -> None:
    p = model.NodeProfile.of("n", 2, 8 * 2**30)
    counters = model.node_initial_counters(p)
    before = dict(counters)
    integrate(p, counters, at(1), at(9))
    assert all(counters[k] > before[k] for k in before)


def test_the_node_simulator_keeps_its_counters_across_a_restart(tmp_path: Path) -> None:
    node = {
        "metadata": {"name": "kwok-node-7", "annotations": {}},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi"}},
    }
    sim = NodeSim(tmp_path / "state.json")
    sim.set_node(node)
    text = sim.exposition()
    assert 'node_cpu_seconds_total{instance="kwok-node-7",node="kwok-node-7",cpu="3",mode="idle"}' in text
    sim.save()
    key = ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle")))
    saved = sim.counters["kwok-node-7"][key]
    again = NodeSim(tmp_path / "state.json")
    again.set_node(node)
    assert again.counters["kwok-node-7"][key] >= saved
    assert key_parse(key_str(key)) == key


def test_replicas_add_up_to_the_requested_pods() -> None:
    for pods, nodes in ((60, 10), (20000, 1000), (12, 2), (500, 10)):
        plan = plan_replicas(pods, nodes)
        fixed = nodes + max(1, nodes // 5) + sum(1 for w in WORKLOADS if w.kind in ("Job", "CronJob"))
        assert all(r >= 1 for r in plan.values())
        assert sum(plan.values()) == max(len(plan), pods - fixed)


def test_generated_logs_are_deterministic_and_bilingual_with_stack_traces(tmp_path: Path) -> None:
    start, end = at(0), at(24)
    by_lang: dict[str, str] = {}
    for w in WORKLOADS:
        recs = list(generate_logs(w, w.containers[0], start, end))
        assert recs == list(generate_logs(w, w.containers[0], start, end))
        assert all(start <= r.t < end for r in recs)
        assert [r.t for r in recs] == sorted(r.t for r in recs)
        by_lang[w.lang] = by_lang.get(w.lang, "") + "\n".join(r.message for r in recs)
    assert "\tat com.example" in by_lang["en"] and "Traceback (most recent call last)" in by_lang["en"]
    assert "支付失败" in by_lang["zh"] or "库存不足" in by_lang["zh"]
    recs = list(generate_logs(WORKLOADS[0], "web", start, start + 3600))
    path = tmp_path / "web.log"
    write_cri(path, recs)
    lines = path.read_text().splitlines()
    assert len(lines) >= len(recs)
    stamp, stream, tag, _ = lines[0].split(" ", 3)
    assert stamp.endswith("Z") and stream in ("stdout", "stderr") and tag == "F"


def test_backfill_counters_start_at_zero_and_integrate_the_rate() -> None:
    rate = np.array([1.0, 2.0, 3.0, 4.0])
    assert backfill._integrate(rate, 60).tolist() == [0.0, 60.0, 180.0, 360.0]


def test_backfill_windows_are_openmetrics_in_seconds_ending_with_eof(tmp_path: Path) -> None:
    plan = backfill.Plan(end=int(at(10)), step=60)
    series = [
        backfill.Series(
            "demo_total", {"job": "x", "msg": 'a "quoted"\nvalue'}, np.arange(len(plan.grid), dtype=float), 60
        ),
        backfill.Series("held", {"job": "y"}, np.ones(len(plan.inv_grid)), int(plan.inv_grid[1] - plan.inv_grid[0])),
    ]
    files, samples = backfill.write_windows(series, plan, tmp_path)
    assert samples == len(plan.grid) + len(plan.inv_grid)
    assert len(files) == 13  # 24 h not aligned to the 2-hour blocks spans 13 of them
    for f in files:
        lines = f.read_text().splitlines()
        assert lines[-1] == "# EOF"
        for line in lines[:-1]:
            ts = line.rsplit(" ", 1)[1]
            assert ts.isdigit() and len(ts) == 10
    first = files[0].read_text().splitlines()[0]
    assert first.startswith('demo_total{job="x",msg="a \\"quoted\\"\\nvalue"} 0 ')


def test_backfilled_node_counters_end_at_the_live_value_and_only_grow() -> None:
    plan = backfill.Plan(end=int(at(12)), step=60)
    node = {"metadata": {"name": "kwok-node-0"}, "status": {"capacity": {"cpu": "2", "memory": "8Gi"}}}
    key = ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))
    live = {"kwok-node-0": {key: 1_000_000.0}}
    out = [s for s in backfill.node_series(plan, live, {"kwok-node-0": node}, [], plan.end + 5)]
    assert len(out) == 1  # only what is served live gets history
    values = out[0].values
    assert np.all(np.diff(values) > 0)
    assert values[-1] <= 1_000_000.0 and values[-1] > 999_000.0
    assert out[0].labels == {
        "job": "node-exporter",
        "instance": "kwok-node-0",
        "node": "kwok-node-0",
        "cpu": "0",
        "mode": "user",
    }


def test_demo_credentials_gain_an_address_each_also_when_written_by_an_older_sandbox() -> None:
    from sandbox.seed import DEMO_USERS, complete_credentials, demo_email

    fresh, changed = complete_credentials([])
    assert changed and [c["username"] for c in fresh] == [u["username"] for u in DEMO_USERS]
    assert all(c["email"] == demo_email(c["username"]) and len(c["password"]) >= 12 for c in fresh)
    old = [{k: v for k, v in c.items() if k != "email"} for c in fresh]  # an older sandbox's file
    again, changed = complete_credentials(old)
    assert changed and again == fresh  # passwords kept, addresses added
    assert complete_credentials(again) == (again, False)
