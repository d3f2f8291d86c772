"""The resources around workloads, read and acted on live: a Service or Ingress and the pods
behind it, CronJob run-now and suspend/resume, HorizontalPodAutoscalers.

Why live reads (no watch cache): Ingresses, HPAs and EndpointSlices are opened one namespace
at a time by a person, not scanned by the alert engine; caching every one of a large cluster
would cost memory and a watch each for pages that are rarely open. Pods come from the cluster
service's cache (``pods_of``), which every page shares.

Creating and editing these kinds goes through apply (``apply.py``); the HPA form builds a
manifest and applies it the same way, so it gets the same dry run, diff and conflicts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from hub.collectors.apply import Applier, ApplyApi
from hub.collectors.inventory import pod_to_dict
from hub.collectors.workload_actions import MERGE_PATCH, workload_kind
from hub.errors import InvalidInput, NotFound, Unprocessable
from hub.model import Pod
from hub.scope import Scope

MAX_HPA_REPLICAS = 10_000


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service selector matches a pod whose labels hold every pair (an empty one matches none:
    a Service without a selector has its endpoints managed by hand)."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def endpoint_states(slices: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """Pod name -> ready, from a Service's EndpointSlices (what traffic really reaches)."""
    out: dict[str, bool] = {}
    for s in slices:
        for ep in s.get("endpoints") or ():
            ref = ep.get("targetRef") or {}
            if ref.get("kind") == "Pod" and ref.get("name"):
                ready = (ep.get("conditions") or {}).get("ready")
                out[str(ref["name"])] = out.get(str(ref["name"]), False) or ready is not False
    return out


def ingress_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    rules = []
    for rule in spec.get("rules") or ():
        paths = []
        for p in (rule.get("http") or {}).get("paths") or ():
            svc = (p.get("backend") or {}).get("service") or {}
            port = svc.get("port") or {}
            paths.append(
                {
                    "path": p.get("path", "/"),
                    "path_type": p.get("pathType"),
                    "service": svc.get("name"),
                    "port": port.get("number") or port.get("name"),
                }
            )
        rules.append({"host": rule.get("host", ""), "paths": paths})
    default = ((spec.get("defaultBackend") or {}).get("service") or {}).get("name")
    lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "class": spec.get("ingressClassName"),
        "rules": rules,
        "default_backend": default,
        "tls_hosts": sorted({h for t in spec.get("tls") or () for h in t.get("hosts") or ()}),
        "addresses": [a.get("ip") or a.get("hostname") for a in lb],
        "labels": dict(md.get("labels") or {}),
        "created": md.get("creationTimestamp"),
    }


def hpa_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An autoscaling/v2 HPA as current vs target per metric, and its replica range."""
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    current = {_metric_key(m): m for m in status.get("currentMetrics") or ()}
    metrics = []
    for m in spec.get("metrics") or ():
        key = _metric_key(m)
        target = _metric_body(m).get("target") or {}
        now_value = _metric_body(current.get(key) or {}).get("current") or {}
        metrics.append(
            {
                "type": m.get("type"),
                "name": key[1],
                "target": {k: v for k, v in target.items()},
                "current": {k: v for k, v in now_value.items()},
            }
        )
    ref = spec.get("scaleTargetRef") or {}
    conditions = [
        {"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"), "message": c.get("message")}
        for c in status.get("conditions") or ()
    ]
    return {
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "target": {"kind": ref.get("kind"), "name": ref.get("name")},
        "min_replicas": spec.get("minReplicas", 1),
        "max_replicas": spec.get("maxReplicas"),
        "current_replicas": status.get("currentReplicas"),
        "desired_replicas": status.get("desiredReplicas"),
        "metrics": metrics,
        "conditions": conditions,
        "created": md.get("creationTimestamp"),
    }


def _metric_body(m: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{"type": "ContainerResource", "containerResource": {...}}`` -> the inner object."""
    kind = str(m.get("type") or "")
    body = m.get(kind[:1].lower() + kind[1:]) or {}
    return body if isinstance(body, Mapping) else {}


def _metric_key(m: Mapping[str, Any]) -> tuple[str, str]:
    kind = str(m.get("type") or "")
    body = _metric_body(m)
    name = (body.get("metric") or {}).get("name") or body.get("name") or ""
    return kind, str(name)


def hpa_manifest(kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The HPA of the form (``min_replicas``, ``max_replicas``, ``cpu_utilization`` and/or
    ``memory_utilization`` in percent of requests), named after its workload."""
    k = workload_kind(kind)
    if k not in ("Deployment", "StatefulSet"):
        raise Unprocessable(f"a {k} cannot be autoscaled; deployments and statefulsets can", field="kind")
    lo, hi = body.get("min_replicas", 1), body.get("max_replicas")
    for field, value in (("min_replicas", lo), ("max_replicas", hi)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HPA_REPLICAS:
            raise InvalidInput(f"{field} must be a whole number from 1 to {MAX_HPA_REPLICAS}", field=field)
    if lo > hi:
        raise Unprocessable(f"min_replicas ({lo}) is above max_replicas ({hi})", field="min_replicas")
    metrics = []
    for field, resource in (("cpu_utilization", "cpu"), ("memory_utilization", "memory")):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise InvalidInput(f"{field} must be a whole percentage from 1 to 1000", field=field)
        metrics.append(
            {
                "type": "Resource",
                "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": value}},
            }
        )
    if not metrics:
        raise InvalidInput("set cpu_utilization and/or memory_utilization", field="cpu_utilization")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": k, "name": name},
            "minReplicas": lo,
            "maxReplicas": hi,
            "metrics": metrics,
        },
    }


class AroundWorkloads:
    """Live reads and actions of the resources around workloads (see the module docstring)."""

    def __init__(
        self,
        api: ApplyApi,
        *,
        pods_of: Callable[[str], list[Pod]],
        owner_of: Callable[[Pod], tuple[str, str] | None],
    ) -> None:
        self.api = api
        self.pods_of = pods_of
        self.owner_of = owner_of

    def _get(self, path: str, resource: str, namespace: str, name: str | None = None, **query: Any) -> Any:
        return self.api.request(
            "GET", path, verb="get" if name else "list", resource=resource, namespace=namespace, name=name, query=query
        )

    def _pods_view(
        self, namespace: str, selector: Mapping[str, str], ready: Mapping[str, bool]
    ) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.pods_of(namespace), key=lambda p: p.name):
            if selects(selector, p.labels) or p.name in ready:
                view = pod_to_dict(p, workload=self.owner_of(p))
                view["endpoint_ready"] = ready.get(p.name)  # None: selected, not (yet) an endpoint
                out.append(view)
        return out

    # -- services and ingresses ----------------------------------------------------------------
    def service(self, namespace: str, name: str) -> dict[str, Any]:
        """A Service with the pods behind it: those its selector matches and those its
        EndpointSlices name, each with whether it receives traffic."""
        obj = self._get(f"/api/v1/namespaces/{namespace}/services/{name}", "services", namespace, name)
        md, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        slices = self._get(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            "endpointslices",
            namespace,
            labelSelector=f"kubernetes.io/service-name={name}",
        )
        ready = endpoint_states(slices.get("items") or [])
        selector = dict(spec.get("selector") or {})
        return {
            "namespace": namespace,
            "name": name,
            "type": spec.get("type", "ClusterIP"),
            "cluster_ip": spec.get("clusterIP"),
            "ports": spec.get("ports") or [],
            "selector": selector,
            "labels": dict(md.get("labels") or {}),
            "created": md.get("creationTimestamp"),
            "pods": self._pods_view(namespace, selector, ready),
        }

    def ingresses(self, namespace: str) -> list[dict[str, Any]]:
        listing = self._get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses", "ingresses", namespace)
        return sorted((ingress_view(i) for i in listing.get("items") or []), key=lambda i: str(i["name"]))

    def ingress(self, namespace: str, name: str) -> dict[str, Any]:
        """An Ingress with, per backend Service, the pods behind it."""
        obj = self._get(
            f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}", "ingresses", namespace, name
        )
        view = ingress_view(obj)
        names = {p["service"] for r in view["rules"] for p in r["paths"] if p["service"]}
        if view["default_backend"]:
            names.add(view["default_backend"])
        backends = []
        for svc in sorted(names):
            try:
                backends.append(self.service(namespace, svc))
            except NotFound:
                backends.append({"namespace": namespace, "name": svc, "missing": True, "pods": []})
        view["backends"] = backends
        return view

    # -- jobs and cronjobs -----------------------------------------------------------------------
    def run_cronjob(self, namespace: str, name: str) -> dict[str, Any]:
        """Run a CronJob now: a Job from its job template, owned by it (so the CronJob's history
        lists it and deleting the CronJob deletes it), as ``kubectl create job --from=cronjob/``."""
        cj = self._get(f"/apis/batch/v1/namespaces/{namespace}/cronjobs/{name}", "cronjobs", namespace, name)
        md = cj.get("metadata") or {}
        template = dict((cj.get("spec") or {}).get("jobTemplate") or {})
        tmd = dict(template.get("metadata") or {})
        job_name = f"{name[:44]}-manual-{secrets.token_hex(3)}"  # at most 63 characters
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name,
                "namespace": namespace,
                "labels": dict(tmd.get("labels") or {}),
                "annotations": {**dict(tmd.get("annotations") or {}), "cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": name,
                        "uid": md.get("uid"),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        created = self.api.request(
            "POST",
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            body=job,
            verb="create",
            resource="jobs",
            namespace=namespace,
            name=job_name,
        )
        cmd = created.get("metadata") or {}
        return {
            "namespace": namespace,
            "cronjob": name,
            "job": cmd.get("name"),
            "created": cmd.get("creationTimestamp"),
        }

    def suspend(self, namespace: str, kind: str, name: str, suspended: bool) -> dict[str, Any]:
        """Suspend (no new runs; a Job's running pods stop) or resume a CronJob or Job."""
        k = workload_kind(kind)
        if k not in ("CronJob", "Job"):
            raise Unprocessable(f"a {k} cannot be suspended; cronjobs and jobs can", field="kind")
        resource = "cronjobs" if k == "CronJob" else "jobs"
        obj = self.api.request(
            "PATCH",
            f"/apis/batch/v1/namespaces/{namespace}/{resource}/{name}",
            body={"spec": {"suspend": suspended}},
            content_type=MERGE_PATCH,
            verb="patch",
            resource=resource,
            namespace=namespace,
            name=name,
        )
        return {
            "namespace": namespace,
            "kind": kind.lower(),
            "name": name,
            "suspended": bool((obj.get("spec") or {}).get("suspend")),
        }

    # -- horizontal pod autoscalers ----------------------------------------------------------------
    def autoscalers(self, namespace: str) -> list[dict[str, Any]]:
        listing = self._get(
            f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers",
            "horizontalpodautoscalers",
            namespace,
        )
        return sorted((hpa_view(i) for i in listing.get("items") or []), key=lambda i: str(i["name"]))

    def autoscaler(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self._get(
            f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}",
            "horizontalpodautoscalers",
            namespace,
            name,
        )
        return hpa_view(obj)

    def set_autoscaler(
        self,
        scope: Scope,
        namespace: str,
        kind: str,
        name: str,
        body: Mapping[str, Any],
        *,
        audit: Callable[[str, str, str, str, Mapping[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Create or edit the HPA of a workload from the form, through apply (dry run by default)."""
        manifest = hpa_manifest(kind, name, body)
        dry_run = body.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise InvalidInput("dry_run must be true or false", field="dry_run")
        base = body.get("base_version")
        base_versions = {f"HorizontalPodAutoscaler/{name}": base} if isinstance(base, str) and base else None
        return Applier(self.api).apply(
            scope, namespace, yaml.safe_dump(manifest), dry_run=dry_run, base_versions=base_versions, audit=audit
        )
