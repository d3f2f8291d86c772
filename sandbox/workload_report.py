"""What the seeding's wait for the workloads (:meth:`sandbox.seed.Seeder._wait_workloads`) found
incomplete, said in a few lines when it gives up.

A bare "19/20 pods ready" names neither the workload nor the reason, and the sandbox directory of a
failed CI run is gone by the time anyone looks. So the timeout's message names each incomplete
workload (kind, namespace/name, wanted vs ready, the workload's own failing conditions) and, for
its pods that are not ready, the phase and the reason and message of the ``Ready`` and
``PodScheduled`` conditions that are not True; for a StatefulSet with volumeClaimTemplates, the
phase of each claim it declares (``<template>-<statefulset>-<ordinal>``); for one with fewer pods
than it wants, its latest Warning event (a refused pod creation: a StatefulSet or DaemonSet has no
condition for that). One pod list answers for all of them, and one Warning event list and one claim
list when needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

WORKLOAD_LABEL = "app.kubernetes.io/name"  # sandbox.seed.WORKLOAD_LABEL (seed imports this module)
MAX_WORKLOADS = 8  # incomplete workloads described (a scale run may have hundreds); the rest counted
MAX_PODS = 3  # not-ready pods described per workload; the rest are counted
MAX_TEXT = 160  # a condition's message is cut to this many characters


class Lister(Protocol):
    """The part of :class:`sandbox.kube.KubeRest` used here."""

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class WorkloadState:
    """One workload as the wait saw it: how many pods it wants, how many are ready."""

    kind: str  # Deployment | StatefulSet | DaemonSet
    namespace: str
    name: str
    wanted: int
    ready: int
    complete: bool
    conditions: tuple[str, ...] = ()  # the workload's failing status conditions, already said
    claim_templates: tuple[str, ...] = ()  # StatefulSet: its volumeClaimTemplates' names
    replicas: int = 0  # StatefulSet: spec.replicas (the ordinals of its claims)
    note: str = ""  # said after the counts, e.g. a DaemonSet's desiredNumberScheduled

    @property
    def claim_names(self) -> list[str]:
        return [f"{t}-{self.name}-{i}" for t in self.claim_templates for i in range(self.replicas)]


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def failing_conditions(obj: dict[str, Any]) -> tuple[str, ...]:
    """A workload's status conditions that say something is wrong: ``ReplicaFailure`` True (e.g. a
    pod creation refused by a quota), ``Available``/``Progressing`` False."""
    out = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        bad = (c.get("type") == "ReplicaFailure" and c.get("status") == "True") or (
            c.get("type") in ("Available", "Progressing") and c.get("status") == "False"
        )
        if bad:
            out.append(_cut(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"))
    return tuple(out)


def state_of(kind: str, obj: dict[str, Any], wanted: int) -> WorkloadState:
    """A Deployment's, StatefulSet's or DaemonSet's progress from its object (``wanted``: the
    planned replicas or, for a DaemonSet, the nodes it should run on; a DaemonSet is complete when
    every pod its controller wants (``desiredNumberScheduled``, said in the note) is available)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    note = ""
    if kind == "Deployment":
        ready = int(st.get("availableReplicas", 0) or 0)
        complete = ready >= wanted
    elif kind == "StatefulSet":
        ready = int(st.get("readyReplicas", 0) or 0)
        complete = ready >= wanted
    elif kind == "DaemonSet":
        ready = int(st.get("numberAvailable", 0) or 0)
        desired = int(st.get("desiredNumberScheduled", 0) or 0)
        complete = 0 < desired <= ready
        note = f"desiredNumberScheduled {desired}"
    else:
        raise ValueError(kind)
    templates = tuple((t.get("metadata") or {}).get("name", "") for t in spec.get("volumeClaimTemplates") or [])
    return WorkloadState(
        kind, ns, name, wanted, ready, complete, failing_conditions(obj),
        claim_templates=templates if kind == "StatefulSet" else (),
        replicas=int(spec.get("replicas", 1) or 0) if kind == "StatefulSet" else 0, note=note,
    )  # fmt: skip


def _pod_line(pod: dict[str, Any]) -> str:
    meta, st = pod.get("metadata") or {}, pod.get("status") or {}
    head = f"pod {meta.get('name', '?')} {st.get('phase') or 'no phase'}"
    if meta.get("deletionTimestamp"):
        head += " (terminating)"
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        head += f" on {node}"
    parts = [head]
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    for ctype in ("PodScheduled", "Ready"):
        c = conds.get(ctype)
        if c is None:
            parts.append(f"no {ctype} condition")
        elif c.get("status") != "True":
            said = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
            parts.append(_cut(f"{ctype}={c.get('status')} {said}".strip()))
    return "; ".join(parts)


def _event_time(ev: dict[str, Any] | None) -> str:
    if ev is None:
        return ""
    return str(
        ev.get("lastTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp") or ""
    )


def _is_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def describe(api: Lister, states: list[WorkloadState]) -> list[str]:
    """A few lines per incomplete workload of ``states`` (the complete ones are left out)."""
    incomplete = [s for s in states if not s.complete]
    stuck = incomplete[:MAX_WORKLOADS]
    if not stuck:
        return []
    names = sorted({s.name for s in stuck})
    pods_by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for pod in api.list("/api/v1/pods", labelSelector=f"{WORKLOAD_LABEL} in ({','.join(names)})"):
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace", ""), (meta.get("labels") or {}).get(WORKLOAD_LABEL, ""))
        pods_by.setdefault(key, []).append(pod)
    # A controller that cannot create pods says why in a Warning event on the workload (a
    # StatefulSet or DaemonSet has no ReplicaFailure condition): the latest one of each, for
    # the workloads with fewer pods than they want.
    events: dict[tuple[str, str, str], dict[str, Any]] = {}
    if any(len(pods_by.get((s.namespace, s.name), [])) < s.wanted for s in stuck):
        for ev in api.list("/api/v1/events", fieldSelector="type=Warning"):
            io = ev.get("involvedObject") or {}
            about = (io.get("kind", ""), io.get("namespace", ""), io.get("name", ""))
            if _event_time(ev) >= _event_time(events.get(about)):
                events[about] = ev
    claims: dict[tuple[str, str], str] = {}
    if any(s.claim_templates for s in stuck):
        for pvc in api.list("/api/v1/persistentvolumeclaims"):
            meta = pvc.get("metadata") or {}
            claims[(meta.get("namespace", ""), meta.get("name", ""))] = (pvc.get("status") or {}).get("phase") or "?"
    lines: list[str] = []
    for s in stuck:
        lines.append(
            f"{s.kind} {s.namespace}/{s.name}: {s.ready}/{s.wanted} ready" + (f" ({s.note})" if s.note else "")
        )
        lines.extend(f"  {c}" for c in s.conditions)
        pods = sorted(pods_by.get((s.namespace, s.name), []), key=lambda p: p["metadata"].get("name", ""))
        unready = [p for p in pods if not _is_ready(p)]
        if not pods:
            lines.append("  no pods")
        warning = events.get((s.kind, s.namespace, s.name))
        if warning is not None and len(pods) < s.wanted:
            lines.append("  " + _cut(f"event {warning.get('reason', '')}: {warning.get('message', '')}"))
        for p in unready[:MAX_PODS]:
            lines.append(f"  {_pod_line(p)}")
        if len(unready) > MAX_PODS:
            lines.append(f"  ... and {len(unready) - MAX_PODS} more pods not ready")
        if pods and not unready:
            lines.append(f"  all {len(pods)} pods ready (the controller's status lags)")
        if s.claim_templates:
            said = [f"{c} {claims.get((s.namespace, c), 'missing')}" for c in s.claim_names]
            lines.append(f"  claims: {', '.join(said) or 'none declared'}")
    if len(incomplete) > len(stuck):
        lines.append(f"... and {len(incomplete) - len(stuck)} more workloads not ready")
    return lines
