"""The alert policy document: model, parsing and validation.

A policy arrives as YAML (files in ``rules/``, ``kubehub rules check``) or JSON (the API). Both
go through :func:`parse_policy`, which collects *every* problem instead of stopping at the
first, each with the field path of the offending input (``rules[2].threshold``) and, for text
input, its source line. The API answers with the first problem's path in ``field`` and all of
them in ``problems``; the CLI prints ``file:line: field: problem`` per problem.

Why a custom YAML loader: YAML 1.1 reads ``start: 10:30`` as the base-60 integer 630 and
``name: no`` as ``False``. Time windows and names are exactly where those traps bite, so the
loader resolves only ``true``/``false`` as booleans and plain decimal numbers as numbers
(YAML 1.2 behaviour); everything else stays a string.

Metric names are checked against an injected mapping ``{level: names}`` (the runtime and the
CLI pass the monitoring catalogue's), because ``hub.alerts`` must not import the collectors.

This module is the one import for all of it; the code sits in ``policy_model`` (the frozen
dataclasses and limits), ``policy_yaml`` (reading text, pure), ``policy_check`` (validation,
pure) and ``policy_files`` (the only part that reads files: ``rules/`` and ``kubehub rules
check``).
"""

from __future__ import annotations

from hub.alerts.policy_check import (
    load_policy_text,
    parse_policy,
    valid_timezone,
)
from hub.alerts.policy_files import (
    MetricsProvider,
    builtin_templates,
    check_policy_files,
    load_policy_file,
)
from hub.alerts.policy_model import (
    AGGREGATIONS,
    CATALOGUE_LEVEL,
    COMPARATORS,
    DEFAULT_REPEAT,
    LANGUAGES,
    LEVELS,
    MAX_CONSECUTIVE,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_NODES,
    MAX_PERIOD,
    MAX_PROBLEMS,
    MAX_RECEIVERS,
    MAX_RULES,
    MAX_SENDS,
    MAX_TARGETS,
    MAX_TEXT_CHARS,
    MAX_THRESHOLD,
    MIN_PERIOD,
    REPEAT_MODES,
    SEVERITIES,
    UNITS,
    WORKLOAD_KINDS,
    FlapDamping,
    Notification,
    Policy,
    PolicyInvalid,
    PolicySyntaxError,
    Problem,
    Receiver,
    RepeatRule,
    Rule,
    Target,
    TimeWindow,
    Unit,
    WorkloadRef,
)
from hub.alerts.policy_yaml import (
    SourceDocument,
    decode_policy_text,
    load_documents,
)

__all__ = [
    "AGGREGATIONS",
    "CATALOGUE_LEVEL",
    "COMPARATORS",
    "DEFAULT_REPEAT",
    "LANGUAGES",
    "LEVELS",
    "MAX_CONSECUTIVE",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_PERIOD",
    "MAX_PROBLEMS",
    "MAX_RECEIVERS",
    "MAX_RULES",
    "MAX_SENDS",
    "MAX_TARGETS",
    "MAX_TEXT_CHARS",
    "MAX_THRESHOLD",
    "MIN_PERIOD",
    "REPEAT_MODES",
    "SEVERITIES",
    "UNITS",
    "WORKLOAD_KINDS",
    "FlapDamping",
    "MetricsProvider",
    "Notification",
    "Policy",
    "PolicyInvalid",
    "PolicySyntaxError",
    "Problem",
    "Receiver",
    "RepeatRule",
    "Rule",
    "SourceDocument",
    "Target",
    "TimeWindow",
    "Unit",
    "WorkloadRef",
    "builtin_templates",
    "check_policy_files",
    "decode_policy_text",
    "load_documents",
    "load_policy_file",
    "load_policy_text",
    "parse_policy",
    "valid_timezone",
]
