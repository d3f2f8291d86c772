"""The kinds the cluster service's watch cache follows, and the indexes it keeps on them (pods by
owner and node, ReplicaSets and Jobs by owner, events by object). Apart from
:mod:`hub.collectors.cluster` so that module stays the reads over the cache."""

from __future__ import annotations

from functools import partial
from typing import Any

from hub.collectors.inventory import (
    config_meta_from_api,
    event_from_api,
    namespace_from_api,
    node_from_api,
    pod_from_api,
    service_from_api,
    workload_from_api,
)
from hub.collectors.kube_decode import decode_pod_list
from hub.collectors.watchcache import ResourceKind
from hub.model import Event, Pod


def _owner_uids(obj: Any) -> list[str]:
    return [o.uid for o in obj.owners]


def _event_object(e: Event) -> list[str]:
    return [f"{e.object_kind}/{e.object_name}"]


def _pod_node(p: Pod) -> list[str]:
    return [p.node] if p.node else []


RESOURCE_KINDS: tuple[ResourceKind, ...] = (
    ResourceKind("nodes", "Node", "/api/v1", False, node_from_api),
    ResourceKind("namespaces", "Namespace", "/api/v1", False, namespace_from_api),
    ResourceKind(
        "pods",
        "Pod",
        "/api/v1",
        True,
        pod_from_api,
        indexes={"owner": _owner_uids, "node": _pod_node},
        decode_list=decode_pod_list,
    ),
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
