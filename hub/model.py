"""Domain types shared across areas: frozen dataclasses, no I/O.

Each area adds its own section. The cluster section below holds what the Kubernetes watch
cache keeps: slim, typed copies of API objects (only the fields the hub shows or derives from),
so that 20,000 pods fit in tens of megabytes instead of the hundreds their raw JSON would take.

Just over 400 lines because it is every area's shared vocabulary (the cluster objects above
all); each type is a few lines and splitting them by area would make areas import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# ---------------------------------------------------------------------------------------------
# Cluster (issue 4): nodes, namespaces, workloads, pods, services, config metadata, events
# ---------------------------------------------------------------------------------------------

WORKSPACE_LABEL = "kubesphere.io/workspace"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


def iso_or_none(ts: float | None) -> str | None:
    """RFC 3339 in UTC, as hub.timeutil.iso (not imported: model sits below every other module)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU in millicores and memory in bytes (the two resources the console compares)."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def to_dict(self) -> dict[str, int]:
        return {"cpu_millis": self.cpu_millis, "memory_bytes": self.memory_bytes}


ZERO = Resources()


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str
    uid: str
    controller: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "uid": self.uid, "controller": self.controller}


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "last_transition": iso_or_none(self.last_transition),
        }


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "effect": self.effect}


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    conditions: tuple[Condition, ...] = ()
    allocatable: Resources = ZERO
    capacity: Resources = ZERO
    allocatable_pods: int = 0
    addresses: tuple[tuple[str, str], ...] = ()
    kubelet_version: str = ""
    os_image: str = ""
    container_runtime: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def roles(self) -> list[str]:
        prefix = "node-role.kubernetes.io/"
        return sorted(k[len(prefix) :] for k in self.labels if k.startswith(prefix) and len(k) > len(prefix))

    @property
    def internal_ip(self) -> str:
        return next((addr for kind, addr in self.addresses if kind == "InternalIP"), "")


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    phase: str = "Active"

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)

    @property
    def workspace(self) -> str:
        return self.labels.get(WORKSPACE_LABEL, "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workspace": self.workspace or None,
            "phase": self.phase,
            "labels": dict(self.labels),
            "created": iso_or_none(self.created),
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    requests: Resources = ZERO
    limits: Resources = ZERO

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "requests": self.requests.to_dict(),
            "limits": self.limits.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    ready: bool
    restarts: int
    state: str  # running | waiting | terminated | unknown
    reason: str = ""
    started: float | None = None
    image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ready": self.ready,
            "restarts": self.restarts,
            "state": self.state,
            "reason": self.reason,
            "started": iso_or_none(self.started),
        }


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    node: str = ""
    phase: str = "Pending"
    reason: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    statuses: tuple[ContainerStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()
    deleting: bool = False
    started: float | None = None
    # Effective request as the scheduler counts it: max(sum of containers, largest init container).
    requests: Resources = ZERO
    # The kubehub.io/log-files annotation as written (volume log files; logs/nodevolume.py).
    log_files: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.statuses)

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def terminal(self) -> bool:
        """Succeeded or Failed pods hold no resources on their node any more."""
        return self.phase in ("Succeeded", "Failed")

    @property
    def controller(self) -> OwnerRef | None:
        return next((o for o in self.owners if o.controller), None)

    @property
    def status(self) -> str:
        """One word for the console, as ``kubectl get pods`` would show it."""
        if self.deleting:
            return "Terminating"
        for s in self.statuses:
            if s.state == "waiting" and s.reason:
                return s.reason
            if s.state == "terminated" and s.reason and self.phase not in ("Succeeded", "Failed"):
                return s.reason
        return self.reason or self.phase


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, StatefulSet, DaemonSet, Job, CronJob or ReplicaSet.

    ``desired/ready/available/updated`` mean the same across kinds (for a DaemonSet desired is
    the number of nodes that should run it; for a Job, its completions; for a CronJob, its
    active jobs). ``extra`` holds the few kind-specific facts (schedule, suspend, strategy).
    """

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)
    selector_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    containers: tuple[Container, ...] = ()
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    generation: int = 0
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    revision: str = ""
    template_hash: str = ""
    restarted_at: str = ""
    paused: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def controller(self) -> OwnerRef | None:
        return next((o for o in self.owners if o.controller), None)

    @property
    def images(self) -> list[str]:
        return [c.image for c in self.containers]


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target: str
    protocol: str
    node_port: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "target_port": self.target,
            "protocol": self.protocol,
            "node_port": self.node_port or None,
        }


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    type: str = "ClusterIP"
    cluster_ip: str = ""
    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "type": self.type,
            "cluster_ip": self.cluster_ip,
            "ports": [p.to_dict() for p in self.ports],
            "selector": dict(self.selector),
            "labels": dict(self.labels),
            "created": iso_or_none(self.created),
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class ConfigMeta:
    """A ConfigMap's or Secret's metadata. There is deliberately no place for data or values."""

    kind: str  # ConfigMap | Secret
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: float
    labels: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "labels": dict(self.labels),
            "owners": [o.to_dict() for o in self.owners],
            "created": iso_or_none(self.created),
            "uid": self.uid,
        }


@dataclass(frozen=True, slots=True)
class Event:
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str
    reason: str
    message: str
    object_kind: str
    object_name: str
    object_uid: str = ""
    count: int = 1
    first_seen: float | None = None
    last_seen: float | None = None
    source: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "object": {"kind": self.object_kind, "name": self.object_name, "uid": self.object_uid},
            "count": self.count,
            "first_seen": iso_or_none(self.first_seen),
            "last_seen": iso_or_none(self.last_seen),
            "source": self.source,
        }
