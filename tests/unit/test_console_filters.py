from __future__ import annotations

import pytest
from flask import Flask

pytestmark = pytest.mark.unit


def test_alert_templates_format_values_and_thresholds_in_the_rules_unit(app: Flask) -> None:
    filters = app.jinja_env.filters
    assert filters["alert_value"](0.912, "percent") == "91.2%"
    assert filters["alert_value"](None, "percent") == "no data"
    assert filters["alert_threshold"](90.0, "percent") == "90%"
