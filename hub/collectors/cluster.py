"""The cluster service: reads from the watch cache, actions through the Kubernetes API.

This is what ``hub.cluster`` holds. Reads never LIST: they answer from the cache
and say how old it may be (``stale_since``, None while every watch is connected). Actions go to
the API server, return the resulting object, and feed it back into the cache so the next read
already shows it. Who may do what is decided by the tenancy area: the reads that span
namespaces (``list_namespaces``, ``freshness``) and the log tail (``read_pod_log``) take the
caller's :class:`~hub.scope.Scope` and apply it; the per-namespace routes declare their
permission (checked on the namespace before the call), so namespace arguments of the other
methods are taken as already authorised.

Workload writes (scale, restart, roll back, set image, delete) are the mixin in
``workload_actions.py``. Still over 400 lines: one small method per read of each kind (nodes,
namespaces, workloads, pods, events, services, config metadata) over the one watch cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from hub.collectors.cluster_kinds import RESOURCE_KINDS
from hub.collectors.inventory import (
    WORKLOAD_KINDS,
    ListQuery,
    Page,
    deployment_revisions,
    encode_json,
    namespace_from_api,
    node_allocation,
    node_from_api,
    node_list_item,
    node_to_dict,
    parse_timestamp,
    pod_to_dict,
    pods_of_workload,
    select,
    top_owner,
    workload_health,
    workload_to_dict,
)
from hub.collectors.k8s_errors import API_SERVER
from hub.collectors.kube_request import KubeRequests
from hub.collectors.watchcache import KubeSource, ListPage, Store, WatchCache
from hub.collectors.workload_actions import (
    _STORE_OF,
    MERGE_PATCH,
    WorkloadActions,
    workload_kind,
)
from hub.errors import BackendUnavailable, Conflict, HubError, InvalidInput, NotFound, Unprocessable
from hub.model import WORKSPACE_LABEL, Event, Namespace, Node, Pod, Workload, iso_or_none
from hub.scope import Scope
from hub.timeutil import Clock

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # \Z, not $: no trailing newline
MAX_LOG_TAIL = 10_000
LOG_LIMIT_BYTES = 2 * 1024 * 1024  # a log tail is for reading on screen, not for export


class ClusterApi(KubeSource, KubeRequests, Protocol):
    """What the service needs from the adapter (``KubeApi``), besides list/watch for the cache."""

    description: str

    def read_log(self, namespace: str, pod: str, *, container: str, tail: int, limit_bytes: int) -> str: ...

    def version(self) -> str: ...

    def close(self) -> None: ...


class ClusterService(WorkloadActions):
    """Nodes, namespaces, workloads, pods and their actions; see docs/cluster.md."""

    def __init__(
        self,
        api: ClusterApi,
        *,
        clock: Clock,
        resync_seconds: float = 600.0,
        initial_wait: float = 10.0,
        cache: WatchCache | None = None,
        autostart: bool = True,
    ) -> None:
        self.api = api
        self.clock = clock
        # How long a read waits for the first LIST after start before answering 503.
        self.initial_wait = initial_wait
        self.cache = cache or WatchCache(api, RESOURCE_KINDS, clock=clock, resync_seconds=resync_seconds)
        # Tests that drive the cache by hand turn this off; everyone else gets the watch threads.
        self.autostart = autostart
        # name -> (node object, version of its pod bucket, its dict, that dict as JSON): a node
        # listing then costs a lookup per node until the node or a pod on it changes. Callers
        # must copy a view before adding keys to it.
        self._node_views: dict[str, tuple[Node, int, dict[str, Any], str]] = {}
        # (namespace, name) -> (pod object, its workload, its dict, that dict as JSON): a pod
        # listing costs a lookup per pod until the pod or its owner's answer changes.
        self._pod_views: dict[tuple[str, str], tuple[Pod, tuple[str, str] | None, dict[str, Any], str]] = {}
        # (kind, namespace) -> (the namespace's version in the store, its objects sorted by name):
        # pages of a listing cut a window instead of sorting the namespace again.
        self._sorted_views: dict[tuple[str, str], tuple[int, list[Any]]] = {}

    # -- lifecycle (Hub.start_background / Hub.close / readiness) ---------------------------------
    def start(self) -> None:
        self.cache.start()

    def stop(self) -> None:
        self.cache.stop()
        self.api.close()

    def ensure_started(self) -> None:
        """Reads start the watches if nobody did (a web-only process, a test app)."""
        if self.autostart and not self.cache.running:
            self.cache.start()

    def probe(self) -> str:
        """Readiness: the API server answers, and how current the cache is."""
        version = self.api.version()
        stores = self.cache.stores.values()
        synced = sum(1 for s in stores if s.synced.is_set())
        detail = f"{version} via {self.api.description}; cache {synced}/{len(self.cache.stores)} kinds loaded"
        stale = self.cache.stale_since()
        if stale is not None:
            detail += f", stale since {iso_or_none(stale)}"
        return detail

    def freshness(self, scope: Scope) -> dict[str, Any]:
        """How current the cache is, per resource. Tenants get the times only: the connection,
        object counts and errors are cluster-wide facts."""
        resources = self.cache.freshness()
        stale_since = iso_or_none(self.cache.stale_since())
        if not scope.cluster:
            keep = ("resource", "synced", "last_sync", "stale_since")
            return {"stale_since": stale_since, "resources": [{k: r[k] for k in keep} for r in resources]}
        return {"connection": self.api.description, "stale_since": stale_since, "resources": resources}

    def _ready(self, *names: str) -> float | None:
        """Make sure the kinds a read needs are loaded; return their ``stale_since``."""
        self.ensure_started()
        missing = self.cache.wait_synced(names, self.initial_wait)
        if missing:
            errors = sorted(e for n in missing if (e := self.cache[n].error))
            why = f": {errors[0]}" if errors else " (still listing)"
            raise BackendUnavailable(API_SERVER, f"the cluster cache has not loaded {', '.join(missing)} yet{why}")
        return self.cache.stale_since(names)

    # -- lookups shared by the views ----------------------------------------------------------
    def _workload(self, kind: str, namespace: str, name: str) -> Workload | None:
        found: Workload | None = self.cache[_STORE_OF[kind]].get(namespace, name)
        return found

    def _pods_of(self, workload: Workload) -> list[Pod]:
        children = "jobs" if workload.kind == "CronJob" else "replicasets"
        return pods_of_workload(
            workload,
            pods_owned_by=lambda uid: self.cache["pods"].by_index("owner", uid),
            workloads_owned_by=lambda uid: self.cache[children].by_index("owner", uid),
        )

    def _owner_of(self, pod: Pod) -> tuple[str, str] | None:
        return top_owner(pod.controller, namespace=pod.namespace, lookup=self._workload_any)

    def _workload_any(self, kind: str, namespace: str, name: str) -> Workload | None:
        store = _STORE_OF.get(kind)
        return self.cache[store].get(namespace, name) if store else None

    def _events_for(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        events = [e for e in self.cache["events"].by_index("object", f"{kind}/{name}") if e.namespace == namespace]
        events.sort(key=lambda e: e.last_seen or 0, reverse=True)
        return [e.to_dict() for e in events[:50]]  # the latest 50: the detail page shows recent history

    def _sorted(self, store: str, namespace: str) -> list[Any]:
        """The objects of a namespace ("" for nodes) sorted by name, kept until it changes.
        Shared between requests: callers must not change the list."""
        st = self.cache[store]
        version = st.namespace_version(namespace)  # read before the values: a change meanwhile only re-sorts
        cached = self._sorted_views.get((store, namespace))
        if cached is not None and cached[0] == version:
            return cached[1]
        ordered = sorted(st.values(namespace), key=lambda o: o.name)
        if len(self._sorted_views) > 4096:
            self._sorted_views.clear()  # forget namespaces that went away
        self._sorted_views[(store, namespace)] = (version, ordered)
        return ordered

    def _pod_view(self, pod: Pod) -> tuple[Pod, tuple[str, str] | None, dict[str, Any], str]:
        workload = self._owner_of(pod)
        cached = self._pod_views.get(pod.key)
        if cached is not None and cached[0] is pod and cached[1] == workload:
            return cached
        view = pod_to_dict(pod, workload=workload)
        entry = (pod, workload, view, encode_json(view))
        self._pod_views[pod.key] = entry
        return entry

    def _namespace_exists(self, namespace: str) -> None:
        if self.cache["namespaces"].get("", namespace) is None:
            raise NotFound(f"namespace {namespace} was not found")

    # -- nodes ------------------------------------------------------------------------------------
    def list_nodes(self, query: ListQuery) -> Page:
        stale = self._ready("nodes", "pods")
        pods = self.cache["pods"]
        window, total, token = select(
            self._sorted("nodes", ""), query, labels_of=lambda n: n.labels, name_of=lambda n: n.name, presorted=True
        )
        if len(self._node_views) > 2 * self.cache["nodes"].count() + 100:
            self._node_views.clear()  # forget nodes that left the cluster
        views = [self._node_view(n, pods) for n in window]
        return Page([v[2] for v in views], total, token, stale, encoded=[v[3] for v in views])

    def node_summary(self) -> dict[str, Any]:
        """The overview's counts (total, ready, cordoned, names not ready) from the cached nodes
        alone: a list's per-node views (allocation, JSON) cost ~0.5 s cold at 1,000 nodes."""
        stale, nodes = self._ready("nodes"), self._sorted("nodes", "")
        return {
            "total": len(nodes),
            "ready": sum(1 for n in nodes if n.ready),
            "cordoned": sum(1 for n in nodes if n.unschedulable),
            "not_ready": [n.name for n in nodes if not n.ready],
            "stale_since": iso_or_none(stale),
        }

    def _node_view(self, node: Node, pods: Store) -> tuple[Node, int, dict[str, Any], str]:
        version = pods.index_version("node", node.name)
        cached = self._node_views.get(node.name)
        if cached is not None and cached[0] is node and cached[1] == version:
            return cached
        view = node_list_item(node, node_allocation(node, pods.by_index("node", node.name)))
        entry = (node, version, view, encode_json(view))
        self._node_views[node.name] = entry
        return entry

    def get_node(self, name: str) -> dict[str, Any]:
        stale = self._ready("nodes", "pods", "events")
        node: Node | None = self.cache["nodes"].get("", name)
        if node is None:
            raise NotFound(f"node {name} was not found")
        pods: list[Pod] = sorted(self.cache["pods"].by_index("node", name), key=lambda p: (p.namespace, p.name))
        out = node_to_dict(node, node_allocation(node, pods))
        out["pods"] = [pod_to_dict(p, workload=self._owner_of(p)) for p in pods]
        events: list[Event] = list(self.cache["events"].by_index("object", f"Node/{name}"))
        events.sort(key=lambda e: e.last_seen or 0, reverse=True)
        out["events"] = [e.to_dict() for e in events[:50]]
        out["stale_since"] = iso_or_none(stale)
        return out

    def set_unschedulable(self, name: str, unschedulable: bool) -> dict[str, Any]:
        """Cordon (True) or uncordon (False) a node; returns the node as it now is."""
        obj = self.api.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            body={"spec": {"unschedulable": True if unschedulable else None}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource="nodes",
            name=name,
        )
        node = node_from_api(obj)
        self.cache["nodes"].offer(node)
        out = node_to_dict(node, node_allocation(node, self.cache["pods"].by_index("node", name)))
        out["stale_since"] = iso_or_none(self.cache.stale_since(["nodes"]))
        return out

    def cordon(self, name: str) -> dict[str, Any]:
        return self.set_unschedulable(name, True)

    def uncordon(self, name: str) -> dict[str, Any]:
        return self.set_unschedulable(name, False)

    # -- namespaces ---------------------------------------------------------------------------------
    def list_namespaces(self, query: ListQuery, scope: Scope) -> Page:
        """The namespaces the caller's scope admits (every one of the cluster for platform
        admins, projects or not)."""
        stale = self._ready("namespaces", "pods")
        every = scope.all_namespaces
        visible = [n for n in self.cache["namespaces"].values() if every or n.name in scope.namespaces]
        window, total, token = select(visible, query, labels_of=lambda n: n.labels, name_of=lambda n: n.name)
        pods = self.cache["pods"]
        items = [{**n.to_dict(), "pods": pods.count(n.name)} for n in window]
        return Page(items, total, token, stale)

    def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> float:
        """Create a project's namespace with these labels (or label the existing one); returns its
        creation time in epoch seconds.

        An existing namespace that carries another workspace's label is refused (409): adopting
        it would hand one tenant's namespace to another.
        """
        if not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
            raise InvalidInput(
                f"a project name must be a DNS label (lower-case letters, digits and '-', at most 63), got {name!r}",
                field="name",
            )
        labels = {str(k): str(v) for k, v in (labels or {}).items()}
        try:
            obj = self.api.request(
                "POST",
                "/api/v1/namespaces",
                body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
                verb="create",
                resource="namespaces",
                name=name,
                fields={"metadata.name": "name", "metadata.labels": "labels"},
            )
        except Conflict:
            current = self.api.request(
                "GET", f"/api/v1/namespaces/{name}", verb="get", resource="namespaces", name=name
            )
            have = ((current.get("metadata") or {}).get("labels") or {}).get(WORKSPACE_LABEL)
            want = labels.get(WORKSPACE_LABEL)
            if have and want and have != want:
                raise Conflict(f"namespace {name} already belongs to workspace {have}", field="name") from None
            if (current.get("status") or {}).get("phase") == "Terminating":
                raise Conflict(
                    f"namespace {name} is being deleted; create the project again once it is gone", field="name"
                ) from None
            obj = self.api.request(
                "PATCH",
                f"/api/v1/namespaces/{name}",
                body={"metadata": {"labels": labels}},
                content_type=MERGE_PATCH,
                verb="patch",
                resource="namespaces",
                name=name,
            )
        ns = namespace_from_api(obj)
        self.cache["namespaces"].offer(ns)
        return ns.created or (parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0)

    def delete_namespace(self, name: str) -> bool:
        """Delete a project's namespace (and everything in it); False when it was already gone.

        Other failures come back translated (403 the RBAC rule missing, 409, 503 naming the API
        server): the caller must not unregister the project then, or its usage keeps counting
        for a namespace nobody administers any more.
        """
        try:
            self.api.request("DELETE", f"/api/v1/namespaces/{name}", verb="delete", resource="namespaces", name=name)
        except NotFound:
            return False
        return True

    def namespace_contents(self, name: str) -> dict[str, Any]:
        """What deleting ``name`` would take with it, for the typed confirmation's preview:
        workloads, services, ConfigMap and Secret names (cache), PVC names (asked of the API
        server, which the cache does not watch). Never a Secret's or ConfigMap's values."""

        def names(store: str) -> list[str]:
            return sorted(o.name for o in self.cache[store].values(name))

        workloads = [
            {"kind": kind, "name": n}
            for kind, store in (
                ("deployment", "deployments"),
                ("statefulset", "statefulsets"),
                ("daemonset", "daemonsets"),
                ("job", "jobs"),
                ("cronjob", "cronjobs"),
            )
            for n in names(store)
        ]
        listed = self.api.request(
            "GET",
            f"/api/v1/namespaces/{name}/persistentvolumeclaims",
            verb="list",
            resource="persistentvolumeclaims",
            namespace=name,
        )
        claims = sorted(str((i.get("metadata") or {}).get("name") or "") for i in (listed or {}).get("items") or [])
        return {
            "namespace": name,
            "exists": self.namespace_created(name) is not None,
            "workloads": workloads,
            "services": names("services"),
            "configmaps": names("configmaps"),
            "secrets": names("secrets"),
            "persistentvolumeclaims": claims,
            "pods": self.cache["pods"].count(name),
        }

    # -- workloads ---------------------------------------------------------------------------------
    def _workload_dict(self, w: Workload) -> dict[str, Any]:
        return workload_to_dict(w, workload_health(w, self._pods_of(w)))

    def list_workloads(self, namespace: str, query: ListQuery, *, kind: str | None = None) -> Page:
        kinds = [workload_kind(kind)] if kind else list(WORKLOAD_KINDS.values())
        stale = self._ready("namespaces", "pods", "replicasets", "jobs", *(_STORE_OF[k] for k in kinds))
        self._namespace_exists(namespace)
        found: list[Workload] = []
        for k in kinds:
            found.extend(self.cache[_STORE_OF[k]].values(namespace))
        window, total, token = select(
            found, query, labels_of=lambda w: w.labels, name_of=lambda w: w.name, sort_key=lambda w: (w.name, w.kind)
        )
        return Page([self._workload_dict(w) for w in window], total, token, stale)

    def get_workload(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        k = workload_kind(kind)
        stale = self._ready("pods", "replicasets", "jobs", "events", _STORE_OF[k])
        w = self._workload(k, namespace, name)
        if w is None:
            raise NotFound(f"{kind.lower()} {namespace}/{name} was not found")
        pods = self._pods_of(w)
        out = workload_to_dict(w, workload_health(w, pods))
        out["pods"] = [pod_to_dict(p, workload=(k, name)) for p in pods]
        if k == "Deployment":
            out["revisions"] = deployment_revisions(w, self.cache["replicasets"].by_index("owner", w.uid))
        elif k == "CronJob":
            jobs: list[Workload] = sorted(
                self.cache["jobs"].by_index("owner", w.uid), key=lambda j: j.created, reverse=True
            )
            out["jobs"] = [self._workload_dict(j) for j in jobs]
        out["events"] = self._events_for(namespace, k, name)
        out["stale_since"] = iso_or_none(stale)
        return out

    # -- pods ---------------------------------------------------------------------------------------
    def list_pods(
        self,
        namespace: str,
        query: ListQuery,
        *,
        node: str | None = None,
        status: str | None = None,
        workload: tuple[str, str] | None = None,
    ) -> Page:
        """Pods of a namespace; ``status`` matches the phase or the one-word status, ``workload`` is
        (url kind, name) and follows owner references."""
        stale = self._ready("namespaces", "pods", "replicasets", "jobs")
        self._namespace_exists(namespace)
        pods: Iterable[Pod] = self._sorted("pods", namespace)
        if workload is not None:
            k = workload_kind(workload[0])
            w = self._workload(k, namespace, workload[1])
            pods = self._pods_of(w) if w is not None else []  # sorted by name too
        if node:
            pods = [p for p in pods if p.node == node]
        if status:
            want = status.lower()
            pods = [p for p in pods if p.phase.lower() == want or p.status.lower() == want]
        window, total, token = select(
            pods, query, labels_of=lambda p: p.labels, name_of=lambda p: p.name, presorted=True
        )
        if len(self._pod_views) > 2 * self.cache["pods"].count() + 100:
            self._pod_views.clear()  # forget pods that were deleted
        views = [self._pod_view(p) for p in window]
        return Page([v[2] for v in views], total, token, stale, encoded=[v[3] for v in views])

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        stale = self._ready("pods", "replicasets", "jobs", "events")
        pod: Pod | None = self.cache["pods"].get(namespace, name)
        if pod is None:
            raise NotFound(f"pod {namespace}/{name} was not found")
        out = pod_to_dict(pod, workload=self._owner_of(pod), detail=True)
        out["events"] = self._events_for(namespace, "Pod", name)
        out["stale_since"] = iso_or_none(stale)
        return out

    def pod_log(self, namespace: str, name: str, *, container: str | None = None, tail: int = 100) -> dict[str, Any]:
        """The last ``tail`` lines of one container's log, read through the API server."""
        if not 1 <= tail <= MAX_LOG_TAIL:
            raise InvalidInput(f"tail must be between 1 and {MAX_LOG_TAIL}, got {tail}", field="tail")
        self.ensure_started()
        pod: Pod | None = self.cache["pods"].get(namespace, name)
        if pod is not None:
            names = [c.name for c in (*pod.containers, *pod.init_containers)]
            if not container:
                container = names[0] if names else ""
            elif container not in names:
                raise Unprocessable(
                    f"pod {namespace}/{name} has no container {container!r}; it has {', '.join(names)}",
                    field="container",
                )
        text = self.api.read_log(namespace, name, container=container or "", tail=tail, limit_bytes=LOG_LIMIT_BYTES)
        lines = text.splitlines()
        return {"namespace": namespace, "pod": name, "container": container, "tail": tail, "lines": lines[-tail:]}

    def read_pod_log(
        self,
        scope: Scope,
        namespace: str,
        name: str,
        *,
        container: str | None,
        tail: int,
        audit: Callable[[str, str, str, str, Mapping[str, Any]], Any],
    ) -> dict[str, Any]:
        """A pod's log tail read as the caller whose scope this is, audited as ``pods.log`` the
        way a log search is audited.

        Why: the tail is a read of a tenant's logs through another door than the log search, so
        it takes the same scope check (``pods:log`` in the namespace, the one 403) and leaves the
        same trace (who, which namespace, pod and container, how many lines, and failures with
        their reason). The API and the console both read through here.
        """
        scope.check("pods:log", namespace)
        target = f"namespace/{namespace}/pod/{name}"
        detail: dict[str, Any] = {"namespace": namespace, "pod": name, "container": container, "tail": tail}
        try:
            out = self.pod_log(namespace, name, container=container, tail=tail)
        except HubError as exc:
            audit(scope.username, "pods.log", target, "failed", {**detail, "reason": exc.message})
            raise
        lines = len(out.get("lines", []))
        audit(scope.username, "pods.log", target, "ok", {**detail, "container": out.get("container"), "lines": lines})
        return out

    # -- events, services, config metadata ---------------------------------------------------------
    def list_events(
        self,
        namespace: str,
        query: ListQuery,
        *,
        object_kind: str | None = None,
        object_name: str | None = None,
        type: str | None = None,
    ) -> Page:
        """Events of a namespace, newest first; optionally only those about one object or of one type."""
        stale = self._ready("namespaces", "events")
        self._namespace_exists(namespace)
        events: Iterable[Event] = self.cache["events"].values(namespace)
        if object_kind:
            events = [e for e in events if e.object_kind.lower() == object_kind.lower()]
        if object_name:
            events = [e for e in events if e.object_name == object_name]
        if type:
            events = [e for e in events if e.type.lower() == type.lower()]
        window, total, token = select(
            events,
            query,
            labels_of=lambda e: {},
            name_of=lambda e: e.object_name,
            sort_key=lambda e: (e.last_seen or 0, e.name),
            reverse=True,
        )
        return Page([e.to_dict() for e in window], total, token, stale)

    def _list_simple(self, store: str, namespace: str, query: ListQuery) -> Page:
        stale = self._ready("namespaces", store)
        self._namespace_exists(namespace)
        window, total, token = select(
            self.cache[store].values(namespace), query, labels_of=lambda o: o.labels, name_of=lambda o: o.name
        )
        return Page([o.to_dict() for o in window], total, token, stale)

    def list_services(self, namespace: str, query: ListQuery) -> Page:
        return self._list_simple("services", namespace, query)

    def list_configmaps(self, namespace: str, query: ListQuery) -> Page:
        """ConfigMap metadata (names, labels, owners); never their data."""
        return self._list_simple("configmaps", namespace, query)

    def list_secrets(self, namespace: str, query: ListQuery) -> Page:
        """Secret metadata (names, labels, owners); the hub never receives their values."""
        return self._list_simple("secrets", namespace, query)

    # -- for other areas (the runtime passes these on) ---------------------------------------------
    def pods(self, namespaces: Iterable[str] | None = None) -> list[Pod]:
        """Cached pods (domain objects), of some namespaces or all; for the log shipper."""
        self._ready("pods")
        store = self.cache["pods"]
        if namespaces is None:
            return store.values()
        out: list[Pod] = []
        for ns in namespaces:
            out.extend(store.values(ns))
        return out

    def pod_workload(self, pod: Pod) -> tuple[str, str] | None:
        """(Kind, name) of the workload controlling a pod (ReplicaSet -> Deployment, Job -> CronJob)."""
        return self._owner_of(pod)

    def namespace_created(self, name: str) -> float | None:
        """Creation time (epoch s) of a namespace, None when it does not exist; the tenancy service
        uses it so that a recreated namespace does not inherit its predecessor's logs."""
        self._ready("namespaces")
        ns: Namespace | None = self.cache["namespaces"].get("", name)
        return ns.created if ns is not None else None

    def namespace_uid(self, name: str) -> str | None:
        """metadata.uid of a namespace, None when it does not exist: log lines stamped with
        another UID are an earlier namespace's of the same name."""
        self._ready("namespaces")
        ns: Namespace | None = self.cache["namespaces"].get("", name)
        return ns.uid if ns is not None else None

    def namespaces(self) -> list[Namespace]:
        self._ready("namespaces")
        return list(self.cache["namespaces"].values())

    def nodes(self) -> list[Node]:
        self._ready("nodes")
        return list(self.cache["nodes"].values())


__all__ = ["RESOURCE_KINDS", "ClusterApi", "ClusterService", "ListPage", "workload_kind"]
