"""Project quotas: the ResourceQuota and LimitRange a workspace admin sets on a project's
namespace, its usage against them, and the check that refuses a scale-up the quota would not
admit, naming the quota.

Why the hub checks before scaling: Kubernetes enforces a ResourceQuota when pods are created,
not when a Deployment's replica count changes, so an over-quota scale-up is accepted and then
fails quietly in the ReplicaSet's events. Checking first gives the user the refusal, with the
quota and the resource, where they asked.

The hub's objects are named ``kubehub-quota`` and ``kubehub-limits`` and written by server-side
apply (field manager ``kubehub``); usage is read from every ResourceQuota of the namespace, so
quotas someone else set are shown and respected too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from hub.collectors.apply import APPLY_PATCH, FIELD_MANAGER, ApplyApi
from hub.collectors.inventory import parse_quantity
from hub.errors import InvalidInput, Unprocessable

QUOTA_NAME = "kubehub-quota"
LIMITS_NAME = "kubehub-limits"
# form field -> ResourceQuota key
QUOTA_FIELDS = {"cpu": "requests.cpu", "memory": "requests.memory", "pods": "pods", "storage": "requests.storage"}
LIMIT_FIELDS = ("cpu", "memory")


_QUANTITY_TEXT = re.compile(r"^\d{1,12}(\.\d{1,6})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?\Z")


def _quantity(value: Any, field: str) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _QUANTITY_TEXT.match(text):
        raise InvalidInput(f"{field} must be a Kubernetes quantity such as 4, 500m or 8Gi, got {value!r}", field=field)
    return text


def quota_objects(namespace: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ResourceQuota (and, with ``default_request``/``default_limit``, the LimitRange) of
    the form; a 400 naming the field otherwise."""
    hard = {QUOTA_FIELDS[f]: _quantity(body[f], f) for f in QUOTA_FIELDS if body.get(f) not in (None, "")}
    if not hard:
        raise InvalidInput(f"set at least one of {', '.join(QUOTA_FIELDS)}", field="cpu")
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": QUOTA_NAME, "namespace": namespace},
            "spec": {"hard": hard},
        }
    ]
    limit: dict[str, Any] = {"type": "Container"}
    for key, target in (("default_request", "defaultRequest"), ("default_limit", "default")):
        given = body.get(key)
        if given in (None, {}):
            continue
        if not isinstance(given, Mapping):
            raise InvalidInput(f"{key} must be an object with cpu and/or memory", field=key)
        values = {r: _quantity(given[r], f"{key}.{r}") for r in LIMIT_FIELDS if given.get(r) not in (None, "")}
        if values:
            limit[target] = values
    if len(limit) > 1:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": LIMITS_NAME, "namespace": namespace},
                "spec": {"limits": [limit]},
            }
        )
    return out


def usage_view(quota: Mapping[str, Any]) -> dict[str, Any]:
    md, status = quota.get("metadata") or {}, quota.get("status") or {}
    hard, used = dict(status.get("hard") or (quota.get("spec") or {}).get("hard") or {}), dict(status.get("used") or {})
    resources = []
    for key in sorted(hard):
        h, u = parse_quantity(hard[key]), parse_quantity(used.get(key, "0"))
        resources.append(
            {"resource": key, "hard": hard[key], "used": used.get(key, "0"), "ratio": float(u / h) if h else None}
        )
    return {"name": md.get("name"), "resources": resources}


def pod_requests(template: Mapping[str, Any], defaults: Mapping[str, str]) -> dict[str, Decimal]:
    """What one pod of a template asks for under a requests quota: its containers' requests
    (a LimitRange's default request where a container sets none), and one pod."""
    out = {"pods": Decimal(1), "requests.cpu": Decimal(0), "requests.memory": Decimal(0)}
    for c in (template.get("spec") or {}).get("containers") or ():
        requests = (c.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            value = requests.get(resource) or defaults.get(resource)
            if value:
                out[f"requests.{resource}"] += parse_quantity(value)
    return out


def check_scale(
    quotas: Sequence[Mapping[str, Any]],
    *,
    what: str,
    added_pods: int,
    per_pod: Mapping[str, Decimal],
    field: str = "replicas",
) -> None:
    """Refuse (422 ``field``, naming the quota and the resource) when ``added_pods`` more pods
    of ``per_pod`` each would exceed what a quota still admits."""
    if added_pods <= 0:
        return
    over: list[str] = []
    for q in quotas:
        status = q.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        name = (q.get("metadata") or {}).get("name")
        for resource, need in per_pod.items():
            if resource not in hard or not need:
                continue
            limit, have = parse_quantity(hard[resource]), parse_quantity(used.get(resource, "0"))
            wanted = need * added_pods
            if have + wanted > limit:
                over.append(
                    f"{_fmt(resource, wanted)} more {resource}, but quota {name} allows {hard[resource]} "
                    f"and {used.get(resource, '0')} is used"
                )
    if over:
        raise Unprocessable(f"{what} needs " + "; ".join(over), field=field)


def _fmt(resource: str, value: Decimal) -> str:
    """A quantity as a person writes it: ``600m`` of cpu, ``192Mi`` of memory."""
    if resource.endswith("cpu") and value != value.to_integral_value():
        return f"{int(value * 1000)}m"
    if resource.endswith(("memory", "storage")) and value >= 1024**2:
        for unit, size in (("Gi", 1024**3), ("Mi", 1024**2)):
            if value % size == 0:
                return f"{int(value / size)}{unit}"
    return format(value.normalize(), "f")


class Quotas:
    """Set and read a project's quota through the API server."""

    def __init__(self, api: ApplyApi) -> None:
        self.api = api

    def quotas(self, namespace: str) -> list[dict[str, Any]]:
        listing = self.api.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/resourcequotas",
            verb="list",
            resource="resourcequotas",
            namespace=namespace,
        )
        return list(listing.get("items") or [])

    def default_requests(self, namespace: str) -> dict[str, str]:
        listing = self.api.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/limitranges",
            verb="list",
            resource="limitranges",
            namespace=namespace,
        )
        out: dict[str, str] = {}
        for lr in listing.get("items") or ():
            for limit in (lr.get("spec") or {}).get("limits") or ():
                if limit.get("type") == "Container":
                    out.update({k: str(v) for k, v in (limit.get("defaultRequest") or {}).items()})
        return out

    def check_workload(self, obj: Mapping[str, Any], current: Mapping[str, Any] | None, *, where: str = "") -> None:
        """Refuse a Deployment or StatefulSet whose apply would add pods the quotas would not
        admit (as a scale-up; see :meth:`check_scale`)."""
        if obj.get("kind") not in ("Deployment", "StatefulSet"):
            return
        md = obj.get("metadata") or {}
        namespace, name = str(md.get("namespace") or ""), str(md.get("name") or "")
        spec = obj.get("spec") or {}
        wanted = spec.get("replicas", 1)
        have = ((current or {}).get("spec") or {}).get("replicas", 0) if current is not None else 0
        if not isinstance(wanted, int) or isinstance(wanted, bool) or not isinstance(have, int) or wanted <= have:
            return
        found = self.quotas(namespace)
        if not found:
            return
        check_scale(
            found,
            what=f"{'creating' if current is None else 'applying'} {str(obj['kind']).lower()} {namespace}/{name} "
            f"with {wanted} replicas",
            added_pods=wanted - have,
            per_pod=pod_requests(spec.get("template") or {}, self.default_requests(namespace)),
            field=f"{where}spec.replicas",
        )

    def usage(self, namespace: str) -> dict[str, Any]:
        """Every ResourceQuota of the namespace as used against hard, and the container defaults."""
        quotas = [usage_view(q) for q in sorted(self.quotas(namespace), key=lambda q: q["metadata"]["name"])]
        return {"namespace": namespace, "quotas": quotas, "default_requests": self.default_requests(namespace)}

    def set(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        for obj in quota_objects(namespace, body):
            resource = "resourcequotas" if obj["kind"] == "ResourceQuota" else "limitranges"
            self.api.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/{resource}/{obj['metadata']['name']}",
                query={"fieldManager": FIELD_MANAGER, "force": "true"},  # the hub owns its own objects
                body=obj,
                content_type=APPLY_PATCH,
                verb="apply",
                resource=resource,
                namespace=namespace,
                name=obj["metadata"]["name"],
                fields={"spec.hard": "cpu", "spec.limits": "default_request"},
            )
        return self.usage(namespace)
