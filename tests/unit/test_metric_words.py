"""Metric names as words: every catalogue metric has an English and a Chinese label, and the
console shows them with the id on hover (web/views/metric_words.py)."""

from __future__ import annotations

import re

import pytest

from hub.collectors.catalogue import default_catalogue
from web import i18n
from web.views.metric_words import PREFIX, word

pytestmark = pytest.mark.unit

METRICS = sorted({m["name"] for level in default_catalogue().to_dict()["levels"] for m in level["metrics"]})


def test_every_catalogue_metric_has_an_english_and_a_chinese_label() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    assert len(METRICS) > 100
    assert [m for m in METRICS if not en.get(PREFIX + m)] == []
    assert [m for m in METRICS if not zh.get(PREFIX + m)] == []
    # Chinese labels are Chinese (not a copied English label), English ones are not ids
    assert [m for m in METRICS if not re.search(r"[\u4e00-\u9fff]", zh[PREFIX + m])] == []
    assert [m for m in METRICS if "_" in en[PREFIX + m] or en[PREFIX + m] == m] == []


def test_no_label_for_a_metric_the_catalogue_does_not_have() -> None:
    stale = [k for k in i18n.catalogue("en") if k.startswith(PREFIX) and k[len(PREFIX) :] not in METRICS]
    assert stale == []


def test_labels_are_distinct_within_a_language() -> None:
    for lang in i18n.LANGUAGES:
        labels = [i18n.catalogue(lang)[PREFIX + m] for m in METRICS]
        assert len(set(labels)) == len(labels), lang


def test_word_falls_back_to_the_id() -> None:
    assert word("cluster_cpu_utilisation", "zh") == "集群 CPU 使用率"
    assert word("cluster_cpu_utilisation", "en") == "Cluster CPU utilisation"
    assert word("no_such_metric", "zh") == "no_such_metric"
