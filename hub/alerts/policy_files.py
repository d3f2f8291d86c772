"""Policy files: ``kubehub rules check`` and the built-in templates in ``rules/``. The only part of
the policy code that reads the file system; parsing stays pure in ``policy_yaml`` and
``policy_check``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from hub.alerts.policy_check import parse_policy
from hub.alerts.policy_model import Policy, PolicyInvalid, PolicySyntaxError, Problem
from hub.alerts.policy_yaml import _r, load_documents

_POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix in _POLICY_SUFFIXES and f.is_file()))
        else:
            out.append(path)
    return out


def load_policy_file(
    path: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
) -> tuple[list[Policy], list[Problem]]:
    """Every policy document in a file (several may be separated by ``---``) and the problems."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [], [Problem("", f"cannot read the file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return [], [Problem("", "the file is not UTF-8 text")]
    try:
        docs = load_documents(text)
    except PolicySyntaxError as exc:
        return [], [Problem("", exc.message, exc.line)]
    if not docs:
        return [], [Problem("", "the file holds no policy document")]
    policies: list[Policy] = []
    problems: list[Problem] = []
    names: dict[tuple[str, str | None, str], int] = {}
    for doc in docs:
        try:
            policy = parse_policy(doc.data, metrics=metrics, users=users, lines=doc.lines, extra_problems=doc.problems)
        except PolicyInvalid as exc:
            problems.extend(exc.problems)
            continue
        key = (policy.level, policy.namespace, policy.name)
        if key in names:
            problems.append(
                Problem("name", f"policy {_r(policy.name)} appears twice in this file", doc.lines.get("name"))
            )
        names[key] = 1
        policies.append(policy)
    return policies, problems


def check_policy_files(
    paths: Iterable[str | Path],
    *,
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
) -> tuple[list[str], int]:
    """Validate policy files for ``kubehub rules check``.

    Returns (problems as ``file:line: field.path: message``, number of files checked).
    Directories are expanded to their ``*.yaml``/``*.yml``/``*.json`` files.
    """
    problems: list[str] = []
    files = _expand(paths)
    for path in files:
        _, found = load_policy_file(path, metrics=metrics, users=users)
        problems.extend(p.format(str(path)) for p in found)
    return problems, len(files)


def builtin_templates(directory: str | Path) -> dict[str, Policy]:
    """The built-in templates in ``rules/`` by policy name (invalid files are skipped)."""
    out: dict[str, Policy] = {}
    for path in _expand([directory]):
        policies, _ = load_policy_file(path)
        for p in policies:
            out[p.name] = p
    return out


MetricsProvider = Callable[[], Mapping[str, Any]]
