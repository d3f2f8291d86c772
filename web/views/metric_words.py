"""Metric names as words in the console: ``cluster_cpu_utilisation`` reads "Cluster CPU
utilisation" / "集群 CPU 使用率", with the catalogue id on hover.

The words live in the console's message catalogues (web/i18n/en.json and zh.json, keys
``metricname.<id>``), beside every other word of the console, so translators have one place;
tests/unit/test_metric_words.py holds every catalogue metric to a label in both languages. An
id without a label (a metric added later) shows as itself, never as an empty cell.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint
from markupsafe import Markup, escape

from web import i18n
from web.views.common import lang

bp = Blueprint("metric_words", __name__)

PREFIX = "metricname."


def word(metric: str, language: str) -> str:
    """The label of ``metric`` in ``language`` (English when only that has one), else the id."""
    key = PREFIX + metric
    for lang_ in (language, i18n.DEFAULT_LANGUAGE):
        text = i18n.catalogue(lang_).get(key) if lang_ in i18n.LANGUAGES else None
        if text:
            return text
    return metric


@bp.app_template_filter("metric_word")
def _metric_word(metric: Any) -> str:
    return word(str(metric or ""), lang())


@bp.app_template_filter("metric")
def _metric(metric: Any) -> Markup:
    """The label with the id on hover (and for screen readers' expansion)."""
    name = str(metric or "")
    return Markup('<abbr class="metric" title="{}">{}</abbr>').format(escape(name), escape(word(name, lang())))


@bp.app_template_filter("metric_words_json")
def _metric_words_json(metrics: Any) -> str:
    """``{"id": "word", ...}`` of a comma list (or list) of ids, for the charts' legends."""
    names = [m for m in (metrics.split(",") if isinstance(metrics, str) else metrics or []) if m]
    return json.dumps({m: word(m, lang()) for m in names}, ensure_ascii=False)
