"""Silences of the alerting service: a part of :class:`~hub.alerts.service.AlertService` (a
mixin; the service holds the store, clock and audit log).

A tenant's silence only ever matches its own namespace; a silence naming a namespace outside
the caller's scope is the one 403 of docs/tenancy.md; cluster-wide silences are for platform
admins.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.alerts.notify.silence import MATCHER_FIELDS
from hub.alerts.service_alerts import MAX_COMMENT  # one limit for alert comments and silences
from hub.errors import Forbidden, InvalidInput, NotFound, Unprocessable
from hub.scope import Scope
from hub.store.alerts import AlertStore
from hub.timeutil import Clock, iso, parse_duration, parse_time

MAX_SILENCE = 90 * 86400.0  # a silence longer than a quarter is a disabled policy in disguise
MAX_SILENCE_LEAD = 365 * 86400.0  # planned maintenance is known a year ahead at most


class Silences:
    """Silences within the caller's scope: listed by it, created and deleted with ``alerts:write``."""

    if TYPE_CHECKING:  # provided by AlertService (hub/alerts/service.py)

        def audit(self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any]) -> None: ...

        clock: Clock
        store: AlertStore

    # -- silences ---------------------------------------------------------------------------
    def _silence_dict(self, s: Any) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "id": s["id"],
            "namespace": s["namespace"] or None,
            "matchers": json.loads(s["matchers"]),
            "starts_at": iso(s["starts_at"]),
            "ends_at": iso(s["ends_at"]),
            "comment": s["comment"],
            "created_by": s["created_by"],
            "created_at": iso(s["created_at"]),
            "active": s["starts_at"] <= now < s["ends_at"],
        }

    def silences(self, scope: Scope, *, active_only: bool = False) -> list[dict[str, Any]]:
        rows = self.store.silences(
            namespaces=scope.visible,
            include_cluster=scope.may("alerts:read", None),  # node-alerts:read
            active_at=self.clock.now() if active_only else None,
        )
        return [self._silence_dict(s) for s in rows]

    def create_silence(self, body: Mapping[str, Any], *, scope: Scope, actor: str) -> dict[str, Any]:
        """``{"namespace"?, "matchers": {policy|rule|entity|severity|level|alert: glob}, "starts_at"?,
        "ends_at" | "duration", "comment"}``. Without a namespace the silence is cluster-wide
        (platform admins only); a tenant's silence only ever matches its namespace."""
        known = {"namespace", "matchers", "starts_at", "ends_at", "duration", "comment"}
        for key in body:
            if key not in known:
                raise InvalidInput(f"unknown field; known fields: {', '.join(sorted(known))}", field=key)
        namespace = body.get("namespace") or None
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidInput("namespace must be a string", field="namespace")
        if namespace is None and not scope.all_namespaces:  # it would silence every tenant too
            raise Forbidden("only platform admins create cluster-wide silences")
        scope.check("alerts:write", namespace)  # the one answer for a foreign or unknown namespace
        matchers = body.get("matchers")
        if not isinstance(matchers, dict) or not matchers:
            raise Unprocessable(
                "matchers must map at least one of " + ", ".join(MATCHER_FIELDS) + " to a value", field="matchers"
            )
        for key, value in matchers.items():
            if key not in MATCHER_FIELDS:
                raise Unprocessable(f"unknown matcher; known: {', '.join(MATCHER_FIELDS)}", field=f"matchers.{key}")
            if not isinstance(value, str) or not value or len(value) > 253 or "\n" in value:
                raise Unprocessable(
                    "a matcher value must be a non-empty string (globs allowed)", field=f"matchers.{key}"
                )
        now = self.clock.now()
        starts = parse_time(body["starts_at"], field="starts_at") if body.get("starts_at") not in (None, "") else now
        if body.get("ends_at") not in (None, ""):
            ends = parse_time(body["ends_at"], field="ends_at")
        elif body.get("duration") not in (None, ""):
            ends = starts + parse_duration(body["duration"], field="duration")
        else:
            raise InvalidInput("give ends_at or a duration (e.g. 2h)", field="ends_at")
        if ends <= starts:
            raise Unprocessable("ends_at must be after starts_at", field="ends_at")
        if ends <= now:
            raise Unprocessable("the silence would already be over", field="ends_at")
        if starts - now > MAX_SILENCE_LEAD:
            raise Unprocessable("a silence may start at most 365 days from now", field="starts_at")
        if ends - starts > MAX_SILENCE:
            raise Unprocessable("a silence may last at most 90 days; disable the policy instead", field="ends_at")
        comment = body.get("comment", "")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            raise InvalidInput(f"comment must be a string of at most {MAX_COMMENT} characters", field="comment")
        sid = "sil-" + secrets.token_hex(6)
        self.store.insert_silence(
            silence_id=sid,
            namespace=namespace,
            matchers={str(k): str(v) for k, v in matchers.items()},
            starts_at=starts,
            ends_at=ends,
            comment=comment,
            actor=actor,
            now=now,
        )
        target = f"namespace/{namespace}/silence/{sid}" if namespace else f"cluster/silence/{sid}"
        self.audit(
            actor,
            "silence.create",
            target,
            "ok",
            {"matchers": matchers, **({"namespace": namespace} if namespace else {})},
        )
        row = self.store.silence(sid)
        return self._silence_dict(row)

    def delete_silence(self, silence_id: str, *, scope: Scope, actor: str) -> dict[str, Any]:
        row = self.store.silence(silence_id)
        namespace = (row["namespace"] or None) if row is not None else None
        if row is None or not scope.allows(namespace):
            raise NotFound(f"no silence {silence_id!r}")
        if not (scope.may("alerts:write", namespace) if namespace else scope.all_namespaces):
            raise Forbidden("you may read this silence but not delete it")
        self.store.delete_silence(silence_id, now=self.clock.now())
        target = f"namespace/{namespace}/silence/{silence_id}" if namespace else f"cluster/silence/{silence_id}"
        self.audit(actor, "silence.delete", target, "ok", {"namespace": namespace} if namespace else {})
        return {"id": silence_id, "deleted": True}
