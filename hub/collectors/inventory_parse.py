"""Kubernetes API JSON -> the hub's frozen domain objects (nodes, namespaces, pods, workloads,
services, config metadata, events), with the small parsers they need (timestamps, quantities).

Pure: plain dicts in, objects out (the watch cache feeds it what the API server sent, the unit
tests dicts written by hand). Equal parts (labels, owners, containers, requests, conditions)
are shared between objects (``shared``, ``labels_of``): that is most of what keeps 10,000 pods
in a few MiB. Pod LIST pages skip the dicts altogether (``kube_decode``) but build their
parts with the same helpers. Near 500 lines because it is one converter per kind.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeVar

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


def parse_timestamp(text: str | None) -> float | None:
    """RFC 3339 from the API (``2026-11-22T00:33:48Z``, maybe with fractions) -> epoch seconds."""
    if not text:
        return None
    return _timestamp(text)


@lru_cache(maxsize=1024)
def _timestamp(text: str) -> float | None:
    # Cached: the API gives seconds, and the pods of a rollout share their creation and
    # condition times, so a LIST repeats the same texts (and the cache keeps one float each).
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_SHARED: dict[Any, Any] = {}
_SHARED_LABELS: dict[tuple[tuple[Any, Any], ...], dict[str, str]] = {}
_SHARED_MAX = 1 << 12  # entries; past it the table starts again (shared values stay shared)

V = TypeVar("V")


def forget_shared() -> None:
    """Empty the tables of shared values and the parse caches (for measurements)."""
    _SHARED.clear()
    _SHARED_LABELS.clear()
    _timestamp.cache_clear()
    cpu_millis.cache_clear()
    memory_bytes.cache_clear()


def shared(value: V) -> V:
    """One instance per equal immutable value (a flyweight): the pods of a ReplicaSet have equal
    owners, containers, requests and often equal conditions, and the cache then keeps each once.

    Only frozen values (frozen dataclasses, tuples of them) go in. The table is bounded: when it
    is full it is emptied, which costs sharing for later objects, never correctness.
    """
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[value] = value
    return value


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


@lru_cache(maxsize=4096)  # a cluster uses few distinct quantities; Decimal parsing is slow
def cpu_millis(text: str | int | float | None) -> int:
    return int((parse_quantity(text) * 1000).to_integral_value(rounding=ROUND_CEILING))


@lru_cache(maxsize=4096)
def memory_bytes(text: str | int | float | None) -> int:
    return int(parse_quantity(text).to_integral_value(rounding=ROUND_CEILING))


def resources_of(raw: Json | None) -> Resources:
    if not raw:
        return ZERO
    return shared(Resources(cpu_millis(raw.get("cpu")), memory_bytes(raw.get("memory"))))


_resources = resources_of


def labels_of(raw: Json | None) -> Mapping[str, str]:
    """Labels with keys and values interned, and one dict per distinct set of labels: thousands
    of pods share ``app=web,pod-template-hash=…``. The dict is shared, so nobody may change it."""
    if not raw:
        return {}
    key = tuple(raw.items())
    found = _SHARED_LABELS.get(key)
    if found is None:
        if len(_SHARED_LABELS) >= _SHARED_MAX:
            _SHARED_LABELS.clear()
        found = _SHARED_LABELS[key] = {_intern(str(k)): _intern(str(v)) for k, v in raw.items()}
    return found


def _labels(raw: Json | None) -> dict[str, str]:
    """Labels with keys and values interned (an own dict: for objects few enough not to share)."""
    if not raw:
        return {}
    return {_intern(str(k)): _intern(str(v)) for k, v in raw.items()}


def owner_of(kind: str, name: str, uid: str, controller: bool) -> OwnerRef:
    return shared(OwnerRef(_intern(kind), name, uid, controller))


def _owners(md: Json) -> tuple[OwnerRef, ...]:
    owners = md.get("ownerReferences")
    if not owners:
        return ()
    return shared(
        tuple(
            owner_of(o.get("kind", ""), o.get("name", ""), o.get("uid", ""), bool(o.get("controller"))) for o in owners
        )
    )


def _conditions(raw: Iterable[Json] | None) -> tuple[Condition, ...]:
    if not raw:
        return ()
    return shared(
        tuple(
            shared(
                Condition(
                    _intern(c.get("type", "")),
                    _intern(c.get("status", "")),
                    _intern(c.get("reason") or ""),
                    c.get("message") or "",
                    parse_timestamp(c.get("lastTransitionTime")),
                )
            )
            for c in raw
        )
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


def container_of(name: str, image: str, requests: Json | None, limits: Json | None) -> Container:
    return shared(Container(_intern(name), _intern(image), resources_of(requests), resources_of(limits)))


def _containers(raw: Iterable[Json] | None) -> tuple[Container, ...]:
    if not raw:
        return ()
    out = []
    for c in raw:
        res = c.get("resources") or {}
        out.append(container_of(c.get("name", ""), c.get("image", ""), res.get("requests"), res.get("limits")))
    return shared(tuple(out))


def _pod_template(spec: Json) -> Json:
    return spec.get("template") or {}


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
    return shared(
        ContainerStatus(
            name=_intern(s.get("name", "")),
            ready=bool(s.get("ready")),
            restarts=int(s.get("restartCount") or 0),
            state=_intern(kind),
            reason=_intern(detail.get("reason") or ""),
            started=parse_timestamp(detail.get("startedAt")),
            image=_intern(s.get("image") or ""),
        )
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
        labels=labels_of(md.get("labels")),
        owners=_owners(md),
        node=_intern(spec.get("nodeName") or ""),
        phase=_intern(st.get("phase") or "Pending"),
        reason=_intern(st.get("reason") or ""),
        pod_ip=st.get("podIP") or "",
        host_ip=_intern(st.get("hostIP") or ""),
        containers=containers,
        init_containers=init,
        statuses=shared(tuple(_container_status(s) for s in st.get("containerStatuses") or ())),
        conditions=_conditions(st.get("conditions")),
        deleting=bool(md.get("deletionTimestamp")),
        started=parse_timestamp(st.get("startTime")),
        requests=shared(effective_requests(containers, init, _resources(spec.get("overhead")))),
        log_files=str((md.get("annotations") or {}).get("kubehub.io/log-files") or "")[:4096],
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
