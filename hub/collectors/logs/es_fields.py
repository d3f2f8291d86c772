"""The Elasticsearch store's field side, pure (no client here): the field map of each preset
(the hub's own or another shipper's layout), dotted-path access into documents, timestamps,
workloads from pod names, and keyword expressions as query DSL over the hub's word field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from hub.collectors.logs.query import And, Expr, Or, Term
from hub.collectors.logs.store import (
    _day_start,
    parse_rfc3339_ns,
)
from hub.collectors.logs.words import WORDS_VERSION

BACKEND = "elasticsearch"


EXPORT_PAGE = 2_000


PIT_KEEP_ALIVE = "2m"  # long enough for a slow client to read one page of the export


OLDEST_TTL = 60.0  # seconds the oldest stored time is trusted before it is asked again


_DATED = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")


T = TypeVar("T")


@dataclass(frozen=True)
class FieldMap:
    """Where each log field lives in a document; ``keyword`` is appended for exact filters."""

    time: str
    message: str
    namespace: str
    pod: str
    container: str
    node: str
    pod_uid: str
    workload: str | None  # None: derived from the pod name
    keyword: str = ""
    namespace_uid: str | None = None  # None: the documents do not know their namespace's UID
    # None: the documents do not say their cluster (every line is the implicit cluster's); a
    # document without the field (written before it existed) is the implicit cluster's too.
    cluster: str | None = None

    def exact(self, name: str) -> str:
        return name + self.keyword


PRESETS: dict[str, FieldMap] = {
    "kubehub": FieldMap(
        time="time",
        message="message",
        namespace="namespace",
        pod="pod",
        container="container",
        node="node",
        pod_uid="pod_uid",
        workload="workload",
        namespace_uid="namespace_uid",
        cluster="cluster",
    ),
    "kubesphere": FieldMap(
        time="time",
        message="log",
        namespace="kubernetes.namespace_name",
        pod="kubernetes.pod_name",
        container="kubernetes.container_name",
        node="kubernetes.host",
        pod_uid="kubernetes.pod_id",
        workload=None,
        keyword=".keyword",
    ),
}


# Pod names a controller generates: Deployment <name>-<rs hash>-<5>, DaemonSet/Job <name>-<5>,
# StatefulSet <name>-<ordinal>. Used only when the indices carry no workload field.
_POD_SUFFIX = re.compile(r"^(?P<w>.+?)(?:-[a-z0-9]{6,10}-[a-z0-9]{5}|-[a-z0-9]{5}|-\d+)$")


_REGEXP_RESERVED = re.compile(r'([.?+*|{}\[\]()"\\#@&<>~])')


def workload_of_pod(pod: str) -> str:
    m = _POD_SUFFIX.match(pod)
    return m.group("w") if m else ""


def _pod_pattern(workload: str) -> str:
    w = _REGEXP_RESERVED.sub(r"\\\1", workload)
    return f"{w}-[a-z0-9]{{6,10}}-[a-z0-9]{{5}}|{w}-[a-z0-9]{{5}}|{w}-[0-9]+"


def _get(doc: Mapping[str, Any], path: str) -> Any:
    if path in doc:
        return doc[path]
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


# The form the hub writes (iso_micro): read by slicing, ~3x faster than the general parser
# (a page of 50 lines is 50 of these on every search); anything else takes the general one.
_WRITTEN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
# "YYYY-MM-DD" -> that day's first second (a page's lines fall on a day or two: one dict
# lookup instead of three int() and the calendar sum per line; bounded, cleared when full).
_MIDNIGHTS: dict[str, int] = {}


def _parse_stamp(value: Any) -> tuple[float, str]:
    """A stored time as epoch seconds, with the text itself when it is in the form the hub
    writes (which :func:`iso_micro` would give back for those seconds), else ""."""
    if isinstance(value, int | float):
        return float(value) / 1000.0, ""  # epoch_millis, the only numeric form ES dates take
    if isinstance(value, str):
        if len(value) == 27 and _WRITTEN.fullmatch(value):
            midnight = _MIDNIGHTS.get(value[:10])
            if midnight is None:
                midnight = _day_start(int(value[:4]), int(value[5:7]), int(value[8:10]))
                if midnight is not None:
                    if len(_MIDNIGHTS) >= 4096:
                        _MIDNIGHTS.clear()
                    _MIDNIGHTS[value[:10]] = midnight
            hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
            if midnight is not None and hour <= 23 and minute <= 59 and second <= 59:
                seconds = midnight + hour * 3600 + minute * 60 + second
                return (seconds * 1_000_000_000 + int(value[20:26]) * 1000) / 1e9, value
        ns = parse_rfc3339_ns(value)
        if ns is not None:
            return ns / 1e9, ""
    return 0.0, ""


WORDS_FIELD = "words"  # the message's words, cut by the hub (hub.collectors.logs.words)


# Splits at spaces: the words arrive cut, lowercased and marked. The built-in analyzer, not a
# custom one: the integration-test distribution has no analysis-common module, so no custom
# analyzer of any type but "custom" + the standard tokenizer can be defined there.
WORDS_ANALYZER = "whitespace"


def compile_text(expr: Expr, term: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The keyword tree as a bool query; ``term`` turns one term's text into its clause."""
    if isinstance(expr, Term):
        return term(expr.text)
    if isinstance(expr, And):
        return {"bool": {"filter": [compile_text(i, term) for i in expr.items]}}
    if isinstance(expr, Or):
        return {"bool": {"should": [compile_text(i, term) for i in expr.items], "minimum_should_match": 1}}
    raise TypeError(expr)


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def index_template(preset: str, f: FieldMap, pattern: str, replicas: int) -> dict[str, Any]:
    """The index template body for ``pattern``: explicit mappings for the preset's fields (the
    hub's own flat keywords and ``words``, or the shape Fluent Bit's dynamic mapping produces, so
    both can share indices)."""
    if preset == "kubehub":
        keyword = {"type": "keyword", "ignore_above": 1024}
        properties: dict[str, Any] = {
            f.time: {"type": "date_nanos"},
            f.message: {"type": "text", "index": False},
            WORDS_FIELD: {"type": "text", "analyzer": WORDS_ANALYZER, "norms": False},
            f.namespace: keyword,
            f.pod: keyword,
            f.container: keyword,
            f.node: keyword,
            f.pod_uid: keyword,
            "workload": keyword,
            "namespace_uid": keyword,
            "cluster": keyword,
        }
    else:  # the shape Fluent Bit's dynamic mapping produces, so both can share indices
        text_kw = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
        properties = {
            f.time: {"type": "date_nanos"},
            f.message: {"type": "text", "analyzer": "standard"},
            "kubernetes": {
                "properties": {
                    "namespace_name": text_kw,
                    "pod_name": text_kw,
                    "container_name": text_kw,
                    "host": text_kw,
                    "pod_id": text_kw,
                }
            },
        }
    settings: dict[str, Any] = {
        "number_of_shards": 1,
        "number_of_replicas": replicas,
        "refresh_interval": "1s",
    }
    meta: dict[str, Any] = {"managed_by": "kubehub", "preset": preset}
    mappings: dict[str, Any] = {"dynamic": False, "properties": properties}
    if preset == "kubehub":
        meta["words"] = WORDS_VERSION
        mappings["_source"] = {"excludes": [WORDS_FIELD]}  # derived from message: not kept twice
        mappings["_meta"] = {"kubehub_words": WORDS_VERSION}  # what _find_old_word_indices looks for
    return {
        "index_patterns": [pattern],
        "priority": 90,
        "template": {"settings": settings, "mappings": mappings},
        "_meta": meta,
    }


def bulk_item_reason(result: Mapping[str, Any]) -> str:
    """Why the bulk API refused one line (its item's ``error``), for the log and the error."""
    err = result.get("error")
    if isinstance(err, Mapping):
        return f"{err.get('type', '')}: {err.get('reason', '')}"
    return str(err)
