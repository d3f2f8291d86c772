"""StatefulSet and DaemonSet revisions: their ControllerRevisions, and rolling back to one.

Why a module of its own: a Deployment's history lives in its ReplicaSets (already in the watch
cache, see ``workload_actions.rollback``), a StatefulSet's or DaemonSet's in ControllerRevision
objects that the hub does not cache (they are read only when someone opens the history or rolls
back, so they are read live).

A ControllerRevision's ``data`` is a strategic merge patch that restores the pod template of
that revision (``$patch: replace`` on the template); rolling back applies it to the workload, as
``kubectl rollout undo`` does. The patch also names the workload's current ``resourceVersion``,
so a concurrent change gives 409 instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.collectors.kube_request import KubeRequests
from hub.errors import InvalidInput, Unprocessable

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_RESOURCE = {"StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


RevisionsApi = KubeRequests


def _images(template: Mapping[str, Any]) -> list[str]:
    spec = template.get("spec") or {}
    return [str(c.get("image", "")) for c in spec.get("containers") or ()]


def revision_entries(workload: Mapping[str, Any], revisions: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The workload's own revisions, newest first: number, name, images of its template, and
    whether it is the one the workload runs now (the highest number, which is what
    ``status.updateRevision`` names once a rollout has started)."""
    uid = (workload.get("metadata") or {}).get("uid")
    own = [
        r for r in revisions if any(o.get("uid") == uid for o in (r.get("metadata") or {}).get("ownerReferences") or ())
    ]
    update = (workload.get("status") or {}).get("updateRevision")
    top = max((int(r.get("revision") or 0) for r in own), default=0)
    out = []
    for r in own:
        md = r.get("metadata") or {}
        template = ((r.get("data") or {}).get("spec") or {}).get("template") or {}
        number = int(r.get("revision") or 0)
        out.append(
            {
                "revision": number,
                "name": md.get("name"),
                "images": _images(template),
                "created": md.get("creationTimestamp"),
                "current": md.get("name") == update if update else number == top,
            }
        )
    return sorted(out, key=lambda e: e["revision"], reverse=True)


class ControllerRevisions:
    """History and roll back of StatefulSets and DaemonSets through the API server."""

    def __init__(self, api: RevisionsApi) -> None:
        self.api = api

    def _workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return dict(
            self.api.request(
                "GET",
                f"/apis/apps/v1/namespaces/{namespace}/{_RESOURCE[kind]}/{name}",
                verb="get",
                resource=_RESOURCE[kind],
                namespace=namespace,
                name=name,
            )
        )

    def _revisions(self, workload: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        listing = self.api.request(
            "GET",
            f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions",
            query={"labelSelector": selector or None},
            verb="list",
            resource="controllerrevisions",
            namespace=namespace,
        )
        return list(listing.get("items") or [])

    def history(self, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
        w = self._workload(kind, namespace, name)
        return revision_entries(w, self._revisions(w, namespace))

    def rollback(self, kind: str, namespace: str, name: str, revision: Any = 0) -> tuple[dict[str, Any], int]:
        """Roll back to ``revision`` (0: the one before the current); returns the patched object
        and the revision rolled back to."""
        if revision is None:
            revision = 0
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise InvalidInput(f"revision must be a positive whole number, got {revision!r}", field="revision")
        w = self._workload(kind, namespace, name)
        raw = self._revisions(w, namespace)
        entries = revision_entries(w, raw)
        by_number = {e["revision"]: e for e in entries}
        current = next((e["revision"] for e in entries if e["current"]), 0)
        if revision == 0:
            older = [n for n in sorted(by_number) if n < current]
            if not older:
                raise Unprocessable(
                    f"{kind.lower()} {namespace}/{name} has no revision before {current} to roll back to",
                    field="revision",
                )
            revision = older[-1]
        if revision not in by_number:
            raise Unprocessable(
                f"{kind.lower()} {namespace}/{name} has no revision {revision}; "
                f"it has {', '.join(str(n) for n in sorted(by_number)) or 'none'}",
                field="revision",
            )
        if revision == current:
            return w, revision
        chosen = next(r for r in raw if (r.get("metadata") or {}).get("name") == by_number[revision]["name"])
        patch = dict(chosen.get("data") or {})
        rv = (w.get("metadata") or {}).get("resourceVersion", "")
        patch["metadata"] = {"resourceVersion": rv}  # a concurrent change: 409, not an overwrite
        obj = self.api.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/{_RESOURCE[kind]}/{name}",
            body=patch,
            content_type=STRATEGIC_MERGE_PATCH,
            verb="patch",
            resource=_RESOURCE[kind],
            namespace=namespace,
            name=name,
        )
        return dict(obj), revision
