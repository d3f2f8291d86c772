"""The tenancy service: ``hub.tenancy``.

Every area reaches users, memberships, scopes and the audit log through this one object. It
loads principals from tokens and sessions, answers "may this principal do that, there?" with
the pure rules of :mod:`hub.tenancy.scope`, manages users, workspaces, projects and members,
and writes the audit log.

The Kubernetes side of projects (creating and labelling the namespace, reading its creation
time) is not done here: the runtime passes narrow callables in (``ensure_namespace``,
``namespace_created``) so this area never imports the cluster adapter and works without a
cluster by recording the project only.

One class in three files along its seams: this module holds the principals, the scope (and
its cache), authorization and the audit log; :mod:`hub.tenancy.sessions` the logins, sessions
and tokens and :mod:`hub.tenancy.directory` the users, workspaces, projects and memberships
(mixins of :class:`TenancyService`), with the input checks in :mod:`hub.tenancy.checks`.
This one is a little over 400 lines because the principal and scope caches sit beside the
lookups they stand in for: each cache's rule for going stale is only checkable next to the
rows it replaces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.errors import HubError
from hub.scope import DEFAULT_CLUSTER
from hub.settings import AuthSettings
from hub.store.audit import AuditEntry, AuditFilter, AuditStore
from hub.store.db import StateStore
from hub.store.identity import IdentityStore
from hub.store.roles import RoleStore
from hub.store.tenancy import TenancyStore, UserRecord
from hub.tenancy import scope as rules
from hub.tenancy.checks import _as_project, _scrub
from hub.tenancy.credentials import (
    TOKEN_PREFIX,
    PasswordHashing,
    digest,
)
from hub.tenancy.custom_roles import RoleAdministration
from hub.tenancy.directory import WORKSPACE_LABEL
from hub.tenancy.external import ExternalIdentities, PasswordDirectory
from hub.tenancy.mappings import parse_mappings_setting
from hub.tenancy.placement import ClusterNamespaces, ClusterPlacement
from hub.tenancy.roles import ClusterRole, PlatformRole, ProjectRole, WorkspaceRole
from hub.tenancy.scope import CustomGrant, Principal, Project, Scope
from hub.tenancy.sessions import IssuedToken, LoginThrottled, SessionsAndTokens
from hub.timeutil import Clock, SystemClock

log = logging.getLogger("kubehub.tenancy")

# Re-exported: callers catch LoginThrottled and read IssuedToken from here.
__all__ = ["WORKSPACE_LABEL", "IssuedToken", "LoginThrottled", "TenancyService"]

# Creates (or adopts) a namespace and sets labels on it; returns its creationTimestamp (epoch
# seconds), or None when no cluster is connected. Raises BackendUnavailable when the cluster
# does not answer.
EnsureNamespace = Callable[[str, Mapping[str, str]], float | None]
# The creationTimestamp of a namespace, None if it does not exist or no cluster is connected.
NamespaceCreated = Callable[[str], float | None]
# The metadata.uid of a namespace, None if it does not exist or no cluster is connected.
NamespaceUid = Callable[[str], str | None]
# Deletes a project's namespace; False when it was already gone, None when no cluster is
# connected. Raises the translated API server error (Forbidden, Conflict, BackendUnavailable).
DeleteNamespace = Callable[[str], bool | None]

# Token last-use times are written at most this often per token, so that every API call does
# not turn into a write.
_TOUCH_EVERY = 60.0
_SCOPE_CACHE_USERS = 10_000  # cached scopes (one per user) before the cache starts over


@dataclass(frozen=True)
class _ProjectIndex:
    """Every project, by namespace and by workspace, as of one project generation."""

    generation: int
    projects: tuple[Project, ...]
    by_namespace: Mapping[str, Project]
    by_workspace: Mapping[str, tuple[Project, ...]]
    workspace_clusters: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, generation: int, projects: list[Project], workspace_clusters: Mapping[str, frozenset[str]] | None = None
    ) -> _ProjectIndex:
        by_workspace: dict[str, list[Project]] = {}
        for project in projects:
            by_workspace.setdefault(project.workspace, []).append(project)
        return cls(
            generation=generation,
            projects=tuple(projects),
            by_namespace={p.namespace: p for p in projects},
            by_workspace={w: tuple(ps) for w, ps in by_workspace.items()},
            workspace_clusters=dict(workspace_clusters or {}),
        )


class TenancyService(SessionsAndTokens, ClusterPlacement, ExternalIdentities, RoleAdministration):
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
        delete_namespace: DeleteNamespace | None = None,
        directory: PasswordDirectory | None = None,
        default_cluster: str = DEFAULT_CLUSTER,
        cluster_names: Callable[[], Sequence[str]] | None = None,
        cluster_namespaces: Callable[[str], ClusterNamespaces] | None = None,
    ) -> None:
        self.store = TenancyStore(db)
        self.identity = IdentityStore(db)
        self.roles = RoleStore(db)  # cluster roles, custom roles (hub/tenancy/custom_roles.py)
        # The implicit cluster's name (clusters.default_name), which cluster-level routes act on,
        # and every cluster's (the cluster registry's, when the runtime has one).
        self.default_cluster = default_cluster
        self._cluster_names = cluster_names
        # An added cluster's namespace calls, for its projects (hub/tenancy/placement.py).
        self._cluster_namespaces = cluster_namespaces
        # Sign-in against a directory (hub/tenancy/external.py); None: local users only.
        self.directory = directory
        self.audit_store = AuditStore(db)
        self.auth = auth or AuthSettings()
        self.clock = clock or SystemClock()
        self.hashing = hashing or PasswordHashing()
        self.settings_mappings = parse_mappings_setting(self.auth.group_mappings)
        self._ensure_namespace = ensure_namespace
        self._namespace_created = namespace_created
        self._namespace_uid = namespace_uid
        self._delete_namespace = delete_namespace
        self._dummy_hash: str | None = None
        self._local = threading.local()
        self._index: _ProjectIndex | None = None
        self._index_lock = threading.Lock()
        # username -> (project generation, principal, scope): see scope()
        self._scopes: dict[str, tuple[int, Principal, Scope]] = {}
        # (username, via_token) -> (identity generation, principal): see _vouched_principal()
        self._principals: dict[tuple[str, bool], tuple[int, Principal]] = {}

    # ===================================================================== principals
    def principal_for(self, username: str, *, via_token: bool = False) -> Principal | None:
        """The principal of an active user with its current memberships, or None."""
        user = self.store.user(username)
        if user is None or user.disabled:
            return None
        return self._principal(user, via_token=via_token)

    def _vouched_principal(self, username: str, *, via_token: bool) -> Principal | None:
        """:meth:`principal_for` for a session or token: an external user's directory may have
        to confirm them again first (:meth:`ExternalIdentities.still_vouched`).

        Every API request and console page asks this, so a local user's principal is kept while
        the identity generation (bumped by a trigger on every write to the user's role, disabled
        flag or source, or to any role binding -- this process's or another's) stays the same:
        one query instead of five. The counter is read before the rows, so a write between the
        two leaves an entry that the next call finds stale. An external user is not kept: their
        directory's re-check is due by time, not by a write here.
        """
        generation = self.store.identity_generation()
        key = (username, via_token)
        cached = self._principals.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        user = self.store.user(username)
        if user is None or user.disabled:
            return None
        if user.source != "local":
            if not self.still_vouched(user):
                return None
            user = self.store.user(username)  # a re-check may have changed the roles
            if user is None or user.disabled:
                return None
            return self._principal(user, via_token=via_token)
        principal = self._principal(user, via_token=via_token)
        if len(self._principals) >= _SCOPE_CACHE_USERS:
            self._principals.clear()  # the same crude bound as the scopes'
        self._principals[key] = (generation, principal)
        return principal

    def _principal(self, user: UserRecord, *, via_token: bool) -> Principal:
        return Principal(
            username=user.name,
            platform_role=PlatformRole(user.platform_role),
            workspaces={ws: WorkspaceRole(r) for ws, r in self.store.workspace_roles_of(user.name).items()},
            projects={ns: ProjectRole(r) for ns, r in self.store.project_roles_of(user.name).items()},
            via_token=via_token,
            clusters={c: ClusterRole(r) for c, r in self.roles.cluster_roles_of(user.name).items()},
            custom=tuple(
                CustomGrant(b.role, b.level, b.target, frozenset(b.permissions))  # type: ignore[arg-type]
                for b in self.roles.bindings_of_user(user.name)
            ),
        )

    def principal_from_token(self, token: str) -> Principal | None:
        """The principal of a valid API token; None if unknown, expired, revoked or its user disabled."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        record = self.store.token_by_hash(digest(token))
        now = self.clock.now()
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return None
        principal = self._vouched_principal(record.username, via_token=True)
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
        return self._vouched_principal(record.username, via_token=False)

    # ===================================================================== authorization
    def authorize(
        self,
        principal: Principal,
        permission: str,
        *,
        namespace: str | None = None,
        workspace: str | None = None,
        cluster: str | None = None,
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
        else:  # a cluster-level permission: on the cluster the request names (None: the implicit one)
            rules.authorize(principal, permission, cluster=cluster or self.default_cluster)

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
        entry per user, kept while the principal's memberships (current at each request, so
        another process's change is seen at once: :meth:`_vouched_principal`) and the project generation
        (bumped by a trigger on every project write, this process's or another's) are the same.
        A miss costs in proportion to the memberships, not to the number of projects (a platform
        admin's covers every project, once per generation).
        """
        index = self._project_index()
        cached = self._scopes.get(principal.username)
        if cached is not None and cached[0] == index.generation and cached[1] == principal:
            return cached[2]
        if principal.is_platform_admin:
            scope = rules.scope_for(
                principal,
                index.projects,
                default_cluster=self.default_cluster,
                workspace_clusters=index.workspace_clusters,
            )
        else:
            candidates: dict[str, Project] = {}
            for workspace in principal.workspaces:
                for project in index.by_workspace.get(workspace, ()):
                    candidates[project.namespace] = project
            for namespace in principal.projects:
                direct = index.by_namespace.get(namespace)
                if direct is not None:
                    candidates[namespace] = direct
            for grant in principal.custom:  # custom roles bound on a workspace or a project
                if grant.level == "workspace":
                    candidates.update((p.namespace, p) for p in index.by_workspace.get(grant.target, ()))
                elif grant.level == "project" and grant.target in index.by_namespace:
                    candidates[grant.target] = index.by_namespace[grant.target]
            scope = rules.scope_for(
                principal,
                candidates.values(),
                default_cluster=self.default_cluster,
                workspace_clusters=index.workspace_clusters,
            )
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
                index = _ProjectIndex.build(
                    generation,
                    [_as_project(r) for r in self.store.projects(None)],
                    self.store.workspace_clusters(),
                )
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
            namespaces.append(_target_namespace(target))
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


# What follows a project's key in an audit target (namespace/<key>/<kind>/<id>).
_TARGET_KINDS = frozenset({"member", "pod", "policy", "silence", "alert"})


def _target_namespace(target: str) -> str:
    """The namespace of a ``namespace/<key>[/<kind>/<id>]`` target. A project's key is its
    namespace in the implicit cluster and ``<cluster>/<namespace>`` in an added one, so the
    second part is the namespace unless it names what follows the key (the first part alone
    would file cluster-2's entries under a namespace called ``cluster-2``)."""
    parts = target.split("/")[1:]
    if len(parts) >= 2 and parts[1] not in _TARGET_KINDS:
        return parts[1]
    return parts[0]
