"""An in-memory stand-in for the Kubernetes API, implementing OUR protocols (KubeSource and the
cluster service's ClusterApi), plus builders of API JSON objects as the server sends them.

It keeps a history of change events with resource versions, so a watch from version N returns
exactly what changed after N, ``compact(rv)`` makes older versions answer 410 like etcd
compaction does, and ``down = True`` makes every call fail like an unreachable server.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.collectors.k8s_errors import API_SERVER
from hub.collectors.watchcache import ListPage, ResourceKind, WatchEvent, WatchExpired
from hub.errors import BackendUnavailable

_uids = itertools.count(1)

UNREACHABLE_KUBECONFIG = (
    "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
    "users: [{name: u, user: {token: 'x'}}]\ncontexts: [{name: t, context: {cluster: c, user: u}}]\n"
)


def unreachable_kubeconfig(path: Path) -> Path:
    """Writes a valid kubeconfig (context ``t``) whose API server nothing listens on: a cluster the
    runtime builds a service for without ever reaching it."""
    path.write_text(UNREACHABLE_KUBECONFIG, encoding="utf-8")
    return path


def uid() -> str:
    return f"uid-{next(_uids):06d}"


def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "uid": extra.pop("uid", None) or uid()}
    if namespace is not None:
        md["namespace"] = namespace
    md["creationTimestamp"] = extra.pop("created", "2026-11-01T10:00:00Z")
    md.update(extra)
    return md


def owner(kind: str, name: str, owner_uid: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": owner_uid, "controller": True}


def node_json(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", **kw: Any) -> dict[str, Any]:
    return {
        "kind": "Node",
        "metadata": meta(name, labels=kw.pop("labels", {"kubernetes.io/hostname": name})),
        "spec": {"unschedulable": kw.pop("unschedulable", False), "taints": kw.pop("taints", [])},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": kw.pop(
                "conditions",
                [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}],
            ),
            "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}],
            "nodeInfo": {"kubeletVersion": "v1.34.4", "osImage": "kwok", "containerRuntimeVersion": "kwok"},
        },
    }


def namespace_json(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": meta(name, labels=labels or {}), "status": {"phase": "Active"}}


def pod_json(
    namespace: str,
    name: str,
    *,
    node: str = "",
    owned_by: tuple[str, str, str] | None = None,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    cpu: str = "100m",
    memory: str = "64Mi",
    restarts: int = 0,
    ready: bool = True,
    containers: tuple[str, ...] = ("app",),
) -> dict[str, Any]:
    md = meta(name, namespace, labels=labels or {})
    if owned_by:
        md["ownerReferences"] = [owner(*owned_by)]
    return {
        "kind": "Pod",
        "metadata": md,
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": c, "image": f"{c}:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
                for c in containers
            ],
        },
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": c, "ready": ready, "restartCount": restarts, "state": {"running": {}}} for c in containers
            ],
        },
    }


def deployment_json(
    namespace: str, name: str, *, replicas: int = 2, ready: int = 2, revision: str = "1", image: str = "web:1"
) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": meta(
            name,
            namespace,
            labels={"app": name},
            generation=1,
            annotations={"deployment.kubernetes.io/revision": revision},
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def replicaset_json(
    namespace: str, name: str, *, deployment: tuple[str, str], revision: str, replicas: int, image: str = "web:1"
) -> dict[str, Any]:
    md = meta(
        name,
        namespace,
        labels={"app": deployment[0], "pod-template-hash": name.rsplit("-", 1)[-1]},
        annotations={"deployment.kubernetes.io/revision": revision},
        ownerReferences=[owner("Deployment", deployment[0], deployment[1])],
    )
    return {
        "kind": "ReplicaSet",
        "metadata": md,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": deployment[0]}},
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def cronjob_json(namespace: str, name: str, *, schedule: str = "*/5 * * * *") -> dict[str, Any]:
    return {
        "kind": "CronJob",
        "metadata": meta(name, namespace),
        "spec": {
            "schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "task", "image": "task:1"}]}}}},
        },
        "status": {},
    }


def job_json(namespace: str, name: str, *, cronjob: tuple[str, str] | None = None, complete: bool = False) -> dict:
    md = meta(name, namespace)
    if cronjob:
        md["ownerReferences"] = [{**owner("CronJob", *cronjob), "apiVersion": "batch/v1"}]
    return {
        "kind": "Job",
        "metadata": md,
        "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "task", "image": "task:1"}]}}},
        "status": {
            "succeeded": 1 if complete else 0,
            "active": 0 if complete else 1,
            "conditions": [{"type": "Complete", "status": "True"}] if complete else [],
        },
    }


def secret_json(namespace: str, name: str, value: str) -> dict[str, Any]:
    """A Secret as a careless server (or a server without metadata-only support) would send it,
    value included, also in the annotation ``kubectl apply`` writes."""
    return {
        "kind": "Secret",
        "metadata": meta(
            name,
            namespace,
            labels={"team": "a"},
            annotations={"kubectl.kubernetes.io/last-applied-configuration": f'{{"data":{{"password":"{value}"}}}}'},
        ),
        "type": "Opaque",
        "data": {"password": value},
        "stringData": {"password": value},
    }


def event_json(namespace: str, name: str, *, kind: str, obj: str, reason: str, last: str) -> dict[str, Any]:
    return {
        "kind": "Event",
        "metadata": meta(name, namespace),
        "involvedObject": {"kind": kind, "name": obj, "namespace": namespace},
        "reason": reason,
        "message": f"{reason} happened",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": last,
        "lastTimestamp": last,
        "source": {"component": "test"},
    }


class FakeKube:
    """The API server as the watch cache sees it: LIST pages, WATCH from a version, 410, outages."""

    description = "fake"

    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self.history: dict[str, list[tuple[int, WatchEvent]]] = defaultdict(list)
        self.compacted = 0  # versions below this answer 410 Gone
        self.down = False
        self.list_calls: dict[str, int] = defaultdict(int)
        self.list_versions: dict[str, list[str]] = defaultdict(list)  # resource_version of each LIST page
        self.watch_calls: dict[str, int] = defaultdict(int)
        self.bookmarks = False
        self.requests: list[tuple[str, str, Any]] = []
        self.logs: dict[tuple[str, str, str], str] = {}

    # -- changing the "cluster" -----------------------------------------------------------------
    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        md = obj["metadata"]
        key = (md.get("namespace", ""), md["name"])
        etype = "MODIFIED" if key in self.objects[resource] else "ADDED"
        self.objects[resource][key] = obj
        self.history[resource].append((self.rv, WatchEvent(etype, obj)))
        return obj

    def remove(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects[resource].pop((namespace, name))
        self.rv += 1
        gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        self.history[resource].append((self.rv, WatchEvent("DELETED", gone)))

    def compact(self) -> None:
        """Forget history up to now, as etcd compaction does: older versions now give 410."""
        self.compacted = self.rv + 1

    # -- KubeSource -------------------------------------------------------------------------------
    def _check_up(self, verb: str, resource: str) -> None:
        if self.down:
            raise BackendUnavailable(API_SERVER, f"{verb} {resource} got no answer (connection refused)")

    def list_page(
        self, kind: ResourceKind, *, limit: int, continue_token: str | None, resource_version: str = ""
    ) -> ListPage:
        self._check_up("list", kind.name)
        self.list_calls[kind.name] += 1
        self.list_versions[kind.name].append(resource_version)
        items = [self.objects[kind.name][k] for k in sorted(self.objects[kind.name])]
        start = int(continue_token or 0)
        window = items[start : start + limit]
        more = start + limit < len(items)
        return ListPage(window, str(self.rv), str(start + limit) if more else None)

    def watch(self, kind: ResourceKind, *, resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        self._check_up("watch", kind.name)
        self.watch_calls[kind.name] += 1
        since = int(resource_version)
        if since < self.compacted - 1:
            raise WatchExpired(f"too old resource version: {since}")
        events = [e for rv, e in self.history[kind.name] if rv > since]
        if self.bookmarks:
            events.append(WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": str(self.rv)}}))
        return iter(events)

    def interrupt(self) -> None:
        pass

    # -- ClusterApi (the service's writes) ----------------------------------------------------------
    def request(self, method: str, path: str, *, verb: str, resource: str, body: Any = None, **kwargs: Any) -> Any:
        self._check_up(verb, resource)
        self.requests.append((method, path, body))
        return {}

    def read_log(self, namespace: str, pod: str, *, container: str, tail: int, limit_bytes: int) -> str:
        self._check_up("get", "pods/log")
        return self.logs.get((namespace, pod, container), "")

    def version(self) -> str:
        self._check_up("get", "version")
        return "v1.34.4-fake"

    def close(self) -> None:
        pass
