"""Per-project log collection settings (issue 19): what the hub collects for a project.

Project admins choose, per project: collection on or off, which containers by name pattern
(``include``: only these, when given; ``exclude``: never these, which wins over include) and a
retention within the platform's maximum (``logs.retention_days``). Both ingest paths ask the
same rule, :meth:`CollectionRules.admits`: the API poller (``shipper.py``) before it reads a
container, the node collector's ingest route before it stores a batch. A project without
settings is collected whole (the behaviour before the settings existed).

Settings belong to a project, and a project lives in one cluster: they are keyed by the
project's key (:func:`hub.scope.project_key`: ``shop`` in the implicit cluster, so single-cluster
rows keep their keys, ``cluster-2/shop`` in cluster-2). A line is judged by the key of the
cluster it was logged in, so a project's settings never reach a same-named namespace of
another cluster, which may be another tenant's.

Pure: no store, no clock; the runtime loads the rows and builds a :class:`CollectionRules`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.errors import InvalidInput, Unprocessable
from hub.scope import DEFAULT_CLUSTER, project_key

MAX_PATTERNS = 50
_PATTERN = re.compile(r"^[a-z0-9*?\[\]!-]{1,63}\Z")  # a container name, with shell wildcards
_FIELDS = {"enabled", "include", "exclude", "retention_days"}


@dataclass(frozen=True)
class CollectionSettings:
    """One project's settings; the defaults collect everything for the platform's retention."""

    enabled: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    retention_days: int | None = None  # None: the platform's logs.retention_days

    def collects(self, container: str) -> bool:
        if not self.enabled:
            return False
        if any(fnmatch.fnmatchcase(container, p) for p in self.exclude):
            return False
        return not self.include or any(fnmatch.fnmatchcase(container, p) for p in self.include)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "retention_days": self.retention_days,
        }


DEFAULT = CollectionSettings()


def _patterns(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [p for p in re.split(r"[,\s]+", value) if p]
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise InvalidInput(f"{field} must be a list of at most {MAX_PATTERNS} container name patterns", field=field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _PATTERN.match(item):
            raise Unprocessable(
                f"{field}: {item!r} is not a container name pattern (lower-case letters, digits, '-', * ? [])",
                field=field,
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def parse_settings(body: Mapping[str, Any], *, max_retention_days: int) -> CollectionSettings:
    """A PUT body -> settings, or 400/422 naming the field. ``retention_days`` beyond the
    platform's maximum is 422 ``retention_days``: a project may keep less, never more."""
    for key in body:
        if key not in _FIELDS:
            raise InvalidInput(f"unknown field {key!r}; allowed: {', '.join(sorted(_FIELDS))}", field=key)
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    retention = body.get("retention_days")
    if retention is not None:
        if isinstance(retention, bool) or not isinstance(retention, int):
            raise InvalidInput("retention_days must be a whole number of days", field="retention_days")
        if not 1 <= retention <= max_retention_days:
            raise Unprocessable(
                f"retention_days must be between 1 and the platform's maximum {max_retention_days}, got {retention}",
                field="retention_days",
            )
    return CollectionSettings(
        enabled=enabled,
        include=_patterns(body.get("include"), "include"),
        exclude=_patterns(body.get("exclude"), "exclude"),
        retention_days=retention,
    )


@dataclass(frozen=True)
class CollectionRules:
    """Every project's settings by project key; projects without a row are collected whole."""

    by_project: Mapping[str, CollectionSettings]
    implicit: str = DEFAULT_CLUSTER  # the implicit cluster's name (its projects' keys are bare)

    def admits(self, key: str, container: str) -> bool:
        """Whether the project ``key`` (a project key, not a bare name) collects ``container``."""
        return self.by_project.get(key, DEFAULT).collects(container)

    def admits_in(self, cluster: str, namespace: str, container: str) -> bool:
        """:meth:`admits` for ``namespace`` of ``cluster`` ('' or the implicit one's name)."""
        return self.admits(project_key(cluster, namespace, self.implicit), container)


EVERYTHING = CollectionRules({})
