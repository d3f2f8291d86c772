"""Pods KWOK missed: bound to a node, still Pending long after, touched so that KWOK plays them.

KWOK plays a pod's stages (Pending -> Running, and so on) on the watch events it sees for pods of
the nodes it maintains, and it maintains a node only once it holds the node's lease
(kubernetes-sigs/kwok#1425). A pod bound while KWOK was (re)starting, before it took the node
leases over -- in ci15 the CronJob pods the controller-manager made as the sandbox came back, and
a test's pods created in the same seconds -- saw its one event too early and stays Pending for
good: nothing about it changes again. Under load at scale, a node whose lease renewal lapses
leaves its pods the same way (kubernetes-sigs/kwok#1464).

Any change to such a pod is a new event, which KWOK then plays; an annotation is the smallest
change. The node simulator runs :func:`nudge_missed_pods` every few seconds (sandbox/nodesim.py).
A pod is touched only after it has been bound and Pending for :data:`MISSED_AFTER_S` (KWOK's fast
stages run a bound pod within a second or two here) and at most once per :data:`RENUDGE_S`, at
most :data:`MAX_PER_ROUND` a round, so a pod that is meant to stay Pending costs a patch a minute.

The second gap is readiness (:func:`repair_unready_pods`). When a node's lease lapses (KWOK
starved of CPU at scale), the node lifecycle controller marks the node's pods ``Ready=False``
(its ``MarkPodsNotReady``) and leaves ``ContainersReady=True``. A kubelet would report its pods
ready again once its node is back; KWOK plays a pod's ready stage once, so those pods stay
unready for good, their Deployments unavailable, and ``sandbox up`` waited on them until its
deadline (docs/sandbox.md). The node simulator therefore does the kubelet's part: for each node
that became Ready again, and once over every running pod when it starts, it sets ``Ready=True``
on the running pods whose containers are ready, whose readiness gates hold and that are not
being deleted.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Protocol

NUDGE_ANNOTATION = "kubehub.io/kwok-nudged"
MISSED_AFTER_S = 30.0
RENUDGE_S = 60.0
MAX_PER_ROUND = 100


class PodApi(Protocol):
    """The part of :class:`sandbox.kube.KubeRest` this needs."""

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]: ...

    def patch(self, path: str, body: dict[str, Any]) -> Any: ...

    def patch_status(self, path: str, body: dict[str, Any]) -> Any: ...


def _epoch(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def bound_since(pod: Mapping[str, Any]) -> float | None:
    """When a Pending pod was bound to its node (its PodScheduled=True transition, else its
    creation); None for a pod that is not bound to a node."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True" and cond.get("lastTransitionTime"):
            return _epoch(cond["lastTransitionTime"])
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return _epoch(created) if created else None


def missed(pods: list[dict[str, Any]], now: float, nudged: Mapping[str, float]) -> list[dict[str, Any]]:
    """The Pending pods to touch this round, oldest binding first."""
    out: list[tuple[float, dict[str, Any]]] = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Pending":
            continue
        since = bound_since(pod)
        if since is None or now - since < MISSED_AFTER_S:
            continue
        uid = pod["metadata"].get("uid", "")
        if now - nudged.get(uid, float("-inf")) < RENUDGE_S:
            continue
        out.append((since, pod))
    out.sort(key=lambda item: item[0])
    return [pod for _, pod in out[:MAX_PER_ROUND]]


def nudge_missed_pods(api: PodApi, nudged: MutableMapping[str, float], now: float | None = None) -> int:
    """Touch the pods KWOK missed (see the module docstring); returns how many were touched.
    ``nudged`` (pod uid -> when) is kept by the caller between rounds."""
    now = time.time() if now is None else now
    pending = api.list("/api/v1/pods", fieldSelector="status.phase=Pending")
    touched = 0
    for pod in missed(pending, now, nudged):
        meta = pod["metadata"]
        api.patch(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"metadata": {"annotations": {NUDGE_ANNOTATION: str(int(now))}}},
        )
        nudged[meta.get("uid", "")] = now
        touched += 1
    live = {p["metadata"].get("uid", "") for p in pending}
    for uid in [u for u in nudged if u not in live]:
        del nudged[uid]  # gone or no longer Pending
    return touched


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def left_unready(pod: Mapping[str, Any]) -> bool:
    """A running pod that is not Ready although its containers are and its readiness gates hold:
    what the node lifecycle controller leaves behind (see the module docstring)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Ready") != "False" or conditions.get("ContainersReady") != "True":
        return False
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    return all(conditions.get(gate) == "True" for gate in gates)


def repair_unready_pods(
    api: PodApi, nodes: Iterable[str] = (), *, everywhere: bool = False, now: float | None = None
) -> int:
    """Set ``Ready=True`` on the pods :func:`left_unready` finds on ``nodes`` (one LIST per node),
    or on every node (one LIST of the running pods); returns how many were set."""
    now = time.time() if now is None else now
    if everywhere:
        pods = api.list("/api/v1/pods", fieldSelector="status.phase=Running")
    else:
        pods = [
            p
            for node in sorted(set(nodes))
            for p in api.list("/api/v1/pods", fieldSelector=f"spec.nodeName={node},status.phase=Running")
        ]
    repaired = 0
    for pod in pods:
        if not left_unready(pod):
            continue
        meta = pod["metadata"]
        # A strategic merge: the conditions list is merged by type, the others are kept.
        api.patch_status(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _stamp(now)}]}},
        )
        repaired += 1
    return repaired
