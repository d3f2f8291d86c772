"""LIST pages of pods decoded straight from the API server's JSON bytes into the cache's Pods.

Why: ``json.loads`` builds a dict for every field the API server sends, and a pod carries
mostly fields the hub never reads (``managedFields``, volumes, env, probes). At 20,000 pods
(96 MB of JSON) that decoding was 2.7-3.7 s of a 6.6 s initial sync. msgspec decodes into
typed records that name only the fields the hub keeps and skips the rest in C without
building anything; the records then become :class:`~hub.model.Pod` through the same helpers
as :func:`~hub.collectors.inventory_parse.pod_from_api`, so both paths give equal objects
(``tests/unit/test_kube_decode.py`` checks it on the same documents).

A page whose shape these records do not expect (a field of another type than the API's
schema says) is decoded again with ``json.loads`` and the dict parser: never worse than
before. The one importer of msgspec; the Kubernetes client stays in ``kubernetes.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import msgspec

from hub.collectors.inventory_parse import (
    cpu_millis,
    effective_requests,
    labels_of,
    memory_bytes,
    parse_timestamp,
    pod_from_api,
    shared,
)
from hub.collectors.inventory_parse import (
    forget_shared as inventory_parse_forget,
)
from hub.model import ZERO, Condition, Container, ContainerStatus, OwnerRef, Pod, Resources

_intern = sys.intern

Quantity = str | int | float

# Frozen records are hashable (in C), so a record seen before maps straight to the domain
# value built from it the first time: the pods of a ReplicaSet repeat their owners,
# containers and often their conditions and statuses.


class _Owner(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None


class _Annotations(msgspec.Struct, frozen=True, gc=False):
    """The one annotation the hub reads; the others (some are large) are skipped."""

    log_files: str | None = msgspec.field(default=None, name="kubehub.io/log-files")


class _Meta(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: _Annotations | None = None
    owner_references: tuple[_Owner, ...] | None = None


class _Quantities(msgspec.Struct, frozen=True, gc=False):
    """The two resources the hub compares; others (ephemeral-storage, GPUs) are skipped."""

    cpu: Quantity | None = None
    memory: Quantity | None = None


class _Resources(msgspec.Struct, frozen=True, gc=False):
    requests: _Quantities | None = None
    limits: _Quantities | None = None


class _Container(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    image: str = ""
    resources: _Resources | None = None


class _Spec(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    node_name: str | None = None
    containers: tuple[_Container, ...] | None = None
    init_containers: tuple[_Container, ...] | None = None
    overhead: _Quantities | None = None


class _Condition(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    type: str = ""
    status: str = ""
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class _StateDetail(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    reason: str | None = None
    started_at: str | None = None


class _State(msgspec.Struct, frozen=True, gc=False):
    running: _StateDetail | None = None
    terminated: _StateDetail | None = None
    waiting: _StateDetail | None = None


class _Status(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    name: str = ""
    ready: bool | None = None
    restart_count: int | None = None
    image: str | None = None
    state: _State | None = None


class _PodStatus(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    phase: str | None = None
    reason: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    host_ip: str | None = msgspec.field(default=None, name="hostIP")
    start_time: str | None = None
    conditions: tuple[_Condition, ...] | None = None
    container_statuses: tuple[_Status, ...] | None = None


class _Pod(msgspec.Struct, frozen=True, gc=False):
    metadata: _Meta | None = None
    spec: _Spec | None = None
    status: _PodStatus | None = None


class _ListMeta(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")


class _PodList(msgspec.Struct, frozen=True, gc=False):
    metadata: _ListMeta | None = None
    items: tuple[_Pod, ...] | None = None


class _ListHead(msgspec.Struct, frozen=True, gc=False):
    """Only the list's metadata: the items are skipped, so reading the continue token is cheap."""

    metadata: _ListMeta | None = None


_POD_LIST = msgspec.json.Decoder(_PodList)
_LIST_HEAD = msgspec.json.Decoder(_ListHead)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Table(Generic[K, V]):
    """Record -> the domain value built from it, for records seen before. Bounded: a cluster whose
    records never repeat (every pod started at another second) empties it now and then, and the
    keys it holds never exceed ``size``."""

    def __init__(self, build: Callable[[K], V], size: int = 512) -> None:
        self._build = build
        self._size = size
        self._map: dict[K, V] = {}

    def clear(self) -> None:
        self._map.clear()

    def __call__(self, key: K) -> V:
        found = self._map.get(key)
        if found is None:
            if len(self._map) >= self._size:
                self._map.clear()
            found = self._map[key] = self._build(key)
        return found


def list_head(data: bytes) -> tuple[str, str | None]:
    """(resourceVersion, continue token) of a LIST answer, without decoding its items."""
    try:
        meta = _LIST_HEAD.decode(data).metadata
    except msgspec.DecodeError:
        doc = json.loads(data).get("metadata") or {}
        return doc.get("resourceVersion", ""), doc.get("continue") or None
    if meta is None:
        return "", None
    return meta.resource_version or "", meta.continue_ or None


def _resources(q: _Quantities | None) -> Resources:
    if q is None or (q.cpu is None and q.memory is None):
        return ZERO
    return shared(Resources(cpu_millis(q.cpu), memory_bytes(q.memory)))


def _build_containers(raw: tuple[_Container, ...]) -> tuple[Container, ...]:
    out = []
    for c in raw:
        res = c.resources or _Resources()
        out.append(
            shared(Container(_intern(c.name), _intern(c.image), _resources(res.requests), _resources(res.limits)))
        )
    return shared(tuple(out))


def _build_status(s: _Status) -> ContainerStatus:
    state = s.state
    detail: _StateDetail | None
    if state is None:
        kind, detail = "unknown", None
    elif state.running is not None:
        kind, detail = "running", state.running
    elif state.terminated is not None:
        kind, detail = "terminated", state.terminated
    elif state.waiting is not None:
        kind, detail = "waiting", state.waiting
    else:
        kind, detail = "unknown", None
    return shared(
        ContainerStatus(
            name=_intern(s.name),
            ready=bool(s.ready),
            restarts=int(s.restart_count or 0),
            state=kind,
            reason=_intern(detail.reason or "") if detail else "",
            started=parse_timestamp(detail.started_at) if detail else None,
            image=_intern(s.image or ""),
        )
    )


def _build_statuses(raw: tuple[_Status, ...]) -> tuple[ContainerStatus, ...]:
    return shared(tuple(_build_status(s) for s in raw))


def _build_conditions(raw: tuple[_Condition, ...]) -> tuple[Condition, ...]:
    return shared(
        tuple(
            shared(
                Condition(
                    _intern(c.type),
                    _intern(c.status),
                    _intern(c.reason or ""),
                    c.message or "",
                    parse_timestamp(c.last_transition_time),
                )
            )
            for c in raw
        )
    )


def _build_owners(raw: tuple[_Owner, ...]) -> tuple[OwnerRef, ...]:
    return shared(tuple(shared(OwnerRef(_intern(o.kind), o.name, o.uid, bool(o.controller))) for o in raw))


_containers: _Table[tuple[_Container, ...], tuple[Container, ...]] = _Table(_build_containers)
_statuses: _Table[tuple[_Status, ...], tuple[ContainerStatus, ...]] = _Table(_build_statuses)
_conditions: _Table[tuple[_Condition, ...], tuple[Condition, ...]] = _Table(_build_conditions)
_owners: _Table[tuple[_Owner, ...], tuple[OwnerRef, ...]] = _Table(_build_owners)
_requests: _Table[tuple[tuple[Container, ...], tuple[Container, ...], Resources], Resources] = _Table(
    lambda k: shared(effective_requests(*k))
)

_NO_META = _Meta()
_NO_SPEC = _Spec()
_NO_STATUS = _PodStatus()


def _pod(p: _Pod) -> Pod:
    md = p.metadata or _NO_META
    spec = p.spec or _NO_SPEC
    st = p.status or _NO_STATUS
    containers = _containers(spec.containers) if spec.containers else ()
    init = _containers(spec.init_containers) if spec.init_containers else ()
    annotations = md.annotations
    return Pod(
        namespace=_intern(md.namespace or ""),
        name=md.name or "",
        uid=md.uid or "",
        resource_version=md.resource_version or "",
        created=parse_timestamp(md.creation_timestamp) or 0.0,
        labels=labels_of(md.labels),
        owners=_owners(md.owner_references) if md.owner_references else (),
        node=_intern(spec.node_name or ""),
        phase=_intern(st.phase or "Pending"),
        reason=_intern(st.reason or ""),
        pod_ip=st.pod_ip or "",
        host_ip=_intern(st.host_ip or ""),
        containers=containers,
        init_containers=init,
        statuses=_statuses(st.container_statuses) if st.container_statuses else (),
        conditions=_conditions(st.conditions) if st.conditions else (),
        deleting=bool(md.deletion_timestamp),
        started=parse_timestamp(st.start_time),
        requests=_requests((containers, init, _resources(spec.overhead))),
        log_files=(annotations.log_files or "")[:4096] if annotations else "",
    )


def forget_shared() -> None:
    """Empty every table of shared parts (this module's and the dict parser's), so that a
    measurement of what the cache keeps counts them too (``bench/inventory.py``)."""
    for table in (_containers, _statuses, _conditions, _owners, _requests):
        table.clear()
    inventory_parse_forget()


def decode_pod_list(data: bytes) -> list[Pod]:
    """Every pod of one LIST answer (``PodList`` JSON), as the cache keeps them."""
    try:
        doc = _POD_LIST.decode(data)
    except msgspec.ValidationError:
        # A shape these records do not expect: the dict parser reads whatever the API sent.
        return [pod_from_api(item) for item in json.loads(data).get("items") or ()]
    return [_pod(p) for p in doc.items or ()]
