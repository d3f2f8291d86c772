"""The console's English and Chinese catalogues stay complete and in step with the templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from web import i18n
from web.views.monitoring import RANKING_COLUMNS

pytestmark = pytest.mark.unit

WEB = Path(__file__).resolve().parents[2] / "web"
# Keys built at render time from a value: every value the hub can produce must have a message.
FAMILIES = {
    "state.": ("firing", "pending", "resolved", "nodata", "error", "closed", "inactive"),
    "severity.": ("critical", "major", "minor"),
    "kind.": ("deployment", "statefulset", "daemonset", "job", "cronjob"),
    "health.": ("running", "updating", "degraded", "stopped", "completed", "failed", "suspended", "active", "idle"),
    "role.": ("admin", "operator", "viewer", "platform-admin", "ws_admin", "ws_regular", "ws_viewer"),
    "level.": (
        "cluster",
        "nodes",
        "workspaces",
        "namespaces",
        "workloads",
        "pods",
        "containers",
        "volumes",
        "components",
    ),
    "repeat.": ("none", "fixed", "exponential"),
    "lang.": i18n.LANGUAGES,
    "alerts.tab_": ("active", "firing", "pending", "resolved"),
    "alerts.none_": ("active", "firing", "pending", "resolved"),
    "rankings.window_": ("now", "1h", "24h", "7d"),
    "range.": ("15m", "30m", "1h", "2h", "6h", "1d", "24h", "7d"),
    "label.": ("node", "workspace", "namespace", "kind", "workload", "pod"),
    "column.": tuple(c for cols in RANKING_COLUMNS.values() for c in cols),
}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*WEB.joinpath("templates").glob("*.html"), *WEB.joinpath("views").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"""_\(\s*['"]([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)['"]""", text))
        keys |= set(re.findall(r"""m\.empty\(\s*'([a-z][a-z0-9_.]+)'""", text))
        keys |= set(re.findall(r""""key": "([a-z_]+\.[a-z_.]+)\"""", text))
    return keys


def test_both_languages_have_exactly_the_same_keys() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    assert sorted(set(en) ^ set(zh)) == []


def test_every_key_the_templates_and_views_use_has_a_message() -> None:
    # Keys ending in "." or "_" are prefixes completed at render time (see FAMILIES).
    missing = sorted(k for k in used_keys() if k not in i18n.catalogue("en") and not k.endswith((".", "_")))
    assert missing == []


def test_every_value_of_a_key_family_has_a_message() -> None:
    en = i18n.catalogue("en")
    missing = [prefix + v for prefix, values in FAMILIES.items() for v in values if prefix + v not in en]
    assert missing == []


def test_the_chinese_catalogue_is_translated_not_copied() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    same = [
        k for k in en if en[k] == zh[k] and re.search(r"[a-z]{4,}", en[k]) and not k.startswith(("lang.", "column."))
    ]
    assert same == []


def test_placeholders_agree_between_languages() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    wrong = [k for k in en if set(re.findall(r"\{(\w+)\}", en[k])) != set(re.findall(r"\{(\w+)\}", zh[k]))]
    assert wrong == []


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("zh", None, None, "zh"),
        (None, "zh", None, "zh"),
        ("en", "zh", None, "en"),
        (None, None, [("zh-CN", 1.0), ("en", 0.5)], "zh"),
        (None, None, [("fr", 1.0), ("de", 0.5)], "en"),
        ("xx", None, None, "en"),
    ],
)
def test_the_language_is_chosen_by_query_then_cookie_then_browser_then_english(
    query: str | None, cookie: str | None, accept: list[tuple[str, float]] | None, expected: str
) -> None:
    assert i18n.choose(query, cookie, accept) == expected


def test_a_missing_chinese_message_falls_back_to_english_and_an_unknown_key_shows_itself() -> None:
    assert i18n.translate("no.such.key", "zh") == "no.such.key"
    assert i18n.translate("workload.scaled", "en", name="api", replicas=5) == "api scaled to 5 replicas."
