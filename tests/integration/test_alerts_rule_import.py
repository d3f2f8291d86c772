"""Imported Prometheus rules fire exactly when Prometheus evaluating the original files does.

The files are tests/data/prometheus-rules/ (shaped like what real stacks ship: a multi-document
``PrometheusRule``, a plain rule file, groups with their own intervals and none, ``for``,
templated annotations, severity labels, recording rules beside alerting rules, expressions over
node-exporter, kube-state-metrics, cAdvisor and control-plane series).

1. The import report explains every rule of the files (imported, changed with reasons, not
   importable with reasons, recording).
2. A synthetic hour of the series those rules read (levels that cross every threshold, a
   scheduler that goes down and disappears) is backfilled into a PRIVATE Prometheus (Debian's
   binary on a loopback port, ``promtool tsdb create-blocks-from openmetrics``), and kubehub's
   engine evaluates the imported policies slot by slot against it (plan -> the real client's
   fetch -> evaluate -> the state machine), at every multiple of each group's interval.
3. ``promtool test rules`` — Prometheus's own rule manager — evaluates the ORIGINAL groups
   (verbatim; one rule file per interval, so each group runs at its own interval under
   promtool's single evaluation clock; rules kubehub did not import are left out) over the same
   samples shifted to start at 0, and checks at every evaluation that ``ALERTS`` is exactly the
   set kubehub had pending or firing (labels: the row's, the rule's, alertname, alertstate).

Alerts that read a series a recording rule makes are reported by the import and left out of
the comparison (the private Prometheus does not record; the comparison would test the
backfill, not the engines). The engine's evaluation over the backfill takes a few seconds.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hub.alerts import engine
from hub.alerts.policy import parse_policy
from hub.alerts.rule_import import import_rule_texts
from hub.collectors.prometheus import PrometheusClient
from hub.timeutil import parse_duration
from tests.integration.test_alerts_reference import BLOCK, PROMETHEUS, PROMTOOL, _free_port

RULES_DIR = Path(__file__).resolve().parents[1] / "data" / "prometheus-rules"

SCRAPE = 15
LENGTH = 3600
CHUNK = 180  # levels change every 3 minutes
POINTS = LENGTH // SCRAPE + 1

Labels = tuple[tuple[str, str], ...]


def _levels(rng: np.random.Generator, choices: list[float], jitter: float = 0.0) -> np.ndarray:
    per_chunk = rng.choice(choices, size=LENGTH // CHUNK + 1)
    values = np.repeat(per_chunk, CHUNK // SCRAPE)[:POINTS]
    return values + rng.uniform(-jitter, jitter, size=POINTS) if jitter else values


def _counter(rate: np.ndarray, start: float = 1000.0) -> np.ndarray:
    return start + np.concatenate([[0.0], np.cumsum(rate[1:] * SCRAPE)])


def history(seed: int = 17) -> dict[tuple[str, Labels], np.ndarray]:
    """The series the fixture rules read; NaN is no sample."""
    rng = np.random.default_rng(seed)
    out: dict[tuple[str, Labels], np.ndarray] = {}

    def put(name: str, values: np.ndarray, **labels: str) -> None:
        out[(name, tuple(sorted(labels.items())))] = np.asarray(values, dtype=float)

    for i in range(3):
        node = {"job": "node-exporter", "instance": f"10.0.0.{i + 1}:9100"}
        fs = {**node, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
        put("node_filesystem_size_bytes", np.full(POINTS, 100e9), **fs)
        put("node_filesystem_avail_bytes", _levels(rng, [45, 15, 5, 35], 1.0) * 1e9, **fs)
        put("node_filesystem_readonly", np.where(_levels(rng, [0, 0, 1]) > 0, 1.0, 0.0), **fs)
        for cpu in ("0", "1"):
            idle = _levels(rng, [0.05, 0.5, 0.95])
            iowait = np.full(POINTS, 0.01)
            put("node_cpu_seconds_total", _counter(idle), **node, cpu=cpu, mode="idle")
            put("node_cpu_seconds_total", _counter(iowait), **node, cpu=cpu, mode="iowait")
            put("node_cpu_seconds_total", _counter(1 - idle - iowait), **node, cpu=cpu, mode="user")
        put("node_load1", _levels(rng, [0.5, 3.0, 6.0], 0.2), **node)
        put("node_memory_MemTotal_bytes", np.full(POINTS, 16e9), **node)
        put("node_memory_MemAvailable_bytes", _levels(rng, [8e9, 0.8e9, 3e9], 0.1e9), **node)

    ksm = {"job": "kube-state-metrics"}
    for ns, pod in (("shop", "web-1"), ("shop", "web-2"), ("data", "etl-0")):
        c = {"namespace": ns, "pod": pod, "container": "main"}
        restarts = np.floor(_counter(_levels(rng, [0.0, 0.0, 1 / 60]), 0.0) + 1e-9)
        put("kube_pod_container_status_restarts_total", restarts, **ksm, **c)
        phase = rng.choice(["Running", "Running", "Pending", "Failed"], size=LENGTH // CHUNK + 1)
        per_point = np.repeat(phase, CHUNK // SCRAPE)[:POINTS]
        for ph in ("Pending", "Running", "Failed", "Unknown"):
            put("kube_pod_status_phase", (per_point == ph).astype(float), **ksm, namespace=ns, pod=pod, phase=ph)
        put("kube_pod_info", np.ones(POINTS), **ksm, namespace=ns, pod=pod, node="n1")
        put("kube_pod_container_resource_limits", np.full(POINTS, 1e9), **ksm, **c, resource="memory", unit="byte")
        put("container_memory_working_set_bytes", _levels(rng, [0.5e9, 0.95e9], 0.01e9), job="cadvisor", **c)
        put("container_cpu_cfs_periods_total", _counter(np.full(POINTS, 10.0)), job="cadvisor", **c)
        put("container_cpu_cfs_throttled_periods_total", _counter(_levels(rng, [0.0, 1.0, 5.0])), job="cadvisor", **c)
    for ns, deploy in (("shop", "web"), ("data", "etl")):
        d = {**ksm, "namespace": ns, "deployment": deploy}
        put("kube_deployment_spec_replicas", np.full(POINTS, 3.0), **d)
        put("kube_deployment_status_replicas_available", _levels(rng, [3.0, 1.0, 3.0, 2.0]), **d)

    api = {"job": "apiserver", "instance": "10.0.0.1:6443"}
    errors = _levels(rng, [0.0, 0.0, 1.5])
    put("apiserver_request_total", _counter(np.full(POINTS, 10.0)), **api, code="200", verb="GET")
    put("apiserver_request_total", _counter(errors), **api, code="500", verb="GET")
    for verb in ("GET", "LIST"):
        slow = _levels(rng, [0.0, 1.0])
        total = np.full(POINTS, 5.0)
        fast_share = np.where(slow > 0, 0.2, 0.995)
        bounds = {"0.1": fast_share, "0.5": fast_share + 0.001, "1": fast_share + 0.002, "2.5": np.full(POINTS, 1.0)}
        for le, share in bounds.items():
            put("apiserver_request_duration_seconds_bucket", _counter(total * share), **api, verb=verb, le=le)
        put("apiserver_request_duration_seconds_bucket", _counter(total), **api, verb=verb, le="+Inf")
    up = _levels(rng, [1.0, 1.0, 0.0, -1.0])
    put("up", np.where(up < 0, np.nan, up), job="kube-scheduler", instance="10.0.0.1:10259")
    return out


def _series_text(name: str, labels: Labels) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def write_openmetrics(series: dict[tuple[str, Labels], np.ndarray], base: int, out: Path) -> list[Path]:
    lines: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for (name, labels), values in series.items():
        head = _series_text(name, labels)
        for k, v in enumerate(values.tolist()):
            if not math.isnan(v):
                t = base + k * SCRAPE
                lines[t // BLOCK][head].append(f"{head} {v!r} {t}\n")
    files = []
    for window, by_series in sorted(lines.items()):
        path = out / f"window-{window}.om"
        with path.open("w") as fh:
            for head in sorted(by_series):
                fh.writelines(by_series[head])
            fh.write("# EOF\n")
        files.append(path)
    return files


@dataclass
class World:
    base: int
    series: dict[tuple[str, Labels], np.ndarray]
    prom: PrometheusClient
    work: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for binary in (PROMETHEUS, PROMTOOL):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: apt-get install prometheus (the reference engine of this test)")
    work = tmp_path_factory.mktemp("rule-import")
    base = int(time.time() - 6 * 3600) // 3600 * 3600
    series = history()
    blocks = work / "data"
    blocks.mkdir()
    for path in write_openmetrics(series, base, work):
        proc = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(blocks)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"promtool rejected {path.name}: {proc.stdout}{proc.stderr}"
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={blocks}",
         "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    prom = PrometheusClient(url, timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the private Prometheus did not start: {(work / 'prometheus.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield World(base, series, prom, work)
    finally:
        prom.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _files() -> list[tuple[str, str]]:
    return [(p.name, p.read_text()) for p in sorted(RULES_DIR.iterdir()) if p.suffix in (".yaml", ".yml")]


def _original_groups() -> list[tuple[str, dict[str, Any]]]:
    """(file, group) of every group of the fixture files, as Prometheus would load them."""
    out = []
    for name, text in _files():
        for doc in yaml.safe_load_all(text):
            groups = doc["spec"]["groups"] if doc.get("kind") == "PrometheusRule" else doc["groups"]
            out.extend((name, g) for g in groups)
    return out


def test_the_import_report_explains_every_rule() -> None:
    result = import_rule_texts(_files())
    groups = _original_groups()
    written = [(g["name"], r.get("alert") or r.get("record")) for _, g in groups for r in g["rules"]]
    reported = [(it.group, it.rule) for it in result.items]
    assert sorted(written) == sorted(reported)
    outcomes = {it.rule: it for it in result.items}
    assert (
        outcomes["KubeletDown"].outcome == "not_importable" and "keep_firing_for" in outcomes["KubeletDown"].reasons[0]
    )
    assert outcomes["code:apiserver_request_total:rate5m"].outcome == "recording"
    assert any("recording rule" in r for r in outcomes["NodeCPUHighUsage"].reasons)
    assert any("kept as text" in r for r in outcomes["KubeletTooManyPods"].reasons)
    for it in result.items:
        if it.outcome != "imported":
            assert it.reasons, it.line()
    for doc in result.policies:
        parse_policy(doc)  # what the import hands over saves
    by_interval = {p["name"]: p["rules"][0]["period"] for p in result.policies}
    assert by_interval == {
        "node-exporter": "30s",
        "kubernetes-apps": "1m",
        "kubernetes-resources": "30s",
        "kube-apiserver-rules": "1m",
        "kubernetes-system-scheduler": "1m",  # no interval: Prometheus's default evaluation_interval
        "kubelet": "30s",
    }


def _interval(group: dict[str, Any]) -> int:
    return int(parse_duration(str(group.get("interval", "1m")), field="interval"))


def kubehub_verdicts(world: World) -> tuple[dict[int, list[list[dict[str, str]]]], dict[str, int], set[str]]:
    """Per interval, per evaluation k: the ALERTS label sets kubehub had pending or firing."""
    result = import_rule_texts(_files())
    groups = _original_groups()
    original: dict[tuple[str, str], dict[str, Any]] = {}  # (policy, rule) -> the original rule
    skipped: set[str] = set()
    for it in result.items:
        if it.outcome == "recording":
            continue
        if it.outcome == "not_importable" or any("recording rule" in r for r in it.reasons):
            skipped.add(it.rule)
            continue
        rule_list = next(g for _, g in groups if g["name"] == it.group)["rules"]
        same = [r for r in rule_list if r.get("alert") == it.rule]
        index = [x.rule_name for x in result.items if x.group == it.group and x.rule == it.rule].index(it.rule_name)
        original[(it.policy, it.rule_name)] = same[index]
    verdicts: dict[int, list[list[dict[str, str]]]] = {}
    fired: dict[str, int] = defaultdict(int)
    frames: dict[tuple[str, float], Any] = {}
    for doc in result.policies:
        policy = parse_policy(doc)
        period = policy.rules[0].period
        compiled = [
            cr for cr in engine.compile_rules([(doc["name"], policy)]) if (doc["name"], cr.rule.name) in original
        ]
        if not compiled:
            continue
        slots = verdicts.setdefault(int(period), [[] for _ in range(LENGTH // int(period) + 1)])
        tracked: dict[Any, Any] = {}
        last: dict[float, float] = {}
        for k in range(LENGTH // int(period) + 1):
            at = float(world.base + k * period)
            plan = engine.plan(compiled, now=at, last_slots=last, build_query=_no_catalogue)
            results: dict[Any, Any] = {}
            for q in plan.queries:
                key = (q.promql, q.period)
                if key not in frames:
                    frame = world.prom.range(q.promql, start=world.base, end=world.base + LENGTH, step=q.period)
                    frames[key] = engine.SlotAggregates(
                        frame, period=q.period, step=q.step, entity_labels=q.entity_labels, level="node"
                    )
                results[q.key] = frames[key].at(at)
            ev = engine.evaluate(plan, results, tracked)
            tracked = ev.states
            last = dict(plan.slots)
            for (pid, rule_name, _entity), st in tracked.items():
                assert st.state in ("pending", "firing"), (rule_name, st.state)
                orig = original[(pid, rule_name)]
                labels = {**st.labels, **{str(a): str(b) for a, b in (orig.get("labels") or {}).items()}}
                labels.update(alertname=orig["alert"], alertstate=st.state)
                slots[k].append(labels)
                if st.state == "firing":
                    fired[orig["alert"]] += 1
    return verdicts, fired, skipped


def test_imported_rules_fire_exactly_when_prometheus_does(world: World) -> None:
    verdicts, fired, skipped = kubehub_verdicts(world)
    assert skipped == {"KubeletDown", "NodeCPUHighUsage"}
    must_fire = {
        "NodeFilesystemAlmostOutOfSpace", "NodeHighLoadAverage", "NodeMemoryHighUtilization", "KubePodCrashLooping",
        "KubeDeploymentReplicasMismatch", "KubePodNotReady", "CPUThrottlingHigh", "KubeContainerMemoryNearLimit",
        "KubeAPIErrorsHigh", "KubeAPILatencyHigh", "KubeSchedulerDown",
    }  # fmt: skip
    assert must_fire <= set(fired), f"never fired: {must_fire - set(fired)} (the data must exercise every rule)"
    by_interval: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for _file, group in _original_groups():
        kept = [r for r in group["rules"] if r.get("alert") not in skipped]
        by_interval[_interval(group)].append({**group, "rules": kept})
    series = [
        {
            "series": _series_text(name, labels),
            "values": " ".join("_" if math.isnan(v) else repr(v) for v in vals.tolist()),
        }
        for (name, labels), vals in sorted(world.series.items())
    ]
    files = []
    for interval, groups in sorted(by_interval.items()):
        names = sorted({r["alert"] for g in groups for r in g["rules"] if "alert" in r})
        rules_path = world.work / f"rules-{interval}s.yml"
        rules_path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        expected = []
        for k, alerts in enumerate(verdicts[interval]):
            samples = [
                {"labels": _series_text("ALERTS", tuple(sorted(a.items()))), "value": 1}
                for a in sorted(alerts, key=lambda a: sorted(a.items()))
            ]
            expected.append(
                {
                    "expr": f'ALERTS{{alertname=~"{"|".join(names)}"}}',
                    "eval_time": f"{k * interval}s",
                    "exp_samples": samples,
                }
            )
        test = {
            "rule_files": [rules_path.name],
            "evaluation_interval": f"{interval}s",
            "tests": [{"interval": f"{SCRAPE}s", "input_series": series, "promql_expr_test": expected}],
        }
        path = world.work / f"test-{interval}s.yml"
        path.write_text(json.dumps(test))
        files.append(path.name)
    proc = subprocess.run([PROMTOOL, "test", "rules", *files], cwd=world.work, capture_output=True, text=True)
    report = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if line.strip())
    assert proc.returncode == 0, f"Prometheus disagrees with kubehub (exp: kubehub, got: Prometheus):\n{report[:20000]}"


def _no_catalogue(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an imported rule must not ask the catalogue for a query")
