"""Users vouched for by a directory (LDAP) or an identity provider (OIDC): provisioning, the
group -> role mappings, and the re-check that ends a removed user's tokens and sessions.

A part of :class:`~hub.tenancy.service.TenancyService` (a mixin, like sessions and directory).

- **Provisioning**: :meth:`ExternalIdentities.provision` creates the user on first sign-in
  (``source`` ``ldap`` or ``oidc``, no usable local password) and, on every sign-in and
  re-check, sets their platform role and memberships to what their groups map to
  (:func:`hub.tenancy.mappings.resolve`): the directory owns an external user's roles, so a
  membership an admin adds by hand lasts until the next sign-in or re-check.
- **Mappings** come from the settings (``auth.group_mappings``, read-only) and from the console
  (stored); both apply, most permissive role wins.
- **Re-check**: an LDAP user's session or token is trusted for ``recheck_seconds`` after the
  directory last confirmed them; then the next request asks the directory again (service bind,
  no password needed). Gone or disabled there: their sessions end and tokens are revoked. While
  the directory is down, the last confirmation is trusted for one more interval, then requests
  answer 503 naming the directory, so the bound holds either way: 2 x ``recheck_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hub.errors import BackendUnavailable, Conflict, NotFound, Unauthenticated, Unprocessable
from hub.store.identity import GroupMappingRow, IdentityStore
from hub.store.roles import RoleStore
from hub.store.tenancy import TenancyStore, UserRecord
from hub.tenancy.credentials import USERNAME_RE
from hub.tenancy.mappings import CUSTOM_PREFIX, GroupMapping, MappedRoles, parse_mapping, resolve
from hub.tenancy.roles import ClusterRole
from hub.timeutil import Clock

log = logging.getLogger("kubehub.tenancy")

SOURCES = ("local", "ldap", "oidc")


@dataclass(frozen=True)
class ExternalUser:
    """A user as a directory or identity provider describes them at sign-in or re-check."""

    username: str
    display_name: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()


class AccountRefused(Unauthenticated):
    """The directory does not know the user (any more) or has disabled them: a login fails like
    a wrong password (401, same message), and the hub also ends their sessions and tokens."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid user name or password")
        self.reason = reason


class PasswordDirectory(Protocol):
    """What the tenancy service needs from a directory (the LDAP adapter implements it)."""

    source: str  # the users' source: "ldap"
    recheck_seconds: float

    def authenticate(self, username: str, password: str) -> ExternalUser:
        """The user if the password is theirs; raises Unauthenticated (AccountRefused when the
        account is gone or disabled) or BackendUnavailable when the directory does not answer."""
        ...

    def lookup(self, username: str) -> ExternalUser | None:
        """The user as the directory shows them now, None if gone or disabled (no password)."""
        ...


def _row_mapping(row: GroupMappingRow) -> GroupMapping:
    return GroupMapping(
        group=row.group,
        level=row.level,  # type: ignore[arg-type]  # checked by the table's CHECK and parse_mapping
        role=row.role,
        target=row.target,
        origin="console",
        id=row.id,
    )


class ExternalIdentities:
    """Provisioning, mappings and re-checks of the tenancy service."""

    if TYPE_CHECKING:  # provided by TenancyService (hub/tenancy/service.py)
        store: TenancyStore
        identity: IdentityStore
        roles: RoleStore
        default_cluster: str
        clock: Clock
        directory: PasswordDirectory | None
        settings_mappings: tuple[GroupMapping, ...]

        def audit(
            self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
        ) -> int: ...

    # ===================================================================== mappings
    def group_mappings(self) -> list[GroupMapping]:
        """Every mapping in force: the settings' (read-only) first, then the console's."""
        return [*self.settings_mappings, *(_row_mapping(r) for r in self.identity.group_mappings())]

    def create_group_mapping(self, raw: object, *, actor: str) -> GroupMapping:
        """Add a mapping; one group has one role per level and target (409 for a second)."""
        mapping = parse_mapping(raw)
        self._check_custom_mapping(mapping)
        if any(m.key == mapping.key for m in self.settings_mappings):
            raise Conflict(f"the settings already map {mapping.group} at this level and target", field="group")
        with self.store.transaction():
            if self.identity.find_group_mapping(mapping.group, mapping.level, mapping.target) is not None:
                raise Conflict(f"{mapping.group} is already mapped at this level and target", field="group")
            new_id = self.identity.insert_group_mapping(
                group=mapping.group,
                level=mapping.level,
                role=mapping.role,
                target=mapping.target,
                now=self.clock.now(),
                created_by=actor,
            )
        self.audit(actor, "group-mapping.create", f"group-mapping/{new_id}", "ok", mapping.to_dict())
        return GroupMapping(mapping.group, mapping.level, mapping.role, mapping.target, "console", new_id)

    def update_group_mapping(self, mapping_id: int, raw: object, *, actor: str) -> GroupMapping:
        """Change a stored mapping's role (``{"role": ...}``); group, level and target stay."""
        row = self.identity.group_mapping(mapping_id)
        if row is None:
            raise NotFound(f"no group mapping {mapping_id}")
        role = raw.get("role") if isinstance(raw, Mapping) else None
        if not isinstance(raw, Mapping) or set(raw) - {"role"}:
            raise Unprocessable('send only the new role: {"role": ...}', field="role")
        parsed = parse_mapping({"group": row.group, "level": row.level, "role": role, "target": row.target or None})
        self._check_custom_mapping(parsed)
        self.identity.update_group_mapping_role(mapping_id, parsed.role)
        self.audit(actor, "group-mapping.update", f"group-mapping/{mapping_id}", "ok", {"role": parsed.role})
        return GroupMapping(row.group, parsed.level, parsed.role, row.target, "console", mapping_id)

    def delete_group_mapping(self, mapping_id: int, *, actor: str) -> None:
        if self.identity.delete_group_mapping(mapping_id) == 0:
            raise NotFound(f"no group mapping {mapping_id}")
        self.audit(actor, "group-mapping.delete", f"group-mapping/{mapping_id}", "ok")

    def _check_custom_mapping(self, mapping: GroupMapping) -> None:
        """A mapping to ``custom:<name>`` needs that custom role, of the mapping's level."""
        if not mapping.role.startswith(CUSTOM_PREFIX):
            return
        name = mapping.role[len(CUSTOM_PREFIX) :]
        row = self.roles.custom_role(name)
        if row is None or row.level != mapping.level:
            raise Unprocessable(f"no custom role {name} of level {mapping.level}", field="role")

    def _mapped_custom(self, mapped: MappedRoles) -> list[tuple[str, str]]:
        """The (role, target) bindings the groups grant, for custom roles that still exist at the
        mapping's level (one deleted or changed since grants nothing)."""
        out = []
        for name, level, target in mapped.custom:
            row = self.roles.custom_role(name)
            if row is not None and row.level == level:
                out.append((name, target or (self.default_cluster if level == "cluster" else target)))
        return out

    def _mapped_clusters(self, mapped: MappedRoles) -> dict[str, str]:
        """Cluster roles per cluster name; a mapping without a target means the implicit cluster
        (the stronger role wins where one also names it)."""
        out: dict[str, str] = {}
        for cluster, role in mapped.clusters.items():
            name = cluster or self.default_cluster
            if out.get(name) != ClusterRole.ADMIN.value:
                out[name] = role.value
        return out

    def mapped_roles(self, groups: tuple[str, ...]) -> MappedRoles:
        return resolve(groups, self.group_mappings())

    # ===================================================================== provisioning
    def provision(self, source: str, ext: ExternalUser, *, actor: str | None = None) -> UserRecord:
        """Create or update an external user and set their roles from their groups.

        Refuses (Unauthenticated, like a wrong password) a name held by a user of another
        source: a local account is never taken over by a directory entry of the same name.
        Changes are audited; a sign-in that changes nothing writes only the confirmation time.
        """
        if source not in SOURCES or source == "local":
            raise ValueError(f"unknown external source {source!r}")
        name = ext.username.strip().lower()
        if not USERNAME_RE.match(name):
            raise Unauthenticated("invalid user name or password")
        mapped = self.mapped_roles(ext.groups)
        workspaces = {w: r.value for w, r in mapped.workspaces.items()}
        projects = {n: r.value for n, r in mapped.projects.items()}
        clusters = self._mapped_clusters(mapped)
        custom = self._mapped_custom(mapped)
        now = self.clock.now()
        with self.store.transaction():
            user = self.store.user(name)
            if user is not None and user.source != source:
                log.warning("%s sign-in refused for %s: a %s user of that name exists", source, name, user.source)
                raise Unauthenticated("invalid user name or password")
            if user is None:
                self.store.insert_user(
                    name=name,
                    password_hash="!" + source,  # never a valid argon2 hash: no local password login
                    platform_role=mapped.platform_role.value,
                    display_name=ext.display_name[:200],
                    email=ext.email[:254],
                    now=now,
                    source=source,
                )
                before: tuple[str, dict[str, str], dict[str, str], dict[str, str], list[str]] | None = None
            else:
                before = (
                    user.platform_role,
                    self.store.workspace_roles_of(name),
                    self.store.project_roles_of(name),
                    self.roles.cluster_roles_of(name),
                    self._custom_of(name),
                )
                self.store.update_user(name, now=now, external_checked_at=now)
                if (user.platform_role, user.display_name, user.email) != (
                    mapped.platform_role.value,
                    ext.display_name[:200],
                    ext.email[:254],
                ):
                    self.store.update_user(
                        name,
                        now=now,
                        platform_role=mapped.platform_role.value,
                        display_name=ext.display_name[:200],
                        email=ext.email[:254],
                    )
            self.identity.replace_memberships(name, workspaces, projects)
            self.roles.replace_cluster_roles(name, clusters)
            self.roles.replace_bindings_of_user(name, custom)
            after = (
                mapped.platform_role.value,
                self.store.workspace_roles_of(name),
                self.store.project_roles_of(name),
                self.roles.cluster_roles_of(name),
                self._custom_of(name),
            )
        if before != after:
            detail = {
                "source": source,
                "groups": list(mapped.matched),
                "platform_role": after[0],
                "workspaces": after[1],
                "projects": after[2],
                "clusters": after[3],
                "custom_roles": after[4],
            }
            action = "user.provision" if before is None else "user.sync"
            self.audit(actor or name, action, f"user/{name}", "ok", detail)
        record = self.store.user(name)
        assert record is not None
        return record

    def _custom_of(self, username: str) -> list[str]:
        return [f"{b.role}@{b.target}" for b in self.roles.bindings_of_user(username)]

    def end_external_access(self, user: UserRecord, reason: str) -> None:
        """The directory no longer vouches for ``user``: end their sessions, revoke their tokens."""
        now = self.clock.now()
        with self.store.transaction():
            self.store.delete_sessions_of(user.name)
            revoked = self.store.revoke_tokens_of(user.name, now)
            self.store.update_user(user.name, now=now, external_checked_at=None)
        log.info("%s user %s refused by the directory (%s): sessions ended, %d token(s) revoked",
                 user.source, user.name, reason, revoked)  # fmt: skip
        self.audit("system", "user.directory-refused", f"user/{user.name}", "ok", {"reason": reason, "tokens": revoked})

    def still_vouched(self, user: UserRecord) -> bool:
        """Whether an external user's session or token may still be used (see the module doc).

        Local and OIDC users: always (OIDC sessions end with their own expiry). LDAP users: yes
        within ``recheck_seconds`` of the last confirmation, else after asking the directory.
        """
        if user.source != "ldap":
            return True
        now = self.clock.now()
        directory = self.directory
        checked = user.external_checked_at
        interval = directory.recheck_seconds if directory is not None else 0.0
        if checked is not None and now - checked < interval:
            return True
        if directory is None:
            return False  # directory sign-in was turned off: nothing confirms LDAP users any more
        try:
            ext = directory.lookup(user.name)
        except BackendUnavailable:
            if checked is not None and now - checked < 2 * interval:
                log.warning("ldap directory down; trusting %s's confirmation from %.0f s ago", user.name, now - checked)
                return True
            raise
        if ext is None:
            self.end_external_access(user, "gone or disabled in the directory")
            return False
        self.provision("ldap", ext, actor="system")
        return True
