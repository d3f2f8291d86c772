"""The alerting repository's shared vocabulary: what one cycle writes (:class:`CycleWrite`),
the columns of an alert row, and the two SQL helpers every part of
:class:`~hub.store.alerts.AlertStore` uses (``IN`` lists and the scope clause).

Kept apart so the store's parts (policies and the engine's state, outbox, history, silences)
can import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIVE = ("pending", "firing", "nodata", "error")


class StaleCycle(Exception):
    """A policy changed while the cycle ran; its results are discarded and it runs again."""


@dataclass
class CycleWrite:
    """Everything one cycle (or a policy edit) changes, applied atomically by commit_cycle."""

    slots: dict[float, float] = field(default_factory=dict)
    upsert_states: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    delete_states: list[tuple[str, str, str]] = field(default_factory=list)
    upsert_alerts: list[dict[str, Any]] = field(default_factory=list)
    delete_alerts: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    upsert_flaps: list[tuple[str, str, str, str, int, int, float | None]] = field(default_factory=list)
    delete_flaps: list[tuple[str, str, str]] = field(default_factory=list)
    health: dict[str, tuple[str, str, float] | None] = field(default_factory=dict)  # None: healthy again
    meta: dict[str, str] = field(default_factory=dict)
    # notification groups (recipient, group id, tenant, labels JSON, flush_at) and their expiry
    upsert_groups: list[tuple[str, str, str, str, float]] = field(default_factory=list)
    delete_groups: list[tuple[str, str]] = field(default_factory=list)

    def empty(self) -> bool:
        return not any(
            (
                self.slots,
                self.upsert_states,
                self.delete_states,
                self.upsert_alerts,
                self.delete_alerts,
                self.events,
                self.notices,
                self.messages,
                self.upsert_flaps,
                self.delete_flaps,
                self.health,
                self.meta,
                self.upsert_groups,
                self.delete_groups,
            )
        )


ALERT_COLUMNS = (
    "id",
    "policy_id",
    "policy_name",
    "level",
    "namespace",
    "rule",
    "severity",
    "entity",
    "labels",
    "state",
    "active",
    "started_at",
    "fired_at",
    "ended_at",
    "last_value",
    "threshold",
    "comparator",
    "unit",
    "metric",
    "query",
    "periods",
    "sends",
    "reason",
    "updated_at",
)


def in_clause(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    if not values:
        return "1=0", []
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def scope_clause(namespaces: Sequence[str] | None, include_cluster: bool) -> tuple[str, list[Any]]:
    """The WHERE clause of a scope: ``namespaces`` (None: all) plus cluster-level rows (namespace
    '') when ``include_cluster``. The scope itself is decided by the alerting service."""
    if namespaces is None:
        return ("1=1", []) if include_cluster else ("namespace!=''", [])
    ns = [n for n in namespaces if n]
    if include_cluster:
        ns.append("")
    return in_clause("namespace", ns)
