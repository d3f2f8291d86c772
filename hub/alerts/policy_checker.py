"""The problem collector every part of policy validation shares: :class:`_Check` gathers each
problem with its field path and source line and hands back a usable default, so one pass reports
every mistake instead of stopping at the first. Split out of ``policy_check`` so the section
validators (``policy_check_rules``, ``policy_check_notify``, ``policy_expr``) can share it
without importing the top-level ``parse_policy``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

from hub.alerts.policy_model import _CLOCK, MAX_PROBLEMS, Problem
from hub.alerts.policy_yaml import _r
from hub.errors import InvalidInput
from hub.timeutil import parse_duration


class _Check:
    """Collects problems; each accessor returns a usable default so checking can go on."""

    def __init__(self, lines: Mapping[str, int] | None) -> None:
        self.lines = lines or {}
        self.problems: list[Problem] = []

    def line_of(self, path: str) -> int | None:
        probe = path
        while True:
            if probe in self.lines:
                return self.lines[probe]
            if not probe:
                return None
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""

    def add(self, path: str, message: str) -> None:
        if len(self.problems) > MAX_PROBLEMS:
            return
        if len(self.problems) == MAX_PROBLEMS:
            path, message = "(document)", f"more than {MAX_PROBLEMS} problems; fix these first"
        self.problems.append(Problem(path[:200], message[:500], self.line_of(path)))

    def mapping(self, value: Any, path: str, known: Iterable[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping of fields, got {_kind(value)}")
            return {}
        allowed = set(known)
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                self.add(_join(path, str(key)), f"unknown field; known fields: {', '.join(sorted(allowed))}")
        return value

    def string(self, value: Any, path: str, *, required: bool = False, default: str = "") -> str:
        if value is None:
            if required:
                self.add(path, "is required")
            return default
        if isinstance(value, bool):
            self.add(path, f"must be a string, got the boolean {str(value).lower()} (quote it)")
            return default
        if isinstance(value, int | float):
            self.add(path, f"must be a string, got the number {value} (quote it)")
            return default
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}")
            return default
        return value

    def choice(self, value: Any, path: str, options: tuple[str, ...], *, default: str | None = None) -> str:
        if value is None and default is not None:
            return default
        text = self.string(value, path, required=True)
        if text and text not in options:
            self.add(path, f"{_r(text)} is not one of {', '.join(options)}")
            return default or options[0]
        return text or default or options[0]

    def duration(self, value: Any, path: str, *, required: bool = False, default: float = 0.0) -> float:
        if value is None:
            if required:
                self.add(path, "is required (a duration such as 30s, 5m or 1h)")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.add(path, f"must be a duration such as 30s, 5m or 1h, got {_kind(value)}")
            return default
        try:
            return parse_duration(value, field=path)
        except InvalidInput as exc:  # its message starts with "<path>: "
            self.add(path, exc.message.removeprefix(f"{path}: "))
            return default

    def integer(self, value: Any, path: str, *, low: int, high: int, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.add(path, f"must be a whole number, got {_r(value)}")
                return default
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}, got {value}")
            return default
        return int(value)

    def boolean(self, value: Any, path: str, *, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {_r(value)}")
            return default
        return value

    def seq(self, value: Any, path: str, *, limit: int) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {_kind(value)}")
            return []
        if len(value) > limit:
            self.add(path, f"has {len(value)} entries; at most {limit} are allowed")
            return value[:limit]
        return value

    def timezone(self, value: Any, path: str, *, default: str = "UTC") -> str:
        if value is None:
            return default
        name = self.string(value, path)
        if not name:
            return default
        if not valid_timezone(name):
            self.add(path, f"{_r(name)} is not an IANA time zone name (e.g. Europe/Berlin, Asia/Shanghai, UTC)")
            return default
        return name

    def clock(self, value: Any, path: str) -> int:
        text = self.string(value, path, required=True)
        if not text:
            return 0
        m = _CLOCK.match(text.strip())
        if not m:
            self.add(path, f"{_r(text)} is not a time of day; use HH:MM in 24-hour form, e.g. 09:00 or 22:30")
            return 0
        return int(m.group(1)) * 60 + int(m.group(2))


def valid_timezone(name: str) -> bool:
    if not name or name.startswith(("/", ".")) or ".." in name or "\x00" in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    prefixed = sorted((o for o in options if o.startswith(word) or word.startswith(o)), key=len)
    if prefixed:  # a truncated or over-long name is the commonest typo
        return prefixed[0]
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return found[0] if found else None
