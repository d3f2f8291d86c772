"""Alerts, history, comments and the outbox of the alerting service: a part of
:class:`~hub.alerts.service.AlertService` (a mixin; the service holds the store and clock).

Listings are filtered by the caller's :class:`~hub.scope.Scope`, an id outside it answers 404
like a missing one, and comments need ``alerts:write`` in the alert's namespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hub.alerts.cycle import META_POLICY_ID
from hub.alerts.notify.clusters import STALE_POLICY_ID
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.scope import Scope
from hub.store.alerts import ACTIVE, AlertStore
from hub.timeutil import Clock, iso, parse_time

MAX_COMMENT = 4000


class AlertsAndHistory:
    """Alerts, their history and comments, and the outbox, each within the caller's scope."""

    if TYPE_CHECKING:  # provided by AlertService (hub/alerts/service.py)

        def audit(self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any]) -> None: ...

        clock: Clock
        store: AlertStore

    # -- alerts -----------------------------------------------------------------------------
    def _alert_dict(self, r: Any) -> dict[str, Any]:
        return {
            "id": r["id"],
            "policy_id": r["policy_id"],
            "policy": r["policy_name"],
            "level": r["level"],
            "namespace": r["namespace"] or None,
            "rule": r["rule"],
            "severity": r["severity"],
            "entity": r["entity"],
            "labels": json.loads(r["labels"]),
            "state": r["state"],
            "active": bool(r["active"]),
            "started_at": iso(r["started_at"]),
            "fired_at": iso(r["fired_at"]) if r["fired_at"] else None,
            "ended_at": iso(r["ended_at"]) if r["ended_at"] else None,
            "value": r["last_value"],
            "threshold": r["threshold"],
            "comparator": r["comparator"],
            "unit": r["unit"],
            "metric": r["metric"],
            "query": r["query"],
            "periods": r["periods"],
            "sends": r["sends"],
            "reason": r["reason"] or None,
            "updated_at": iso(r["updated_at"]),
        }

    def alerts(
        self,
        scope: Scope,
        *,
        states: Sequence[str] = (),
        policy_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Alerts in the caller's scope. No state filter: the active ones (pending, firing,
        nodata, error); ``states`` may also ask for resolved or closed ones."""
        valid = (*ACTIVE, "resolved", "closed")
        bad = [s for s in states if s not in valid]
        if bad:
            raise InvalidInput(f"state must be one of {', '.join(valid)}; got {', '.join(bad)}", field="state")
        rows, total = self.store.alerts(
            namespaces=scope.visible,
            include_cluster=_any_node_grant(scope),  # node-alerts:read on some cluster; rows filtered below
            states=list(states) or list(ACTIVE),
            policy_id=policy_id,
            limit=limit,
            offset=offset,
        )
        kept = [r for r in rows if _node_row_visible(scope, r["namespace"], r["policy_id"], r["entity"], r["labels"])]
        return [self._alert_dict(r) for r in kept], total - (len(rows) - len(kept))

    def _visible_alert(self, alert_id: str, scope: Scope) -> Any:
        row = self.store.alert(alert_id)
        if (
            row is None
            or (row["namespace"] and not scope.allows(row["namespace"]))
            or (row["policy_id"] == META_POLICY_ID and not scope.may("alerts:read", None))
            or not _node_row_visible(scope, row["namespace"], row["policy_id"], row["entity"], row["labels"])
        ):
            raise NotFound(f"no alert {alert_id!r}")
        return row

    def alert(self, alert_id: str, scope: Scope) -> dict[str, Any]:
        row = self._visible_alert(alert_id, scope)
        out = self._alert_dict(row)
        events, _ = self.store.events(namespaces=None, include_cluster=True, alert_id=alert_id, limit=1000)
        out["events"] = [self._event_dict(e) for e in events]
        out["comments"] = [self._comment_dict(c) for c in self.store.comments(alert_id)]
        notices = self.store.notices_of(alert_id)
        out["notices"] = [_notice_dict(n) for n in notices]
        # Who was not told, and why (the latest undelivered record): the alert page shows it.
        undelivered = [n for n in out["notices"] if n["status"] == "undelivered" and n.get("undelivered")]
        out["undelivered"] = undelivered[-1]["undelivered"] if undelivered else []
        return out

    @staticmethod
    def _event_dict(e: Any) -> dict[str, Any]:
        return {
            "id": e["id"],
            "alert_id": e["alert_id"],
            "policy_id": e["policy_id"],
            "policy": e["policy_name"],
            "namespace": e["namespace"] or None,
            "rule": e["rule"],
            "entity": e["entity"],
            "severity": e["severity"],
            "time": iso(e["at"]),
            "from": e["from_state"],
            "to": e["to_state"],
            "value": e["value"],
            "reason": e["reason"] or None,
        }

    @staticmethod
    def _comment_dict(c: Any) -> dict[str, Any]:
        return {"id": c["id"], "author": c["author"], "time": iso(c["at"]), "text": c["text"]}

    def history(
        self,
        scope: Scope,
        *,
        since: Any = None,
        until: Any = None,
        alert_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        if alert_id:
            self._visible_alert(alert_id, scope)
        rows, total = self.store.events(
            namespaces=scope.visible,
            include_cluster=_any_node_grant(scope),  # node-alerts:read on some cluster; rows filtered below
            alert_id=alert_id,
            since=parse_time(since, field="since") if since not in (None, "") else None,
            until=parse_time(until, field="until") if until not in (None, "") else None,
            limit=limit,
            offset=offset,
        )
        # Node-level events of a cluster the caller holds no cluster role on are left out (their
        # alert's labels name its cluster; read once per alert of the page).
        labels_of: dict[str, str] = {}
        kept = []
        for e in rows:
            if not e["namespace"] and not scope.all_namespaces:
                if e["alert_id"] not in labels_of:
                    alert = self.store.alert(e["alert_id"])
                    labels_of[e["alert_id"]] = alert["labels"] if alert is not None else "{}"
                if not _node_row_visible(scope, "", e["policy_id"], e["entity"] or "", labels_of[e["alert_id"]]):
                    continue
            kept.append(e)
        total -= len(rows) - len(kept)
        rows = kept
        latest = self.store.latest_comments([e["alert_id"] for e in rows])
        out = []
        for e in rows:
            item = self._event_dict(e)
            count, last = latest.get(e["alert_id"], (0, None))
            item["comments"] = {"count": count, "latest": self._comment_dict(last) if last is not None else None}
            out.append(item)
        return out, total

    def add_comment(self, alert_id: str, text: Any, *, scope: Scope, author: str) -> dict[str, Any]:
        row = self._visible_alert(alert_id, scope)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("text must be a non-empty string", field="text")
        if len(text) > MAX_COMMENT:
            raise InvalidInput(f"text is longer than {MAX_COMMENT} characters", field="text")
        if not scope.may("alerts:write", row["namespace"] or None):
            raise Forbidden("you may read this alert but not comment on it")
        cid = self.store.add_comment(
            alert_id=alert_id, namespace=row["namespace"], author=author, text=text.strip(), now=self.clock.now()
        )
        target = f"namespace/{row['namespace']}/alert/{alert_id}" if row["namespace"] else f"cluster/alert/{alert_id}"
        self.audit(author, "alert.comment", target, "ok", {"namespace": row["namespace"]} if row["namespace"] else {})
        return next(self._comment_dict(c) for c in self.store.comments(alert_id) if c["id"] == cid)

    # -- outbox (for admins and the console's delivery page) ---------------------------------
    def outbox(self, scope: Scope, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        tenants = None if scope.visible is None else list(scope.visible)
        return [
            {
                "id": r["id"],
                "recipient": r["recipient"],
                "tenant": r["tenant"],
                "status": r["status"],
                "reason": r["reason"] or None,
                "subject": r["subject"] or None,
                "attempts": r["attempts"],
                "last_error": r["last_error"] or None,
                "not_before": iso(r["not_before"]),
                "created_at": iso(r["created_at"]),
                "sent_at": iso(r["sent_at"]) if r["sent_at"] else None,
                "message_id": r["message_id"],
            }
            for r in self.store.outbox(namespaces=tenants, limit=limit, offset=offset)
        ]


def _notice_dict(n: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": n["kind"], "at": iso(n["at"]), "status": n["status"], "key": n["key"]}
    out["delivered_at"] = iso(n["delivered_at"]) if n["delivered_at"] else None
    if n["status"] == "undelivered":
        try:
            out["undelivered"] = list(json.loads(n["payload"]).get("detail", {}).get("undelivered", []))
        except (ValueError, AttributeError):
            out["undelivered"] = []
    return out


def _node_row_visible(scope: Scope, namespace: str | None, policy_id: str, entity: str, labels: str) -> bool:
    """Cluster roles apply per cluster: a node-level row (no namespace) of an added cluster is
    visible with node-alerts:read on *that* cluster (its ``cluster`` label: a node policy bound
    to it, or the meta-alert of a lost cluster), the implicit cluster's with it there. Project
    rows are decided by the namespace filter, platform admins see all."""
    if namespace or scope.all_namespaces:
        return True
    cluster = str(json.loads(labels or "{}").get("cluster") or "")
    if not cluster and policy_id == STALE_POLICY_ID:
        cluster = entity.partition("/")[2]
    return scope.may_cluster("node-alerts:read", cluster or None)


def _any_node_grant(scope: Scope) -> bool:
    """Whether node-level rows may be visible at all: node-alerts:read on some cluster."""
    return scope.all_namespaces or any("node-alerts:read" in held for held in scope.cluster_grants.values())
