"""An added cluster's namespaces in memory, through the tenancy area's own protocol
(:class:`hub.tenancy.placement.ClusterNamespaces`), for unit tests whose worlds add a cluster
they cannot connect (a kubeconfig that does not exist) and still place projects in it.

:func:`patch_runtime` swaps the runtime's lookup of an added cluster's namespace calls
(``hub.runtime.tenancy._cluster_namespaces``) for these stand-ins: every hub built afterwards in
the test asks them, and the returned dict shows what reached which cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hub.errors import BackendUnavailable, Conflict
from hub.tenancy.directory import WORKSPACE_LABEL


class MemoryNamespaces:
    """One cluster's namespaces as its API server would keep them (labels, creation time, UID)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.namespaces: dict[str, dict[str, str]] = {}
        self.down = False
        self.deleted: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable(f"kubernetes API server of cluster {self.name}", "connection refused")

    def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> float:
        self._check()
        have = self.namespaces.get(name)
        if have is not None and have.get(WORKSPACE_LABEL) not in (None, labels.get(WORKSPACE_LABEL)):
            raise Conflict(f"namespace {name} already belongs to workspace {have[WORKSPACE_LABEL]}", field="name")
        self.namespaces[name] = {**(have or {}), **labels}
        return 1_700_000_000.0 + len(self.namespaces)

    def namespace_uid(self, name: str) -> str | None:
        self._check()
        return f"uid-{self.name}-{name}" if name in self.namespaces else None

    def delete_namespace(self, name: str) -> bool:
        self._check()
        self.deleted.append(name)
        return self.namespaces.pop(name, None) is not None


def patch_runtime(monkeypatch: pytest.MonkeyPatch) -> dict[str, MemoryNamespaces]:
    """Every added cluster of the hubs built from now on in this test: a :class:`MemoryNamespaces`."""
    clusters: dict[str, MemoryNamespaces] = {}

    def lookup(_hub: Any) -> Callable[[str], MemoryNamespaces]:
        return lambda name: clusters.setdefault(name, MemoryNamespaces(name))

    monkeypatch.setattr("hub.runtime.tenancy._cluster_namespaces", lookup)
    return clusters
