"""Probes and resources of a workload's containers, edited in a form (issue 19).

Pure: the form or JSON body is checked here (each mistake a 400 naming its field, such as
``liveness_probe.port`` or ``resources.limits.memory``) and turned into JSON-patch operations on
the live object; ``workload_actions.py`` reads the object and sends the patch. Checking here
and not only in the API server matters for two reasons: the API server names its own paths
(``spec.template.spec.containers[0].livenessProbe.httpGet.port``) that a form user never saw,
and it accepts things that are valid but almost surely typos (a request above its limit is
refused by it too, but a probe on port 0 of a named port it only checks for syntax).

The patch changes only what the form holds: the ``cpu`` and ``memory`` entries of requests and
limits (other resources such as ``ephemeral-storage`` stay), and of a probe its handler and its
four timings; fields the form does not show (``successThreshold``, HTTP headers, ``scheme``
while the handler stays HTTP) are kept from the live probe. A body key that is absent leaves
that part alone; a probe given as ``null`` (or type ``none``) removes it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.collectors.inventory_parse import parse_quantity
from hub.errors import InvalidInput, Unprocessable

PROBES = {"liveness_probe": "livenessProbe", "readiness_probe": "readinessProbe"}
PROBE_TYPES = ("http", "tcp", "exec", "grpc")
_HANDLER_KEY = {"http": "httpGet", "tcp": "tcpSocket", "exec": "exec", "grpc": "grpc"}
RESOURCE_NAMES = ("cpu", "memory")
# timing field -> (API key, smallest allowed, default when the form leaves it empty)
TIMINGS = {
    "initial_delay_seconds": ("initialDelaySeconds", 0, 0),
    "period_seconds": ("periodSeconds", 1, 10),
    "timeout_seconds": ("timeoutSeconds", 1, 1),
    "failure_threshold": ("failureThreshold", 1, 3),
}
MAX_SECONDS = 86_400  # a probe waiting or repeating less often than daily is a typo
_QUANTITY_TEXT = re.compile(r"^\d{1,12}(\.\d{1,6})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?\Z")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?\Z")  # IANA_SVC_NAME
_PATH = re.compile(r"^/[^\s]{0,1023}\Z")


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe as the form holds it."""

    type: str  # http | tcp | exec | grpc
    path: str = ""
    port: int | str = 0  # a number or the container port's name (http, tcp)
    command: tuple[str, ...] = ()
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3

    def handler(self) -> dict[str, Any]:
        if self.type == "http":
            return {"httpGet": {"path": self.path, "port": self.port}}
        if self.type == "tcp":
            return {"tcpSocket": {"port": self.port}}
        if self.type == "grpc":
            return {"grpc": {"port": self.port}}
        return {"exec": {"command": list(self.command)}}

    def to_api(self, live: Mapping[str, Any] | None) -> dict[str, Any]:
        """The probe object, keeping what the live one has that the form does not show."""
        out = dict(live or {})
        same_handler = _HANDLER_KEY[self.type] in out
        for key in _HANDLER_KEY.values():
            out.pop(key, None)
        handler = self.handler()
        if same_handler and self.type == "http":  # keep scheme, host and headers
            kept = dict((live or {}).get("httpGet") or {})
            kept.update(handler["httpGet"])
            handler = {"httpGet": kept}
        out.update(handler)
        for field, (key, _lo, _default) in TIMINGS.items():
            out[key] = getattr(self, field)
        return out


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """What the form changes on one container. ``None`` leaves that part as it is; in
    ``resources`` an entry of ``None`` removes that request or limit."""

    container: str
    resources: Mapping[str, Mapping[str, str | None]] | None = None  # requests|limits -> cpu|memory
    probes: Mapping[str, Probe | None] | None = None  # liveness_probe|readiness_probe -> probe


def _int(value: Any, field: str, lo: int, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_SECONDS:
        raise InvalidInput(f"{field} must be a whole number from {lo} to {MAX_SECONDS}, got {value!r}", field=field)
    return value


def _port(value: Any, field: str) -> int | str:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 5:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 65535:
            return value
    elif isinstance(value, str) and _PORT_NAME.match(value.strip()):
        return value.strip()
    raise InvalidInput(
        f"{field} must be a port number from 1 to 65535 or a container port's name, got {value!r}", field=field
    )


def _probe(
    kind: str, timings: Mapping[str, int], *, path: str = "", port: int | str = 0, command: tuple[str, ...] = ()
) -> Probe:
    return Probe(
        type=kind,
        path=path,
        port=port,
        command=command,
        initial_delay_seconds=timings["initial_delay_seconds"],
        period_seconds=timings["period_seconds"],
        timeout_seconds=timings["timeout_seconds"],
        failure_threshold=timings["failure_threshold"],
    )


def parse_probe(raw: Any, field: str) -> Probe | None:
    """A probe from the body (``None``/type ``none``: no probe)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{field} must be an object or null", field=field)
    kind = str(raw.get("type") or "").strip().lower()
    if kind in ("", "none"):
        return None
    if kind not in PROBE_TYPES:
        raise InvalidInput(
            f"{field}.type must be one of none, {', '.join(PROBE_TYPES)}, got {kind!r}", field=f"{field}.type"
        )
    timings = {f: _int(raw.get(f), f"{field}.{f}", lo, default) for f, (_k, lo, default) in TIMINGS.items()}
    if timings["timeout_seconds"] > timings["period_seconds"]:
        raise InvalidInput(
            f"{field}.timeout_seconds ({timings['timeout_seconds']}) must not exceed "
            f"{field}.period_seconds ({timings['period_seconds']})",
            field=f"{field}.timeout_seconds",
        )
    if kind == "exec":
        command = raw.get("command")
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                raise InvalidInput(f"{field}.command: {exc}", field=f"{field}.command") from exc
        if (
            not isinstance(command, list | tuple)
            or not command
            or not all(isinstance(c, str) and c and len(c) <= 4096 for c in command)
            or len(command) > 64
        ):
            raise InvalidInput(
                f"{field}.command must be a command line (1 to 64 non-empty words), got {raw.get('command')!r}",
                field=f"{field}.command",
            )
        return _probe(kind, timings, command=tuple(command))
    port = _port(raw.get("port"), f"{field}.port")
    if kind == "grpc" and not isinstance(port, int):
        raise InvalidInput(f"{field}.port of a grpc probe must be a number, got {port!r}", field=f"{field}.port")
    path = ""
    if kind == "http":
        path = str(raw.get("path") or "").strip()
        if not _PATH.match(path):
            raise InvalidInput(
                f"{field}.path must start with / and hold no spaces, got {raw.get('path')!r}", field=f"{field}.path"
            )
    return _probe(kind, timings, path=path, port=port)


def parse_resources(raw: Any) -> dict[str, dict[str, str | None]]:
    """``{"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {...}}``; an empty value
    removes that entry. A request above its limit is refused naming the request."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("resources must be an object with requests and limits", field="resources")
    out: dict[str, dict[str, str | None]] = {}
    for group in ("requests", "limits"):
        given = raw.get(group) or {}
        if not isinstance(given, Mapping):
            raise InvalidInput(f"resources.{group} must be an object", field=f"resources.{group}")
        unknown = sorted(set(given) - set(RESOURCE_NAMES))
        if unknown:
            raise InvalidInput(
                f"resources.{group} holds cpu and memory only, not {', '.join(map(str, unknown))}",
                field=f"resources.{group}.{unknown[0]}",
            )
        out[group] = {}
        for name in RESOURCE_NAMES:
            if name not in given:
                continue
            value = given[name]
            text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
            if value is None or text == "":
                out[group][name] = None
                continue
            field = f"resources.{group}.{name}"
            if text is None or not _QUANTITY_TEXT.match(text) or parse_quantity(text) <= 0:
                example = "500m or 1" if name == "cpu" else "256Mi or 1Gi"
                raise InvalidInput(f"{field} must be a positive quantity such as {example}, got {value!r}", field=field)
            out[group][name] = text
    return out


def parse_settings(body: Mapping[str, Any]) -> ContainerSettings:
    container = body.get("container")
    if not isinstance(container, str) or not container.strip():
        raise InvalidInput("container must name one of the workload's containers", field="container")
    resources = parse_resources(body["resources"]) if "resources" in body else None
    probes = (
        {key: parse_probe(body[key], key) for key in PROBES if key in body} if any(k in body for k in PROBES) else None
    )
    if resources is None and probes is None:
        raise InvalidInput("give resources, liveness_probe or readiness_probe to change", field="resources")
    return ContainerSettings(container=container.strip(), resources=resources, probes=probes)


def merged_resources(live: Mapping[str, Any] | None, change: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
    """The container's resources after the change; a request above its limit is refused."""
    out: dict[str, Any] = {g: dict(v) for g, v in (live or {}).items() if isinstance(v, Mapping)}
    for group, entries in change.items():
        target = out.setdefault(group, {})
        for name, value in entries.items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        if not target:
            out.pop(group)
    for name in RESOURCE_NAMES:
        req, lim = (out.get("requests") or {}).get(name), (out.get("limits") or {}).get(name)
        if req is not None and lim is not None and parse_quantity(str(req)) > parse_quantity(str(lim)):
            raise InvalidInput(
                f"resources.requests.{name} ({req}) must not exceed resources.limits.{name} ({lim})",
                field=f"resources.requests.{name}",
            )
    return out


def pod_spec_of(kind: str, obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(JSON-pointer base, pod spec) of a workload object (a CronJob's sits in its job template)."""
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return "/spec/jobTemplate/spec/template/spec", (job.get("template") or {}).get("spec") or {}
    return "/spec/template/spec", (spec.get("template") or {}).get("spec") or {}


def patch_ops(kind: str, obj: Mapping[str, Any], settings: ContainerSettings, what: str) -> list[dict[str, Any]]:
    """JSON-patch operations applying ``settings`` to the live ``obj`` (its resourceVersion
    included, so a concurrent change answers 409 instead of being overwritten)."""
    base, pod_spec = pod_spec_of(kind, obj)
    containers = list(pod_spec.get("containers") or ())
    index = next((i for i, c in enumerate(containers) if c.get("name") == settings.container), None)
    if index is None:
        names = ", ".join(str(c.get("name")) for c in containers)
        raise Unprocessable(f"{what} has no container {settings.container!r}; it has {names}", field="container")
    live = containers[index]
    path = f"{base}/containers/{index}"
    ops: list[dict[str, Any]] = []
    if settings.resources is not None:
        ops.append(
            {
                "op": "add",
                "path": f"{path}/resources",
                "value": merged_resources(live.get("resources"), settings.resources),
            }
        )
    for field, probe in (settings.probes or {}).items():
        key = PROBES[field]
        if probe is not None:
            ops.append({"op": "add", "path": f"{path}/{key}", "value": probe.to_api(live.get(key))})
        elif key in live:
            ops.append({"op": "remove", "path": f"{path}/{key}"})
    rv = (obj.get("metadata") or {}).get("resourceVersion", "")
    ops.append({"op": "replace", "path": "/metadata/resourceVersion", "value": rv})
    return ops


def api_fields(kind: str, obj: Mapping[str, Any], container: str) -> dict[str, str]:
    """Kubernetes field paths of the container -> this body's fields, so a 422 from the API
    server names ``liveness_probe`` rather than ``spec.template.spec.containers[0].livenessProbe``."""
    base, pod_spec = pod_spec_of(kind, obj)
    dotted = base.strip("/").replace("/", ".")
    names = [c.get("name") for c in pod_spec.get("containers") or ()]
    out = {dotted: "container"}
    if container in names:
        at = f"{dotted}.containers[{names.index(container)}]"
        out[f"{at}.resources"] = "resources"
        out.update({f"{at}.{key}": field for field, key in PROBES.items()})
    return out


def probe_view(probe: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A live probe in the form's shape (``type`` ``other`` for a handler the form lacks)."""
    if not probe:
        return None
    out: dict[str, Any] = {f: probe.get(key, default) for f, (key, _lo, default) in TIMINGS.items()}
    if "httpGet" in probe:
        out.update(type="http", path=probe["httpGet"].get("path", "/"), port=probe["httpGet"].get("port", ""))
    elif "tcpSocket" in probe:
        out.update(type="tcp", port=probe["tcpSocket"].get("port", ""))
    elif "grpc" in probe:
        out.update(type="grpc", port=probe["grpc"].get("port", ""))
    elif "exec" in probe:
        out.update(type="exec", command=shlex.join(probe["exec"].get("command") or []))
    else:
        out["type"] = "other"
    return out


def container_views(kind: str, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each container's resources (cpu and memory) and probes, for the form and the GET answer."""
    _base, pod_spec = pod_spec_of(kind, obj)
    out = []
    for c in pod_spec.get("containers") or ():
        res = c.get("resources") or {}
        out.append(
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "resources": {
                    g: {n: (res.get(g) or {}).get(n) for n in RESOURCE_NAMES if (res.get(g) or {}).get(n) is not None}
                    for g in ("requests", "limits")
                },
                **{field: probe_view(c.get(key)) for field, key in PROBES.items()},
            }
        )
    return out
