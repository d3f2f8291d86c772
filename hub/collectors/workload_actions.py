"""Workload writes of the cluster service (scale, restart, roll back, set image, probes and
resources, delete): a part
of :class:`~hub.collectors.cluster.ClusterService` (a mixin; the service holds the API client and
the watch cache). Split out because writes go to the API server and reads to the cache: two
different paths with different failure modes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hub.collectors.container_settings import api_fields, container_views, parse_settings, patch_ops
from hub.collectors.inventory import (
    WORKLOAD_KINDS,
    workload_from_api,
)
from hub.collectors.quotas import Quotas, check_scale, pod_requests
from hub.collectors.revisions import ControllerRevisions
from hub.collectors.watchcache import WatchCache
from hub.errors import Conflict, InvalidInput, Unprocessable
from hub.model import RESTARTED_AT_ANNOTATION, Workload, iso_or_none
from hub.timeutil import Clock

if TYPE_CHECKING:
    from hub.collectors.cluster import ClusterApi


MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# URL kind -> cache store name
_STORE_OF = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "ReplicaSet": "replicasets",
}
_API_OF = {
    "Deployment": "/apis/apps/v1",
    "StatefulSet": "/apis/apps/v1",
    "DaemonSet": "/apis/apps/v1",
    "ReplicaSet": "/apis/apps/v1",
    "Job": "/apis/batch/v1",
    "CronJob": "/apis/batch/v1",
}
_SCALABLE = ("Deployment", "StatefulSet")
_RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")
_PROPAGATION = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}
_IMAGE = re.compile(r"^[^\s]+\Z")
# Status-only writes between a read and a patch (see _patch_spec): the controller writes a
# rollout's status several times within a second or two of a change (ci13: three immediate
# retries all met one, a 409 for a form saved right after the previous save), so the retries
# wait a little longer each time, 1.55 s in all.
_STATUS_RETRY_PAUSES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
MAX_REPLICAS = 10_000  # far above any real workload; catches typos such as 50000 for 5


def workload_kind(kind: str) -> str:
    """URL kind (``deployment``) -> Kubernetes kind (``Deployment``), or a 400 naming ``kind``."""
    found = WORKLOAD_KINDS.get((kind or "").lower())
    if found is None:
        raise InvalidInput(f"kind must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}", field="kind")
    return found


class WorkloadActions:
    """Writes to workloads through the API server: scale, restart, roll back, set an image,
    delete. Each reads the live object first (the cache may lag) and answers the API's view of
    the result."""

    if TYPE_CHECKING:  # provided by ClusterService (hub/collectors/cluster.py)

        def _workload_dict(self, w: Workload) -> dict[str, Any]: ...

        api: ClusterApi
        cache: WatchCache
        clock: Clock

    def _path(self, kind: str, namespace: str, name: str) -> str:
        return f"{_API_OF[kind]}/namespaces/{namespace}/{_STORE_OF[kind]}/{name}"

    def _accept(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        w = workload_from_api(kind, obj)
        self.cache[_STORE_OF[kind]].offer(w)
        out = self._workload_dict(w)
        out["stale_since"] = iso_or_none(self.cache.stale_since(["pods", _STORE_OF[kind]]))
        return out

    def _get_live(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """The object as the API server has it now; writes that depend on its current state read it
        live (a write is rare, and a stale cache must not decide what gets overwritten)."""
        return dict(
            self.api.request(
                "GET",
                self._path(kind, namespace, name),
                verb="get",
                resource=_STORE_OF[kind],
                namespace=namespace,
                name=name,
            )
        )

    def scale(self, namespace: str, kind: str, name: str, replicas: Any) -> dict[str, Any]:
        k = workload_kind(kind)
        if k not in _SCALABLE:
            raise Unprocessable(f"a {k} cannot be scaled; only deployments and statefulsets can", field="kind")
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise InvalidInput(f"replicas must be a whole number, got {replicas!r}", field="replicas")
        if not 0 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas must be between 0 and {MAX_REPLICAS}, got {replicas}", field="replicas")
        self._check_quota(k, namespace, name, replicas)
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
            fields={"spec.replicas": "replicas"},
        )
        return self._accept(k, obj)

    def _check_quota(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        """A scale-up the namespace's ResourceQuotas would not admit is refused here, naming the
        quota (Kubernetes itself would accept it and fail the pods later; see quotas.py)."""
        quotas = Quotas(self.api)
        found = quotas.quotas(namespace)
        if not found:
            return
        live = self._get_live(kind, namespace, name)
        spec = live.get("spec") or {}
        current = int(spec.get("replicas", 1) or 0)
        check_scale(
            found,
            what=f"scaling {kind.lower()} {namespace}/{name} from {current} to {replicas}",
            added_pods=replicas - current,
            per_pod=pod_requests(spec.get("template") or {}, quotas.default_requests(namespace)),
        )

    def restart(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """Replace every pod, as ``kubectl rollout restart`` does: a new template annotation makes
        the controller roll out a new revision at its usual pace."""
        k = workload_kind(kind)
        if k not in _RESTARTABLE:
            raise Unprocessable(
                f"a {k} cannot be restarted; only deployments, statefulsets and daemonsets can", field="kind"
            )
        stamp = iso_or_none(self.clock.now())
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body={"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
        )
        return self._accept(k, obj)

    def rollback(self, namespace: str, kind: str, name: str, revision: Any = 0) -> dict[str, Any]:
        """Roll a Deployment, StatefulSet or DaemonSet back to ``revision`` (0: the one before the
        current); the latter two through their ControllerRevisions (``revisions.py``).

        Like ``kubectl rollout undo``: copy the pod template of the ReplicaSet that carries that
        revision back into the Deployment. The patch names the resourceVersion it was computed
        from, so a concurrent change gives 409 instead of being silently overwritten.
        """
        k = workload_kind(kind)
        if k in ("StatefulSet", "DaemonSet"):  # their history is ControllerRevisions (revisions.py)
            patched, number = ControllerRevisions(self.api).rollback(k, namespace, name, revision)
            out = self._accept(k, patched)
            out["revision"] = number
            return out
        if k != "Deployment":
            raise Unprocessable(
                f"only deployments, statefulsets and daemonsets can be rolled back to a revision, not a {k}",
                field="kind",
            )
        if revision is None:
            revision = 0
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise InvalidInput(f"revision must be a positive whole number, got {revision!r}", field="revision")
        dep = self._get_live(k, namespace, name)
        md = dep.get("metadata") or {}
        spec = dep.get("spec") or {}
        if spec.get("paused"):
            raise Unprocessable(f"deployment {namespace}/{name} is paused; resume it before rolling back", field="name")
        selector = ",".join(f"{a}={b}" for a, b in ((spec.get("selector") or {}).get("matchLabels") or {}).items())
        listing = self.api.request(
            "GET",
            f"/apis/apps/v1/namespaces/{namespace}/replicasets",
            query={"labelSelector": selector or None},
            verb="list",
            resource="replicasets",
            namespace=namespace,
        )
        by_revision: dict[int, dict[str, Any]] = {}
        for rs in listing.get("items") or []:
            rmd = rs.get("metadata") or {}
            if not any(o.get("uid") == md.get("uid") for o in rmd.get("ownerReferences") or ()):
                continue
            try:
                by_revision[int((rmd.get("annotations") or {}).get("deployment.kubernetes.io/revision", ""))] = rs
            except ValueError:
                continue
        try:
            current = int((md.get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
        except ValueError:
            current = 0
        available = sorted(by_revision)
        if revision == 0:
            older = [r for r in available if r < current]
            if not older:
                raise Unprocessable(
                    f"deployment {namespace}/{name} has no revision before {current} to roll back to", field="revision"
                )
            revision = older[-1]
        if revision not in by_revision:
            raise Unprocessable(
                f"deployment {namespace}/{name} has no revision {revision}; "
                f"it has {', '.join(map(str, available)) or 'none'}",
                field="revision",
            )
        if revision == current:
            return self._accept(k, dep)  # already there: nothing to change (kubectl skips it too)
        template = dict((by_revision[revision].get("spec") or {}).get("template") or {})
        tmd = dict(template.get("metadata") or {})
        labels = dict(tmd.get("labels") or {})
        labels.pop("pod-template-hash", None)  # added by the controller to the ReplicaSet, not ours
        tmd["labels"] = labels
        template["metadata"] = tmd
        obj = self.api.request(
            "PATCH",
            self._path(k, namespace, name),
            body=[
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/metadata/resourceVersion", "value": md.get("resourceVersion", "")},
            ],
            content_type=JSON_PATCH,
            verb="patch",
            resource="deployments",
            namespace=namespace,
            name=name,
        )
        return self._accept(k, obj)

    def _patch_spec(
        self, k: str, namespace: str, name: str, attempt: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Run ``attempt`` (a JSON patch carrying the resourceVersion of the object it is given)
        on the live object. The controller writes status between our read and the patch (it does
        so right after each rollout or restart); the spec is what matters, and an unchanged
        generation says nobody touched it: read again and retry. A changed generation is 409."""
        what = f"{k.lower()} {namespace}/{name}"
        generation = None
        for pause in _STATUS_RETRY_PAUSES:
            if pause:
                time.sleep(pause)
            obj = self._get_live(k, namespace, name)
            now = (obj.get("metadata") or {}).get("generation")
            if generation is not None and now != generation:
                raise Conflict(f"{what} was changed by someone else meanwhile; reload it and retry")
            generation = now
            try:
                return attempt(obj)
            except Conflict:
                continue
        raise Conflict(f"{what} kept changing while the hub tried to patch it; retry in a moment")

    def set_image(self, namespace: str, kind: str, name: str, container: Any, image: Any) -> dict[str, Any]:
        """Change one container's image; the controller rolls it out."""
        k = workload_kind(kind)
        if k == "Job":
            raise Unprocessable("a Job's pod template cannot change; create a new job instead", field="kind")
        if not isinstance(container, str) or not container:
            raise InvalidInput("container must name one of the workload's containers", field="container")
        if not isinstance(image, str) or not image or len(image) > 1024 or not _IMAGE.match(image):
            raise InvalidInput(f"image must be an image reference without spaces, got {image!r}", field="image")

        def attempt(obj: dict[str, Any]) -> dict[str, Any]:
            spec = obj.get("spec") or {}
            base = "/spec/template/spec"
            pod_spec = (spec.get("template") or {}).get("spec") or {}
            if k == "CronJob":
                base = "/spec/jobTemplate/spec/template/spec"
                pod_spec = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
            path = None
            names = []
            for group in ("containers", "initContainers"):
                for i, c in enumerate(pod_spec.get(group) or ()):
                    names.append(c.get("name"))
                    if c.get("name") == container:
                        path = f"{base}/{group}/{i}/image"
            if path is None:
                raise Unprocessable(
                    f"{kind.lower()} {namespace}/{name} has no container {container!r}; it has {', '.join(names)}",
                    field="container",
                )
            rv = (obj.get("metadata") or {}).get("resourceVersion", "")
            return self.api.request(
                "PATCH",
                self._path(k, namespace, name),
                body=[
                    {"op": "replace", "path": path, "value": image},
                    {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
                ],
                content_type=JSON_PATCH,
                verb="patch",
                resource=_STORE_OF[k],
                namespace=namespace,
                name=name,
                fields={"spec.template.spec.containers": "image", "spec.jobTemplate": "image"},
            )

        patched = self._patch_spec(k, namespace, name, attempt)
        return self._accept(k, patched)

    def container_settings(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """Each container's CPU/memory requests and limits and its probes, read live (the form
        that edits them must start from what the API server has, not the cache)."""
        k = workload_kind(kind)
        obj = self._get_live(k, namespace, name)
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        return {
            "kind": kind.lower(),
            "namespace": namespace,
            "name": name,
            "resource_version": rv,
            "containers": container_views(k, obj),
        }

    def set_container_settings(self, namespace: str, kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change one container's probes and/or resources (container_settings.py checks the body);
        a JSON patch carrying the resourceVersion it was computed from, so a concurrent change
        answers 409."""
        k = workload_kind(kind)
        if k == "Job":
            raise Unprocessable("a Job's pod template cannot change; create a new job instead", field="kind")
        settings = parse_settings(body)
        what = f"{kind.lower()} {namespace}/{name}"

        def attempt(obj: dict[str, Any]) -> dict[str, Any]:
            return self.api.request(
                "PATCH",
                self._path(k, namespace, name),
                body=patch_ops(k, obj, settings, what),
                content_type=JSON_PATCH,
                verb="patch",
                resource=_STORE_OF[k],
                namespace=namespace,
                name=name,
                fields=api_fields(k, obj, settings.container),
            )

        patched = self._patch_spec(k, namespace, name, attempt)
        out = self._accept(k, patched)
        out["containers"] = container_views(k, patched)
        return out

    def delete_workload(self, namespace: str, kind: str, name: str, propagation: str = "background") -> dict[str, Any]:
        """Delete a workload and, unless ``orphan``, its pods (the garbage collector removes them:
        at once in the background, or before the workload itself with ``foreground``)."""
        k = workload_kind(kind)
        policy = _PROPAGATION.get((propagation or "background").lower())
        if policy is None:
            raise InvalidInput(
                f"propagation must be one of {', '.join(_PROPAGATION)}, got {propagation!r}", field="propagation"
            )
        self.api.request(
            "DELETE",
            self._path(k, namespace, name),
            body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": policy},
            verb="delete",
            resource=_STORE_OF[k],
            namespace=namespace,
            name=name,
        )
        return {"kind": kind.lower(), "namespace": namespace, "name": name, "deleted": True, "propagation": policy}
