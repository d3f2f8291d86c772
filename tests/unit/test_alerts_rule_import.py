"""Rule import and export (hub/alerts/rule_import.py): bounds, reports that name the file,
group and rule, severity mapping, tenant scoping on import, and export of both kinds of rule.
The differential against Prometheus is tests/integration/test_alerts_rule_import.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import promql_parser as pp
import pytest
import yaml

from hub.alerts import rule_import
from hub.alerts.policy import parse_policy
from hub.alerts.rule_import import (
    MAX_FILE_BYTES,
    MAX_IMPORT_RULES,
    ImportOptions,
    export_policies,
    import_rule_texts,
    policy_name,
)
from hub.cli import main

RULE_FILE = """
groups:
  - name: apps
    interval: 45s
    rules:
      - alert: HighErrors
        expr: sum by (namespace, pod) (rate(http_errors_total[5m])) > 1
        for: 2m
        labels: {severity: warning, team: web}
        annotations: {summary: "{{ $labels.pod }} errs", description: "at {{ $value }}"}
      - alert: Forged
        expr: label_replace(up, "namespace", "other", "", "")
        labels: {severity: critical}
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NoSeverity
        expr: up == 0
"""


def test_report_names_file_group_and_rule() -> None:
    result = import_rule_texts([("apps.yml", RULE_FILE)], ImportOptions(level="workload", namespace="shop"))
    lines = [it.line() for it in result.items]
    assert lines[0].startswith("apps.yml: group 'apps': HighErrors: changed -> apps/high-errors")
    assert "severity warning -> major" in lines[0]
    forged = next(it for it in result.items if it.rule == "Forged")
    assert forged.outcome == "not_importable" and "label_replace()" in forged.reasons[0]
    assert next(it for it in result.items if it.rule == "job:up:sum").outcome == "recording"
    assert "no severity label; major" in next(it for it in result.items if it.rule == "NoSeverity").reasons
    (doc,) = result.policies
    policy = parse_policy(doc, namespace="shop")
    rule = policy.rule("high-errors")
    assert rule is not None and rule.period == 45 and rule.consecutive == 4 and rule.severity == "major"
    assert dict(rule.labels) == {"team": "web"} and rule.summary == "{{ $labels.pod }} errs"


def test_severity_mapping_is_configurable() -> None:
    opts = ImportOptions(severity_map={"warning": "minor"}, default_severity="critical")
    result = import_rule_texts([("apps.yml", RULE_FILE)], opts)
    sev = {r["name"]: r["severity"] for r in result.policies[0]["rules"]}
    assert sev["high-errors"] == "minor" and sev["no-severity"] == "critical"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [", "not valid YAML at line"),
        ("kind: ConfigMap\n", "kind 'ConfigMap' is not a PrometheusRule"),
        ("groups:\n  - name: g\n    interval: soon\n    rules: []\n", "group 'g': interval"),
        ("groups:\n  - name: g\n    rules: 3\n", "group 'g': no rules list"),
        (
            "a: &a [1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                for p, c in zip("abcdefg", "bcdefgh", strict=True)
            ),
            "expands",
        ),
    ],
)
def test_bad_files_are_errors_naming_the_file(text: str, message: str) -> None:
    result = import_rule_texts([("bad.yml", text)])
    assert result.errors and result.errors[0].startswith("bad.yml") and message in result.errors[0], result.errors


def test_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    big = "# " + "x" * MAX_FILE_BYTES
    assert "larger than" in import_rule_texts([("big.yml", big)]).errors[0]
    limit = 450  # MAX_IMPORT_RULES (5,000) behaves the same; a smaller one keeps the test fast
    assert MAX_IMPORT_RULES == 5000
    monkeypatch.setattr(rule_import, "MAX_IMPORT_RULES", limit)
    rules = "".join(f"      - alert: A{i}\n        expr: up == {i}\n" for i in range(limit + 5))
    result = import_rule_texts([("many.yml", "groups:\n  - name: g\n    rules:\n" + rules)])
    assert any(f"more than {limit} rules" in e for e in result.errors)
    assert len(result.items) == limit
    assert [len(p["rules"]) for p in result.policies] == [100, 100, 100, 100, 50]
    assert [p["name"] for p in result.policies] == ["g-1", "g-2", "g-3", "g-4", "g-5"]


def test_policy_names() -> None:
    assert policy_name("KubePodCrashLooping") == "kube-pod-crash-looping"
    assert policy_name("node-exporter.rules") == "node-exporter-rules"
    assert policy_name("CPUThrottlingHigh") == "cpu-throttling-high"
    assert policy_name("...") == "rule"


def test_export_writes_a_prometheusrule_prometheus_accepts(tmp_path: Path) -> None:
    catalogue_rule = parse_policy(
        {
            "name": "node-cpu",
            "level": "node",
            "rules": [
                {"name": "hot", "metric": "cpu", "aggregation": "avg", "comparator": ">", "threshold": 90,
                 "unit": "percent", "period": "1m", "consecutive": 3, "severity": "major"},
                {"name": "now", "metric": "cpu", "aggregation": "last", "comparator": ">", "threshold": 0.5,
                 "period": "30s", "severity": "minor"},
            ],
        }
    )  # fmt: skip
    tenant = parse_policy(
        {"name": "errs", "level": "workload", "namespace": "shop",
         "rules": [{"name": "r", "expr": 'rate(x{namespace="other"}[5m]) > 1', "for": "1m", "severity": "critical",
                    "labels": {"team": "web"}, "summary": "{{ $labels.pod }}"}]}
    )  # fmt: skip

    def query(level: str, metric: str, period: float, namespace: str | None) -> str:
        return f'avg by (node) (cpu_ratio{{period="{period:g}"}})'

    doc = export_policies([("1", catalogue_rule), ("2", tenant)], query)
    groups = {g["name"]: g for g in doc["spec"]["groups"]}
    assert set(groups) == {"node-cpu-1m", "node-cpu-30s", "shop/errs"}
    hot = groups["node-cpu-1m"]["rules"][0]
    assert hot["expr"] == 'avg_over_time((avg by (node) (cpu_ratio{period="60"}))[59999ms:15s]) > 0.9'
    assert hot["for"] == "2m" and hot["labels"]["severity"] == "major"
    assert groups["node-cpu-30s"]["rules"][0]["expr"] == '(avg by (node) (cpu_ratio{period="30"})) > 0.5'
    errs = groups["shop/errs"]["rules"][0]
    assert errs["expr"] == 'rate(x{namespace="shop"}[5m]) > 1.0'  # the query the hub runs, scoped
    assert errs["labels"] == {"severity": "critical", "kubehub_policy": "errs", "team": "web", "namespace": "shop"}
    for g in doc["spec"]["groups"]:
        for r in g["rules"]:
            pp.parse(r["expr"])
    spec = tmp_path / "rules.yml"
    spec.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    promtool = Path("/usr/bin/promtool")
    if promtool.exists():  # Prometheus's own checker, when installed (CI has it)
        proc = subprocess.run([str(promtool), "check", "rules", str(spec)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_import_reports_and_writes_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "apps.yml").write_text(RULE_FILE)
    out = tmp_path / "out"
    rc = main(["rules", "import", str(src), "--level", "workload", "--namespace", "shop", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "2 changed, 1 not importable, 1 recording rule(s) reported, 0 error(s); 1 policies" in text
    assert main(["rules", "check", str(out)]) == 0
