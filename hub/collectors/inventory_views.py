"""What the console derives from the domain objects: workload -> pods, the top owner of a pod,
workload health, node allocation, deployment revisions, and the API dicts of nodes, pods and
workloads. Pure; lookups come in as arguments so the cache answers from its indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hub.collectors.inventory_parse import _int
from hub.model import (
    Node,
    OwnerRef,
    Pod,
    Workload,
    iso_or_none,
)


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


def node_problems(node: Node) -> list[dict[str, str]]:
    """The node's conditions that are not in their healthy state: ``Ready`` other than "True",
    any other type (pressures, ``NetworkUnavailable``, node-problem-detector's) other than
    "False", so a node that stopped reporting (every condition "Unknown") lists them all."""
    return [
        {"type": c.type, "status": c.status, "reason": c.reason}
        for c in node.conditions
        if (c.status != "True" if c.type == "Ready" else c.status != "False")
    ]


def node_list_item(node: Node, allocation: Mapping[str, Any]) -> dict[str, Any]:
    """One node as a listing shows it: what a nodes table reads, and its problems.

    Why not the whole node (``node_to_dict``): a listing of 1,000 nodes is decoded by every
    client that asks for it, and the labels and the five conditions with their messages and
    times were most of each item (1,444 bytes a node; this is 418 in bench/inventory.py). The detail
    (``GET /nodes/{node}``) keeps everything; labels still filter the listing (``label_selector``).
    """
    return {
        "name": node.name,
        "ready": node.ready,
        "unschedulable": node.unschedulable,
        "roles": node.roles,
        "internal_ip": node.internal_ip,
        "kubelet_version": node.kubelet_version,
        "created": iso_or_none(node.created),
        "problems": node_problems(node),
        "allocation": dict(allocation),
    }


def node_to_dict(node: Node, allocation: Mapping[str, Any]) -> dict[str, Any]:
    """The whole node (its detail, a cordon's answer): the listing's item and everything else."""
    out = node_list_item(node, allocation)
    out.update(
        labels=dict(node.labels),
        taints=[t.to_dict() for t in node.taints],
        conditions=[c.to_dict() for c in node.conditions],
        capacity=node.capacity.to_dict(),
        os_image=node.os_image,
        container_runtime=node.container_runtime,
        uid=node.uid,
    )
    return out


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
