"""Workspace policies and per-project overrides in the alerting repository: a part of
:class:`~hub.store.alerts.AlertStore` (a mixin; the store holds the database).

The engine never reads these tables itself: :meth:`InheritedRows.inherited_policy_rows` expands
each enabled workspace policy into one workload-level policy row per project of its workspace
(``namespace`` forced to the project's, overridden thresholds applied, disabled rules left out),
shaped like a row of ``alert_policies``. Its id is ``<workspace policy id>@<namespace>``, so
the alerts, states and notices it produces belong to that project and tenant scoping applies to
them unchanged. Expansion is plain dict work on the stored document (the store may not import
``hub.alerts``); the documents were validated when saved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.errors import Conflict
from hub.store.alerts_rows import CycleWrite
from hub.store.db import IntegrityError, Row, StateStore

SEPARATOR = "@"


def inherited_id(policy_id: str, namespace: str) -> str:
    """The id of a workspace policy as one project's policy (its alerts carry it)."""
    return f"{policy_id}{SEPARATOR}{namespace}"


def expand_document(
    document: Mapping[str, Any], namespace: str, overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A workspace policy document as ``namespace``'s: overridden thresholds set, disabled rules
    removed. ``overrides`` maps rule name -> {"disabled": bool, "threshold": float | None}."""
    rules = []
    for rule in document.get("rules") or []:
        change = overrides.get(str(rule.get("name")), {})
        if change.get("disabled"):
            continue
        if change.get("threshold") is not None:
            rule = {**rule, "threshold": float(change["threshold"])}
        rules.append(rule)
    return {**document, "level": "workload", "namespace": namespace, "rules": rules}


def expand(
    policies: Iterable[Mapping[str, Any]],
    projects: Mapping[str, Sequence[str]],
    overrides: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Rows (id, version, document) of every enabled workspace policy in every project of its
    own workspace, and only its own: ``projects`` maps workspace -> namespaces. A project whose
    overrides disable every rule gets no row (nothing to evaluate)."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for o in overrides:
        by_key.setdefault((str(o["policy_id"]), str(o["namespace"])), {})[str(o["rule"])] = {
            "disabled": bool(o["disabled"]),
            "threshold": o["threshold"],
        }
    out: list[dict[str, Any]] = []
    for p in policies:
        if not p["enabled"]:
            continue
        document = json.loads(p["document"])
        for ns in projects.get(str(p["workspace"]), ()):
            doc = expand_document(document, ns, by_key.get((str(p["id"]), ns), {}))
            if not doc["rules"]:
                continue
            out.append(
                {"id": inherited_id(str(p["id"]), ns), "version": int(p["version"]), "document": json.dumps(doc)}
            )
    return sorted(out, key=lambda r: r["id"])


def _plain(row: Row) -> dict[str, Any]:
    return {k: row[k] for k in row.keys()}  # noqa: SIM118 (iterating a sqlite3.Row yields values)


class InheritedRows:
    """Workspace policies and overrides; the alerting service checks permissions and documents."""

    db: StateStore

    def _bump_generation(self) -> None:  # provided by AlertStore
        raise NotImplementedError

    def _apply(self, w: CycleWrite, now: float) -> None:  # provided by AlertStore
        raise NotImplementedError

    def _apply_all(self, writes: Sequence[CycleWrite], now: float) -> None:
        for w in writes:
            self._apply(w, now)

    # -- workspace policies --------------------------------------------------------------------
    def insert_workspace_policy(
        self,
        *,
        policy_id: str,
        workspace: str,
        name: str,
        document: Mapping[str, Any],
        required: Sequence[str],
        enabled: bool,
        actor: str,
        now: float,
    ) -> None:
        try:
            with self.db.transaction():
                self.db.execute(
                    "INSERT INTO alert_workspace_policies(id, workspace, name, document, required, enabled, version,"
                    " created_by, created_at, updated_by, updated_at) VALUES (?,?,?,?,?,?,1,?,?,?,?)",
                    (
                        policy_id,
                        workspace,
                        name,
                        json.dumps(document),
                        json.dumps(list(required)),
                        int(enabled),
                        actor,
                        now,
                        actor,
                        now,
                    ),
                )
                self._bump_generation()
        except IntegrityError as exc:
            raise Conflict(f"a workspace policy named {name!r} already exists here", field="name") from exc

    def update_workspace_policy(
        self,
        policy_id: str,
        *,
        name: str,
        document: Mapping[str, Any],
        required: Sequence[str],
        enabled: bool,
        actor: str,
        now: float,
        writes: Sequence[CycleWrite] = (),
    ) -> None:
        """Replace a workspace policy, applying the closing writes of the alerts the edit ends
        in its projects (see the service), atomically."""
        try:
            with self.db.transaction():
                self._apply_all(writes, now)
                self.db.execute(
                    "UPDATE alert_workspace_policies SET name=?, document=?, required=?, enabled=?,"
                    " version=version+1, updated_by=?, updated_at=? WHERE id=?",
                    (name, json.dumps(document), json.dumps(list(required)), int(enabled), actor, now, policy_id),
                )
                # A rule made required drops the overrides that disabled it.
                for rule in required:
                    self.db.execute(
                        "DELETE FROM alert_policy_overrides WHERE policy_id=? AND rule=? AND disabled=1",
                        (policy_id, rule),
                    )
                self._bump_generation()
        except IntegrityError as exc:
            raise Conflict(f"another workspace policy here is already named {name!r}", field="name") from exc

    def delete_workspace_policy(self, policy_id: str, *, now: float, writes: Sequence[CycleWrite] = ()) -> None:
        """Delete a workspace policy with its overrides and the engine state of its expansions,
        after the closing writes that end their alerts with a notice (the service builds them;
        the records stay, as history). An alert no write closed (its document no longer parses)
        is marked inactive all the same."""
        like = policy_id + SEPARATOR + "%"
        with self.db.transaction():
            self._apply_all(writes, now)
            self.db.execute("DELETE FROM alert_states WHERE policy_id LIKE ?", (like,))
            self.db.execute("DELETE FROM alert_flaps WHERE policy_id LIKE ?", (like,))
            self.db.execute("DELETE FROM alert_rule_health WHERE rule_id LIKE ?", (like,))
            self.db.execute("UPDATE alerts SET active=0 WHERE policy_id LIKE ? AND active=1", (like,))
            self.db.execute("DELETE FROM alert_policy_overrides WHERE policy_id=?", (policy_id,))
            self.db.execute("DELETE FROM alert_workspace_policies WHERE id=?", (policy_id,))
            self._bump_generation()

    def workspace_policy(self, policy_id: str) -> Row | None:
        return self.db.query_one("SELECT * FROM alert_workspace_policies WHERE id=?", (policy_id,))

    def workspace_policies(self, workspace: str) -> list[Row]:
        return self.db.query("SELECT * FROM alert_workspace_policies WHERE workspace=? ORDER BY name", (workspace,))

    # -- overrides -----------------------------------------------------------------------------
    def put_override(
        self,
        policy_id: str,
        namespace: str,
        rule: str,
        *,
        disabled: bool,
        threshold: float | None,
        actor: str,
        now: float,
        writes: Sequence[CycleWrite] = (),
    ) -> None:
        with self.db.transaction():
            self._apply_all(writes, now)
            self.db.execute(
                "INSERT INTO alert_policy_overrides(policy_id, namespace, rule, disabled, threshold, updated_by,"
                " updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(policy_id, namespace, rule) DO UPDATE SET"
                " disabled=excluded.disabled, threshold=excluded.threshold, updated_by=excluded.updated_by,"
                " updated_at=excluded.updated_at",
                (policy_id, namespace, rule, int(disabled), threshold, actor, now),
            )
            self._touch(policy_id)

    def delete_override(self, policy_id: str, namespace: str, rule: str) -> int:
        with self.db.transaction():
            n = self.db.execute(
                "DELETE FROM alert_policy_overrides WHERE policy_id=? AND namespace=? AND rule=?",
                (policy_id, namespace, rule),
            )
            self._touch(policy_id)
        return int(n or 0)

    def overrides(self, *, namespace: str | None = None) -> list[Row]:
        if namespace is None:
            return self.db.query("SELECT * FROM alert_policy_overrides ORDER BY policy_id, namespace, rule")
        return self.db.query(
            "SELECT * FROM alert_policy_overrides WHERE namespace=? ORDER BY policy_id, rule", (namespace,)
        )

    def _touch(self, policy_id: str) -> None:
        # The expansion's version is the workspace policy's: an override re-versions it so the
        # engine rewrites the carried-over alert records with the new threshold.
        self.db.execute("UPDATE alert_workspace_policies SET version=version+1 WHERE id=?", (policy_id,))
        self._bump_generation()

    # -- what the engine evaluates ---------------------------------------------------------------
    def inherited_policy_rows(self) -> list[dict[str, Any]]:
        projects: dict[str, list[str]] = {}
        for r in self.db.query("SELECT namespace, workspace FROM projects ORDER BY namespace"):
            projects.setdefault(str(r["workspace"]), []).append(str(r["namespace"]))
        policies = self.db.query("SELECT * FROM alert_workspace_policies WHERE enabled=1 ORDER BY id")
        return expand([_plain(r) for r in policies], projects, [_plain(r) for r in self.overrides()])

    def workspace_namespaces(self, workspace: str) -> list[str]:
        return [
            str(r["namespace"])
            for r in self.db.query("SELECT namespace FROM projects WHERE workspace=? ORDER BY namespace", (workspace,))
        ]

    def project_workspace(self, namespace: str) -> str | None:
        row = self.db.query_one("SELECT workspace FROM projects WHERE namespace=?", (namespace,))
        return str(row["workspace"]) if row else None

    def projects_generation(self) -> int:
        row = self.db.query_one("SELECT gen FROM project_generation WHERE id = 1")
        return int(row["gen"]) if row else 0
