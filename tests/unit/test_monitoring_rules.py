"""The shipped recording-rules file is exactly what the catalogue generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hub.collectors.catalogue import default_catalogue, recording_rules, render_rules_file

pytestmark = pytest.mark.unit

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "kubehub-rules.yaml"


def test_the_rules_file_is_generated_from_the_catalogue() -> None:
    assert RULES.read_text(encoding="utf-8") == render_rules_file(), (
        "regenerate: .venv/bin/python -m hub.collectors.catalogue > deploy/prometheus/kubehub-rules.yaml"
    )


def test_each_recorded_metric_is_the_catalogue_expression_under_a_kubehub_name() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    catalogue = default_catalogue()
    by_name = {r["record"]: r["expr"] for r in rules}
    assert by_name == {r["record"]: r["expr"] for r in recording_rules()["groups"][0]["rules"]}
    assert by_name["kubehub:node_cpu_utilisation"] == catalogue.expr("nodes", "node_cpu_utilisation")
    assert all(name.startswith("kubehub:") for name in by_name)


def test_the_docs_list_exactly_the_catalogue() -> None:
    from hub.collectors.catalogue import catalogue_markdown

    docs = (RULES.parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    assert catalogue_markdown() in docs, "paste catalogue_markdown() into docs/monitoring.md (## Catalogue)"
