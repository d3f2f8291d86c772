"""Workspace (inherited) alert policies and a project's effective policies: a part of
:class:`hub.alerts.service.AlertService` (a mixin).

A workspace policy is a workload-level policy document without a namespace, stored once per
workspace; every project of the workspace inherits it (the engine expands it per project, see
:mod:`hub.store.alerts_inherited`). A project may change a rule's threshold or disable a rule;
a rule the workspace marked ``required`` cannot be disabled (422 naming the rule), so a project
cannot silently drop what the workspace requires. The effective view says, per project, what
applies, from where (``workspace`` or ``project``) and what the project overrode.

Permissions are the web layer's (workspace admins write workspace policies, project members
with ``policies:write`` write overrides); here every lookup checks the object belongs to the
workspace or project of the URL, answering 404 otherwise, so ids of other tenants leak nothing.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from hub.alerts.cycle import state_from_json
from hub.alerts.engine import EntityState
from hub.alerts.policy import Policy, PolicyInvalid, Problem, parse_policy
from hub.errors import InvalidInput, NotFound, Unprocessable
from hub.store.alerts import AlertStore, CycleWrite
from hub.store.alerts_inherited import expand_document, inherited_id
from hub.timeutil import Clock, iso

VALIDATION_NAMESPACE = "workspace-policy"


class InheritedPolicies:
    """Workspace policies, overrides and the effective view (a mixin of AlertService)."""

    store: AlertStore
    clock: Clock
    parse: Callable[..., Policy]
    audit: Callable[[str, str, str, str, Mapping[str, Any]], None]
    policy_status: Callable[[str], dict[str, Any]]
    _edit_effects: Callable[
        [Policy, Policy, Sequence[EntityState]], tuple[list[EntityState], list[tuple[EntityState, str]]]
    ]
    _closing_write: Callable[[str, Policy, Sequence[tuple[EntityState, str]], float], CycleWrite | None]

    # -- what an edit does to the alerts in flight -------------------------------------------------
    def _ns_overrides(self, policy_id: str, namespace: str) -> dict[str, dict[str, Any]]:
        return {
            str(o["rule"]): {"disabled": bool(o["disabled"]), "threshold": o["threshold"]}
            for o in self.store.overrides(namespace=namespace)
            if o["policy_id"] == policy_id
        }

    @staticmethod
    def _expansion(document: Mapping[str, Any], namespace: str, overrides: Mapping[str, Any]) -> Policy | None:
        """The policy the engine evaluates in ``namespace``; None when it has no rule left (or
        no longer parses): then there is nothing to carry an alert over to."""
        try:
            return parse_policy(expand_document(document, namespace, overrides))
        except (PolicyInvalid, InvalidInput, ValueError):
            return None

    def _change_writes(
        self,
        policy_id: str,
        namespaces: Sequence[str],
        old_of: Callable[[str], Policy | None],
        new_of: Callable[[str], Policy | None],
        reason: str,
        now: float,
    ) -> list[CycleWrite]:
        """Closing writes for the alerts a workspace-policy edit, an override or a deletion ends
        in each project, through the same pipeline as a project policy's edit (history, notices
        to whoever was told it fired); alerts whose rule still measures the same are carried."""
        writes: list[CycleWrite] = []
        for ns in namespaces:
            eid = inherited_id(policy_id, ns)
            states = [state_from_json(r["data"]) for r in self.store.state_rows(eid)]
            old = old_of(ns) if states else None
            if old is None:
                continue
            new = new_of(ns)
            closing = [(st, reason) for st in states] if new is None else self._edit_effects(old, new, states)[1]
            write = self._closing_write(eid, old, closing, now)
            if write is not None:
                writes.append(write)
        return writes

    # -- workspace policies ------------------------------------------------------------------
    def _split_required(self, document: Any) -> tuple[Any, list[str] | bool]:
        """``required`` (a list of rule names, or true for all) travels beside the policy document."""
        if not isinstance(document, dict):
            return document, []
        document = dict(document)
        required = document.pop("required", [])
        if isinstance(required, bool):
            return document, required
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise InvalidInput("required must be true, false or a list of rule names", field="required")
        return document, required

    def _parse_workspace(self, document: Any, content_type: str) -> tuple[Policy, list[str]]:
        if content_type != "json":
            raise InvalidInput("workspace policies are sent as JSON", field="content-type")
        document, required = self._split_required(document)
        if isinstance(document, dict) and document.get("namespace"):
            raise PolicyInvalid([Problem("namespace", "a workspace policy applies to every project: no namespace")])
        # Validated as the policy of a project that does not exist: the namespace is given at
        # expansion. A receiver named as a user must therefore be one who sees every project
        # (a platform admin); other people are given by email address.
        policy = replace(self.parse(document, level="workload", namespace=VALIDATION_NAMESPACE), namespace=None)
        names = [r.name for r in policy.rules]
        if required is True:
            return policy, names
        if required is False:
            return policy, []
        unknown = [r for r in required if r not in names]
        if unknown:
            raise Unprocessable(f"required names no rule of the policy: {', '.join(unknown)}", field="required")
        return policy, list(required)

    def _workspace_row(self, workspace: str, policy_id: str) -> Any:
        row = self.store.workspace_policy(policy_id)
        if row is None or row["workspace"] != workspace:
            raise NotFound(f"no workspace policy {policy_id!r} here")
        return row

    @staticmethod
    def _workspace_dict(row: Any) -> dict[str, Any]:
        from hub.alerts.service import redact_secrets

        doc = redact_secrets(json.loads(row["document"]))
        return {
            "id": row["id"],
            "workspace": row["workspace"],
            **doc,
            "required": json.loads(row["required"]),
            "version": row["version"],
            "created_by": row["created_by"],
            "created_at": iso(row["created_at"]),
            "updated_by": row["updated_by"],
            "updated_at": iso(row["updated_at"]),
        }

    def list_workspace_policies(self, workspace: str) -> list[dict[str, Any]]:
        return [self._workspace_dict(r) for r in self.store.workspace_policies(workspace)]

    def get_workspace_policy(self, workspace: str, policy_id: str) -> dict[str, Any]:
        return self._workspace_dict(self._workspace_row(workspace, policy_id))

    def create_workspace_policy(
        self, workspace: str, document: Any, *, actor: str, content_type: str = "json"
    ) -> dict[str, Any]:
        policy, required = self._parse_workspace(document, content_type)
        policy_id = "wp-" + secrets.token_hex(6)
        self.store.insert_workspace_policy(
            policy_id=policy_id,
            workspace=workspace,
            name=policy.name,
            document=policy.to_document(secrets=True),
            required=required,
            enabled=policy.enabled,
            actor=actor,
            now=self.clock.now(),
        )
        self.audit(
            actor,
            "workspace-policy.create",
            f"workspace/{workspace}/policy/{policy_id}",
            "ok",
            {"name": policy.name, "rules": [r.name for r in policy.rules], "required": required},
        )
        return self.get_workspace_policy(workspace, policy_id)

    def update_workspace_policy(
        self, workspace: str, policy_id: str, document: Any, *, actor: str, content_type: str = "json"
    ) -> dict[str, Any]:
        row = self._workspace_row(workspace, policy_id)
        policy, required = self._parse_workspace(document, content_type)
        before = json.loads(row["document"])
        after = policy.to_document(secrets=True)

        def kept(ns: str) -> dict[str, Any]:  # a rule made required is enabled again
            return {r: o for r, o in self._ns_overrides(policy_id, ns).items() if not (o["disabled"] and r in required)}

        now = self.clock.now()
        writes = self._change_writes(
            policy_id,
            self.store.workspace_namespaces(workspace),
            lambda ns: self._expansion(before, ns, self._ns_overrides(policy_id, ns)),
            lambda ns: self._expansion(after, ns, kept(ns)) if policy.enabled else None,
            "the workspace policy was disabled" if not policy.enabled else "the workspace policy changed",
            now,
        )
        self.store.update_workspace_policy(
            policy_id,
            name=policy.name,
            document=policy.to_document(secrets=True),
            required=required,
            enabled=policy.enabled,
            actor=actor,
            now=now,
            writes=writes,
        )
        self.audit(
            actor,
            "workspace-policy.update",
            f"workspace/{workspace}/policy/{policy_id}",
            "ok",
            {"name": policy.name, "rules": [r.name for r in policy.rules], "required": required},
        )
        return self.get_workspace_policy(workspace, policy_id)

    def delete_workspace_policy(self, workspace: str, policy_id: str, *, actor: str) -> dict[str, Any]:
        row = self._workspace_row(workspace, policy_id)
        document = json.loads(row["document"])
        now = self.clock.now()
        writes = self._change_writes(
            policy_id,
            self.store.workspace_namespaces(workspace),
            lambda ns: self._expansion(document, ns, self._ns_overrides(policy_id, ns)),
            lambda ns: None,
            "the workspace policy was deleted",
            now,
        )
        self.store.delete_workspace_policy(policy_id, now=now, writes=writes)
        self.audit(
            actor, "workspace-policy.delete", f"workspace/{workspace}/policy/{policy_id}", "ok", {"name": row["name"]}
        )
        return {"id": policy_id, "deleted": True}

    # -- a project's overrides -----------------------------------------------------------------
    def _inherited_row(self, namespace: str, policy_id: str) -> Any:
        workspace = self.store.project_workspace(namespace)
        row = self.store.workspace_policy(policy_id)
        if row is None or workspace is None or row["workspace"] != workspace:
            raise NotFound(f"no inherited policy {policy_id!r} in this project")
        return row

    def put_override(
        self, namespace: str, policy_id: str, rule: str, body: Mapping[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Change one inherited rule for this project: ``{"threshold": n}`` and/or ``{"disabled": true}``."""
        row = self._inherited_row(namespace, policy_id)
        document = json.loads(row["document"])
        if rule not in [str(r.get("name")) for r in document.get("rules") or []]:
            raise NotFound(f"the inherited policy has no rule {rule!r}")
        disabled = body.get("disabled", False)
        if not isinstance(disabled, bool):
            raise InvalidInput("disabled must be true or false", field="disabled")
        threshold = body.get("threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)
        ):
            raise InvalidInput("threshold must be a finite number", field="threshold")
        if not disabled and threshold is None:
            raise Unprocessable("an override changes the threshold or disables the rule", field="threshold")
        if disabled and rule in json.loads(row["required"]):
            raise Unprocessable(
                f"rule {rule!r} is required by workspace {row['workspace']!r} and cannot be disabled", field="disabled"
            )
        if threshold is not None:  # the overridden rule must still be a valid rule (unit bounds...)
            doc = expand_document(document, namespace, {rule: {"threshold": threshold}})
            try:
                parse_policy(doc)
            except PolicyInvalid as exc:
                raise Unprocessable(
                    f"threshold {threshold} is not valid for rule {rule!r}: {exc}", field="threshold"
                ) from exc
        current = self._ns_overrides(policy_id, namespace)
        changed = {**current, rule: {"disabled": disabled, "threshold": threshold}}
        now = self.clock.now()
        writes = self._change_writes(
            policy_id,
            [namespace],
            lambda ns: self._expansion(document, ns, current),
            lambda ns: self._expansion(document, ns, changed),
            "the project disabled the rule",
            now,
        )
        self.store.put_override(
            policy_id, namespace, rule, disabled=disabled, threshold=threshold, actor=actor, now=now, writes=writes
        )
        self.audit(
            actor,
            "policy-override.put",
            f"namespace/{namespace}/policy/{inherited_id(policy_id, namespace)}",
            "ok",
            {"rule": rule, "disabled": disabled, "threshold": threshold},
        )
        return self.effective_policy(namespace, policy_id)

    def delete_override(self, namespace: str, policy_id: str, rule: str, *, actor: str) -> dict[str, Any]:
        self._inherited_row(namespace, policy_id)
        if not self.store.delete_override(policy_id, namespace, rule):
            raise NotFound(f"no override of rule {rule!r} in this project")
        self.audit(
            actor,
            "policy-override.delete",
            f"namespace/{namespace}/policy/{inherited_id(policy_id, namespace)}",
            "ok",
            {"rule": rule},
        )
        return self.effective_policy(namespace, policy_id)

    # -- the effective view ----------------------------------------------------------------------
    def effective_policy(self, namespace: str, policy_id: str) -> dict[str, Any]:
        row = self._inherited_row(namespace, policy_id)
        overrides = {
            str(o["rule"]): o for o in self.store.overrides(namespace=namespace) if o["policy_id"] == policy_id
        }
        return self._inherited_entry(row, namespace, overrides)

    def _inherited_entry(self, row: Any, namespace: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        document = json.loads(row["document"])
        required = json.loads(row["required"])
        rules = []
        for r in document.get("rules") or []:
            name = str(r.get("name"))
            o = overrides.get(name)
            threshold = o["threshold"] if o is not None and o["threshold"] is not None else r.get("threshold")
            rules.append(
                {
                    "name": name,
                    "metric": r.get("metric"),
                    "comparator": r.get("comparator"),
                    "threshold": threshold,
                    "workspace_threshold": r.get("threshold"),
                    "unit": r.get("unit"),
                    "required": name in required,
                    "disabled": bool(o["disabled"]) if o is not None else False,
                    "overridden": o is not None,
                    "overridden_by": o["updated_by"] if o is not None else None,
                }
            )
        pid = inherited_id(str(row["id"]), namespace)
        return {
            "id": pid,
            "policy_id": row["id"],
            "name": row["name"],
            "source": "workspace",
            "workspace": row["workspace"],
            "enabled": bool(row["enabled"]),
            "rules": rules,
            "status": self.policy_status(pid),
        }

    def effective_policies(self, namespace: str) -> list[dict[str, Any]]:
        """What applies to a project: its own policies and those its workspace gives it."""
        out: list[dict[str, Any]] = []
        for row in self.store.policies(level="workload", namespaces=[namespace]):
            document = json.loads(row["document"])
            out.append(
                {
                    "id": row["id"],
                    "policy_id": row["id"],
                    "name": row["name"],
                    "source": "project",
                    "workspace": None,
                    "enabled": bool(row["enabled"]),
                    "rules": [
                        {
                            "name": r.get("name"),
                            "metric": r.get("metric"),
                            "comparator": r.get("comparator"),
                            "threshold": r.get("threshold"),
                            "unit": r.get("unit"),
                            "required": False,
                            "disabled": False,
                            "overridden": False,
                        }
                        for r in document.get("rules") or []
                    ],
                }
            )
        workspace = self.store.project_workspace(namespace)
        if workspace is not None:
            by_policy: dict[str, dict[str, Any]] = {}
            for o in self.store.overrides(namespace=namespace):
                by_policy.setdefault(str(o["policy_id"]), {})[str(o["rule"])] = o
            for row in self.store.workspace_policies(workspace):
                out.append(self._inherited_entry(row, namespace, by_policy.get(str(row["id"]), {})))
        return out
