"""Pure views over the cluster: API JSON -> domain objects, and what the console derives from them.

Nothing here does I/O or imports the Kubernetes client; the watch cache feeds it plain dicts as
the API server sent them (``kubernetes.py``), and the unit tests feed it dicts written by hand.
Derived views (workload -> pods, pod -> node, workload health, node allocation, revisions) take
lookups as arguments, so the cache can answer them from its indexes without copying.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, TypeVar

from hub.errors import InvalidInput
from hub.model import (
    RESTARTED_AT_ANNOTATION,
    REVISION_ANNOTATION,
    ZERO,
    Condition,
    ConfigMeta,
    Container,
    ContainerStatus,
    Event,
    Namespace,
    Node,
    OwnerRef,
    Pod,
    Resources,
    Service,
    ServicePort,
    Taint,
    Workload,
    iso_or_none,
)

Json = Mapping[str, Any]

# The workload kinds of the API (URL form -> Kubernetes kind). ReplicaSets are cached for the
# Deployment -> pods path and for revisions, but are not a workload kind users manage directly.
WORKLOAD_KINDS: dict[str, str] = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "job": "Job",
    "cronjob": "CronJob",
}

_intern = sys.intern


# -- small parsers ---------------------------------------------------------------------------


def parse_timestamp(text: str | None) -> float | None:
    """RFC 3339 from the API (``2026-11-22T00:33:48Z``, maybe with fractions) -> epoch seconds."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse_quantity(text: str | int | float | None) -> Decimal:
    """A Kubernetes resource quantity (``250m``, ``1.5``, ``128Mi``, ``1e3``) as a Decimal.

    Unparseable text counts as zero: the API server validated it already, so anything odd here
    is a format this parser does not know, and a wrong zero in a usage column beats a 500.
    """
    if text is None:
        return Decimal(0)
    if isinstance(text, int | float):
        return Decimal(str(text))
    m = _QUANTITY.match(text.strip())
    if not m:
        return Decimal(0)
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]
    except InvalidOperation:
        return Decimal(0)


def cpu_millis(text: str | int | float | None) -> int:
    return int((parse_quantity(text) * 1000).to_integral_value(rounding=ROUND_CEILING))


def memory_bytes(text: str | int | float | None) -> int:
    return int(parse_quantity(text).to_integral_value(rounding=ROUND_CEILING))


def _resources(raw: Json | None) -> Resources:
    if not raw:
        return ZERO
    return Resources(cpu_millis(raw.get("cpu")), memory_bytes(raw.get("memory")))


def _labels(raw: Json | None) -> dict[str, str]:
    """Labels with keys and values interned: thousands of pods share ``app=web``."""
    if not raw:
        return {}
    return {_intern(str(k)): _intern(str(v)) for k, v in raw.items()}


def _owners(md: Json) -> tuple[OwnerRef, ...]:
    return tuple(
        OwnerRef(_intern(o.get("kind", "")), o.get("name", ""), o.get("uid", ""), bool(o.get("controller")))
        for o in md.get("ownerReferences") or ()
    )


def _conditions(raw: Iterable[Json] | None) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            _intern(c.get("type", "")),
            _intern(c.get("status", "")),
            _intern(c.get("reason") or ""),
            c.get("message") or "",
            parse_timestamp(c.get("lastTransitionTime")),
        )
        for c in raw or ()
    )


def _meta(obj: Json) -> tuple[Json, str, str, str, str, float]:
    md = obj.get("metadata") or {}
    return (
        md,
        _intern(md.get("namespace") or ""),
        md.get("name") or "",
        md.get("uid") or "",
        md.get("resourceVersion") or "",
        parse_timestamp(md.get("creationTimestamp")) or 0.0,
    )


def _containers(raw: Iterable[Json] | None) -> tuple[Container, ...]:
    out = []
    for c in raw or ():
        res = c.get("resources") or {}
        out.append(
            Container(
                _intern(c.get("name", "")),
                _intern(c.get("image", "")),
                _resources(res.get("requests")),
                _resources(res.get("limits")),
            )
        )
    return tuple(out)


def _pod_template(spec: Json) -> Json:
    return spec.get("template") or {}


# -- API JSON -> domain objects ----------------------------------------------------------------


def node_from_api(obj: Json) -> Node:
    md, _, name, uid, rv, created = _meta(obj)
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    info = st.get("nodeInfo") or {}
    alloc = st.get("allocatable") or {}
    return Node(
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=_labels(md.get("labels")),
        unschedulable=bool(spec.get("unschedulable")),
        taints=tuple(
            Taint(t.get("key", ""), t.get("effect", ""), t.get("value") or "") for t in spec.get("taints") or ()
        ),
        conditions=_conditions(st.get("conditions")),
        allocatable=_resources(alloc),
        capacity=_resources(st.get("capacity")),
        allocatable_pods=int(parse_quantity(alloc.get("pods"))),
        addresses=tuple((a.get("type", ""), a.get("address", "")) for a in st.get("addresses") or ()),
        kubelet_version=_intern(info.get("kubeletVersion", "")),
        os_image=_intern(info.get("osImage", "")),
        container_runtime=_intern(info.get("containerRuntimeVersion", "")),
    )


def namespace_from_api(obj: Json) -> Namespace:
    md, _, name, uid, rv, created = _meta(obj)
    return Namespace(
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=_labels(md.get("labels")),
        phase=_intern((obj.get("status") or {}).get("phase") or "Active"),
    )


def effective_requests(containers: Sequence[Container], init: Sequence[Container], overhead: Resources) -> Resources:
    """What the scheduler reserves for a pod: the larger of the containers' sum and the largest
    init container (init containers run one at a time, before the others), plus overhead."""
    total = sum((c.requests for c in containers), ZERO)
    cpu = max([total.cpu_millis, *(c.requests.cpu_millis for c in init)])
    mem = max([total.memory_bytes, *(c.requests.memory_bytes for c in init)])
    return Resources(cpu + overhead.cpu_millis, mem + overhead.memory_bytes)


def _container_status(s: Json) -> ContainerStatus:
    state = s.get("state") or {}
    if "running" in state:
        kind, detail = "running", state["running"] or {}
    elif "terminated" in state:
        kind, detail = "terminated", state["terminated"] or {}
    elif "waiting" in state:
        kind, detail = "waiting", state["waiting"] or {}
    else:
        kind, detail = "unknown", {}
    return ContainerStatus(
        name=_intern(s.get("name", "")),
        ready=bool(s.get("ready")),
        restarts=int(s.get("restartCount") or 0),
        state=_intern(kind),
        reason=_intern(detail.get("reason") or ""),
        started=parse_timestamp(detail.get("startedAt")),
        image=_intern(s.get("image") or ""),
    )


def pod_from_api(obj: Json) -> Pod:
    md, ns, name, uid, rv, created = _meta(obj)
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    containers = _containers(spec.get("containers"))
    init = _containers(spec.get("initContainers"))
    return Pod(
        namespace=ns,
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=_labels(md.get("labels")),
        owners=_owners(md),
        node=_intern(spec.get("nodeName") or ""),
        phase=_intern(st.get("phase") or "Pending"),
        reason=_intern(st.get("reason") or ""),
        pod_ip=st.get("podIP") or "",
        host_ip=_intern(st.get("hostIP") or ""),
        containers=containers,
        init_containers=init,
        statuses=tuple(_container_status(s) for s in st.get("containerStatuses") or ()),
        conditions=_conditions(st.get("conditions")),
        deleting=bool(md.get("deletionTimestamp")),
        started=parse_timestamp(st.get("startTime")),
        requests=effective_requests(containers, init, _resources(spec.get("overhead"))),
    )


def _selector(spec: Json) -> tuple[dict[str, str], tuple[tuple[str, str, tuple[str, ...]], ...]]:
    sel = spec.get("selector") or {}
    exprs = tuple(
        (e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
        for e in sel.get("matchExpressions") or ()
    )
    return _labels(sel.get("matchLabels")), exprs


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def workload_from_api(kind: str, obj: Json) -> Workload:
    """Any of the workload kinds (and ReplicaSets) in one shape; see :class:`Workload`."""
    md, ns, name, uid, rv, created = _meta(obj)
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    annotations = md.get("annotations") or {}
    template = _pod_template(spec)
    extra: dict[str, Any] = {}
    desired = ready = available = updated = 0
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        desired = _int(spec.get("replicas"), 1)
        ready = _int(st.get("readyReplicas"))
        available = _int(st.get("availableReplicas"))
        updated = _int(st.get("updatedReplicas"), 0 if kind != "ReplicaSet" else _int(st.get("replicas")))
        if kind == "Deployment":
            extra["strategy"] = (spec.get("strategy") or {}).get("type", "RollingUpdate")
            extra["unavailable"] = _int(st.get("unavailableReplicas"))
        elif kind == "StatefulSet":
            extra["current_revision"] = st.get("currentRevision") or ""
            extra["update_revision"] = st.get("updateRevision") or ""
        else:
            extra["replicas"] = _int(st.get("replicas"))
    elif kind == "DaemonSet":
        desired = _int(st.get("desiredNumberScheduled"))
        ready = _int(st.get("numberReady"))
        available = _int(st.get("numberAvailable"))
        updated = _int(st.get("updatedNumberScheduled"))
        extra["scheduled"] = _int(st.get("currentNumberScheduled"))
        extra["misscheduled"] = _int(st.get("numberMisscheduled"))
    elif kind == "Job":
        desired = _int(spec.get("completions"), 1)
        ready = _int(st.get("ready"))
        available = _int(st.get("succeeded"))
        updated = available
        extra.update(
            active=_int(st.get("active")),
            succeeded=_int(st.get("succeeded")),
            failed=_int(st.get("failed")),
            parallelism=_int(spec.get("parallelism"), 1),
            suspend=bool(spec.get("suspend")),
            start_time=iso_or_none(parse_timestamp(st.get("startTime"))),
            completion_time=iso_or_none(parse_timestamp(st.get("completionTime"))),
        )
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        active = len(st.get("active") or ())
        desired = ready = available = updated = active
        extra.update(
            schedule=spec.get("schedule", ""),
            suspend=bool(spec.get("suspend")),
            active=active,
            last_schedule=iso_or_none(parse_timestamp(st.get("lastScheduleTime"))),
            last_successful=iso_or_none(parse_timestamp(st.get("lastSuccessfulTime"))),
        )
    tmd = template.get("metadata") or {}
    tspec = template.get("spec") or {}
    selector, exprs = _selector(spec)
    labels = _labels(md.get("labels"))
    return Workload(
        kind=_intern(kind),
        namespace=ns,
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=labels,
        owners=_owners(md),
        selector=selector,
        selector_expressions=exprs,
        containers=_containers(tspec.get("containers")),
        desired=desired,
        ready=ready,
        available=available,
        updated=updated,
        generation=_int(md.get("generation")),
        observed_generation=_int(st.get("observedGeneration")),
        conditions=_conditions(st.get("conditions")),
        revision=annotations.get(REVISION_ANNOTATION, ""),
        template_hash=(tmd.get("labels") or {}).get("pod-template-hash", "") or labels.get("pod-template-hash", ""),
        restarted_at=(tmd.get("annotations") or {}).get(RESTARTED_AT_ANNOTATION, ""),
        paused=bool(spec.get("paused")),
        extra=extra,
    )


def service_from_api(obj: Json) -> Service:
    md, ns, name, uid, rv, created = _meta(obj)
    spec = obj.get("spec") or {}
    return Service(
        namespace=ns,
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=_labels(md.get("labels")),
        type=_intern(spec.get("type") or "ClusterIP"),
        cluster_ip=spec.get("clusterIP") or "",
        ports=tuple(
            ServicePort(
                p.get("name") or "",
                _int(p.get("port")),
                str(p.get("targetPort") if p.get("targetPort") is not None else p.get("port", "")),
                p.get("protocol") or "TCP",
                _int(p.get("nodePort")),
            )
            for p in spec.get("ports") or ()
        ),
        selector=_labels(spec.get("selector")),
    )


def config_meta_from_api(kind: str, obj: Json) -> ConfigMeta:
    """Metadata only. ``data``, ``stringData``, ``binaryData`` and every annotation are dropped on
    purpose: ``kubectl apply`` copies a Secret's values into an annotation."""
    md, ns, name, uid, rv, created = _meta(obj)
    return ConfigMeta(
        kind=_intern(kind),
        namespace=ns,
        name=name,
        uid=uid,
        resource_version=rv,
        created=created,
        labels=_labels(md.get("labels")),
        owners=_owners(md),
    )


def event_from_api(obj: Json) -> Event:
    _, ns, name, uid, rv, created = _meta(obj)
    inv = obj.get("involvedObject") or {}
    series = obj.get("series") or {}
    source = obj.get("source") or {}
    first = parse_timestamp(obj.get("firstTimestamp")) or parse_timestamp(obj.get("eventTime")) or created
    last = (
        parse_timestamp(series.get("lastObservedTime"))
        or parse_timestamp(obj.get("lastTimestamp"))
        or parse_timestamp(obj.get("eventTime"))
        or first
    )
    return Event(
        namespace=ns,
        name=name,
        uid=uid,
        resource_version=rv,
        type=_intern(obj.get("type") or "Normal"),
        reason=_intern(obj.get("reason") or ""),
        message=obj.get("message") or "",
        object_kind=_intern(inv.get("kind") or ""),
        object_name=inv.get("name") or "",
        object_uid=inv.get("uid") or "",
        count=_int(series.get("count"), 0) or _int(obj.get("count"), 1),
        first_seen=first,
        last_seen=last,
        source=_intern(source.get("component") or obj.get("reportingComponent") or ""),
    )


# -- derived views -----------------------------------------------------------------------------


def pods_of_workload(
    workload: Workload,
    *,
    pods_owned_by: Callable[[str], Iterable[Pod]],
    workloads_owned_by: Callable[[str], Iterable[Workload]],
) -> list[Pod]:
    """The pods a workload runs, through owner references.

    Deployments own ReplicaSets which own pods; CronJobs own Jobs which own pods; the other
    kinds own their pods directly. Following owner UIDs (not label selectors) is what keeps a
    Deployment from claiming the pods of another one with overlapping labels.
    """
    if workload.kind in ("Deployment", "CronJob"):
        pods: list[Pod] = []
        for child in workloads_owned_by(workload.uid):
            pods.extend(pods_owned_by(child.uid))
    else:
        pods = list(pods_owned_by(workload.uid))
    return sorted(pods, key=lambda p: p.name)


def top_owner(
    owner: OwnerRef | None, *, namespace: str, lookup: Callable[[str, str, str], Workload | None]
) -> tuple[str, str] | None:
    """(kind, name) of the workload that ultimately controls an object: a pod's ReplicaSet
    resolves to its Deployment, a pod's Job to its CronJob (when it has one)."""
    if owner is None:
        return None
    if owner.kind in ("ReplicaSet", "Job"):
        parent = lookup(owner.kind, namespace, owner.name)
        if parent is not None and parent.controller is not None:
            return (parent.controller.kind, parent.controller.name)
    return (owner.kind, owner.name)


def workload_health(workload: Workload, pods: Sequence[Pod]) -> dict[str, Any]:
    """Desired/ready/available/updated, pod phases and restarts, and one status word.

    The word follows what an operator asks first: is it doing what it should (running), on its
    way there (updating), or not (degraded)?
    """
    phases = {"running": 0, "pending": 0, "succeeded": 0, "failed": 0, "unknown": 0, "terminating": 0}
    restarts = 0
    for p in pods:
        restarts += p.restarts
        if p.deleting:
            phases["terminating"] += 1
        else:
            key = p.phase.lower()
            phases[key if key in phases else "unknown"] += 1
    w = workload
    extra = w.extra
    cond = {c.type: c.status for c in w.conditions}
    if w.kind == "Job":
        if cond.get("Complete") == "True":
            status = "completed"
        elif cond.get("Failed") == "True":
            status = "failed"
        elif extra.get("suspend"):
            status = "suspended"
        else:
            status = "running"
    elif w.kind == "CronJob":
        status = "suspended" if extra.get("suspend") else ("active" if extra.get("active") else "idle")
    elif w.desired == 0:
        status = "stopped"
    elif w.observed_generation < w.generation or w.updated < w.desired:
        status = "updating"
    elif w.ready >= w.desired and w.available >= w.desired:
        status = "running"
    else:
        status = "degraded"
    return {
        "status": status,
        "desired": w.desired,
        "ready": w.ready,
        "available": w.available,
        "updated": w.updated,
        "pods": phases,
        "restarts": restarts,
    }


def node_allocation(node: Node, pods: Iterable[Pod]) -> dict[str, Any]:
    """Requested vs allocatable, counting only pods that still hold their place (not finished)."""
    cpu = mem = count = 0
    for p in pods:
        if p.phase in ("Succeeded", "Failed"):
            continue
        cpu += p.requests.cpu_millis
        mem += p.requests.memory_bytes
        count += 1
    alloc = node.allocatable

    def ratio(used: int, total: int) -> float | None:
        return round(used / total, 4) if total else None

    return {
        "requested": {"cpu_millis": cpu, "memory_bytes": mem},
        "allocatable": alloc.to_dict(),
        "pods": count,
        "allocatable_pods": node.allocatable_pods,
        "cpu_ratio": ratio(cpu, alloc.cpu_millis),
        "memory_ratio": ratio(mem, alloc.memory_bytes),
        "pods_ratio": ratio(count, node.allocatable_pods),
    }


def deployment_revisions(deployment: Workload, replicasets: Iterable[Workload]) -> list[dict[str, Any]]:
    """The rollout history of a Deployment: one entry per owned ReplicaSet, newest first."""
    out = []
    for rs in replicasets:
        if not any(o.uid == deployment.uid for o in rs.owners):
            continue
        out.append(
            {
                "revision": _int(rs.revision, 0),
                "replicaset": rs.name,
                "images": rs.images,
                "replicas": rs.extra.get("replicas", rs.desired),
                "created": iso_or_none(rs.created),
                "current": bool(rs.revision) and rs.revision == deployment.revision,
            }
        )
    return sorted(out, key=lambda r: r["revision"], reverse=True)


def node_to_dict(node: Node, allocation: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": node.name,
        "ready": node.ready,
        "unschedulable": node.unschedulable,
        "roles": node.roles,
        "internal_ip": node.internal_ip,
        "labels": dict(node.labels),
        "taints": [t.to_dict() for t in node.taints],
        "conditions": [c.to_dict() for c in node.conditions],
        "capacity": node.capacity.to_dict(),
        "allocation": dict(allocation),
        "kubelet_version": node.kubelet_version,
        "os_image": node.os_image,
        "container_runtime": node.container_runtime,
        "created": iso_or_none(node.created),
        "uid": node.uid,
    }


def pod_to_dict(pod: Pod, *, workload: tuple[str, str] | None = None, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": pod.namespace,
        "name": pod.name,
        "status": pod.status,
        "phase": pod.phase,
        "ready": pod.ready,
        "ready_containers": f"{sum(1 for s in pod.statuses if s.ready)}/{len(pod.containers)}",
        "restarts": pod.restarts,
        "node": pod.node or None,
        "pod_ip": pod.pod_ip or None,
        "workload": {"kind": workload[0].lower(), "name": workload[1]} if workload else None,
        "labels": dict(pod.labels),
        "created": iso_or_none(pod.created),
        "uid": pod.uid,
    }
    if detail:
        out.update(
            host_ip=pod.host_ip or None,
            started=iso_or_none(pod.started),
            requests=pod.requests.to_dict(),
            containers=[c.to_dict() for c in pod.containers],
            init_containers=[c.to_dict() for c in pod.init_containers],
            container_statuses=[s.to_dict() for s in pod.statuses],
            conditions=[c.to_dict() for c in pod.conditions],
            owners=[o.to_dict() for o in pod.owners],
        )
    return out


def workload_to_dict(workload: Workload, health: Mapping[str, Any]) -> dict[str, Any]:
    w = workload
    return {
        "kind": w.kind.lower(),
        "namespace": w.namespace,
        "name": w.name,
        "health": dict(health),
        "images": w.images,
        "containers": [c.to_dict() for c in w.containers],
        "selector": dict(w.selector),
        "labels": dict(w.labels),
        "revision": _int(w.revision, 0) or None,
        "restarted_at": w.restarted_at or None,
        "paused": w.paused,
        "generation": w.generation,
        "observed_generation": w.observed_generation,
        "conditions": [c.to_dict() for c in w.conditions],
        **dict(w.extra),
        "created": iso_or_none(w.created),
        "uid": w.uid,
    }


# -- filters and paging -------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_REQ = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_REQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS_REQ = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")

Matcher = Callable[[Mapping[str, str]], bool]


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # = != in notin exists !exists
    values: frozenset[str] = frozenset()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "=":
            return value is not None and value in self.values
        if self.op == "!=":
            return value is None or value not in self.values
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return value not in self.values
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class _Selector:
    requirements: tuple[_Requirement, ...]

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(r(labels) for r in self.requirements)


def parse_label_selector(text: str, *, field: str = "label_selector") -> Matcher:
    """A matcher for Kubernetes label-selector syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    text = (text or "").strip()
    reqs: list[_Requirement] = []
    if not text:
        return _Selector(())
    for raw in _split_requirements(text):
        if not raw.strip():
            raise InvalidInput(f"{field}: empty requirement in {text!r}", field=field)
        m = _SET_REQ.match(raw)
        if m:
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append(_Requirement(m.group(1), m.group(3), values))
            continue
        m = _EQ_REQ.match(raw)
        if m:
            op = "!=" if m.group(3) == "!=" else "="
            reqs.append(_Requirement(m.group(1), op, frozenset({m.group(4)})))
            continue
        m = _EXISTS_REQ.match(raw)
        if m:
            reqs.append(_Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
            continue
        raise InvalidInput(
            f"{field}: cannot read {raw.strip()!r}; "
            "use key=value, key!=value, key in (a,b), key notin (a,b), key or !key",
            field=field,
        )
    return _Selector(tuple(reqs))


def selector_matches(workload: Workload, labels: Mapping[str, str]) -> bool:
    """Whether a workload's label selector (matchLabels + matchExpressions) selects ``labels``."""
    if not workload.selector and not workload.selector_expressions:
        return False
    if any(labels.get(k) != v for k, v in workload.selector.items()):
        return False
    for key, op, values in workload.selector_expressions:
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


@dataclass(frozen=True)
class ListQuery:
    """What a list request asks for: a window (offset/limit) and filters."""

    limit: int = 500
    offset: int = 0
    label_selector: str = ""
    name: str = ""  # case-insensitive substring of the name


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    continue_token: str | None = None
    stale_since: float | None = None
    # The items already encoded as JSON (one string each), when the producer keeps them cached.
    encoded: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"items": self.items, "total": self.total}
        if self.continue_token:
            out["continue"] = self.continue_token
        out["stale_since"] = iso_or_none(self.stale_since)
        return out

    def to_json(self) -> str:
        """The same document as :meth:`to_dict`, as JSON text; reuses ``encoded`` items when present."""
        items = self.encoded if self.encoded is not None else [encode_json(i) for i in self.items]
        rest = {k: v for k, v in self.to_dict().items() if k != "items"}
        return '{"items":[' + ",".join(items) + "]," + encode_json(rest)[1:]


def encode_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode_continue(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_continue(token: str, *, field: str = "continue") -> int:
    """The offset inside a ``continue`` token. The token is opaque to clients; only the hub reads it."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
        if kind != "o" or offset < 0:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{field}: not a token this hub gave out; start again without it", field=field) from exc
    return offset


T = TypeVar("T")


def select(
    objects: Iterable[T],
    query: ListQuery,
    *,
    labels_of: Callable[[T], Mapping[str, str]],
    name_of: Callable[[T], str],
    sort_key: Callable[[T], Any] | None = None,
    reverse: bool = False,
) -> tuple[list[T], int, str | None]:
    """Filter by label selector and name, sort (by name unless told), and cut the requested window.

    Returns (window, total matching, continue token or None when this is the last window).
    """
    match = parse_label_selector(query.label_selector)
    needle = query.name.lower()
    chosen = [o for o in objects if (not needle or needle in name_of(o).lower()) and match(labels_of(o))]
    chosen.sort(key=sort_key or name_of, reverse=reverse)
    total = len(chosen)
    end = query.offset + query.limit
    window = chosen[query.offset : end]
    return window, total, encode_continue(end) if end < total else None
