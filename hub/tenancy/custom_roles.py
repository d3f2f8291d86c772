"""Cluster role bindings and custom roles: the admin side of the role levels.

A part of :class:`~hub.tenancy.service.TenancyService` (a mixin, like the directory and the
external identities).

- **Cluster roles** (``viewer``, ``admin``) are bound per cluster: the implicit one
  (``clusters.default_name``) or any the cluster registry knows; a binding naming another is a
  404 "no cluster X"; bindings carry the name, so they stay valid as clusters are added.
- **Custom roles**: an admin composes a role from the documented permissions of one level
  (:data:`hub.tenancy.roles.COMPOSABLE`, listed in docs/tenancy.md) and binds users to it on a
  target of that level (a cluster, a workspace, a project). The scope turns bindings into
  permissions (:func:`hub.tenancy.scope.scope_for`); a built-in role is the same kind of
  named permission set, so the services check permissions and never role names.

Validation names the offending field (``name``, ``level``, ``permissions[2]``...), so the API's
422 and the console's form point at what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.errors import Conflict, NotFound, Unprocessable
from hub.store.roles import CustomRoleRow, RoleStore
from hub.store.tenancy import TenancyStore, UserRecord
from hub.tenancy.roles import (
    BUILTIN_ROLES,
    COMPOSABLE,
    PERMISSION_DOCS,
    CustomLevel,
    parse_role,
    permission_level,
)
from hub.timeutil import Clock

CUSTOM_LEVELS: tuple[CustomLevel, ...] = ("cluster", "workspace", "project")
ROLE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
MAX_DESCRIPTION = 500
_RESERVED = {r.key for r in BUILTIN_ROLES} | {"admin", "regular", "viewer", "operator"}


@dataclass(frozen=True)
class CustomRole:
    name: str
    level: CustomLevel
    permissions: frozenset[str]
    description: str = ""
    created_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "permissions": sorted(self.permissions),
            "description": self.description,
            "created_by": self.created_by,
        }


def _from_row(row: CustomRoleRow) -> CustomRole:
    return CustomRole(
        name=row.name,
        level=row.level,  # type: ignore[arg-type]  # checked by the table's CHECK and parse_custom_role
        permissions=frozenset(row.permissions),
        description=row.description,
        created_by=row.created_by,
    )


def parse_permissions(level: CustomLevel, raw: object) -> frozenset[str]:
    """A non-empty list of permissions composable at ``level``; the 422 names the entry."""
    if not isinstance(raw, list) or not raw:
        raise Unprocessable("permissions must be a non-empty list of permission names", field="permissions")
    allowed = COMPOSABLE[level]
    out: set[str] = set()
    for i, p in enumerate(raw):
        if not isinstance(p, str) or p not in PERMISSION_DOCS:
            raise Unprocessable(f"unknown permission {p!r}; see docs/tenancy.md", field=f"permissions[{i}]")
        if p not in allowed:
            raise Unprocessable(
                f"{p} is a {permission_level(p)} permission and cannot be part of a {level} role",
                field=f"permissions[{i}]",
            )
        out.add(p)
    return frozenset(out)


def parse_custom_role(raw: object) -> CustomRole:
    """A new custom role from user input: ``{"name", "level", "permissions", "description"?}``."""
    if not isinstance(raw, Mapping):
        raise Unprocessable("send an object with name, level and permissions", field="name")
    unknown = sorted(set(raw) - {"name", "level", "permissions", "description"})
    if unknown:
        raise Unprocessable(f"unknown field {unknown[0]}", field=unknown[0])
    name = raw.get("name")
    if not isinstance(name, str) or not ROLE_NAME_RE.match(name):
        raise Unprocessable("name must be a DNS label (lower-case letters, digits, '-')", field="name")
    if name in _RESERVED:
        raise Unprocessable(f"{name} is the name of a built-in role", field="name")
    level = raw.get("level")
    if level not in CUSTOM_LEVELS:
        raise Unprocessable(f"level must be one of {', '.join(CUSTOM_LEVELS)}, got {level!r}", field="level")
    return CustomRole(
        name=name,
        level=level,
        permissions=parse_permissions(level, raw.get("permissions")),
        description=_description(raw.get("description", "")),
    )


def _description(raw: object) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION or any(ord(c) < 32 and c != "\n" for c in raw):
        raise Unprocessable(f"description must be text of at most {MAX_DESCRIPTION} characters", field="description")
    return raw.strip()


class RoleAdministration:
    """Cluster role bindings, custom roles and their bindings, for the tenancy service."""

    if TYPE_CHECKING:  # provided by TenancyService (hub/tenancy/service.py)
        store: TenancyStore
        roles: RoleStore
        clock: Clock
        default_cluster: str
        _cluster_names: Callable[[], Sequence[str]] | None

        def audit(
            self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
        ) -> int: ...

        def _existing_user(self, name: str) -> UserRecord: ...

    # ===================================================================== cluster roles
    def known_clusters(self) -> list[str]:
        """The clusters roles can be bound on: the registry's when the runtime gave one, else the
        implicit cluster alone."""
        names = list(self._cluster_names()) if self._cluster_names is not None else []
        return names if self.default_cluster in names else [self.default_cluster, *names]

    def _known_cluster(self, cluster: str) -> str:
        known = self.known_clusters()
        if cluster not in known:
            raise NotFound(f"no cluster {cluster}; known: {', '.join(known)}")
        return cluster

    def cluster_members(self, cluster: str) -> list[tuple[str, str]]:
        return self.roles.cluster_members(self._known_cluster(cluster))

    def set_cluster_member(self, cluster: str, username: str, role: object, *, actor: str = "system") -> None:
        """Give ``username`` a cluster role on ``cluster``; ``role`` None removes it."""
        self._known_cluster(cluster)
        self._existing_user(username)
        target = f"cluster/{cluster}/member/{username}"
        if role is None:
            if self.roles.remove_cluster_role(cluster, username) == 0:
                raise NotFound(f"{username} has no role on cluster {cluster}")
            self.audit(actor, "cluster.member.remove", target, "ok")
            return
        parsed = parse_role("cluster", role)
        self.roles.set_cluster_role(cluster, username, parsed.value)
        self.audit(actor, "cluster.member.set", target, "ok", {"role": parsed.value})

    # ===================================================================== custom roles
    def custom_roles(self) -> list[CustomRole]:
        return [_from_row(r) for r in self.roles.custom_roles()]

    def custom_role(self, name: str) -> CustomRole:
        row = self.roles.custom_role(name)
        if row is None:
            raise NotFound(f"no custom role {name}")
        return _from_row(row)

    def create_custom_role(self, raw: object, *, actor: str) -> CustomRole:
        role = parse_custom_role(raw)
        with self.store.transaction():
            if self.roles.custom_role(role.name) is not None:
                raise Conflict(f"a custom role {role.name} exists", field="name")
            self.roles.insert_custom_role(
                name=role.name,
                level=role.level,
                description=role.description,
                permissions=tuple(role.permissions),
                now=self.clock.now(),
                created_by=actor,
            )
        self.audit(actor, "role.create", f"role/{role.name}", "ok", role.to_dict())
        return CustomRole(role.name, role.level, role.permissions, role.description, actor)

    def update_custom_role(self, name: str, raw: object, *, actor: str) -> CustomRole:
        """Change a custom role's permissions and description (``{"permissions"?, "description"?}``);
        its name and level stay. Bound users get the new set at their next request."""
        current = self.custom_role(name)
        if not isinstance(raw, Mapping) or not raw or set(raw) - {"permissions", "description"}:
            bad = sorted(set(raw) - {"permissions", "description"}) if isinstance(raw, Mapping) else []
            raise Unprocessable("send permissions and/or description", field=bad[0] if bad else "permissions")
        permissions = (
            parse_permissions(current.level, raw["permissions"]) if "permissions" in raw else current.permissions
        )
        description = _description(raw["description"]) if "description" in raw else current.description
        self.roles.update_custom_role(
            name, description=description, permissions=tuple(permissions), now=self.clock.now()
        )
        updated = CustomRole(name, current.level, permissions, description, current.created_by)
        self.audit(actor, "role.update", f"role/{name}", "ok", updated.to_dict())
        return updated

    def delete_custom_role(self, name: str, *, actor: str) -> None:
        """Remove a custom role and every binding to it."""
        if self.roles.delete_custom_role(name) == 0:
            raise NotFound(f"no custom role {name}")
        self.audit(actor, "role.delete", f"role/{name}", "ok")

    def custom_role_bindings(self, name: str) -> list[dict[str, str]]:
        self.custom_role(name)
        return [{"username": b.username, "target": b.target} for b in self.roles.bindings_of_role(name)]

    def _bindable_target(self, role: CustomRole, target: object) -> str:
        if not isinstance(target, str) or not target:
            raise Unprocessable(f"target must name the {role.level} to hold the role on", field="target")
        if role.level == "cluster":
            return self._known_cluster(target)
        if role.level == "workspace" and self.store.workspace(target) is None:
            raise NotFound(f"no workspace {target}")
        if role.level == "project" and self.store.project(target) is None:
            raise NotFound(f"no project {target}")
        return target

    def bind_custom_role(self, name: str, username: str, target: object, *, actor: str = "system") -> None:
        """Let ``username`` hold the custom role ``name`` on ``target`` (of the role's level)."""
        role = self.custom_role(name)
        self._existing_user(username)
        where = self._bindable_target(role, target)
        self.roles.bind(name, username, where)
        self.audit(actor, "role.bind", f"role/{name}/{role.level}/{where}/{username}", "ok")

    def unbind_custom_role(self, name: str, username: str, target: str, *, actor: str = "system") -> None:
        self.custom_role(name)
        if self.roles.unbind(name, username, target) == 0:
            raise NotFound(f"{username} does not hold {name} on {target}")
        self.audit(actor, "role.unbind", f"role/{name}/{target}/{username}", "ok")

    def role_catalogue(self) -> dict[str, Any]:
        """The documented permissions by level, what each level's custom roles may hold, and the
        built-in roles as the permission sets they are (the console's role editor reads it)."""
        return {
            "permissions": [
                {"name": p, "level": permission_level(p), "meaning": PERMISSION_DOCS[p]}
                for p in sorted(PERMISSION_DOCS)
            ],
            "composable": {level: sorted(COMPOSABLE[level]) for level in CUSTOM_LEVELS},
            "builtin": [{"key": r.key, "level": r.level, "permissions": sorted(r.permissions)} for r in BUILTIN_ROLES],
            "clusters": self.known_clusters(),
        }
