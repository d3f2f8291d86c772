"""What the API and the console call: policies, alerts, history, comments, silences, backtests.

Scoping is applied here: every read and write takes the caller's :class:`hub.scope.Scope`
(built by the tenancy service, passed through by the web layer). Listings are filtered by its
namespaces (node-level objects: platform admins only); every lookup by id checks the object
against it and answers 404 for anything outside, so a tenant learns nothing about other
tenants' ids; writes need ``alerts:write`` in the object's namespace (403 otherwise).

One class in three files: this module holds policies, templates and backtests;
:mod:`hub.alerts.service_alerts` alerts, history, comments and the outbox and
:mod:`hub.alerts.service_silences` silences and :mod:`hub.alerts.service_inherited` workspace
(inherited) policies with a project's effective view (mixins of :class:`AlertService`).

Policy edits never drop in-flight alerts silently: each tracked (rule, entity) of the policy
is carried over when its rule still exists with the same metric, aggregation and period and
the entity is still a target; otherwise it is closed, with a notice to whoever was told it
fired. Deleting or disabling a policy closes all of them the same way.

About 530 lines because policy writes carry their in-flight alerts over (the edit effects
and the closing write) and that bookkeeping belongs with the writes, and because the console's
policy page is read here in one scoped call (its page of policies and the projects' counts).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hub.alerts import backtest, engine
from hub.alerts.cycle import close_states, notice_rows, silence_from_row, state_from_json
from hub.alerts.engine import EntityState, QueryBuilder
from hub.alerts.notify import history, pipeline
from hub.alerts.notify.reach import receiver_warnings
from hub.alerts.policy import (
    LEVELS,
    Policy,
    PolicyInvalid,
    Problem,
    builtin_templates,
    decode_policy_text,
    parse_policy,
)
from hub.alerts.promql_scope import PromQLRefused, scope_expression
from hub.alerts.service_alerts import AlertsAndHistory
from hub.alerts.service_inherited import InheritedPolicies
from hub.alerts.service_silences import Silences
from hub.errors import BackendUnavailable, InvalidInput, NotFound
from hub.scope import Scope, split_key
from hub.store.alerts import AlertStore, CycleWrite
from hub.timeutil import Clock, iso, parse_duration, parse_time

AuditFn = Callable[[str, str, str, str, Mapping[str, Any]], Any]


def keep_secrets(new: Policy, stored: Policy) -> Policy:
    """Webhook secrets are write-only: a receiver saved again without ``secret`` (the console
    and a GET-edit-PUT never have it) keeps the stored one for the same URL; ``secret: ""``
    removes it."""
    kept = {r.webhook: r.secret for r in stored.notification.receivers if r.webhook and r.secret}
    receivers = tuple(
        replace(r, secret=kept.get(r.webhook)) if r.webhook and r.secret is None and r.webhook in kept else r
        for r in new.notification.receivers
    )
    return replace(new, notification=replace(new.notification, receivers=receivers))


def redact_secrets(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document as an answer shows it: ``secret_set: true`` instead of the secret."""
    for r in (document.get("notification") or {}).get("receivers") or []:
        if isinstance(r, dict) and r.pop("secret", None):
            r["secret_set"] = True
    return document


def _policy_id() -> str:
    return "pol-" + secrets.token_hex(6)


class AlertService(AlertsAndHistory, Silences, InheritedPolicies):
    def __init__(
        self,
        store: AlertStore,
        *,
        clock: Clock,
        build_query: QueryBuilder | None = None,
        range_query: backtest.RangeRunner | None = None,
        metrics: Callable[[], Mapping[str, Any]] | None = None,
        users: Callable[[str | None], Collection[str]] | None = None,
        resolve_user: Callable[[str, str | None], str | None] = lambda name, namespace: None,
        explain_user: Callable[[str, str | None], str] | None = None,
        audit: AuditFn | None = None,
        templates_dir: str | Path | None = None,
        default_language: str = "en",
        quota_per_hour: int = 0,
        implicit_label: str = "",
    ) -> None:
        self.store = store
        # The implicit cluster's ``cluster`` label on a shared endpoint ('' : none): its
        # tenants' PromQL rules match it (engine_model.compile_rules), in backtests too.
        self.implicit_label = implicit_label
        self.clock = clock
        self.build_query = build_query
        self.range_query = range_query
        self.metrics = metrics
        self.users = users
        self.resolve_user = resolve_user
        self.explain_user = explain_user
        self._audit = audit
        self.templates_dir = Path(templates_dir) if templates_dir else None
        self.default_language = default_language
        self.quota_per_hour = quota_per_hour

    # -- helpers ----------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any]) -> None:
        if self._audit is not None:
            self._audit(actor, action, target, result, detail)

    def _check_level(self, level: str) -> None:
        if level not in LEVELS:
            raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")

    def parse(self, document: Any, *, level: str, namespace: str | None, content_type: str = "json") -> Policy:
        """Validate a document for a URL (level, namespace); raises 400/422 with field paths."""
        self._check_level(level)
        metrics = self.metrics() if self.metrics else None
        # Receivers given as users must be able to see the alerts: a workload policy's evidence
        # (workload names, log lines) must not reach someone outside the project.
        users = self.users(namespace if level == "workload" else None) if self.users else None
        lines: dict[str, int] = {}
        extra: list[Problem] = []
        if isinstance(document, str):
            source = decode_policy_text(document, content_type=content_type)
            document, lines, extra = source.data, source.lines, source.problems
        if isinstance(document, dict):
            doc_level = document.get("level", level)
            if doc_level != level:
                where = "the project's alerting policies" if level == "workload" else "the cluster's alerting policies"
                raise PolicyInvalid([Problem("level", f"must be {level!r} for {where}", lines.get("level"))])
            document = {**document, "level": level}
        policy = parse_policy(
            document,
            metrics=metrics,
            users=users,
            lines=lines,
            extra_problems=extra,
            namespace=namespace if level == "workload" else None,
        )
        self._check_implicit_cluster(policy, lines)
        return policy

    def _check_implicit_cluster(self, policy: Policy, lines: Mapping[str, int]) -> None:
        """A tenant's PromQL rule of an implicit-cluster project on an endpoint shared by
        clusters is evaluated with the implicit cluster's label matched; a rule matching
        ``cluster`` itself is refused when saved (naming the field and the construct), as an
        added cluster's project's rule is, instead of compiling to a query returning nothing."""
        if not self.implicit_label or policy.level != "workload" or split_key(policy.namespace or "")[0]:
            return
        problems = []
        for i, rule in enumerate(policy.rules):
            if rule.expr is None:
                continue
            try:
                scope_expression(rule.expr, policy.namespace or "", cluster_label=self.implicit_label)
            except PromQLRefused as exc:
                path = f"rules[{i}].expr"
                problems.append(Problem(path, f"refused: {exc}", lines.get(path)))
        if problems:
            raise PolicyInvalid(problems)

    def _row(self, policy_id: str, *, level: str, namespace: str | None) -> Any:
        row = self.store.policy(policy_id)
        if row is None or row["level"] != level or (level == "workload" and row["namespace"] != (namespace or "")):
            raise NotFound(f"no alerting policy {policy_id!r} here")
        return row

    @staticmethod
    def _stored(row: Any) -> Policy | None:
        """The stored policy, or None when its document no longer validates (a rule made stricter
        after it was saved): such a policy must still be replaceable and deletable, or it could
        never be fixed."""
        try:
            return parse_policy(json.loads(row["document"]))
        except (PolicyInvalid, InvalidInput, ValueError):
            return None

    def _policy_dict(self, row: Any, *, with_status: bool = False) -> dict[str, Any]:
        doc = redact_secrets(json.loads(row["document"]))
        out = {
            "id": row["id"],
            **doc,
            "version": row["version"],
            "created_by": row["created_by"],
            "created_at": iso(row["created_at"]),
            "updated_by": row["updated_by"],
            "updated_at": iso(row["updated_at"]),
        }
        if with_status:
            out["status"] = self.policy_status(row["id"])
        return out

    # -- policies -------------------------------------------------------------------------
    def list_policies(self, *, level: str, namespace: str | None = None) -> list[dict[str, Any]]:
        self._check_level(level)
        namespaces = [namespace or ""] if level == "workload" else None
        rows = self.store.policies(level=level, namespaces=namespaces)
        return [self._policy_dict(r) for r in rows]

    def workload_policy_page(self, scope: Scope, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """The workload policies of every project where ``scope`` holds ``policies:read``
        (platform admins: every project) in one read, by project, name and id: ``items`` (``limit``
        from ``offset``), their ``total``, and the projects in reach with none (``empty``), each
        to be offered a first one. The console's policy list; 300 projects read one by one took
        0.6 s of server time (docs/scale.md)."""
        namespaces = scope.named("policies:read", None)  # None: no filter (platform admins)
        rows, total, empty = self.store.workload_policy_page(namespaces, offset=max(offset, 0), limit=limit)
        return {"items": [self._policy_dict(r) for r in rows], "total": total, "empty": empty}

    def get_policy(self, policy_id: str, *, level: str, namespace: str | None = None) -> dict[str, Any]:
        return self._policy_dict(self._row(policy_id, level=level, namespace=namespace), with_status=True)

    def validate(
        self, document: Any, *, level: str, namespace: str | None = None, content_type: str = "json"
    ) -> dict[str, Any]:
        """Validate without saving: the canonical document, or 400/422 with every problem."""
        policy = self.parse(document, level=level, namespace=namespace, content_type=content_type)
        return {"valid": True, "policy": policy.to_document(), "warnings": self.warnings(policy)}

    def warnings(self, policy: Policy) -> list[dict[str, str]]:
        """What a saved policy will not do although it is valid: receivers it cannot mail
        (a user without an email address). The save goes through; the answer says so."""
        return receiver_warnings(policy, resolve_user=self.resolve_user, explain_user=self.explain_user)

    def create_policy(
        self, document: Any, *, level: str, namespace: str | None = None, actor: str, content_type: str = "json"
    ) -> dict[str, Any]:
        policy = self.parse(document, level=level, namespace=namespace, content_type=content_type)
        policy_id = _policy_id()
        self.store.insert_policy(
            policy_id=policy_id,
            level=policy.level,
            namespace=policy.namespace,
            name=policy.name,
            document=policy.to_document(secrets=True),
            enabled=policy.enabled,
            actor=actor,
            now=self.clock.now(),
        )
        self.audit(actor, "policy.create", self._target(policy, policy_id), "ok", self._audit_detail(policy))
        out = self.get_policy(policy_id, level=level, namespace=namespace)
        out["warnings"] = self.warnings(policy)
        return out

    def update_policy(
        self,
        policy_id: str,
        document: Any,
        *,
        level: str,
        namespace: str | None = None,
        actor: str,
        content_type: str = "json",
    ) -> dict[str, Any]:
        row = self._row(policy_id, level=level, namespace=namespace)
        new = self.parse(document, level=level, namespace=namespace, content_type=content_type)
        stored = self._stored(row)
        now = self.clock.now()
        states = [state_from_json(r["data"]) for r in self.store.state_rows(policy_id)]
        if stored is None:  # nothing of the old rules can be trusted: its alerts close, told by the new receivers
            old = new
            carried: list[EntityState] = []
            closing = [(st, "the stored policy no longer validated") for st in states]
        else:
            old = stored
            new = keep_secrets(new, stored)
            carried, closing = self._edit_effects(old, new, states)
        write = self._closing_write(policy_id, old, closing, now)
        self.store.update_policy(
            policy_id,
            name=new.name,
            document=new.to_document(secrets=True),
            enabled=new.enabled,
            actor=actor,
            now=now,
            write=write,
        )
        detail = {
            **self._audit_detail(new),
            "carried_over": len(carried),
            "closed": [{"rule": st.rule, "entity": st.entity, "why": why} for st, why in closing],
        }
        self.audit(actor, "policy.update", self._target(new, policy_id), "ok", detail)
        out = self.get_policy(policy_id, level=level, namespace=namespace)
        out["effects"] = {
            "carried_over": [{"rule": st.rule, "entity": st.entity, "state": st.state} for st in carried],
            "closed": [{"rule": st.rule, "entity": st.entity, "reason": why} for st, why in closing],
        }
        out["warnings"] = self.warnings(new)
        return out

    def delete_policy(self, policy_id: str, *, level: str, namespace: str | None = None, actor: str) -> dict[str, Any]:
        row = self._row(policy_id, level=level, namespace=namespace)
        old = self._stored(row)
        now = self.clock.now()
        states = [state_from_json(r["data"]) for r in self.store.state_rows(policy_id)]
        closing = [(st, "the policy was deleted") for st in states]
        if old is None:
            # Without a policy there are no receivers to tell: its alerts go with it, and the
            # audit entry says so.
            self.store.delete_policy(policy_id, now=now)
            target = (
                f"namespace/{row['namespace']}/policy/{policy_id}"
                if row["namespace"]
                else f"cluster/policy/{policy_id}"
            )
            detail = {"name": row["name"], "level": row["level"], "closed": len(closing), "unparsable": True}
            self.audit(actor, "policy.delete", target, "ok", detail)
            return {"id": policy_id, "deleted": True, "closed": len(closing)}
        write = self._closing_write(policy_id, old, closing, now)
        self.store.delete_policy(policy_id, now=now, write=write)
        self.audit(
            actor,
            "policy.delete",
            self._target(old, policy_id),
            "ok",
            {**self._audit_detail(old), "closed": len(closing)},
        )
        return {"id": policy_id, "deleted": True, "closed": len(closing)}

    def _edit_effects(
        self, old: Policy, new: Policy, states: Sequence[EntityState]
    ) -> tuple[list[EntityState], list[tuple[EntityState, str]]]:
        carried: list[EntityState] = []
        closing: list[tuple[EntityState, str]] = []
        for st in states:
            before = old.rule(st.rule)
            after = new.rule(st.rule)
            if not new.enabled:
                closing.append((st, "the policy was disabled"))
            elif after is None:
                closing.append((st, "its rule was removed from the policy"))
            elif before is not None and (before.metric, before.aggregation, before.period, before.expr) != (
                after.metric,
                after.aggregation,
                after.period,
                after.expr,
            ):
                closing.append(
                    (st, "its rule now measures something else (metric, expression, aggregation or period changed)")
                )
            elif not engine.target_matches(new, st.labels):
                closing.append((st, "the entity is no longer a target of the policy"))
            else:
                carried.append(st)
        return carried, closing

    def _closing_write(
        self, policy_id: str, old: Policy, closing: Sequence[tuple[EntityState, str]], now: float
    ) -> CycleWrite | None:
        """History, notices and messages for alerts closed by an edit, through the same pipeline."""
        if not closing:
            return None
        transitions = []
        for st, why in closing:
            transitions += close_states([st], reason=why, now=now)
        policies = {policy_id: old}
        tenants = {policy_id: old.namespace or "cluster"}

        def query_text(pid: str, rule_name: str) -> str:
            rule = old.rule(rule_name)
            if rule is None or self.build_query is None:
                return ""
            try:
                return str(self.build_query(old.level, rule.metric, rule.aggregation, rule.period)[0])
            except Exception:  # a notice without its query beats no notice
                return ""

        out = pipeline.process(
            pipeline.PipelineInput(
                now=now,
                transitions=transitions,
                states={},
                policies=policies,
                tenants=tenants,
                silences=[
                    silence_from_row(r)
                    for r in self.store.silences(namespaces=None, include_cluster=True, active_at=now)
                ],
                flaps={},
                query_text=query_text,
                existing_keys=self.store.existing_notice_keys,
                count_since=self.store.tenant_messages_since,
                resolve_user=self.resolve_user,
                explain_user=self.explain_user,
                default_language=self.default_language,
                quota_per_hour=self.quota_per_hour,
            )
        )
        rows, deletes, events = history.records(
            transitions=transitions, changed={}, policies=policies, query_text=query_text, now=now
        )
        w = CycleWrite()
        w.delete_states = [(st.policy_id, st.rule, st.entity) for st, _ in closing]
        w.upsert_alerts = rows
        w.delete_alerts = deletes
        w.events = events + out.events
        w.notices = notice_rows(out.notices)
        w.messages = [m.to_row() for m in out.messages]
        return w

    @staticmethod
    def _target(policy: Policy, policy_id: str) -> str:
        return f"namespace/{policy.namespace}/policy/{policy_id}" if policy.namespace else f"cluster/policy/{policy_id}"

    @staticmethod
    def _audit_detail(policy: Policy) -> dict[str, Any]:
        detail: dict[str, Any] = {"name": policy.name, "level": policy.level, "rules": [r.name for r in policy.rules]}
        if policy.namespace:
            detail["namespace"] = policy.namespace
        return detail

    def policy_status(self, policy_id: str) -> dict[str, Any]:
        rows, _ = self.store.alerts(
            namespaces=None, include_cluster=True, active=True, policy_id=policy_id, limit=10_000
        )
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        health = {
            r["rule_id"].split("/", 1)[1]: {"status": r["status"], "detail": r["detail"], "since": iso(r["at"])}
            for r in self.store.health_rows()
            if r["rule_id"].startswith(policy_id + "/")
        }
        return {"alerts": counts, "rules": health}

    # -- templates --------------------------------------------------------------------------
    def templates(self, *, level: str | None = None) -> list[dict[str, Any]]:
        if self.templates_dir is None or not self.templates_dir.is_dir():
            return []
        out = []
        for name, policy in sorted(builtin_templates(self.templates_dir).items()):
            if level and policy.level != level:
                continue
            doc = policy.to_document()
            doc.pop("namespace", None)
            out.append({"template": name, **doc})
        return out

    def create_from_template(
        self,
        name: str,
        *,
        level: str,
        namespace: str | None = None,
        actor: str,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        found = {t["template"]: t for t in self.templates(level=level)}
        if name not in found:
            raise NotFound(f"no {level}-level template {name!r}; known: {', '.join(sorted(found)) or 'none'}")
        doc = {k: v for k, v in found[name].items() if k != "template"}
        doc.update(dict(overrides or {}))
        if level == "workload":
            doc["namespace"] = namespace
        return self.create_policy(doc, level=level, namespace=namespace, actor=actor)

    # -- backtest ---------------------------------------------------------------------------
    def backtest(
        self,
        policy_id: str | None,
        *,
        level: str,
        namespace: str | None = None,
        start: Any,
        end: Any,
        document: Any = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Replay a stored policy (or an unsaved ``document``) over [start, end]."""
        if document is not None:
            policy = self.parse(document, level=level, namespace=namespace)
            pid = "unsaved"
        else:
            row = self._row(policy_id or "", level=level, namespace=namespace)
            policy = parse_policy(json.loads(row["document"]))
            pid = row["id"]
        if self.range_query is None or self.build_query is None:
            raise BackendUnavailable("prometheus", "no Prometheus is configured, so there is no history to replay")
        if start is None:
            raise InvalidInput(
                "start is required (epoch seconds, RFC 3339, or a duration ago such as 24h)", field="start"
            )
        now = self.clock.now()
        t_end = now if end in (None, "", "now") else parse_time(end, field="end")
        t_start = _time_or_ago(start, now=t_end, field="start")
        silences = self.store.silences(
            namespaces=[policy.namespace] if policy.namespace else None, include_cluster=True
        )
        result = backtest.run_backtest(
            policy,
            start=t_start,
            end=t_end,
            now=now,
            build_query=self.build_query,
            range_query=self.range_query,
            silences=[dict(s) for s in silences],
            resolve_user=self.resolve_user,
            default_language=self.default_language,
            quota_per_hour=self.quota_per_hour,
            policy_id=pid,
            progress=progress,
            implicit_label=self.implicit_label,
        )
        return {"policy": {"id": pid, "name": policy.name}, **result.to_dict()}


def _time_or_ago(value: Any, *, now: float, field: str) -> float:
    """Epoch seconds, RFC 3339, or a duration meaning "that long before ``now``" (``24h``)."""
    if isinstance(value, str) and value and value[-1] in "smhdw" and value[0] != "-":
        try:
            return now - parse_duration(value, field=field)
        except InvalidInput:
            pass
    return parse_time(value, field=field)
