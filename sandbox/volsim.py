"""The kubelet's volume statistics (``kubelet_volume_stats_*``) for the claims the StatefulSets
declare, served by the node simulator (:mod:`sandbox.nodesim`).

KWOK plays kubelets but mounts nothing, and nothing provisions volumes in the sandbox, so a
StatefulSet's claims may stay Pending: the statistics are emitted for every claim the StatefulSets
DECLARE (``<template>-<statefulset>-<ordinal>`` for each volumeClaimTemplate and ordinal below
``spec.replicas``), bound or not. Values are deterministic functions of time, driven like the CPU
and memory usage by annotations of the StatefulSet's pod template:

* ``kubehub.io/volume-used``: utilisation 0..1, flat (like ``kubehub.io/cpu``);
* ``kubehub.io/volume-growth``: utilisation added per hour since the StatefulSet was created,
  on top of the base (``kubehub.io/volume-used`` or the claim's own base); full stays full. This is
  what the predictive rule "full within 6 h" is tested with: a straight line has a known full time.

Without annotations a claim sits at a base between 20 % and 60 % (from its name), moving by a few
percent over the day.
"""

from __future__ import annotations

import calendar
import contextlib
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox import model

ANN_VOLUME_USED = "kubehub.io/volume-used"
ANN_VOLUME_GROWTH = "kubehub.io/volume-growth"
# When the growth started (UTC, ``YYYY-MM-DDTHH:MM:SSZ``); default the StatefulSet's creation. The
# seed starts one before the sandbox existed, so the backfilled history holds the growth too.
ANN_VOLUME_GROWTH_SINCE = "kubehub.io/volume-growth-since"
DEFAULT_CAPACITY = 10 * 1024**3
BYTES_PER_INODE = 16 * 1024  # mkfs.ext4's default inode ratio
BYTES_PER_FILE = 256 * 1024  # average file of a database volume
FULL = 0.999  # a full volume keeps a few blocks (reserved, metadata)

HELP = {
    "kubelet_volume_stats_used_bytes": "Number of used bytes in the volume",
    "kubelet_volume_stats_capacity_bytes": "Capacity in bytes of the volume",
    "kubelet_volume_stats_available_bytes": "Number of available bytes in the volume",
    "kubelet_volume_stats_inodes": "Maximum number of inodes in the volume",
    "kubelet_volume_stats_inodes_used": "Number of used inodes in the volume",
    "kubelet_volume_stats_inodes_free": "Number of free inodes in the volume",
}


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    capacity: float
    used: float | None  # fixed utilisation, or None for the claim's own base
    growth: float  # utilisation per hour
    since: float  # Unix time the growth starts from (the StatefulSet's creation)

    def utilisation(self, t: float) -> float:
        if self.used is not None:
            base = self.used
        else:
            base = 0.2 + 0.4 * (zlib.crc32(f"{self.namespace}/{self.name}".encode()) % 1000) / 1000.0
            base *= 0.95 + 0.05 * model.tri(t)
        return max(0.0, min(FULL, base + self.growth * max(0.0, t - self.since) / 3600.0))

    def stats(self, t: float) -> dict[str, float]:
        used = round(self.capacity * self.utilisation(t))
        inodes = self.capacity // BYTES_PER_INODE
        inodes_used = min(inodes, 11 + used // BYTES_PER_FILE)
        return {
            "kubelet_volume_stats_used_bytes": used,
            "kubelet_volume_stats_capacity_bytes": self.capacity,
            "kubelet_volume_stats_available_bytes": self.capacity - used,
            "kubelet_volume_stats_inodes": inodes,
            "kubelet_volume_stats_inodes_used": inodes_used,
            "kubelet_volume_stats_inodes_free": inodes - inodes_used,
        }


def _created(meta: dict[str, Any]) -> float:
    stamp = meta.get("creationTimestamp")
    if not stamp:
        return time.time()
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def claims_of(sts: dict[str, Any]) -> list[Claim]:
    """The claims a StatefulSet declares, with the usage its pod template's annotations ask for."""
    meta, spec = sts["metadata"], sts.get("spec") or {}
    ann = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    used = model.parse_quantity(ann.get(ANN_VOLUME_USED))
    growth = model.parse_quantity(ann.get(ANN_VOLUME_GROWTH)) or 0.0
    since = _created(meta)
    if ann.get(ANN_VOLUME_GROWTH_SINCE):
        with contextlib.suppress(ValueError):
            since = float(calendar.timegm(time.strptime(ann[ANN_VOLUME_GROWTH_SINCE], "%Y-%m-%dT%H:%M:%SZ")))
    out = []
    for tpl in spec.get("volumeClaimTemplates") or []:
        requests = ((tpl.get("spec") or {}).get("resources") or {}).get("requests") or {}
        capacity = model.parse_quantity(requests.get("storage")) or DEFAULT_CAPACITY
        for i in range(int(spec.get("replicas", 1) or 0)):
            name = f"{tpl['metadata']['name']}-{meta['name']}-{i}"
            out.append(Claim(meta["namespace"], name, float(capacity), used, growth, since))
    return out


def exposition(claims: Iterable[Claim], t: float) -> str:
    """The kubelet's volume families in the text format (empty when no claim is declared)."""
    families: dict[str, list[str]] = {name: [] for name in HELP}
    for c in sorted(claims, key=lambda c: (c.namespace, c.name)):
        labels = f'namespace="{c.namespace}",persistentvolumeclaim="{c.name}"'
        for name, value in c.stats(t).items():
            families[name].append(f"{name}{{{labels}}} {value:.0f}")
    out: list[str] = []
    for name, lines in families.items():
        if lines:
            out += [f"# HELP {name} {HELP[name]} (simulated kubelet)", f"# TYPE {name} gauge", *lines]
    return "\n".join(out) + ("\n" if out else "")


# ---- a provisioner for the sandbox's StorageClass -------------------------------------------------
# Nothing provisions volumes in the sandbox, so the node simulator plays an external provisioner
# for one StorageClass: for every pending claim of that class it creates a PersistentVolume
# already naming the claim (claimRef), and the controller-manager's persistentvolume-binder binds
# the two, as it does for any external provisioner's volume. A Released volume of the class (its
# claim deleted) is deleted, as the class's reclaimPolicy says. The volume is a hostPath nobody
# mounts (KWOK runs no containers); the usage the kubelet would report comes from the claims' model
# above, so the PVC pages and the kubelet_volume_* series have bound claims behind them.
STORAGE_CLASS = "kubehub-sandbox"
PROVISIONER = "kubehub.io/sandbox-provisioner"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def pv_for(claim: dict[str, Any]) -> dict[str, Any] | None:
    """The volume for a pending claim of the sandbox's class, pre-bound to it; None for others."""
    md, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    phase = (claim.get("status") or {}).get("phase")
    if spec.get("storageClassName") != STORAGE_CLASS or spec.get("volumeName") or phase not in (None, "Pending"):
        return None
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{md['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": md["namespace"],
                "name": md["name"],
                "uid": md["uid"],
            },
            "hostPath": {"path": f"/var/lib/kubehub-sandbox/volumes/{md['namespace']}/{md['name']}"},
        },
    }


def provision(api: Any) -> tuple[int, int]:
    """One round: volumes for the pending claims of the class, Released ones deleted; (made, deleted)."""
    made = deleted = 0
    for claim in api.list("/api/v1/persistentvolumeclaims"):
        pv = pv_for(claim)
        if pv is not None and api.create("/api/v1/persistentvolumes", pv):
            made += 1
    for pv in api.list("/api/v1/persistentvolumes"):
        spec, status = pv.get("spec") or {}, pv.get("status") or {}
        if spec.get("storageClassName") == STORAGE_CLASS and status.get("phase") == "Released":
            deleted += api.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
    return made, deleted
