"""The console's message catalogues (English and Chinese) and the choice of language.

Catalogues are flat JSON files, ``<lang>.json``, mapping a dotted key to a message with
``{name}`` placeholders. A key missing from the Chinese catalogue falls back to English and a
key missing from both shows the key itself, so a gap is visible on the page rather than an
empty label; a unit test keeps the two files in step with each other and with the templates.

The language is chosen per request: ``?lang=`` (remembered in a cookie), else the cookie, else
the browser's Accept-Language, else English.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
COOKIE = "kubehub_lang"
_DIR = Path(__file__).resolve().parent


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of one language (read once per process)."""
    path = _DIR / f"{lang}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def translate(key: str, lang: str, /, **params: Any) -> str:
    """The message ``key`` in ``lang`` with ``params`` filled in."""
    text = catalogue(lang).get(key) if lang in LANGUAGES else None
    if text is None:
        text = catalogue(DEFAULT_LANGUAGE).get(key, key)
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def normalise(value: str | None) -> str | None:
    """``zh-CN``, ``zh_Hans``, ``ZH`` -> ``zh``; unknown -> None."""
    if not value:
        return None
    base = value.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else None


def choose(query: str | None, cookie: str | None, accept: Any) -> str:
    """The language of a request: query, then cookie, then Accept-Language, then English."""
    for candidate in (query, cookie):
        lang = normalise(candidate)
        if lang:
            return lang
    if accept is not None:
        for value, _quality in accept:
            lang = normalise(value)
            if lang:
                return lang
    return DEFAULT_LANGUAGE
