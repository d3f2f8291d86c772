"""Users, workspaces, projects and memberships: a part of
:class:`~hub.tenancy.service.TenancyService` (a mixin; the service holds the store, the clock
and the namespace callables it uses).

Over 400 lines because it is every write of the tenancy model (each small, with its checks and
its audit entry); the reads of the same records sit beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.errors import Conflict, HubError, InvalidInput, NotFound, Unprocessable
from hub.store.tenancy import ProjectRecord, TenancyStore, UserRecord, WorkspaceRecord
from hub.tenancy import scope as rules
from hub.tenancy.checks import _dns_label, _email, _text, _valid_username
from hub.tenancy.credentials import (
    PasswordHashing,
    check_password_strength,
    digest,
)
from hub.tenancy.roles import PlatformRole, ProjectRole, WorkspaceRole, parse_role
from hub.tenancy.scope import LogFloors, Principal, Project, Scope
from hub.timeutil import Clock

if TYPE_CHECKING:
    from hub.tenancy.service import DeleteNamespace, EnsureNamespace, NamespaceCreated, NamespaceUid, _ProjectIndex

log = logging.getLogger("kubehub.tenancy")
# The namespace label that makes a namespace a project of a workspace (KubeSphere's own, so a
# KubeSphere cluster's namespaces are understood as they are; see docs/metrics-conventions.md).
WORKSPACE_LABEL = "kubesphere.io/workspace"


class Directory:
    """Users, workspaces, projects and memberships of the tenancy service."""

    if TYPE_CHECKING:  # provided by TenancyService (hub/tenancy/service.py)
        _ensure_namespace: EnsureNamespace | None
        _namespace_created: NamespaceCreated | None
        _namespace_uid: NamespaceUid | None
        _delete_namespace: DeleteNamespace | None

        def _project_index(self) -> _ProjectIndex: ...
        def audit(
            self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
        ) -> int: ...

        clock: Clock
        hashing: PasswordHashing
        store: TenancyStore

    # ===================================================================== users
    def user(self, name: str) -> UserRecord | None:
        return self.store.user(name)

    def users(self) -> list[UserRecord]:
        return self.store.users()

    def user_email(self, name: str) -> str | None:
        """Email of an active user (alert receivers given as ``{user: name}``); None if none."""
        user = self.store.user(name)
        return user.email if user is not None and not user.disabled and user.email else None

    def create_user(
        self,
        name: object,
        password: object,
        *,
        platform_role: object = PlatformRole.REGULAR,
        display_name: object = "",
        email: object = "",
        actor: str = "system",
    ) -> UserRecord:
        username = _valid_username(name)
        role = parse_role("platform", platform_role, field="platform_role")
        display = _text(display_name, "display_name")
        mail = _email(email)
        secret = check_password_strength(password, username=username)
        now = self.clock.now()
        with self.store.transaction():
            if self.store.user(username) is not None:
                raise Conflict(f"user {username} already exists", field="name")
            self.store.insert_user(
                name=username,
                password_hash=self.hashing.hash(secret),
                platform_role=role.value,
                display_name=display,
                email=mail,
                now=now,
            )
        self.audit(actor, "user.create", f"user/{username}", "ok", {"platform_role": role.value})
        return self._existing_user(username)

    def update_user(
        self,
        name: str,
        *,
        actor: str = "system",
        display_name: object = None,
        email: object = None,
        platform_role: object = None,
        disabled: object = None,
        password: object = None,
    ) -> UserRecord:
        """Change a user; disabling one ends its sessions and revokes its tokens."""
        user = self._existing_user(name)
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["display_name"] = _text(display_name, "display_name")
        if email is not None:
            changes["email"] = _email(email)
        if platform_role is not None:
            changes["platform_role"] = parse_role("platform", platform_role, field="platform_role").value
        if disabled is not None:
            if not isinstance(disabled, bool):
                raise InvalidInput("disabled must be true or false", field="disabled")
            changes["disabled"] = disabled
        if password is not None:
            if user.source != "local":
                message = f"{user.name} signs in through {user.source}; the password is kept there"
                raise Unprocessable(message, field="password")
            changes["password_hash"] = self.hashing.hash(check_password_strength(password, username=user.name))
        now = self.clock.now()
        with self.store.transaction():
            demoted = changes.get("platform_role", "admin") != "admin" or bool(changes.get("disabled"))
            loses_admin = user.platform_role == "admin" and not user.disabled and demoted
            if loses_admin and self.store.count_active_admins() <= 1:
                raise Conflict(f"{user.name} is the last active platform admin; make another admin first")
            self.store.update_user(user.name, now=now, **changes)
            if changes.get("disabled"):
                self.store.delete_sessions_of(user.name)
                self.store.revoke_tokens_of(user.name, now)
            elif "password_hash" in changes:
                self.store.delete_sessions_of(user.name)
        shown = {k: v for k, v in changes.items() if k != "password_hash"}
        if "password_hash" in changes:
            shown["password_changed"] = True
        self.audit(actor, "user.update", f"user/{user.name}", "ok", shown)
        return self._existing_user(user.name)

    def change_password(self, username: str, current: object, new: object, *, keep_session: str | None = None) -> None:
        """A user's own password change: needs the current one; ends their other sessions."""
        user = self._existing_user(username)
        if not isinstance(current, str) or not self.hashing.verify(user.password_hash, current):
            raise Unprocessable("the current password is wrong", field="current_password")
        secret = check_password_strength(new, username=user.name, field="new_password")
        now = self.clock.now()
        with self.store.transaction():
            self.store.update_user(user.name, now=now, password_hash=self.hashing.hash(secret))
            self.store.delete_sessions_of(user.name, keep=digest(keep_session) if keep_session else None)
        self.audit(user.name, "user.password", f"user/{user.name}", "ok")

    def delete_user(self, name: str, *, actor: str = "system") -> None:
        user = self._existing_user(name)
        with self.store.transaction():
            if user.platform_role == "admin" and not user.disabled and self.store.count_active_admins() <= 1:
                raise Conflict(f"{user.name} is the last active platform admin; make another admin first")
            self.store.delete_user(user.name)
        self.audit(actor, "user.delete", f"user/{user.name}", "ok")

    def _existing_user(self, name: str) -> UserRecord:
        user = self.store.user(name)
        if user is None:
            raise NotFound(f"no user {name}")
        return user

    # ===================================================================== workspaces
    def workspace(self, name: str) -> WorkspaceRecord | None:
        return self.store.workspace(name)

    def workspaces(self) -> list[WorkspaceRecord]:
        return self.store.workspaces()

    def workspaces_of(self, principal: Principal) -> list[WorkspaceRecord]:
        """Workspaces the principal holds a role in (all of them for platform admins)."""
        every = self.store.workspaces()
        if principal.is_platform_admin:
            return every
        return [w for w in every if w.name in principal.workspaces]

    def create_workspace(
        self, name: object, *, description: object = "", admin: object = None, actor: str = "system"
    ) -> WorkspaceRecord:
        ws = _dns_label(name, "name", "workspace name")
        text = _text(description, "description")
        admin_name = None
        if admin is not None:
            admin_name = _valid_username(admin, field="admin")
            self._existing_user(admin_name)
        with self.store.transaction():
            if self.store.workspace(ws) is not None:
                raise Conflict(f"workspace {ws} already exists", field="name")
            now = self.clock.now()
            self.store.insert_workspace(name=ws, description=text, created_by=actor, now=now)
            if admin_name:
                self.store.put_workspace_member(ws, admin_name, WorkspaceRole.ADMIN.value)
        self.audit(actor, "workspace.create", f"workspace/{ws}", "ok", {"admin": admin_name} if admin_name else None)
        return WorkspaceRecord(name=ws, description=text, created_at=now, created_by=actor)

    def delete_workspace(self, name: str, *, actor: str = "system") -> None:
        """Delete an empty workspace. One with projects is refused: removing tenants' namespaces
        should be a deliberate act per project, not a side effect."""
        with self.store.transaction():
            if self.store.workspace(name) is None:
                raise NotFound(f"no workspace {name}")
            left = self.store.projects(name)
            if left:
                raise Conflict(f"workspace {name} still has {len(left)} project(s); remove them first")
            self.store.delete_workspace(name)
        self.audit(actor, "workspace.delete", f"workspace/{name}", "ok")

    # ===================================================================== projects
    def project(self, namespace: str) -> Project | None:
        return self._project_index().by_namespace.get(namespace)

    def project_log_floors(self, namespace: str) -> LogFloors:
        """The predecessor rule for one project's logs as its members read them (alert email
        evidence goes to the project's receivers, so it follows their rule, not an admin's)."""
        project = self.project(namespace)
        return rules.log_floors([project or Project(namespace=namespace, workspace="")])

    def project_record(self, namespace: str) -> ProjectRecord | None:
        return self.store.project(namespace)

    def projects(self, workspace: str | None = None) -> list[Project]:
        index = self._project_index()
        if workspace is None:
            return list(index.projects)
        return list(index.by_workspace.get(workspace, ()))

    def visible_project_records(self, scope: Scope, workspace: str) -> list[tuple[ProjectRecord, str | None]]:
        """A workspace's projects that ``scope`` reaches (a platform admin: all of them), each
        with the caller's effective role there (None: a platform admin without one)."""
        return [(r, scope.roles.get(r.namespace)) for r in self.project_records(workspace) if scope.allows(r.namespace)]

    def project_records(self, workspace: str | None = None) -> list[ProjectRecord]:
        return self.store.projects(workspace)

    def create_project(
        self,
        workspace: str,
        namespace: object,
        *,
        created: float | None = None,
        display_name: object = "",
        actor: str = "system",
        allow_default: bool = False,
    ) -> Project:
        """Register a namespace as a project of ``workspace``.

        With a cluster connected, the namespace is created (or adopted) and labelled with the
        workspace first, and its creationTimestamp and UID become the project's ``created`` and
        ``uid`` (the log predecessor rule, :class:`~hub.tenancy.scope.LogFloors`). Without one,
        only the project is recorded, created ``created`` or now.
        ``kube-*`` namespaces are never projects (tenants must not reach system logs);
        ``default`` only when ``allow_default`` (platform admins).
        """
        ns = _dns_label(namespace, "namespace", "namespace name")
        if ns.startswith("kube-") or (ns == "default" and not allow_default):
            raise Unprocessable(f"{ns} is a system namespace and cannot be a project", field="namespace")
        display = _text(display_name, "display_name")
        if self.store.workspace(workspace) is None:
            raise NotFound(f"no workspace {workspace}")
        if self.store.project(ns) is not None:
            # Deliberately silent about which workspace holds it.
            raise Conflict(f"namespace {ns} is already a project", field="namespace")
        try:
            stamp = self._ensure_namespace(ns, {WORKSPACE_LABEL: workspace}) if self._ensure_namespace else None
        except Conflict:
            # The cluster knows the namespace under another workspace's label; say so without
            # naming that workspace.
            raise Conflict(f"namespace {ns} is already a project", field="namespace") from None
        uid = (self._namespace_uid(ns) or "") if stamp is not None and self._namespace_uid else ""
        now = self.clock.now()
        floor = stamp if stamp is not None else (created if created is not None else now)
        with self.store.transaction():
            if self.store.project(ns) is not None:
                raise Conflict(f"namespace {ns} is already a project", field="namespace")
            self.store.insert_project(
                namespace=ns,
                workspace=workspace,
                display_name=display,
                created=floor,
                created_by=actor,
                now=now,
                namespace_uid=uid,
            )
        detail = {"workspace": workspace, "created": floor, **({"uid": uid} if uid else {})}
        self.audit(actor, "project.create", f"namespace/{ns}", "ok", detail)
        return Project(namespace=ns, workspace=workspace, created=floor, uid=uid)

    def delete_project(self, namespace: str, *, actor: str = "system", confirm: object = None) -> bool | None:
        """Delete a project: its namespace in the cluster first (everything in it goes, as on
        the platform we follow), then its registration and memberships.

        ``confirm`` must be the project's name (typed confirmation, 422 naming ``confirm``):
        deleting a namespace is not undoable. When the namespace deletion fails (403, 409, 503
        naming the API server) the project stays registered and the failure is audited: nothing
        half-done without saying so. Returns whether a namespace was deleted (False: it was
        already gone; None: no cluster connected, only the registration went).
        """
        if confirm != namespace:
            raise Unprocessable(
                f"confirm must be the project's name {namespace!r} to delete it and its namespace", field="confirm"
            )
        if self.store.project(namespace) is None:
            raise NotFound(f"no project {namespace}")
        try:
            deleted = self._delete_project_namespace(namespace)
        except HubError as exc:
            self.audit(
                actor, "project.delete", f"namespace/{namespace}", "failed", {"error": str(exc), "registered": True}
            )
            raise
        if self.store.delete_project(namespace) == 0:
            raise NotFound(f"no project {namespace}")
        self.audit(actor, "project.delete", f"namespace/{namespace}", "ok", {"namespace_deleted": deleted})
        return deleted

    def _delete_project_namespace(self, namespace: str) -> bool | None:
        """The implicit cluster's namespace deleted (None: no cluster connected); the cluster
        placement routes an added cluster's project to that cluster's API server."""
        return self._delete_namespace(namespace) if self._delete_namespace is not None else None

    def observe_namespace(self, namespace: str, *, created: float, uid: str | None = None) -> bool:
        """Record a namespace's creationTimestamp (and metadata.uid) as seen in the cluster
        (watch or list).

        A recreated namespace has a new UID and creation time; recording them is what keeps its
        new tenants from reading the old namespace's logs. Returns whether anything moved.
        """
        if self.store.set_project_created(namespace, float(created), uid or None) == 0:
            return False
        self.audit(
            "system",
            "project.floor",
            f"namespace/{namespace}",
            "ok",
            {"created": created, **({"uid": uid} if uid else {})},
        )
        return True

    def refresh_floors(self) -> int:
        """Re-read every project's namespace creation time and UID through the cluster callables."""
        if self._namespace_created is None:
            return 0
        moved = 0
        for project in self.projects():
            stamp = self._namespace_created(project.namespace)
            uid = self._namespace_uid(project.namespace) if self._namespace_uid is not None else None
            if (
                stamp is not None
                and (stamp != project.created or (uid and uid != project.uid))
                and self.observe_namespace(project.namespace, created=stamp, uid=uid)
            ):
                moved += 1
        return moved

    # ===================================================================== members
    def workspace_members(self, workspace: str) -> list[tuple[str, WorkspaceRole]]:
        return [(u, WorkspaceRole(r)) for u, r in self.store.workspace_members(workspace)]

    def project_members(self, namespace: str) -> list[tuple[str, ProjectRole]]:
        return [(u, ProjectRole(r)) for u, r in self.store.project_members(namespace)]

    def memberships_of(self, username: str) -> tuple[dict[str, WorkspaceRole], dict[str, ProjectRole]]:
        return (
            {w: WorkspaceRole(r) for w, r in self.store.workspace_roles_of(username).items()},
            {n: ProjectRole(r) for n, r in self.store.project_roles_of(username).items()},
        )

    def set_workspace_member(self, workspace: str, username: str, role: object, *, actor: str = "system") -> None:
        """Give ``username`` ``role`` in ``workspace``; ``role`` None removes the membership."""
        if self.store.workspace(workspace) is None:
            raise NotFound(f"no workspace {workspace}")
        self._existing_user(username)
        target = f"workspace/{workspace}/member/{username}"
        if role is None:
            if self.store.delete_workspace_member(workspace, username) == 0:
                raise NotFound(f"{username} is not a member of workspace {workspace}")
            self.audit(actor, "workspace.member.remove", target, "ok")
            return
        parsed = parse_role("workspace", role)
        self.store.put_workspace_member(workspace, username, parsed.value)
        self.audit(actor, "workspace.member.set", target, "ok", {"role": parsed.value})

    def set_project_member(self, namespace: str, username: str, role: object, *, actor: str = "system") -> None:
        """Give ``username`` ``role`` in the project ``namespace``; ``role`` None removes it."""
        if self.store.project(namespace) is None:
            raise NotFound(f"no project {namespace}")
        self._existing_user(username)
        target = f"namespace/{namespace}/member/{username}"
        if role is None:
            if self.store.delete_project_member(namespace, username) == 0:
                raise NotFound(f"{username} is not a member of project {namespace}")
            self.audit(actor, "project.member.remove", target, "ok")
            return
        parsed = parse_role("project", role)
        self.store.put_project_member(namespace, username, parsed.value)
        self.audit(actor, "project.member.set", target, "ok", {"role": parsed.value})
