"""Directory group -> role mappings, shared by every external sign-in (LDAP, OIDC).

An organisation's directory already says who belongs to which team; a mapping turns a group
name into one kubehub role, so nobody has to create tenants and on-call engineers by hand:

- ``platform`` level: the platform role (``admin`` or ``regular``), no target;
- ``cluster`` level: a cluster role (``admin`` or ``viewer``) on the cluster named by
  ``target`` (omitted: the implicit cluster, named by the service at sign-in);
- ``workspace`` level: a workspace role on the workspace named by ``target``;
- ``project`` level: a project role on the namespace named by ``target``.

At the cluster, workspace and project levels ``role`` may also name a custom role as
``custom:<name>`` (:mod:`hub.tenancy.custom_roles`): the group's members hold it on the target.
The tenancy service checks that the role exists and is of the mapping's level when the mapping
is saved, and again at each sign-in (a mapping whose role was deleted since grants nothing).

Group names are what the sign-in method reports: an LDAP group's ``cn`` (nested groups
included, see :mod:`hub.tenancy.ldap_directory`), an OIDC provider's ``groups`` claim values.
They are compared case-insensitively (directories such as Active Directory treat names so).

**Conflicts: the most permissive role wins.** A user in two groups mapped to different roles on
the same target gets the stronger one (platform admin > regular; cluster admin > viewer; workspace admin > viewer >
regular, a viewer reaching every project of the workspace read-only and so more than a regular
member; project admin > operator > viewer). Roles on different targets add up. This mirrors
how direct memberships combine with workspace-implied ones (:func:`hub.tenancy.roles.stronger`).

Everything here is pure (no store, no clock): :func:`resolve` is what the property tests and
each sign-in method call. Where mappings come from (settings, read-only; the console's, stored)
is the tenancy service's business (:mod:`hub.tenancy.external`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.errors import ConfigError, Unprocessable
from hub.tenancy.credentials import DNS_LABEL_RE
from hub.tenancy.roles import ClusterRole, Level, PlatformRole, ProjectRole, WorkspaceRole, parse_role, stronger

MappingOrigin = Literal["settings", "console"]
LEVELS: tuple[Level, ...] = ("platform", "cluster", "workspace", "project")
CUSTOM_PREFIX = "custom:"
_CUSTOM_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
MAX_GROUP_LENGTH = 256  # AD's cn allows 64 characters, DNs and OIDC claim values more; 256 is generous

_PLATFORM_RANK = {PlatformRole.REGULAR: 0, PlatformRole.ADMIN: 1}
_CLUSTER_RANK = {ClusterRole.VIEWER: 0, ClusterRole.ADMIN: 1}
_WORKSPACE_RANK = {WorkspaceRole.REGULAR: 0, WorkspaceRole.VIEWER: 1, WorkspaceRole.ADMIN: 2}


@dataclass(frozen=True)
class GroupMapping:
    """One group -> one role at one level (and on one target below the platform)."""

    group: str
    level: Level
    role: str
    target: str = ""  # the cluster, workspace or namespace (by level); "" for platform
    origin: MappingOrigin = "console"
    id: int | None = None  # stored mappings only

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two mappings the same rule (the role aside): one group, level, target."""
        return (self.group.casefold(), self.level, self.target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "level": self.level,
            "role": self.role,
            "target": self.target or None,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class MappedRoles:
    """What a user's groups grant: their platform role and memberships, most permissive per target."""

    platform_role: PlatformRole = PlatformRole.REGULAR
    workspaces: Mapping[str, WorkspaceRole] = field(default_factory=dict)
    projects: Mapping[str, ProjectRole] = field(default_factory=dict)
    clusters: Mapping[str, ClusterRole] = field(default_factory=dict)
    custom: tuple[tuple[str, str, str], ...] = ()  # (custom role, level, target), sorted
    matched: tuple[str, ...] = ()  # the user's groups that matched at least one mapping (sorted)


def parse_mapping(raw: object, *, origin: MappingOrigin = "console", field_prefix: str = "") -> GroupMapping:
    """A mapping from user input (a JSON object); Unprocessable names the offending field."""
    p = field_prefix
    if not isinstance(raw, Mapping):
        raise Unprocessable("a mapping must be an object with group, level, role and target", field=p or "mapping")
    unknown = sorted(set(raw) - {"group", "level", "role", "target", "id", "origin"})
    if unknown:
        raise Unprocessable(f"unknown field {unknown[0]}", field=p + unknown[0])
    group = raw.get("group")
    if not isinstance(group, str) or not group.strip():
        raise Unprocessable("group is required (the group's name in the directory)", field=p + "group")
    group = group.strip()
    if len(group) > MAX_GROUP_LENGTH or any(ord(c) < 32 for c in group):
        raise Unprocessable(f"group must have at most {MAX_GROUP_LENGTH} printable characters", field=p + "group")
    level = raw.get("level")
    if level not in LEVELS:
        raise Unprocessable(f"level must be one of {', '.join(LEVELS)}, got {level!r}", field=p + "level")
    raw_role = raw.get("role")
    if isinstance(raw_role, str) and raw_role.strip().startswith(CUSTOM_PREFIX) and level != "platform":
        name = raw_role.strip()[len(CUSTOM_PREFIX) :]
        if not _CUSTOM_NAME_RE.match(name):
            raise Unprocessable(f"{CUSTOM_PREFIX}<name> must name a custom role, got {raw_role!r}", field=p + "role")
        role = CUSTOM_PREFIX + name
    else:
        role = parse_role(level, raw_role, field=p + "role").value
    target = raw.get("target")
    if level == "platform":
        if target not in (None, ""):
            raise Unprocessable("a platform mapping has no target", field=p + "target")
        target = ""
    elif level == "cluster" and target in (None, ""):
        target = ""  # the implicit cluster, whatever clusters.default_name calls it (IMPLICIT_CLUSTER)
    else:
        what = {"cluster": "cluster", "workspace": "workspace"}.get(level, "namespace")
        if not isinstance(target, str) or not DNS_LABEL_RE.match(target.strip()):
            raise Unprocessable(f"target must name the {what} (a DNS label), got {target!r}", field=p + "target")
        target = target.strip()
    return GroupMapping(group=group, level=level, role=role, target=target, origin=origin)


def parse_mappings_setting(text: str, *, setting: str = "KUBEHUB_AUTH_GROUP_MAPPINGS") -> tuple[GroupMapping, ...]:
    """The settings' mappings: a JSON list of objects like the API's (empty text: none).

    ``[{"group": "ops", "level": "platform", "role": "admin"},
    {"group": "retail-devs", "level": "workspace", "target": "retail", "role": "regular"}]``
    """
    if not text.strip():
        return ()
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(setting, f"must be a JSON list of mappings: {exc}") from exc
    if not isinstance(raw, list):
        raise ConfigError(setting, "must be a JSON list of mappings")
    out: list[GroupMapping] = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_mapping(item, origin="settings", field_prefix=f"[{i}]."))
        except Unprocessable as exc:
            raise ConfigError(setting, exc.message) from exc
    return tuple(out)


def resolve(groups: Iterable[str], mappings: Iterable[GroupMapping]) -> MappedRoles:
    """The roles ``groups`` grant under ``mappings``; the most permissive role per target wins."""
    held = {g.strip().casefold() for g in groups if g and g.strip()}
    platform = PlatformRole.REGULAR
    workspaces: dict[str, WorkspaceRole] = {}
    projects: dict[str, ProjectRole] = {}
    clusters: dict[str, ClusterRole] = {}
    custom: set[tuple[str, str, str]] = set()
    matched: set[str] = set()
    for m in mappings:
        if m.group.casefold() not in held:
            continue
        matched.add(m.group.casefold())
        if m.role.startswith(CUSTOM_PREFIX):  # custom roles add up (they never conflict)
            custom.add((m.role[len(CUSTOM_PREFIX) :], m.level, m.target))
        elif m.level == "platform":
            role = PlatformRole(m.role)
            if _PLATFORM_RANK[role] > _PLATFORM_RANK[platform]:
                platform = role
        elif m.level == "cluster":
            c_role = ClusterRole(m.role)
            had = clusters.get(m.target)
            if had is None or _CLUSTER_RANK[c_role] > _CLUSTER_RANK[had]:
                clusters[m.target] = c_role
        elif m.level == "workspace":
            ws_role = WorkspaceRole(m.role)
            current = workspaces.get(m.target)
            if current is None or _WORKSPACE_RANK[ws_role] > _WORKSPACE_RANK[current]:
                workspaces[m.target] = ws_role
        else:
            best = stronger(projects.get(m.target), ProjectRole(m.role))
            assert best is not None
            projects[m.target] = best
    return MappedRoles(
        platform_role=platform,
        workspaces=workspaces,
        projects=projects,
        clusters=clusters,
        custom=tuple(sorted(custom)),
        matched=tuple(sorted(matched)),
    )
