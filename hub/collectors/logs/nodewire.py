"""What a node collector sends to ``POST /api/v1/logs/ingest``, and how the hub checks it.

A body is ``{"node": "<node name>", "records": [{"namespace", "pod", "pod_uid", "container",
"stream", "time_ns", "message", "file", "offset"}, ...]}``. ``file`` is the identity of the CRI
log file the record was read from (``<st_dev>:<st_ino>:<fingerprint of its first line>``: the
inode survives the kubelet's renames, the fingerprint tells a reused inode apart)
and ``offset`` the byte where the record starts in it: together they are the record's identity
in the store (:func:`hub.collectors.logs.nodecri.record_uid`), so a batch sent twice (its answer
lost, the collector restarted) is stored once.

Collectors authenticate with a **collector token** (``khc_`` + 43 URL-safe characters), a kind
of credential apart from users' API tokens and sessions: it can only write logs (it reads
nothing, belongs to no user and is never accepted by any other route), and user tokens are not
accepted here. The hub keeps only the SHA-256 digests of the tokens it accepts
(``KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256``); ``kubehub collector-token`` makes a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hub.collectors.logs.collection import CollectionRules
from hub.collectors.logs.nodecri import ContainerRef, Record, record_uid, workload_from_pod_name
from hub.collectors.logs.store import MAX_MESSAGE_CHARS, LogRecord
from hub.errors import HubError, Unauthenticated, Unprocessable

MAX_INGEST_RECORDS = 5_000  # per request; the collector sends at most 1,000
MAX_INGEST_BYTES = 4 * 1024 * 1024  # the web layer's body limit (web.params.MAX_BODY_BYTES)
TOKEN_PREFIX = "khc_"
MAX_PROBLEMS = 20

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_UID = re.compile(r"^[0-9a-zA-Z-]{1,64}$")
_FILE_ID = re.compile(r"^\d{1,20}:\d{1,20}(:[0-9a-f]{16})?$")
_MAX_TIME_NS = 4_102_444_800 * 10**9  # 2100-01-01, the bound of every time the hub takes


class PayloadTooLarge(HubError):
    """The body holds more than a request may (413); ``field`` names the part."""

    status = 413


class RecordsRejected(Unprocessable):
    """Fields of some records are not acceptable (422): ``field`` names the first, ``problems``
    lists up to 20 with the JSON path of each."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} record field(s) are not acceptable", field=problems[0]["field"])
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().to_dict())
        body["problems"] = self.problems
        return body


# -- tokens ------------------------------------------------------------------------------------
def new_collector_token() -> tuple[str, str]:
    """A new collector token and the digest the hub is configured with."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_digests(setting: str) -> tuple[str, ...]:
    """The comma list of the setting, lower-cased; each must be 64 hex digits."""
    out = []
    for part in setting.split(","):
        part = part.strip().lower()
        if part:
            if not re.fullmatch(r"[0-9a-f]{64}", part):
                raise ValueError(part)
            out.append(part)
    return tuple(out)


def check_collector_token(token: str | None, digests: Iterable[str]) -> None:
    """Raise Unauthenticated unless ``token`` is a collector token the hub accepts."""
    accepted = tuple(digests)
    if not accepted:
        raise Unauthenticated("no collector token is configured (KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256)")
    if not token or not token.startswith(TOKEN_PREFIX):
        raise Unauthenticated("send a collector token (Authorization: Bearer khc_...); user tokens are not accepted")
    digest = token_digest(token)
    found = False
    for candidate in accepted:  # compare with every one, so timing says nothing about which
        found |= hmac.compare_digest(digest, candidate)
    if not found:
        raise Unauthenticated("the collector token is not accepted here")


# -- the body ----------------------------------------------------------------------------------
def encode_record(ref: ContainerRef, file_id: str, rec: Record) -> dict[str, Any]:
    return {
        "namespace": ref.namespace,
        "pod": ref.pod,
        "pod_uid": ref.pod_uid,
        "container": ref.container,
        "stream": rec.stream,
        "time_ns": rec.time_ns,
        "message": rec.message,
        "file": file_id,
        "offset": rec.start,
    }


Labels = Callable[[str, str, str], tuple[str, str]]  # (namespace, pod, pod_uid) -> (workload, namespace uid)


def _text(item: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str], problems: list) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        problems.append({"field": f"{where}.{key}", "error": f"{key} must be a valid name (got {str(value)[:80]!r})"})
        return ""
    return value


def decode_batch(body: Any, *, labels: Labels | None = None) -> tuple[str, list[LogRecord]]:
    """Check an ingest body and turn it into store records; 413/422 name the field at fault.

    ``cluster`` (optional) names the cluster the node belongs to; every record gets it (none:
    the hub's write path labels the records with its implicit cluster). Whether the hub knows
    the cluster is the route's business."""
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object with node and records", field="body")
    cluster = body.get("cluster", "")
    if not isinstance(cluster, str) or (cluster and not _DNS_LABEL.match(cluster)):
        raise Unprocessable("cluster must be a cluster's name", field="cluster")
    node = body.get("node")
    if not isinstance(node, str) or not _DNS_SUBDOMAIN.match(node):
        raise Unprocessable("node must be the node's name", field="node")
    records = body.get("records")
    if not isinstance(records, list):
        raise Unprocessable("records must be a list", field="records")
    if len(records) > MAX_INGEST_RECORDS:
        raise PayloadTooLarge(
            f"records holds {len(records)} records; send at most {MAX_INGEST_RECORDS} per request", field="records"
        )
    problems: list[dict[str, str]] = []
    out: list[LogRecord] = []
    for i, item in enumerate(records):
        where = f"records[{i}]"
        if len(problems) >= MAX_PROBLEMS:
            break
        if not isinstance(item, dict):
            problems.append({"field": where, "error": "each record must be an object"})
            continue
        before = len(problems)
        namespace = _text(item, "namespace", where, _DNS_LABEL, problems)
        pod = _text(item, "pod", where, _DNS_SUBDOMAIN, problems)
        pod_uid = _text(item, "pod_uid", where, _UID, problems)
        container = _text(item, "container", where, _DNS_LABEL, problems)
        file_id = _text(item, "file", where, _FILE_ID, problems)
        if item.get("stream") not in ("stdout", "stderr"):
            problems.append({"field": f"{where}.stream", "error": "stream must be stdout or stderr"})
        time_ns = item.get("time_ns")
        if not isinstance(time_ns, int) or isinstance(time_ns, bool) or not 0 <= time_ns < _MAX_TIME_NS:
            problems.append({"field": f"{where}.time_ns", "error": "time_ns must be epoch nanoseconds before 2100"})
        offset = item.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**63:
            problems.append({"field": f"{where}.offset", "error": "offset must be a byte offset (an integer >= 0)"})
        message = item.get("message")
        if not isinstance(message, str):
            problems.append({"field": f"{where}.message", "error": "message must be a string"})
        elif len(message) > MAX_MESSAGE_CHARS or "\x00" in message:
            problems.append(
                {
                    "field": f"{where}.message",
                    "error": f"message must be at most {MAX_MESSAGE_CHARS} characters, no NUL",
                }
            )
        if len(problems) > before:
            continue
        ref = ContainerRef(namespace, pod, pod_uid, container)
        workload, ns_uid = labels(namespace, pod, pod_uid) if labels else ("", "")
        out.append(
            LogRecord(
                time=int(time_ns) / 1e9,  # type: ignore[arg-type]
                namespace=namespace,
                pod=pod,
                container=container,
                message=str(message),
                workload=workload or workload_from_pod_name(pod),
                node=node,
                pod_uid=pod_uid,
                uid=record_uid(ref, file_id, int(offset)),  # type: ignore[arg-type]
                namespace_uid=ns_uid,
                cluster=cluster,
            )
        )
    if problems:
        raise RecordsRejected(problems)
    return node, out


def collected(records: list[LogRecord], rules: CollectionRules) -> list[LogRecord]:
    """The records whose project collects their container (per-project collection settings):
    the node collector reads every container on its node, the hub decides what is stored. A
    record is judged by the project of its own cluster (its ``cluster`` label), never by a
    same-named project of another cluster."""
    return [r for r in records if rules.admits_in(r.cluster, r.namespace, r.container)]


def cluster_labels(cluster: Any) -> Labels:
    """Workload and namespace UID of a pod from the hub's watch cache (no API request); empty
    when the cache does not hold the pod (deleted meanwhile, no cluster connected)."""
    pods: dict[tuple[str, str], Any] = {}
    ns_uids: dict[str, str] = {}
    loaded: set[str] = set()

    def labels(namespace: str, pod: str, pod_uid: str) -> tuple[str, str]:
        if cluster is None:
            return "", ""
        if namespace not in loaded:
            loaded.add(namespace)
            try:
                for p in cluster.pods([namespace]):
                    pods[(namespace, p.uid)] = p
                uid = cluster.namespace_uid(namespace)
            except HubError:
                uid = None
            ns_uids[namespace] = uid or ""
        found = pods.get((namespace, pod_uid))
        owner = cluster.pod_workload(found) if found is not None else None
        return (owner[1] if owner else ""), ns_uids.get(namespace, "")

    return labels
