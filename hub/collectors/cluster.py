"""The cluster service: reads from the watch cache, actions through the Kubernetes API.

This is what ``hub.cluster`` holds. Reads never LIST: they answer from the cache
and say how old it may be (``stale_since``, None while every watch is connected). Actions go to
the API server, return the resulting object, and feed it back into the cache so the next read
already shows it. Nothing here decides who may do what; the web layer checks permissions and
scopes before calling, and namespace arguments are taken as already authorised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from hub.collectors.inventory import (
    WORKLOAD_KINDS,
    ListQuery,
    Page,
    config_meta_from_api,
    deployment_revisions,
    encode_json,
    event_from_api,
    namespace_from_api,
    node_allocation,
    node_from_api,
    node_to_dict,
    parse_timestamp,
    pod_from_api,
    pod_to_dict,
    pods_of_workload,
    select,
    service_from_api,
    top_owner,
    workload_from_api,
    workload_health,
    workload_to_dict,
)
from hub.collectors.k8s_errors import API_SERVER
from hub.collectors.watchcache import KubeSource, ListPage, ResourceKind, Store, WatchCache
from hub.errors import BackendUnavailable, Conflict, HubError, InvalidInput, NotFound, Unprocessable
from hub.model import RESTARTED_AT_ANNOTATION, WORKSPACE_LABEL, Event, Namespace, Node, Pod, Workload, iso_or_none
from hub.scope import Scope
from hub.timeutil import Clock

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _owner_uids(obj: Any) -> list[str]:
    return [o.uid for o in obj.owners]


def _event_object(e: Event) -> list[str]:
    return [f"{e.object_kind}/{e.object_name}"]


def _pod_node(p: Pod) -> list[str]:
    return [p.node] if p.node else []


RESOURCE_KINDS: tuple[ResourceKind, ...] = (
    ResourceKind("nodes", "Node", "/api/v1", False, node_from_api),
    ResourceKind("namespaces", "Namespace", "/api/v1", False, namespace_from_api),
    ResourceKind("pods", "Pod", "/api/v1", True, pod_from_api, indexes={"owner": _owner_uids, "node": _pod_node}),
    ResourceKind("deployments", "Deployment", "/apis/apps/v1", True, partial(workload_from_api, "Deployment")),
    ResourceKind("statefulsets", "StatefulSet", "/apis/apps/v1", True, partial(workload_from_api, "StatefulSet")),
    ResourceKind("daemonsets", "DaemonSet", "/apis/apps/v1", True, partial(workload_from_api, "DaemonSet")),
    ResourceKind(
        "replicasets",
        "ReplicaSet",
        "/apis/apps/v1",
        True,
        partial(workload_from_api, "ReplicaSet"),
        indexes={"owner": _owner_uids},
    ),
    ResourceKind(
        "jobs", "Job", "/apis/batch/v1", True, partial(workload_from_api, "Job"), indexes={"owner": _owner_uids}
    ),
    ResourceKind("cronjobs", "CronJob", "/apis/batch/v1", True, partial(workload_from_api, "CronJob")),
    ResourceKind("services", "Service", "/api/v1", True, service_from_api),
    ResourceKind(
        "configmaps", "ConfigMap", "/api/v1", True, partial(config_meta_from_api, "ConfigMap"), metadata_only=True
    ),
    ResourceKind("secrets", "Secret", "/api/v1", True, partial(config_meta_from_api, "Secret"), metadata_only=True),
    ResourceKind("events", "Event", "/api/v1", True, event_from_api, indexes={"object": _event_object}),
)

# URL kind -> cache store name
_STORE_OF = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ReplicaSet": "replicasets",
}
_API_OF = {
    "Deployment": "/apis/apps/v1",
    "StatefulSet": "/apis/apps/v1",
    "DaemonSet": "/apis/apps/v1",
    "ReplicaSet": "/apis/apps/v1",
    "Job": "/apis/batch/v1",
    "CronJob": "/apis/batch/v1",
}
_SCALABLE = ("Deployment", "StatefulSet")
_RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")
_PROPAGATION = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # \Z, not $: no trailing newline
_IMAGE = re.compile(r"^[^\s]+\Z")
MAX_REPLICAS = 10_000  # far above any real workload; catches typos such as 50000 for 5
MAX_LOG_TAIL = 10_000
LOG_LIMIT_BYTES = 2 * 1024 * 1024  # a log tail is for reading on screen, not for export


class ClusterApi(KubeSource, Protocol):
    """What the service needs from the adapter (``KubeApi``), besides list/watch for the cache."""

    description: str

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        fields: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> Any: ...

    def read_log(self, namespace: str, pod: str, *, container: str, tail: int, limit_bytes: int) -> str: ...

    def version(self) -> str: ...

    def close(self) -> None: ...


def workload_kind(kind: str) -> str:
    """URL kind (``deployment``) -> Kubernetes kind (``Deployment``), or a 400 naming ``kind``."""
    found = WORKLOAD_KINDS.get((kind or "").lower())
    if found is None:
        raise InvalidInput(f"kind must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}", field="kind")
    return found


class ClusterService:
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

    def _namespace_exists(self, namespace: str) -> None:
        if self.cache["namespaces"].get("", namespace) is None:
            raise NotFound(f"namespace {namespace} was not found")

    # -- nodes ------------------------------------------------------------------------------------
    def list_nodes(self, query: ListQuery) -> Page:
        stale = self._ready("nodes", "pods")
        pods = self.cache["pods"]
        window, total, token = select(
            self.cache["nodes"].values(), query, labels_of=lambda n: n.labels, name_of=lambda n: n.name
        )
        if len(self._node_views) > 2 * self.cache["nodes"].count() + 100:
            self._node_views.clear()  # forget nodes that left the cluster
        views = [self._node_view(n, pods) for n in window]
        return Page([v[2] for v in views], total, token, stale, encoded=[v[3] for v in views])

    def _node_view(self, node: Node, pods: Store) -> tuple[Node, int, dict[str, Any], str]:
        version = pods.index_version("node", node.name)
        cached = self._node_views.get(node.name)
        if cached is not None and cached[0] is node and cached[1] == version:
            return cached
        view = node_to_dict(node, node_allocation(node, pods.by_index("node", node.name)))
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

    def delete_namespace(self, name: str) -> None:
        """Delete a project's namespace (and everything in it). A namespace already gone is fine."""
        try:
            self.api.request("DELETE", f"/api/v1/namespaces/{name}", verb="delete", resource="namespaces", name=name)
        except NotFound:
            return

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

    def _path(self, kind: str, namespace: str, name: str) -> str:
        return f"{_API_OF[kind]}/namespaces/{namespace}/{_STORE_OF[kind]}/{name}"

    def _accept(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        w = workload_from_api(kind, obj)
        self.cache[_STORE_OF[kind]].offer(w)
        out = self._workload_dict(w)
        out["stale_since"] = iso_or_none(self.cache.stale_since(["pods", _STORE_OF[kind]]))
        return out

    def _get_live(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object as the API server has it now; writes that depend on its current state read it
        live (a write is rare, and a stale cache must not decide what gets overwritten)."""
        return dict(
            self.api.request(
                "GET",
                self._path(kind, namespace, name),
                verb="get",
                resource=_STORE_OF[kind],
                namespace=namespace,
                name=name,
            )
        )

    def scale(self, namespace: str, kind: str, name: str, replicas: Any) -> dict[str, Any]:
        k = workload_kind(kind)
        if k not in _SCALABLE:
            raise Unprocessable(f"a {k} cannot be scaled; only deployments and statefulsets can", field="kind")
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise InvalidInput(f"replicas must be a whole number, got {replicas!r}", field="replicas")
        if not 0 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas must be between 0 and {MAX_REPLICAS}, got {replicas}", field="replicas")
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
            fields={"spec.replicas": "replicas"},
        )
        return self._accept(k, obj)

    def restart(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """Replace every pod, as ``kubectl rollout restart`` does: a new template annotation makes
        the controller roll out a new revision at its usual pace."""
        k = workload_kind(kind)
        if k not in _RESTARTABLE:
            raise Unprocessable(
                f"a {k} cannot be restarted; only deployments, statefulsets and daemonsets can", field="kind"
            )
        stamp = iso_or_none(self.clock.now())
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body={"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
        )
        return self._accept(k, obj)

    def rollback(self, namespace: str, kind: str, name: str, revision: Any = 0) -> dict[str, Any]:
        """Roll a Deployment back to ``revision`` (0: the one before the current).

        Like ``kubectl rollout undo``: copy the pod template of the ReplicaSet that carries that
        revision back into the Deployment. The patch names the resourceVersion it was computed
        from, so a concurrent change gives 409 instead of being silently overwritten.
        """
        k = workload_kind(kind)
        if k != "Deployment":
            raise Unprocessable(f"only deployments can be rolled back to a revision, not a {k}", field="kind")
        if revision is None:
            revision = 0
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise InvalidInput(f"revision must be a positive whole number, got {revision!r}", field="revision")
        dep = self._get_live(k, namespace, name)
        md = dep.get("metadata") or {}
        spec = dep.get("spec") or {}
        if spec.get("paused"):
            raise Unprocessable(f"deployment {namespace}/{name} is paused; resume it before rolling back", field="name")
        selector = ",".join(f"{a}={b}" for a, b in ((spec.get("selector") or {}).get("matchLabels") or {}).items())
        listing = self.api.request(
            "GET",
            f"/apis/apps/v1/namespaces/{namespace}/replicasets",
            query={"labelSelector": selector or None},
            verb="list",
            resource="replicasets",
            namespace=namespace,
        )
        by_revision: dict[int, dict[str, Any]] = {}
        for rs in listing.get("items") or []:
            rmd = rs.get("metadata") or {}
            if not any(o.get("uid") == md.get("uid") for o in rmd.get("ownerReferences") or ()):
                continue
            try:
                by_revision[int((rmd.get("annotations") or {}).get("deployment.kubernetes.io/revision", ""))] = rs
            except ValueError:
                continue
        try:
            current = int((md.get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
        except ValueError:
            current = 0
        available = sorted(by_revision)
        if revision == 0:
            older = [r for r in available if r < current]
            if not older:
                raise Unprocessable(
                    f"deployment {namespace}/{name} has no revision before {current} to roll back to", field="revision"
                )
            revision = older[-1]
        if revision not in by_revision:
            raise Unprocessable(
                f"deployment {namespace}/{name} has no revision {revision}; "
                f"it has {', '.join(map(str, available)) or 'none'}",
                field="revision",
            )
        if revision == current:
            return self._accept(k, dep)  # already there: nothing to change (kubectl skips it too)
        template = dict((by_revision[revision].get("spec") or {}).get("template") or {})
        tmd = dict(template.get("metadata") or {})
        labels = dict(tmd.get("labels") or {})
        labels.pop("pod-template-hash", None)  # added by the controller to the ReplicaSet, not ours
        tmd["labels"] = labels
        template["metadata"] = tmd
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body=[
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/metadata/resourceVersion", "value": md.get("resourceVersion", "")},
            ],
            content_type=JSON_PATCH,
            verb="patch",
            resource="deployments",
            namespace=namespace,
            name=name,
        )
        return self._accept(k, obj)

    def set_image(self, namespace: str, kind: str, name: str, container: Any, image: Any) -> dict[str, Any]:
        """Change one container's image; the controller rolls it out."""
        k = workload_kind(kind)
        if k == "Job":
            raise Unprocessable("a Job's pod template cannot change; create a new job instead", field="kind")
        if not isinstance(container, str) or not container:
            raise InvalidInput("container must name one of the workload's containers", field="container")
        if not isinstance(image, str) or not image or len(image) > 1024 or not _IMAGE.match(image):
            raise InvalidInput(f"image must be an image reference without spaces, got {image!r}", field="image")
        obj = self._get_live(k, namespace, name)
        spec = obj.get("spec") or {}
        base = "/spec/template/spec"
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        if k == "CronJob":
            base = "/spec/jobTemplate/spec/template/spec"
            pod_spec = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        path = None
        names = []
        for group in ("containers", "initContainers"):
            for i, c in enumerate(pod_spec.get(group) or ()):
                names.append(c.get("name"))
                if c.get("name") == container:
                    path = f"{base}/{group}/{i}/image"
        if path is None:
            raise Unprocessable(
                f"{kind.lower()} {namespace}/{name} has no container {container!r}; it has {', '.join(names)}",
                field="container",
            )
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        patched = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body=[
                {"op": "replace", "path": path, "value": image},
                {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
            ],
            content_type=JSON_PATCH,
            verb="patch",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
            fields={"spec.template.spec.containers": "image", "spec.jobTemplate": "image"},
        )
        return self._accept(k, patched)

    def delete_workload(self, namespace: str, kind: str, name: str, propagation: str = "background") -> dict[str, Any]:
        """Delete a workload and, unless ``orphan``, its pods (the garbage collector removes them:
        at once in the background, or before the workload itself with ``foreground``)."""
        k = workload_kind(kind)
        policy = _PROPAGATION.get((propagation or "background").lower())
        if policy is None:
            raise InvalidInput(
                f"propagation must be one of {', '.join(_PROPAGATION)}, got {propagation!r}", field="propagation"
            )
        self.api.request(
            "DELETE",
            self._path(k, namespace, name),
            body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": policy},
            verb="delete",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
        )
        return {"kind": kind.lower(), "namespace": namespace, "name": name, "deleted": True, "propagation": policy}

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
        pods: Iterable[Pod] = self.cache["pods"].values(namespace)
        if workload is not None:
            k = workload_kind(workload[0])
            w = self._workload(k, namespace, workload[1])
            pods = self._pods_of(w) if w is not None else []
        if node:
            pods = [p for p in pods if p.node == node]
        if status:
            want = status.lower()
            pods = [p for p in pods if p.phase.lower() == want or p.status.lower() == want]
        window, total, token = select(pods, query, labels_of=lambda p: p.labels, name_of=lambda p: p.name)
        return Page([pod_to_dict(p, workload=self._owner_of(p)) for p in window], total, token, stale)

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
