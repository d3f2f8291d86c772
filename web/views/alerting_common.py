"""The alerting console's blueprint, its choice lists and template filters, shared by the alert
pages (``alerting_alerts``) and the policy editor (``alerting_policies``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from hub.alerts.service import AlertService
from web.access import keyed_namespace
from web.util import hub

bp = Blueprint("alerting", __name__)
bp.before_request(keyed_namespace)  # ?cluster=X: ns is the project X/ns (alert rows are keyed by project)


ACTIVE_STATES = ("firing", "pending", "nodata", "error")


STATE_TABS = ("active", "firing", "pending", "resolved")


AGGREGATIONS = ("avg", "max", "min", "last")


COMPARATORS = (">", ">=", "<", "<=", "==", "!=")


SEVERITIES = ("critical", "major", "minor")


REPEAT_MODES = ("none", "fixed", "exponential")


UNITS = (
    "ratio", "percent", "cores", "millicores", "bytes", "KiB", "MiB", "GiB", "bytes/s", "KiB/s", "MiB/s",
    "count", "load", "per_second", "seconds", "ms",
)  # fmt: skip


def _none() -> list[Any]:
    """A typed empty list: the default a page shows when a backend read fails."""
    return []


@bp.app_template_filter("alert_value")
def alert_value(value: Any, unit: str) -> str:
    """An alert's value (base unit) as the emails show it, in the rule's unit family."""
    from hub.alerts.notify.notice import format_value

    return format_value(value, unit or "")


@bp.app_template_filter("plainnum")
def plainnum(value: Any) -> Any:
    """2.0 -> 2 in form fields, so a threshold reads back as it was typed."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@bp.app_template_filter("alert_threshold")
def alert_threshold(value: Any, unit: str) -> str:
    """A rule's threshold as its author wrote it (90 percent -> 90%)."""
    from hub.alerts.notify.notice import format_threshold

    return "–" if value is None else format_threshold(float(value), unit or "")


def _svc() -> AlertService:
    """The alerting service, typed so that mypy checks every console call site."""
    return hub().alerting
