"""Console pages for alerting: active alerts with evidence, comments, silences, history,
policies (a form editor with inline validation and a YAML view) and backtests.

Everything calls the alerting service the JSON API uses with the caller's scope
(``web.access.scope``); the service filters and checks writes, so what a page shows and allows
is what the API would.

Policies live at two homes, as in the API: node level under ``/alerting/node-policies``
(platform admins) and workload level under ``/projects/<ns>/alerting/policies`` (the
project's members); each route declares the permission of its home.

The pages sit in ``alerting_alerts`` (alerts, silences, history) and ``alerting_policies`` (the
editor and backtests) on the blueprint of ``alerting_common``; importing this module registers
them all.
"""

from __future__ import annotations

from web.views.alerting_alerts import (
    alert,
    alerts,
    comment,
    history,
    policies,
    silence_alert,
    silence_create,
    silence_delete,
    silences,
)
from web.views.alerting_common import (
    ACTIVE_STATES,
    AGGREGATIONS,
    COMPARATORS,
    REPEAT_MODES,
    SEVERITIES,
    STATE_TABS,
    UNITS,
    alert_threshold,
    alert_value,
    bp,
    plainnum,
)
from web.views.alerting_inherited import (  # noqa: F401 (importing registers the pages)
    effective_policies,
    workspace_policies,
)
from web.views.alerting_policies import (
    NEW_RULE,
    document_from_form,
    node_policy,
    node_policy_backtest,
    node_policy_backtest_job,
    node_policy_check,
    node_policy_create,
    node_policy_delete,
    node_policy_new,
    node_policy_save,
    workload_policy,
    workload_policy_backtest,
    workload_policy_backtest_job,
    workload_policy_check,
    workload_policy_create,
    workload_policy_delete,
    workload_policy_new,
    workload_policy_save,
)

__all__ = [
    "ACTIVE_STATES",
    "AGGREGATIONS",
    "COMPARATORS",
    "NEW_RULE",
    "REPEAT_MODES",
    "SEVERITIES",
    "STATE_TABS",
    "UNITS",
    "alert",
    "alert_threshold",
    "alert_value",
    "alerts",
    "bp",
    "comment",
    "document_from_form",
    "history",
    "node_policy",
    "node_policy_backtest",
    "node_policy_backtest_job",
    "node_policy_check",
    "node_policy_create",
    "node_policy_delete",
    "node_policy_new",
    "node_policy_save",
    "plainnum",
    "policies",
    "silence_alert",
    "silence_create",
    "silence_delete",
    "silences",
    "workload_policy",
    "workload_policy_backtest",
    "workload_policy_backtest_job",
    "workload_policy_check",
    "workload_policy_create",
    "workload_policy_delete",
    "workload_policy_new",
    "workload_policy_save",
]
