"""The JSON of HTTP receivers: Alertmanager's webhook payload and its v2 API's alerts.

Pure (no I/O): notices and alert rows in, dicts and bytes out. The webhook body follows
Alertmanager's own webhook payload (``version: "4"``, ``groupKey``, ``status``, ``receiver``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``, ``alerts[]``) so
that the chat adapters written for Alertmanager take the hub's messages unchanged; the
Alertmanager receiver posts the alerts themselves, which Alertmanager then groups and routes.

Both sides derive an alert's labels the same way (:func:`alert_labels`), whether from a notice
(the outbox) or from an alert row (the per-cycle re-post), so Alertmanager sees ONE alert per
hub alert: it identifies alerts by their label set.

The signature (:func:`signature`) is HMAC-SHA256 over the exact body bytes sent, with the
receiver's secret as key; docs/alerting.md "Webhooks and Alertmanager" shows how to verify it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.alerts.notify.notice import Notice, format_threshold, format_value
from hub.scope import split_key

SIGNATURE_HEADER = "X-Kubehub-Signature"
TIMESTAMP_HEADER = "X-Kubehub-Timestamp"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended" in webhook payloads
RESOLVING_KINDS = ("resolved", "closed")

# Entity labels copied from the query's row: what tells on-call where (node, workload...). The
# row's other labels (instance, job...) are the catalogue's plumbing, not the alert's identity.
ENTITY_LABELS = ("cluster", "node", "namespace", "workload", "kind", "pod", "container")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alert_labels(
    *,
    policy_name: str,
    rule: str,
    severity: str,
    level: str,
    namespace: str | None,
    entity: str,
    labels: Mapping[str, str],
    implicit_cluster: str = "",
) -> dict[str, str]:
    """An alert's label set. ``implicit_cluster``: the implicit cluster's name in a hub of
    several clusters ('' in a single-cluster hub): an alert that names no cluster otherwise (its
    row's ``cluster`` label, its project's cluster) is the implicit cluster's and says so, as
    every added cluster's alert does and as the email names it (render.Renderer._cluster_of), so
    a chat adapter or an Alertmanager route can tell the clusters' alerts apart."""
    out = {
        "alertname": policy_name,
        "rule": rule,
        "severity": severity,
        "level": level,
        "entity": entity,
        "source": "kubehub",
    }
    for k in ENTITY_LABELS:
        v = labels.get(k)
        if v:
            out[k] = str(v)
    if namespace:
        # The policy's, whatever the row said (the tenant boundary); a project of an added
        # cluster (key <cluster>/<ns>) as its namespace and its cluster.
        cluster, out["namespace"] = split_key(namespace)
        if cluster:
            out["cluster"] = cluster
    if implicit_cluster and not out.get("cluster"):
        out["cluster"] = implicit_cluster
    return out


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits over the sorted label set (Alertmanager's own is FNV-64a; receivers use
    it as an opaque identity only)."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alert_url(public_url: str, alert_id: str) -> str:
    return f"{public_url.rstrip('/')}/alerting/alerts/{alert_id}"


@dataclass(frozen=True)
class HookAlert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str  # firing | resolved
    starts_at: float
    ends_at: float | None  # None: still firing
    generator_url: str

    def webhook(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at) if self.ends_at is not None else ZERO_TIME,
            "generatorURL": self.generator_url,
            "fingerprint": fingerprint(self.labels),
        }

    def alertmanager(self, *, now: float, hold: float) -> dict[str, Any]:
        """One element of ``POST /api/v2/alerts``: a firing alert ends ``hold`` seconds from now
        unless re-posted (Alertmanager resolves alerts that stop being re-posted); a resolved
        one ends when the hub resolved it."""
        ends = self.ends_at if self.ends_at is not None else now + hold
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(ends),
            "generatorURL": self.generator_url,
        }


def _summary(policy_name: str, rule: str, metric: str, value: str, comparator: str, threshold: str, where: str) -> str:
    return f"{policy_name}/{rule}: {metric} is {value} ({comparator} {threshold}) on {where}"


def from_notice(n: Notice, *, public_url: str, implicit_cluster: str = "") -> HookAlert:
    labels = alert_labels(
        policy_name=n.policy_name,
        rule=n.rule,
        severity=n.severity,
        level=n.level,
        namespace=n.namespace,
        entity=n.entity,
        labels=n.labels,
        implicit_cluster=implicit_cluster,
    )
    resolving = n.kind in RESOLVING_KINDS
    value = format_value(n.value, n.unit)
    summary = _summary(
        n.policy_name, n.rule, n.metric, value, n.comparator, format_threshold(n.threshold, n.unit), n.entity
    )
    annotations = {"summary": summary, "value": value, "query": n.query, "notice": n.kind}
    if n.reason:
        annotations["description"] = n.reason
    ended = (n.ended_at or n.at) if resolving else None
    return HookAlert(
        labels=labels,
        annotations=annotations,
        status="resolved" if resolving else "firing",
        starts_at=n.fired_at or n.started_at,
        ends_at=ended,
        generator_url=alert_url(public_url, n.alert_id),
    )


def from_row(row: Mapping[str, Any], *, public_url: str, implicit_cluster: str = "") -> HookAlert:
    """A firing alert as the store keeps it (the per-cycle re-post to Alertmanager)."""
    raw = row["labels"]
    labels = alert_labels(
        policy_name=row["policy_name"],
        rule=row["rule"],
        severity=row["severity"],
        level=row["level"],
        namespace=row["namespace"] or None,
        entity=row["entity"],
        labels=json.loads(raw) if isinstance(raw, str) else (raw or {}),
        implicit_cluster=implicit_cluster,
    )
    value = format_value(row["last_value"], row["unit"])
    threshold = format_threshold(row["threshold"], row["unit"]) if row["threshold"] is not None else ""
    summary = _summary(
        row["policy_name"], row["rule"], row["metric"], value, row["comparator"], threshold, row["entity"]
    )
    return HookAlert(
        labels=labels,
        annotations={"summary": summary, "value": value, "query": row["query"], "notice": "refresh"},
        status="firing",
        starts_at=row["fired_at"] or row["started_at"],
        ends_at=None,
        generator_url=alert_url(public_url, row["id"]),
    )


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


def webhook_payload(
    alerts: Sequence[HookAlert], *, receiver: str, policy_id: str, policy_name: str, public_url: str
) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for one message: the notices of one policy
    decided in one cycle (or held together by a window), grouped by the policy."""
    group = {"alertname": policy_name}
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{policy_name}",policy_id="{policy_id}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": public_url.rstrip("/"),
        "alerts": [a.webhook() for a in alerts],
    }


def body_bytes(payload: Any) -> bytes:
    """The exact bytes sent and signed (compact, UTF-8, keys in a fixed order)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, body): the value of X-Kubehub-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/alerting.md): recompute and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header.strip())
