"""Which cluster a project lives in and which clusters a workspace is granted.

A workspace always has the implicit cluster (``clusters.default_name``); a platform admin grants
it added clusters, and a project of the workspace lives in exactly one of its clusters. The
project's key carries the cluster (:func:`hub.scope.project_key`): ``retail-api`` in the implicit
cluster, ``cluster-2/retail-api`` in cluster-2, so the two are two projects, possibly of two
tenants, with their own members, policies and alerts, and the scope keeps them apart
(:meth:`hub.scope.Scope.for_cluster`). Kept apart from ``directory.py`` (which is at its size
limit) as the tenancy service's mixin for the cluster level.

A project of an added cluster gets its namespace in *that* cluster's API server, exactly as the
implicit cluster's projects do in theirs (created or adopted, labelled with the workspace,
refused 409 when it carries another workspace's label, deleted with the project): the runtime
hands in ``cluster_namespaces``, which gives the added cluster's :class:`ClusterNamespaces` (its
own connection, credentials unsealed by the registry) or raises a 503 naming that cluster.
Without it (no runtime, unit tests) the project is only recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from hub.errors import Conflict, NotFound, Unprocessable
from hub.scope import project_key, split_key
from hub.store.tenancy import TenancyStore
from hub.tenancy.checks import _dns_label, _text
from hub.tenancy.directory import WORKSPACE_LABEL, Directory
from hub.tenancy.scope import Project
from hub.timeutil import Clock


class ClusterNamespaces(Protocol):
    """The namespace calls of one added cluster's API server (the runtime's ClusterService of
    it satisfies this; the tenancy area never imports the cluster adapter). Failures come back
    as HubErrors: 409 for a namespace another workspace holds, 503 naming the cluster."""

    def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> float: ...

    def namespace_uid(self, name: str) -> str | None: ...

    def delete_namespace(self, name: str) -> bool: ...


class ClusterPlacement(Directory):
    """Workspace cluster grants and the cluster of a new project, for the tenancy service
    (before :class:`Directory` in its bases: ``create_project`` takes a ``cluster``)."""

    if TYPE_CHECKING:  # provided by TenancyService (hub/tenancy/service.py)
        store: TenancyStore
        clock: Clock
        default_cluster: str
        _cluster_names: Callable[[], Sequence[str]] | None
        _cluster_namespaces: Callable[[str], ClusterNamespaces] | None

        def audit(
            self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
        ) -> int: ...

        def known_clusters(self) -> list[str]: ...

    def create_project(
        self,
        workspace: str,
        namespace: object,
        *,
        created: float | None = None,
        display_name: object = "",
        actor: str = "system",
        allow_default: bool = False,
        cluster: object = None,
    ) -> Project:
        """:meth:`Directory.create_project`, in ``cluster`` (None: the implicit one, exactly as
        before). In an added cluster the project is recorded under its key, and its namespace is
        created (or adopted) in that cluster's API server with the same workspace label; its
        creationTimestamp and UID become the project's ``created`` and ``uid``. A namespace
        there under another workspace's label is 409 (that workspace unnamed); an API server
        that does not answer is 503 naming the cluster, and nothing is recorded then."""
        if cluster in (None, "", self.default_cluster):
            return super().create_project(
                workspace,
                namespace,
                created=created,
                display_name=display_name,
                actor=actor,
                allow_default=allow_default,
            )
        ns = _dns_label(namespace, "namespace", "namespace name")
        if ns.startswith("kube-") or (ns == "default" and not allow_default):
            raise Unprocessable(f"{ns} is a system namespace and cannot be a project", field="namespace")
        display = _text(display_name, "display_name")
        if self.store.workspace(workspace) is None:
            raise NotFound(f"no workspace {workspace}")
        key, in_cluster = self.placed_key(workspace, ns, cluster)
        taken = Conflict(f"namespace {ns} is already a project in cluster {in_cluster}", field="namespace")
        if self.store.project(key) is not None:
            raise taken
        stamp: float | None = None
        uid = ""
        if self._cluster_namespaces is not None:
            api = self._cluster_namespaces(in_cluster)
            try:
                stamp = api.ensure_namespace(ns, {WORKSPACE_LABEL: workspace})
            except Conflict:
                # That cluster knows the namespace under another workspace's label (or it is
                # being deleted): refused without naming the other workspace.
                raise taken from None
            uid = api.namespace_uid(ns) or ""
        now = self.clock.now()
        floor = stamp if stamp is not None else (created if created is not None else now)
        with self.store.transaction():
            if self.store.project(key) is not None:
                raise taken
            self.store.insert_project(
                namespace=key,
                workspace=workspace,
                display_name=display,
                created=floor,
                created_by=actor,
                now=now,
                namespace_uid=uid,
                cluster=in_cluster,
            )
        detail = {"workspace": workspace, "cluster": in_cluster, "created": floor, **({"uid": uid} if uid else {})}
        self.audit(actor, "project.create", f"namespace/{key}", "ok", detail)
        return Project(namespace=key, workspace=workspace, created=floor, uid=uid)

    def _delete_project_namespace(self, key: str) -> bool | None:
        """The namespace of the project ``key`` deleted in its own cluster's API server: an
        added cluster's through ``cluster_namespaces`` (None: none given, only the record goes),
        the implicit cluster's as :class:`Directory` does."""
        cluster, namespace = split_key(key)
        if not cluster:
            return super()._delete_project_namespace(key)
        if self._cluster_namespaces is None:
            return None
        return self._cluster_namespaces(cluster).delete_namespace(namespace)

    def workspace_clusters(self, workspace: str) -> list[str]:
        """The clusters a workspace's projects may live in: the implicit one and its grants."""
        granted = self.store.workspace_clusters().get(workspace, frozenset())
        return [self.default_cluster, *sorted(granted - {self.default_cluster})]

    def grant_cluster(self, workspace: str, cluster: object, *, actor: str = "system") -> None:
        """Let ``workspace``'s projects live in ``cluster`` (platform admins; idempotent)."""
        name = self._cluster_name(cluster)
        if self.store.workspace(workspace) is None:
            raise NotFound(f"no workspace {workspace}")
        if name == self.default_cluster:
            return  # every workspace's already
        with self.store.transaction():
            self.store.grant_cluster(workspace, name, actor=actor, now=self.clock.now())
        self.audit(actor, "workspace.grant_cluster", f"workspace/{workspace}", "ok", {"cluster": name})

    def revoke_cluster(self, workspace: str, cluster: str, *, actor: str = "system") -> None:
        """Take a cluster back from a workspace; refused while a project of it lives there."""
        if cluster == self.default_cluster:
            raise Unprocessable("the implicit cluster belongs to every workspace", field="cluster")
        with self.store.transaction():
            left = self.store.projects_in_cluster(workspace, cluster)
            if left:
                raise Conflict(f"workspace {workspace} still has {left} project(s) in cluster {cluster}")
            if self.store.revoke_cluster(workspace, cluster) == 0:
                raise NotFound(f"workspace {workspace} is not granted cluster {cluster}")
        self.audit(actor, "workspace.revoke_cluster", f"workspace/{workspace}", "ok", {"cluster": cluster})

    def placed_key(self, workspace: str, namespace: str, cluster: object) -> tuple[str, str]:
        """(project key, stored cluster) of ``namespace`` placed in ``cluster`` for ``workspace``:
        the cluster must exist and be granted to the workspace (422 naming ``cluster``)."""
        name = self._cluster_name(cluster) if cluster not in (None, "") else self.default_cluster
        if name == self.default_cluster:
            return namespace, ""
        if name not in self.workspace_clusters(workspace):
            raise Unprocessable(f"workspace {workspace} is not granted cluster {name}", field="cluster")
        return project_key(name, namespace, self.default_cluster), name

    def _cluster_name(self, cluster: object) -> str:
        if not isinstance(cluster, str) or not cluster:
            raise Unprocessable("cluster must be a cluster's name", field="cluster")
        if cluster not in self.known_clusters():
            raise Unprocessable(f"no cluster {cluster!r}", field="cluster")
        return cluster
