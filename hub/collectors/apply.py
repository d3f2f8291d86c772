"""Create and edit namespaced objects from YAML: server-side apply with a dry run first.

Why server-side apply (field manager ``kubehub``): the API server merges what the user wrote
with what others own, validates it with the real schema and admission chain, and names every
invalid field; the hub does not re-implement any of that. Why a dry run (``dryRun=All``) before
every write: the console shows the user the diff between the object as it is and as it would be
(a unified diff of readable YAML) and what is wrong, before anything changes.

Conflicts answer 409 with both versions: the object as the API server has it now and what was
submitted. Two kinds: the caller previewed against a ``resourceVersion`` that is no longer the
current one (someone changed it between preview and apply), or apply finds fields owned by
another manager (an SSA conflict; never forced).

Bounds: at most :data:`MAX_MANIFEST_BYTES` of YAML, one document, or a ``kind: List`` of at most
:data:`MAX_ITEMS` objects; no anchors/aliases (a manifest never needs them and they are how a
307-byte document becomes megabytes); nesting at most :data:`MAX_DEPTH`.

Tenancy is enforced here, not only by the route: the caller needs ``workloads:write`` on the
namespace, each object's ``metadata.namespace`` must be absent or that namespace, and kinds
outside :data:`KINDS` (cluster-scoped ones among them) are refused.

Secret values are write-only: the current Secret is read by a metadata-only list (the hub's
account has no ``get`` on Secrets), apply's answer is asked for as metadata only, and diffs, 409
bodies and the audit show metadata and the keys sent, never values (so a Secret's diff cannot
show which keys already existed).

Over 400 lines on purpose: the manifest reader, the readable diff and the apply service are one
door with one set of bounds and one Secret rule; split up, the rule would have to be kept in
step across modules.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hub.collectors.kube_request import KubeRequests
from hub.errors import BackendUnavailable, Conflict, Forbidden, HubError, InvalidInput, NotFound, Unprocessable
from hub.scope import Scope

APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "kubehub"
ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
ACCEPT_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
MAX_MANIFEST_BYTES = 256 * 1024  # far above any hand-written manifest
MAX_ITEMS = 20  # a List of more objects is a deployment pipeline's job, not a form's
MAX_DEPTH = 40
HIDDEN = "(hidden)"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class KindInfo:
    """Where a kind lives in the API: ``api`` prefix and plural ``resource``."""

    api_version: str
    kind: str
    api: str
    resource: str


KINDS: dict[tuple[str, str], KindInfo] = {
    (k.api_version, k.kind): k
    for k in (
        KindInfo("apps/v1", "Deployment", "/apis/apps/v1", "deployments"),
        KindInfo("apps/v1", "StatefulSet", "/apis/apps/v1", "statefulsets"),
        KindInfo("apps/v1", "DaemonSet", "/apis/apps/v1", "daemonsets"),
        KindInfo("batch/v1", "Job", "/apis/batch/v1", "jobs"),
        KindInfo("batch/v1", "CronJob", "/apis/batch/v1", "cronjobs"),
        KindInfo("v1", "Service", "/api/v1", "services"),
        KindInfo("v1", "ConfigMap", "/api/v1", "configmaps"),
        KindInfo("v1", "Secret", "/api/v1", "secrets"),
        KindInfo("networking.k8s.io/v1", "Ingress", "/apis/networking.k8s.io/v1", "ingresses"),
        KindInfo("autoscaling/v2", "HorizontalPodAutoscaler", "/apis/autoscaling/v2", "horizontalpodautoscalers"),
    )
}
# Kinds without a namespace: refused for tenants by name (a sentence that says why), and for
# everybody through a namespaced route.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "RuntimeClass",
    }
)
# Annotations the controllers keep (the Deployment's revision): bookkeeping that moves on its own.
_CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/",)
# Fields the server maintains: left out of diffs so they show what the user changes.
_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")


# The one call of the Kubernetes adapter this needs (``KubeApi.request``).
ApplyApi = KubeRequests


class ManifestTooLarge(HubError):
    status = 413


class ManifestInvalid(Unprocessable):
    """The API server (or the manifest's shape) refused fields; ``problems`` names each (422)."""

    def __init__(self, what: str, problems: list[dict[str, str]]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{what}: {first['field']}: {first['message']}{more}", field=first["field"])
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().to_dict())
        body["problems"] = self.problems
        return body


class ApplyConflict(Conflict):
    """Someone else changed the object (409): carries both versions as YAML (Secrets masked)."""

    def __init__(self, message: str, *, current: str, submitted: str, managers: list[str] | None = None) -> None:
        super().__init__(message, field="yaml")
        self.current = current
        self.submitted = submitted
        self.managers = managers or []

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().to_dict())
        body["current"] = self.current
        body["submitted"] = self.submitted
        if self.managers:
            body["managers"] = self.managers
        return body


# -- reading the manifest (pure) ---------------------------------------------------------------
def _check_events(text: str) -> None:
    depth = 0
    documents = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidInput("YAML anchors and aliases (*name) are not accepted in a manifest", field="yaml")
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise InvalidInput(
                    "the YAML holds several documents (---); send one, or a 'kind: List' with 'items'", field="yaml"
                )
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidInput(f"the YAML is nested more than {MAX_DEPTH} levels deep", field="yaml")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_manifest(text: Any) -> list[dict[str, Any]]:
    """The objects of a manifest: one document, or the ``items`` of a ``kind: List``; a 400/413/422
    naming the problem otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("yaml must be the text of a manifest", field="yaml")
    if len(text.encode("utf-8")) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"the manifest is larger than {MAX_MANIFEST_BYTES // 1024} KiB", field="yaml")
    try:
        _check_events(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InvalidInput(f"the YAML cannot be read{where}: {problem}", field="yaml") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the manifest must be a YAML mapping (an object)", field="yaml")
    if doc.get("kind") == "List":
        items = doc.get("items")
        if not isinstance(items, list) or not items:
            raise Unprocessable("a List needs a non-empty 'items'", field="items")
        if len(items) > MAX_ITEMS:
            raise ManifestTooLarge(f"a List may hold at most {MAX_ITEMS} objects, got {len(items)}", field="items")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise Unprocessable("each item must be an object", field=f"items[{i}]")
        return [dict(i) for i in items]
    return [doc]


def target_of(obj: Mapping[str, Any], namespace: str, scope: Scope, where: str = "") -> KindInfo:
    """The kind's place in the API after the tenancy checks; sets nothing (see :func:`placed`)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise Unprocessable("the object needs apiVersion", field=f"{where}apiVersion")
    if not isinstance(kind, str) or not kind:
        raise Unprocessable("the object needs kind", field=f"{where}kind")
    if kind in CLUSTER_SCOPED:
        if not scope.all_namespaces:
            raise Forbidden(f"a {kind} is cluster-scoped; only platform admins manage those", field=f"{where}kind")
        raise Unprocessable(f"a {kind} is cluster-scoped and cannot be applied in a namespace", field=f"{where}kind")
    info = KINDS.get((api_version, kind))
    if info is None:
        known = ", ".join(f"{k.api_version} {k.kind}" for k in KINDS.values())
        raise Unprocessable(f"{api_version} {kind} cannot be applied here; these can: {known}", field=f"{where}kind")
    md = obj.get("metadata")
    if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md.get("name"):
        raise Unprocessable("the object needs metadata.name", field=f"{where}metadata.name")
    ns = md.get("namespace")
    if ns not in (None, "", namespace):
        raise Forbidden(
            f"metadata.namespace is {ns!r}; objects are applied in namespace {namespace} only",
            field=f"{where}metadata.namespace",
        )
    return info


def placed(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of ``obj`` with ``metadata.namespace`` set and ``resourceVersion`` left out (the
    version check is the hub's own, before apply)."""
    md = {k: v for k, v in dict(obj.get("metadata") or {}).items() if k != "resourceVersion"}
    md["namespace"] = namespace
    return {**obj, "metadata": md}


def masked(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Secret with every value replaced by ``(hidden)``; other kinds unchanged."""
    if obj is None or obj.get("kind") != "Secret":
        return dict(obj) if obj is not None else None
    out = dict(obj)
    md = dict(out.get("metadata") or {})
    if "annotations" in md:  # kubectl apply copies the values into this annotation
        md["annotations"] = {k: v for k, v in dict(md["annotations"] or {}).items() if k != LAST_APPLIED}
        out["metadata"] = md
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: HIDDEN for k in out[key]}
    return out


def readable(obj: Mapping[str, Any] | None) -> str:
    """YAML for people: no status, no server-maintained metadata, keys sorted, Secret values hidden."""
    if obj is None:
        return ""
    clean = dict(masked(obj) or {})
    clean.pop("status", None)  # the controllers' view, not what apply changes; it moves on its own
    md = {k: v for k, v in dict(clean.get("metadata") or {}).items() if k not in _VOLATILE_META}
    annotations = {
        k: v
        for k, v in dict(md.get("annotations") or {}).items()
        if k != LAST_APPLIED and not k.startswith(_CONTROLLER_ANNOTATIONS)
    }
    if annotations:
        md["annotations"] = annotations
    else:
        md.pop("annotations", None)
    clean["metadata"] = md
    text: str = yaml.safe_dump(clean, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text


def fingerprint(current: Mapping[str, Any] | None) -> str | None:
    """What a preview was computed from, for the conflict check: a hash of the readable object.
    Not the resourceVersion, which every status update of a controller moves on; this moves
    only when what a user edits (spec, labels, annotations, data) changes.

    A Secret's values are never read (readable hides them, and the hub's account has no ``get``
    on Secrets), so its fingerprint would miss a change of a value: it takes the resourceVersion
    too, which for a Secret moves only when someone writes it (no controller keeps a status)."""
    if current is None:
        return None
    text = readable(current)
    if current.get("kind") == "Secret":
        text += "\nresourceVersion: " + str((current.get("metadata") or {}).get("resourceVersion", ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def unified_diff(current: Mapping[str, Any] | None, result: Mapping[str, Any] | None, name: str) -> str:
    before, after = readable(current), readable(result)
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{name} (current)" if current is not None else "/dev/null",
        tofile=f"{name} (after apply)",
    )
    return "".join(lines)


def _status_body(exc: BaseException) -> dict[str, Any]:
    """The Kubernetes ``Status`` behind an adapter error: the adapter chains the client's
    exception, whose ``body`` holds it (duck-typed: this module imports no client)."""
    body = getattr(exc.__cause__, "body", None)
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


# ``.spec.replica: field not declared in schema`` (SSA) and ``unknown field "spec.replica"`` (strict decoding)
_FIELD_IN_MESSAGE = re.compile(r"(?:^|[\s(\[,])(\.[A-Za-z0-9_.\[\]=\"/-]+): ([^,\n\]]+)")
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')


def field_problems(exc: HubError, where: str = "") -> list[dict[str, str]]:
    """Every invalid field the API server named: a 422's ``details.causes``, or the field paths
    in a strict decoding error's message (``.spec.replica: field not declared in schema``)."""
    status = _status_body(exc)
    out: list[dict[str, str]] = []
    for cause in (status.get("details") or {}).get("causes") or []:
        field = str(cause.get("field") or "").lstrip(".")
        message = str(cause.get("message") or cause.get("reason") or "invalid")
        out.append({"field": where + (field or "(object)"), "message": message})
    if out:
        return out
    message = str(status.get("message") or exc.message)
    for m in _FIELD_IN_MESSAGE.finditer(message):
        out.append({"field": where + m.group(1).lstrip("."), "message": m.group(2).strip()})
    for m in _UNKNOWN_FIELD.finditer(message):
        out.append({"field": where + m.group(1), "message": "unknown field"})
    return out[:50] or [{"field": where + "(object)", "message": message}]


def conflict_managers(exc: HubError) -> list[str]:
    """Who owns the conflicting fields of an SSA conflict (its causes name the managers)."""
    causes = (_status_body(exc).get("details") or {}).get("causes") or []
    return [str(c.get("message") or "") for c in causes if c.get("message")][:20]


def kind_named(kind: str) -> KindInfo:
    """A console/URL kind (``deployment``, ``horizontalpodautoscaler``, ``ingresses``) -> its
    KindInfo, or a 400 naming ``kind``."""
    want = (kind or "").lower()
    for info in KINDS.values():
        if want in (info.kind.lower(), info.resource):
            return info
    raise InvalidInput(f"kind must be one of {', '.join(k.kind.lower() for k in KINDS.values())}", field="kind")


# -- the service ---------------------------------------------------------------------------------
class Applier:
    """Dry-run and apply manifests for one namespace as one caller (see the module docstring)."""

    def __init__(self, api: ApplyApi) -> None:
        self.api = api

    def _path(self, info: KindInfo, namespace: str, name: str) -> str:
        return f"{info.api}/namespaces/{namespace}/{info.resource}/{name}"

    def _current(self, info: KindInfo, namespace: str, name: str) -> dict[str, Any] | None:
        if info.kind == "Secret":
            return self._current_secret(namespace, name)
        try:
            obj = self.api.request(
                "GET",
                self._path(info, namespace, name),
                verb="get",
                resource=info.resource,
                namespace=namespace,
                name=name,
            )
        except NotFound:
            return None
        return dict(obj)

    def _current_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret's metadata by a metadata-only list of that one name: the hub's account has
        no ``get`` on Secrets (it would return the values), and the keys stay unknown."""
        listing = self.api.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/secrets",
            query={"fieldSelector": f"metadata.name={name}"},
            accept=ACCEPT_METADATA_LIST,
            verb="list",
            resource="secrets",
            namespace=namespace,
        )
        items = listing.get("items") or []
        if not items:
            return None
        return {"apiVersion": "v1", "kind": "Secret", "metadata": dict(items[0].get("metadata") or {})}

    def _apply(self, info: KindInfo, namespace: str, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        query = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "dryRun": "All" if dry_run else None}
        secret = info.kind == "Secret"
        result = self.api.request(
            "PATCH",
            self._path(info, namespace, name),
            query=query,
            body=obj,
            content_type=APPLY_PATCH,
            # A Secret's answer as metadata only: the values of keys not in the manifest never come back.
            accept=ACCEPT_METADATA if secret else "application/json",
            verb="apply",
            resource=info.resource,
            namespace=namespace,
            name=name,
        )
        if secret:  # what the user can see of it: metadata, and the keys they sent (values hidden)
            result = {"apiVersion": "v1", "kind": "Secret", "metadata": dict(result.get("metadata") or {})}
            for key in ("type", "data", "stringData"):
                if key in obj:
                    result[key] = obj[key]
        return masked(result) or {}

    def editable(self, scope: Scope, namespace: str, kind: str, name: str) -> str:
        """The object as YAML to edit and apply again (no status, no server bookkeeping; a
        Secret's metadata only: its values are never read)."""
        scope.check("workloads:write", namespace)
        info = kind_named(kind)
        current = self._current(info, namespace, name)
        if current is None:
            raise NotFound(f"{info.kind.lower()} {namespace}/{name} was not found")
        current = dict(current)
        current.setdefault("apiVersion", info.api_version)
        current.setdefault("kind", info.kind)
        md = {k: v for k, v in dict(current.get("metadata") or {}).items() if k not in ("namespace", "ownerReferences")}
        current["metadata"] = md
        return readable(current)

    def apply(
        self,
        scope: Scope,
        namespace: str,
        text: Any,
        *,
        dry_run: bool = True,
        base_versions: Mapping[str, str] | None = None,
        audit: Callable[[str, str, str, str, Mapping[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Dry-run (default) or apply a manifest in ``namespace``.

        ``base_versions`` maps ``Kind/name`` to the version the caller previewed against (the
        dry run's ``base_version``, a fingerprint of everything but status; a resourceVersion is
        accepted too); a different current one is a 409, as is a ``metadata.resourceVersion``
        in the manifest that is not the current one.
        A real apply runs the dry run first, so nothing is written unless every object passes.
        Returns one entry per object: kind, name, action (create/update/unchanged), diff.
        """
        scope.check("workloads:write", namespace)
        objects = parse_manifest(text)
        plans: list[tuple[KindInfo, dict[str, Any], dict[str, Any] | None]] = []
        for i, raw in enumerate(objects):
            where = f"items[{i}]." if len(objects) > 1 else ""
            info = target_of(raw, namespace, scope, where)
            obj = placed(raw, namespace)
            name = obj["metadata"]["name"]
            current = self._current(info, namespace, name)
            pinned = (raw.get("metadata") or {}).get("resourceVersion")  # the user's own: exact, as kubectl
            base = (base_versions or {}).get(f"{info.kind}/{name}")  # a preview's fingerprint
            have = (current or {}).get("metadata", {}).get("resourceVersion")
            changed = (pinned and str(pinned) != str(have or "")) or (
                base and base != fingerprint(current) and base != have
            )
            if changed:
                raise ApplyConflict(
                    f"{info.kind} {namespace}/{name} was changed by someone else since version {pinned or base} "
                    f"(it is now {'gone' if current is None else have}); compare both versions and apply again",
                    current=readable(current),
                    submitted=readable(obj),
                )
            # Kubernetes would accept the workload and refuse its pods later; say so now.
            from hub.collectors.quotas import Quotas  # quotas builds on this module: imported here

            Quotas(self.api).check_workload(obj, current, where=where)
            plans.append((info, obj, current))
        out: list[dict[str, Any]] = []
        for i, (info, obj, current) in enumerate(plans):
            where = f"items[{i}]." if len(plans) > 1 else ""
            result = self._run(info, namespace, obj, current, dry_run=True, where=where)
            diff = unified_diff(current, result, f"{info.kind}/{obj['metadata']['name']}")
            action = "create" if current is None else ("update" if diff else "unchanged")
            out.append(
                {
                    "api_version": info.api_version,
                    "kind": info.kind,
                    "namespace": namespace,
                    "name": obj["metadata"]["name"],
                    "action": action,
                    "diff": diff,
                    "base_resource_version": (current or {}).get("metadata", {}).get("resourceVersion"),
                    "base_version": fingerprint(current),
                }
            )
        if not dry_run:
            for entry, (info, obj, current) in zip(out, plans, strict=True):
                result = self._run(info, namespace, obj, current, dry_run=False, where="")
                entry["resource_version"] = (result.get("metadata") or {}).get("resourceVersion")
                if audit is not None:  # kind, name and action only: never the manifest (Secret values)
                    audit(
                        scope.username,
                        "cluster.apply",
                        f"{namespace}/{info.kind.lower()}/{entry['name']}",
                        "ok",
                        {"kind": info.kind, "action": entry["action"]},
                    )
        return {"namespace": namespace, "dry_run": dry_run, "objects": out}

    def _run(
        self,
        info: KindInfo,
        namespace: str,
        obj: dict[str, Any],
        current: dict[str, Any] | None,
        *,
        dry_run: bool,
        where: str,
    ) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        try:
            return self._apply(info, namespace, obj, dry_run=dry_run)
        except Conflict as exc:
            raise ApplyConflict(
                f"{info.kind} {namespace}/{name}: fields you set are managed by someone else; "
                "compare both versions, drop those fields or agree on an owner, and apply again",
                current=readable(current),
                submitted=readable(obj),
                managers=conflict_managers(exc),
            ) from None
        except BackendUnavailable as exc:
            # The API server answers a manifest its schema cannot type (an unknown field under
            # strict validation) with a 500 "failed to create typed patch object": the user's
            # mistake, not an outage.
            if "typed patch object" not in str(_status_body(exc).get("message") or ""):
                raise
            raise ManifestInvalid(
                f"Kubernetes refused {info.kind} {namespace}/{name}", field_problems(exc, where)
            ) from None
        except (Unprocessable, InvalidInput) as exc:
            raise ManifestInvalid(
                f"Kubernetes refused {info.kind} {namespace}/{name}", field_problems(exc, where)
            ) from None
