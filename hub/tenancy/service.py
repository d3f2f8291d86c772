"""The tenancy service: ``hub.tenancy``.

Every area reaches users, memberships, scopes and the audit log through this one object. It
loads principals from tokens and sessions, answers "may this principal do that, there?" with
the pure rules of :mod:`hub.tenancy.scope`, manages users, workspaces, projects and members,
and writes the audit log.

The Kubernetes side of projects (creating and labelling the namespace, reading its creation
time) is not done here: the runtime passes narrow callables in (``ensure_namespace``,
``namespace_created``) so this area never imports the cluster adapter and works without a
cluster by recording the project only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from hub.errors import Conflict, HubError, InvalidInput, NotFound, RateLimited, Unauthenticated, Unprocessable
from hub.ratelimit import retry_after
from hub.settings import AuthSettings
from hub.store.audit import AuditEntry, AuditFilter, AuditStore
from hub.store.db import StateStore
from hub.store.tenancy import ProjectRecord, TenancyStore, TokenRecord, UserRecord, WorkspaceRecord
from hub.tenancy import scope as rules
from hub.tenancy.credentials import (
    DNS_LABEL_RE,
    TOKEN_PREFIX,
    USERNAME_RE,
    PasswordHashing,
    check_password_strength,
    digest,
    new_session_id,
    new_token,
    token_hint,
)
from hub.tenancy.roles import PlatformRole, ProjectRole, WorkspaceRole, parse_role
from hub.tenancy.scope import LogFloors, Principal, Project, Scope
from hub.timeutil import Clock, SystemClock

log = logging.getLogger("kubehub.tenancy")

# The namespace label that makes a namespace a project of a workspace (KubeSphere's own, so a
# KubeSphere cluster's namespaces are understood as they are; see docs/metrics-conventions.md).
WORKSPACE_LABEL = "kubesphere.io/workspace"

# Creates (or adopts) a namespace and sets labels on it; returns its creationTimestamp (epoch
# seconds), or None when no cluster is connected. Raises BackendUnavailable when the cluster
# does not answer.
EnsureNamespace = Callable[[str, Mapping[str, str]], float | None]
# The creationTimestamp of a namespace, None if it does not exist or no cluster is connected.
NamespaceCreated = Callable[[str], float | None]
# The metadata.uid of a namespace, None if it does not exist or no cluster is connected.
NamespaceUid = Callable[[str], str | None]

# Token last-use times are written at most this often per token, so that every API call does
# not turn into a write.
_TOUCH_EVERY = 60.0
# Longest lifetime a token may be given: longer-lived automation should re-issue on purpose.
MAX_TOKEN_SECONDS = 366 * 86400.0
# Revoked and expired tokens stay listed this long (so their owners see what happened), then go.
_TOKEN_AFTERLIFE = 30 * 86400.0
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\Z")  # \Z: "$" would let a trailing newline through
_SCOPE_CACHE_USERS = 10_000  # cached scopes (one per user) before the cache starts over
_SECRET_KEYS = re.compile(r"passw|passwd|token|secret|authorization|cookie|api.?key|^sid$", re.IGNORECASE)


class LoginThrottled(RateLimited):
    """Too many failed logins for the user name or from the client address (429).

    The message is the same whether or not the user exists. One of the hub's rate limits
    (:mod:`hub.ratelimit`): same window rule, same 429 with ``Retry-After``.
    """

    def __init__(self, retry_after: float) -> None:
        seconds = RateLimited.seconds(retry_after)
        super().__init__(
            f"too many failed logins for this user name or from this address; try again in {seconds} seconds",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly made token: the only time its clear text exists outside the caller."""

    id: int
    token: str
    name: str
    expires_at: float


@dataclass(frozen=True)
class _ProjectIndex:
    """Every project, by namespace and by workspace, as of one project generation."""

    generation: int
    projects: tuple[Project, ...]
    by_namespace: Mapping[str, Project]
    by_workspace: Mapping[str, tuple[Project, ...]]

    @classmethod
    def build(cls, generation: int, projects: list[Project]) -> _ProjectIndex:
        by_workspace: dict[str, list[Project]] = {}
        for project in projects:
            by_workspace.setdefault(project.workspace, []).append(project)
        return cls(
            generation=generation,
            projects=tuple(projects),
            by_namespace={p.namespace: p for p in projects},
            by_workspace={w: tuple(ps) for w, ps in by_workspace.items()},
        )


class TenancyService:
    def __init__(
        self,
        db: StateStore,
        *,
        auth: AuthSettings | None = None,
        clock: Clock | None = None,
        hashing: PasswordHashing | None = None,
        ensure_namespace: EnsureNamespace | None = None,
        namespace_created: NamespaceCreated | None = None,
        namespace_uid: NamespaceUid | None = None,
    ) -> None:
        self.store = TenancyStore(db)
        self.audit_store = AuditStore(db)
        self.auth = auth or AuthSettings()
        self.clock = clock or SystemClock()
        self.hashing = hashing or PasswordHashing()
        self._ensure_namespace = ensure_namespace
        self._namespace_created = namespace_created
        self._namespace_uid = namespace_uid
        self._dummy_hash: str | None = None
        self._local = threading.local()
        self._index: _ProjectIndex | None = None
        self._index_lock = threading.Lock()
        # username -> (project generation, principal, scope): see scope()
        self._scopes: dict[str, tuple[int, Principal, Scope]] = {}

    # ===================================================================== principals
    def principal_for(self, username: str, *, via_token: bool = False) -> Principal | None:
        """The principal of an active user with its current memberships, or None."""
        user = self.store.user(username)
        if user is None or user.disabled:
            return None
        return self._principal(user, via_token=via_token)

    def _principal(self, user: UserRecord, *, via_token: bool) -> Principal:
        return Principal(
            username=user.name,
            platform_role=PlatformRole(user.platform_role),
            workspaces={ws: WorkspaceRole(r) for ws, r in self.store.workspace_roles_of(user.name).items()},
            projects={ns: ProjectRole(r) for ns, r in self.store.project_roles_of(user.name).items()},
            via_token=via_token,
        )

    def principal_from_token(self, token: str) -> Principal | None:
        """The principal of a valid API token; None if unknown, expired, revoked or its user disabled."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        record = self.store.token_by_hash(digest(token))
        now = self.clock.now()
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return None
        principal = self.principal_for(record.username, via_token=True)
        if principal is not None and (record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY):
            self.store.touch_token(record.id, now)
        return principal

    def principal_from_session(self, sid: str) -> Principal | None:
        """The principal of a live console session; None if unknown, expired or its user disabled."""
        if not sid or len(sid) > 200:
            return None
        record = self.store.session(digest(sid))
        if record is None:
            return None
        if record.expires_at <= self.clock.now():
            self.store.delete_session(digest(sid))
            return None
        return self.principal_for(record.username)

    # ===================================================================== login
    def login(self, username: object, password: object, *, client: str = "") -> UserRecord:
        """Check a user name and password; raises Unauthenticated or LoginThrottled.

        Throttling counts failures per user name and per client address over the login window
        and is checked before the password, so a locked name stays locked even for the right
        password. Unknown and disabled users fail exactly like a wrong password (same message,
        and an argon2 verification against a dummy hash so the time taken matches too).
        """
        if not isinstance(username, str) or not username.strip():
            raise InvalidInput("username is required", field="username")
        if not isinstance(password, str) or not password:
            raise InvalidInput("password is required", field="password")
        name = username.strip().lower()
        now = self.clock.now()
        keys = [digest("user:" + name), digest("addr:" + (client or "?"))]
        self._check_throttle(keys, now)
        user = self.store.user(name) if USERNAME_RE.match(name) else None
        if user is None or user.disabled:
            self.hashing.verify(self._dummy(), password)
            self._failed_login(keys, now, None, client)
        if not self.hashing.verify(user.password_hash, password):
            self._failed_login(keys, now, user.name, client)
        self.store.clear_failures(keys[0])
        changes: dict[str, Any] = {"last_login_at": now}
        if self.hashing.needs_rehash(user.password_hash):
            changes["password_hash"] = self.hashing.hash(password)
        self.store.update_user(name, now=now, **changes)
        return user

    def _failed_login(self, keys: list[str], now: float, username: str | None, client: str) -> NoReturn:
        for key in keys:
            self.store.record_failure(key, now)
        log.info("failed login for %s from %s", username or "an unknown user name", client or "?")
        self.audit(username or "(unknown user)", "auth.login", "session", "failed", {"client": client})
        raise Unauthenticated("invalid user name or password")

    def _check_throttle(self, keys: list[str], now: float) -> None:
        window = self.auth.login_window
        self.store.purge_failures(now - window)
        for key in keys:
            failures = self.store.failures_since(key, now - window)
            # Locked until enough of the counted failures have aged out of the window.
            wait = retry_after(failures, self.auth.login_attempts, window, now)
            if wait is not None:
                log.warning("login throttled: %d failures within %.0f s", len(failures), window)
                raise LoginThrottled(wait)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hashing.hash(new_session_id())
        return self._dummy_hash

    # ===================================================================== sessions
    def start_session(self, username: str, *, client: str = "") -> str:
        """A new console session for ``username``; returns the session id for the cookie (only there)."""
        now = self.clock.now()
        self.store.purge_sessions(now)
        sid = new_session_id()
        self.store.insert_session(
            id_hash=digest(sid),
            username=username,
            now=now,
            expires_at=now + self.auth.session_hours * 3600,
            client=client[:100],
        )
        log.info("console session started for %s from %s", username, client or "?")
        self.audit(username, "auth.login", "session", "ok", {"client": client})
        return sid

    def end_session(self, sid: str) -> bool:
        record = self.store.session(digest(sid)) if sid else None
        if record is None:
            return False
        self.store.delete_session(digest(sid))
        self.audit(record.username, "auth.logout", "session", "ok")
        return True

    # ===================================================================== tokens
    def issue_token(
        self, username: str, *, kind: str = "named", name: str = "", ttl: float | None = None
    ) -> IssuedToken:
        """Make an API token (``kind`` login: from /auth/token; named: for automation)."""
        if kind not in ("login", "named"):
            raise ValueError(kind)
        default = self.auth.session_hours * 3600 if kind == "login" else self.auth.token_days * 86400
        lifetime = default if ttl is None else ttl
        if lifetime <= 0 or lifetime > MAX_TOKEN_SECONDS:
            raise Unprocessable("expires_in must be between 1 second and 366 days", field="expires_in")
        now = self.clock.now()
        self.store.purge_tokens(now - _TOKEN_AFTERLIFE)
        token = new_token()
        token_id = self.store.insert_token(
            username=username,
            name=name,
            kind=kind,
            token_hash=digest(token),
            hint=token_hint(token),
            now=now,
            expires_at=now + lifetime,
        )
        log.info("issued %s token %d (%s) to %s", kind, token_id, token_hint(token), username)
        self.audit(username, "token.create", f"token/{token_id}", "ok", {"name": name, "kind": kind})
        return IssuedToken(id=token_id, token=token, name=name, expires_at=now + lifetime)

    def tokens(self, username: str) -> list[TokenRecord]:
        return self.store.tokens_of(username)

    def revoke_token(self, token_id: int, *, by: Principal) -> TokenRecord:
        """Revoke a token of ``by`` (platform admins: anyone's). Another's token is NotFound, like a missing one."""
        record = self.store.token(token_id)
        if record is None or (record.username != by.username and not by.is_platform_admin):
            raise NotFound(f"no token {token_id}")
        self.store.revoke_token(token_id, self.clock.now())
        self.audit(by.username, "token.revoke", f"token/{token_id}", "ok", {"owner": record.username})
        return self.store.token(token_id) or record

    def revoke_token_value(self, token: str) -> bool:
        """Revoke the token presented (API logout). Returns whether a live token was revoked."""
        record = self.store.token_by_hash(digest(token)) if token else None
        if record is None or record.revoked_at is not None:
            return False
        self.store.revoke_token(record.id, self.clock.now())
        self.audit(record.username, "token.revoke", f"token/{record.id}", "ok", {"owner": record.username})
        return True

    # ===================================================================== authorization
    def authorize(
        self, principal: Principal, permission: str, *, namespace: str | None = None, workspace: str | None = None
    ) -> None:
        """Raise Forbidden unless ``principal`` holds ``permission`` on the namespace or workspace.

        An unknown namespace or workspace gives the same 403 as a foreign one, so probing names
        learns nothing; a namespace outside the named workspace is refused as well.
        """
        if namespace is not None:
            project = self.project(namespace) or Project(namespace=namespace, workspace="")
            if workspace is not None and project.workspace != workspace and not principal.is_platform_admin:
                project = Project(namespace=namespace, workspace="")
            rules.authorize(principal, permission, project=project)
        elif workspace is not None:
            rules.authorize(principal, permission, workspace=workspace)
        else:
            rules.authorize(principal, permission)

    def can(
        self, principal: Principal, permission: str, *, namespace: str | None = None, workspace: str | None = None
    ) -> bool:
        try:
            self.authorize(principal, permission, namespace=namespace, workspace=workspace)
        except HubError:
            return False
        return True

    def scope(self, principal: Principal) -> Scope:
        """What ``principal`` may read and write (:class:`hub.scope.Scope`), for one request.

        Every metric, log, alert and cluster read takes one, so it comes from a cache: one
        entry per user, kept while the principal's memberships (loaded fresh from the store for
        each request, so another process's change is seen at once) and the project generation
        (bumped by a trigger on every project write, this process's or another's) are the same.
        A miss costs in proportion to the memberships, not to the number of projects (a platform
        admin's covers every project, once per generation).
        """
        index = self._project_index()
        cached = self._scopes.get(principal.username)
        if cached is not None and cached[0] == index.generation and cached[1] == principal:
            return cached[2]
        if principal.is_platform_admin:
            scope = rules.scope_for(principal, index.projects)
        else:
            candidates: dict[str, Project] = {}
            for workspace in principal.workspaces:
                for project in index.by_workspace.get(workspace, ()):
                    candidates[project.namespace] = project
            for namespace in principal.projects:
                direct = index.by_namespace.get(namespace)
                if direct is not None:
                    candidates[namespace] = direct
            scope = rules.scope_for(principal, candidates.values())
        if len(self._scopes) >= _SCOPE_CACHE_USERS:
            self._scopes.clear()  # a crude bound: the next requests rebuild what they use
        self._scopes[principal.username] = (index.generation, principal, scope)
        return scope

    def may_receive(self, username: str, namespace: str | None, permission: str = "alerts:read") -> bool:
        """Whether a user may be told about a project's alerts (a notice's receiver, checked
        when the policy is saved and again at send time): an active user whose scope holds
        ``permission`` there; node-level notices (no namespace) go to any active user named."""
        principal = self.principal_for(username)
        if principal is None:
            return False
        return namespace is None or self.scope(principal).may(permission, namespace)

    def _project_index(self) -> _ProjectIndex:
        """The project list, reloaded only when the store's project generation moved."""
        generation = self.store.projects_generation()
        index = self._index
        if index is not None and index.generation == generation:
            return index
        with self._index_lock:
            index = self._index
            if index is None or index.generation != generation:
                # Read the generation before the rows: a change in between makes the next call
                # reload, never keeps a stale list.
                index = _ProjectIndex.build(generation, [_as_project(r) for r in self.store.projects(None)])
                self._index = index
        return index

    def namespaces_for(
        self, principal: Principal, permission: str, requested: Iterable[str] | None = None
    ) -> list[str] | None:
        """Namespaces named in a query or body, checked; or, if none named, all the caller may use.

        Returns None only for platform admins who named none ("no namespace filter"). A named
        namespace the caller may not use raises the same 403 whether it exists or not: a
        request is refused whole rather than silently narrowed, so the caller never mistakes
        a partial answer for a complete one.
        """
        wanted = sorted({n.strip() for n in (requested or []) if n and n.strip()})
        for namespace in wanted:
            self.authorize(principal, permission, namespace=namespace)
        if wanted:
            return wanted
        if principal.is_platform_admin:
            return None
        return [p.namespace for p in self.projects() if rules.has_permission(principal, permission, project=p)]

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

    def delete_project(self, namespace: str, *, actor: str = "system") -> None:
        """Unregister a project (its memberships go with it). The namespace itself is left in
        the cluster: deleting a tenant's workloads is not a side effect of tidying tenancy."""
        if self.store.delete_project(namespace) == 0:
            raise NotFound(f"no project {namespace}")
        self.audit(actor, "project.delete", f"namespace/{namespace}", "ok")

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

    # ===================================================================== audit
    def audit(self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None) -> int:
        """Append to the audit log. Other areas call this for every write and every log search/export.

        ``action`` is dotted (``logs.search``, ``policy.update``), ``target`` a path-like name
        (``namespace/team-a``, ``policy/12``), ``result`` ``ok``/``denied``/``failed``.
        Namespaces concerned are taken from ``detail["namespaces"]``/``detail["namespace"]`` and
        from a ``namespace/<ns>`` target, for the audit's namespace filter. Keys that look like
        secrets (password, token, cookie...) are dropped from ``detail`` before it is stored.
        """
        clean = _scrub(dict(detail or {}))
        namespaces: list[str] = []
        raw = clean.get("namespaces")
        if isinstance(raw, list | tuple):
            namespaces += [str(n) for n in raw]
        if isinstance(clean.get("namespace"), str):
            namespaces.append(clean["namespace"])
        if target.startswith("namespace/"):
            namespaces.append(target.split("/", 2)[1])
        entry_id = self.audit_store.append(
            at=self.clock.now(),
            actor=actor,
            action=action,
            target=target,
            result=result,
            namespaces=sorted(set(namespaces)),
            detail=clean,
        )
        self._local.count = getattr(self._local, "count", 0) + 1
        return entry_id

    def audit_count(self) -> int:
        """How many audit entries this thread has written; lets the web layer see whether a
        request audited itself or needs its generic entry."""
        return int(getattr(self._local, "count", 0))

    def audit_log(
        self, scope: Scope, flt: AuditFilter, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[AuditEntry], int]:
        """The audit log for the caller whose scope this is: ``audit:read`` is a platform
        permission, so a tenant is refused even filtered to their own namespace."""
        scope.check_cluster("audit:read")
        return self.audit_store.search(flt, offset=offset, limit=limit)


# ========================================================================= helpers
def _as_project(record: ProjectRecord) -> Project:
    return Project(
        namespace=record.namespace, workspace=record.workspace, created=record.created, uid=record.namespace_uid
    )


def _valid_username(value: object, *, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required", field=field)
    name = value.strip().lower()
    if not USERNAME_RE.match(name):
        raise Unprocessable(
            f"{field}: user names are 1-64 characters of a-z, 0-9, '.', '_' and '-', starting and ending "
            "with a letter or digit",
            field=field,
        )
    return name


def _dns_label(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required", field=field)
    name = value.strip()
    if not DNS_LABEL_RE.match(name):
        raise Unprocessable(
            f"{field}: a {what} is 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            field=field,
        )
    return name


def _text(value: object, field: str, *, limit: int = 200) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value) > limit:
        raise Unprocessable(f"{field} must have at most {limit} characters", field=field)
    return value.strip()


def _email(value: object) -> str:
    text = _text(value, "email", limit=254)
    if text and not _EMAIL_RE.match(text):
        raise Unprocessable(f"email: {text!r} is not an email address", field="email")
    return text


def _scrub(detail: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if _SECRET_KEYS.search(str(key)):
            continue
        out[str(key)] = _scrub(value) if isinstance(value, dict) else value
    return out
