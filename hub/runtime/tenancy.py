"""Builds the tenancy area's service into the hub, and the ``kubehub users create-admin`` command.

The cluster service is built after this one (``AREAS`` order), so the namespace callables
handed to the tenancy service look ``hub.cluster`` up when called, not now. With a cluster,
projects get real namespaces, real creation times and UIDs; without one (``hub.cluster`` is
None) projects are only recorded. A project of an added cluster gets its namespace in that
cluster's API server, through the cluster's own service (``hub.added_clusters``, connected
with the registry's unsealed credentials); its failures name that cluster.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.errors import BackendUnavailable, HubError
from hub.settings import AuthSettings, Settings, secret_from_env
from hub.store import StateStore, open_state_store
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.ldap_directory import LdapDirectory
from hub.tenancy.roles import PlatformRole
from hub.tenancy.service import TenancyService
from hub.timeutil import Clock

if TYPE_CHECKING:
    from hub.runtime import Hub


def hashing_from(auth: AuthSettings) -> PasswordHashing:
    memory = max(8, auth.password_hash_memory_kib)
    # argon2 needs at least 8 KiB per lane; tiny test settings get fewer lanes instead of an error.
    return PasswordHashing(
        memory_kib=memory, time_cost=max(1, auth.password_hash_time_cost), parallelism=max(1, min(4, memory // 8))
    )


def build_service(db: Any, settings: Settings, *, clock: Clock | None = None, hub: Hub | None = None) -> TenancyService:
    def ensure_namespace(name: str, labels: Mapping[str, str]) -> float | None:
        cluster = hub.cluster if hub is not None else None
        return None if cluster is None else cluster.ensure_namespace(name, labels)

    def namespace_created(name: str) -> float | None:
        cluster = hub.cluster if hub is not None else None
        return None if cluster is None else cluster.namespace_created(name)

    def namespace_uid(name: str) -> str | None:
        cluster = hub.cluster if hub is not None else None
        return None if cluster is None else cluster.namespace_uid(name)

    def delete_namespace(name: str) -> bool | None:
        cluster = hub.cluster if hub is not None else None
        return None if cluster is None else cluster.delete_namespace(name)

    return TenancyService(
        db,
        auth=settings.auth,
        clock=clock,
        hashing=hashing_from(settings.auth),
        ensure_namespace=ensure_namespace if hub is not None else None,
        namespace_created=namespace_created if hub is not None else None,
        namespace_uid=namespace_uid if hub is not None else None,
        delete_namespace=delete_namespace if hub is not None else None,
        directory=LdapDirectory(settings.ldap) if settings.ldap.url else None,
        default_cluster=settings.clusters.default_name,
        cluster_names=_cluster_names(hub) if hub is not None else None,
        cluster_namespaces=_cluster_namespaces(hub) if hub is not None else None,
    )


class _AddedClusterNamespaces:
    """An added cluster's namespace calls (:class:`hub.tenancy.placement.ClusterNamespaces`),
    whose 503s name that cluster: "kubernetes API server" alone would send an operator to the
    hub's own cluster."""

    def __init__(self, service: Any, name: str) -> None:
        self.service = service
        self.backend = f"kubernetes API server of cluster {name}"

    def _named(self, exc: BackendUnavailable) -> BackendUnavailable:
        reason = exc.message.removeprefix(f"{exc.backend} is unavailable: ")
        return BackendUnavailable(self.backend, reason)

    def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> float:
        try:
            return float(self.service.ensure_namespace(name, labels))
        except BackendUnavailable as exc:
            raise self._named(exc) from exc

    def namespace_uid(self, name: str) -> str | None:
        try:
            uid = self.service.namespace_uid(name)
        except BackendUnavailable as exc:
            raise self._named(exc) from exc
        return str(uid) if uid else None

    def delete_namespace(self, name: str) -> bool:
        try:
            return bool(self.service.delete_namespace(name))
        except BackendUnavailable as exc:
            raise self._named(exc) from exc


def _cluster_namespaces(hub: Hub) -> Any:
    """The namespace calls of an added cluster by name, looked up when asked (the cluster area
    is built after this one, and its services are rebuilt as clusters change); a cluster that
    could not be connected at all is 503 naming it, with the reason the registry recorded."""

    def namespaces(name: str) -> _AddedClusterNamespaces:
        service = hub.added_clusters.get(name)
        if service is None:
            reason = hub.cluster_errors.get(name, "not connected")
            raise BackendUnavailable(f"kubernetes API server of cluster {name}", reason)
        return _AddedClusterNamespaces(service, name)

    return namespaces


def _cluster_names(hub: Hub) -> Any:
    """Every cluster's name, looked up when asked: the registry is built after this area."""

    def names() -> list[str]:
        registry = hub.built_clusters()
        return list(registry.names()) if registry is not None else []

    return names


def build(hub: Hub) -> None:
    hub.tenancy = build_service(hub.db, hub.settings, clock=hub.clock, hub=hub)


def create_admin_from_cli(settings: Settings, *, username: str, password_env: str | None) -> int:
    """``kubehub users create-admin NAME [--password-env VAR]``: exit 0 created, 1 refused.

    Every outcome is one line. There is no default password: it comes from the named
    environment variable or is typed twice at a terminal.
    """
    if password_env:
        password = secret_from_env(password_env)
        if not password:
            print(f"kubehub: environment variable {password_env} is empty or not set", file=sys.stderr)
            return 1
    else:
        if not sys.stdin.isatty():
            print("kubehub: no terminal to ask for the password on; use --password-env VAR", file=sys.stderr)
            return 1
        try:
            password = getpass.getpass(f"Password for {username}: ")
            again = getpass.getpass("Repeat the password: ")
        except (EOFError, KeyboardInterrupt):
            print("kubehub: no password given; nothing created", file=sys.stderr)
            return 1
        if password != again:
            print("kubehub: the two passwords differ; nothing created", file=sys.stderr)
            return 1
    db: StateStore | None = None
    try:
        db = open_state_store(settings)
        db.migrate()
        service = build_service(db, settings)
        user = service.create_user(username, password, platform_role=PlatformRole.ADMIN, actor="cli")
    except HubError as exc:
        print(f"kubehub: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if db is not None:
            db.close()
    print(f"created platform admin {user.name}")
    return 0
