"""The one parser of request input on the web side: query parameters, JSON bodies, path ids.

Why one module: the fuzzing of issue 20 found the same mistakes in several private copies of
"read a whole number", "read a time" and "read a JSON body" — numbers past SQLite's 64-bit
INTEGER, NaN and infinities that reached the stores, nesting that overflowed the JSON reader's
recursion. Every reader here is bounded (finite, within the ranges stated in README "Input
limits") and every refusal is an :class:`~hub.errors.InvalidInput` (400) naming the field, so a
view never has to think about hostile input again. Times and durations use the core's bounded
``hub.timeutil`` parsers, which the hub's own documents (policies, silences) use as well.

The builders at the end (:func:`log_params`, :func:`monitoring_request`) turn a whole query
string into the typed request the logs and monitoring services take.

Just over 400 lines because the point of the module is that every reader is here, in one place.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from hub.clusters.model import NAME_RE as CLUSTER_NAME_RE
from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import MAX_PAGE_SIZE, MAX_WINDOW, LogParams
from hub.collectors.monitoring import MonitoringRequest
from hub.errors import InvalidInput, NotFound
from hub.timeutil import parse_duration, parse_time

# -- documented limits (README "Input limits", docs/api.md) -------------------------------------
MAX_BODY_BYTES = 4 * 1024 * 1024  # Flask's MAX_CONTENT_LENGTH: larger bodies are a 413
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in a JSON body
MAX_JSON_DIGITS = 20  # digits of an integer in a JSON body (10^20 > SQLite's 2^63)
MAX_PARAM_CHARS = 64 * 1024  # one query parameter or form field
MAX_OFFSET = 1_000_000_000  # paging offsets (alerts, history, outbox, audit)
MAX_ID = 2**63 - 1  # row ids: SQLite INTEGER
MAX_NAMES = 5000  # values of one comma list
MAX_CLUSTERS = 50  # clusters of one ?cluster= list (log search) or ?clusters= (cross-cluster tables)
# The routes whose ?cluster= may be a comma list (the log search reads several clusters); every
# other route acts on one cluster and refuses a list (tests/unit/test_cluster_param.py checks
# that each of these endpoints exists).
CLUSTER_LIST_ENDPOINTS = frozenset(
    {"api_logs.search_logs", "api_logs.log_histogram", "api_logs.export_logs", "views.logs.search"}
)

_WHOLE = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
_PLAIN_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` cut to ``limit`` characters, so that no error echoes a huge input back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- strings ------------------------------------------------------------------------------------
def check_text(value: str, field: str, *, max_chars: int = MAX_PARAM_CHARS) -> str:
    """Refuse NUL (no store or backend takes it; blaming the backend for it would be wrong),
    lone surrogates (not encodable as UTF-8) and text longer than ``max_chars``."""
    if len(value) > max_chars:
        raise InvalidInput(f"{field} may have at most {max_chars} characters, got {len(value)}", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain the NUL character", field=field)
    if _LONE_SURROGATE.search(value):
        raise InvalidInput(f"{field} holds a lone UTF-16 surrogate, which is not text", field=field)
    return value


def text(args: Mapping[str, Any], name: str, default: str = "", *, max_chars: int = MAX_PARAM_CHARS) -> str:
    """A string parameter (lists, as test clients pass them, are joined with commas)."""
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    return check_text(str(value), name, max_chars=max_chars)


def names(args: Mapping[str, Any], name: str, *, limit: int = MAX_NAMES) -> tuple[str, ...]:
    """A comma list, trimmed, empties and repeats dropped, at most ``limit`` values."""
    items = tuple(dict.fromkeys(p.strip() for p in text(args, name).split(",") if p.strip()))
    if len(items) > limit:
        raise InvalidInput(f"{name}: at most {limit} values, got {len(items)}", field=name)
    return items


def csv_param(name: str) -> list[str]:
    """A comma-list query parameter of the current request."""
    return list(names(request.args, name))


# -- clusters -----------------------------------------------------------------------------------
def clusters(args: Any, *, many: bool = True, name: str = "cluster") -> tuple[str, ...]:
    """``?cluster=`` (or ``name``: the monitoring tables' ``clusters``), checked: given once,
    each value a cluster name by the registry's own rule (:data:`hub.clusters.model.NAME_RE`:
    1-40 lowercase letters, digits or '-'), a comma list of
    at most :data:`MAX_CLUSTERS` when ``many``, else one name. Empty: none named (the implicit
    cluster). Every refusal is a 400 naming the parameter; whether a cluster *exists* is the
    permission check's business (web.access), which knows who may learn it."""
    if hasattr(args, "getlist"):
        values = list(args.getlist(name))
    else:  # a plain mapping (the console's own parameters; test clients' lists are one list)
        value = args.get(name)
        values = [",".join(str(v) for v in value)] if isinstance(value, list | tuple) else [value]
    values = [v for v in values if v is not None]
    if not values:
        return ()
    if len(values) > 1:
        raise InvalidInput(f"give {name} once (a comma list names several)", field=name)
    raw = str(values[0])
    if len(raw) > MAX_CLUSTERS * 41:
        raise InvalidInput(f"{name} may have at most {MAX_CLUSTERS * 41} characters, got {len(raw)}", field=name)
    items = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if len(items) > (MAX_CLUSTERS if many else 1):
        if not many:
            raise InvalidInput(f"{name} names one cluster here (a comma list is for the log search)", field=name)
        raise InvalidInput(f"{name}: at most {MAX_CLUSTERS} clusters, got {len(items)}", field=name)
    for item in items:
        if not CLUSTER_NAME_RE.match(item):
            raise InvalidInput(
                f"{name} must hold cluster names (1-40 lowercase letters, digits or '-', starting and ending "
                f"with a letter or digit), got {_short(item)}",
                field=name,
            )
    return items


def request_clusters() -> tuple[str, ...]:
    """The current request's ``?cluster=`` through :func:`clusters`: a list only on the routes
    of :data:`CLUSTER_LIST_ENDPOINTS`."""
    return clusters(request.args, many=request.endpoint in CLUSTER_LIST_ENDPOINTS)


# -- numbers ------------------------------------------------------------------------------------
def whole(value: Any, field: str, *, lo: int, hi: int) -> int:
    """A whole number from a query string or a JSON value, within ``lo..hi``.

    Text must be plain ASCII digits (``int()`` alone would take ``1_000``, ``٣`` and 4,000
    digits); JSON floats are taken when integral (``3.0``); NaN, infinities and booleans are not.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a whole number, got {str(value).lower()}", field=field)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidInput(f"{field} must be a whole number, got {_short(value)}", field=field)
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        raw = str(value).strip()
        if not _WHOLE.fullmatch(raw):
            raise InvalidInput(f"{field} must be a whole number, got {_short(raw)}", field=field)
        number = int(raw)
    if not lo <= number <= hi:
        raise InvalidInput(f"{field} must be between {lo} and {hi}, got {_short(number)}", field=field)
    return number


def integer(
    args: Mapping[str, Any], name: str, default: int, *, lo: int = 0, hi: int = MAX_OFFSET, lenient: bool = False
) -> int:
    """A whole-number parameter, ``default`` when absent or empty.

    ``lenient`` (console pages, whose links users edit by hand): a wrong value is ``default``
    and one out of range is clamped, instead of a 400.
    """
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not lenient:
        return whole(raw, name, lo=lo, hi=hi)
    try:
        return min(hi, max(lo, whole(raw, name, lo=-MAX_ID - 1, hi=MAX_ID)))
    except InvalidInput:
        return default


def int_param(name: str, default: int, *, minimum: int = 0, maximum: int = MAX_OFFSET) -> int:
    """A whole-number query parameter of the current request (offsets default to <= 10^9)."""
    return integer(request.args, name, default, lo=minimum, hi=maximum)


def path_id(value: int, what: str) -> int:
    """A row id from the path (``<int:...>`` takes any length): beyond SQLite's range it names
    no row, so it is a 404 like any other id that does not exist."""
    if not 0 <= value <= MAX_ID:
        raise NotFound(f"no {what} {_short(value)}")
    return value


# -- times and durations ----------------------------------------------------------------------
def time(args: Mapping[str, Any], name: str) -> float | None:
    """Epoch seconds or RFC 3339 between 1970 and 2100 (``hub.timeutil.parse_time``); None when absent."""
    raw = text(args, name).strip()
    return parse_time(raw, field=name) if raw else None


def duration(args: Mapping[str, Any], name: str) -> float | None:
    """A duration (``30``, ``0.5``, ``5m``, ``1h30m``) of at most ten years; None when absent."""
    raw = text(args, name).strip()
    if not raw:
        return None
    if _PLAIN_SECONDS.fullmatch(raw):  # Prometheus's plain seconds; float() alone takes "nan", "1_0"
        return parse_duration(float(raw), field=name)
    return parse_duration(raw, field=name)


# -- JSON bodies --------------------------------------------------------------------------------
def _json_depth(data: Any, limit: int) -> int:
    """Deepest nesting of arrays and objects in decoded ``data``, level by level (no recursion,
    one list comprehension per level), or ``limit + 1`` as soon as it is known to be deeper."""
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        level = [
            v
            for item in level
            for v in (item.values() if isinstance(item, dict) else item)
            if isinstance(v, dict | list)
        ]
    return depth


class _NotANumber:
    """Stands in, while decoding, for a number the hub refuses (NaN, an infinity, 10^400), so
    that the refusal can name the field it was sent in."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _path_of(data: Any, target: Any) -> str:
    """The JSON path (``rules[0].threshold``) of the object ``target`` in ``data``."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if item is target:
            return path or "body"
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
    return "body"


def _check_strings(data: Any) -> None:
    """Every string (and key) of a decoded body through :func:`check_text`, iteratively."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            check_text(item, path or "body", max_chars=MAX_BODY_BYTES)
        elif isinstance(item, dict):
            for key, value in item.items():
                child = f"{path}.{key}" if path else str(key)
                check_text(key, child, max_chars=1000)
                stack.append((child, value))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", value) for i, value in enumerate(item))


def load_json(raw: bytes | str) -> Any:
    """Decode a JSON document within the documented limits, or raise a 400 that says which.

    Depth: the C decoder guards its own recursion (100,000 ``[`` is a RecursionError, caught
    here; it escaped every handler before), and the decoded document is measured without
    recursion. ``NaN``/``Infinity`` (which Python's decoder accepts) and numbers beyond a double
    or :data:`MAX_JSON_DIGITS` digits are refused naming the field they were sent in (they are
    decoded as a placeholder and looked up), as are NUL and lone surrogates in strings
    (which JSON text can only carry as ``\\u`` escapes, so only then are strings walked).
    """
    try:
        body = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidInput("the request body is not UTF-8 text", field="body") from exc
    too_deep = f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep; at most {MAX_JSON_DEPTH} are accepted"
    refused: list[_NotANumber] = []

    def refuse(text: str) -> _NotANumber:
        refused.append(_NotANumber(text))
        return refused[-1]

    def parse_int(text: str) -> Any:
        return refuse(text) if len(text.lstrip("-")) > MAX_JSON_DIGITS else int(text)

    def parse_float(text: str) -> Any:
        value = float(text)
        return value if math.isfinite(value) else refuse(text)

    try:
        data = json.loads(body, parse_int=parse_int, parse_float=parse_float, parse_constant=refuse)
    except RecursionError as exc:  # the C decoder guards its recursion: deeper than ~1,000 levels
        raise InvalidInput(too_deep, field="body") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", field="body"
        ) from exc
    except ValueError as exc:
        raise InvalidInput(f"the request body is not acceptable JSON: {str(exc)[:200]}", field="body") from exc
    if refused:
        field = _path_of(data, refused[0])
        raise InvalidInput(
            f"{field}: {_short(refused[0].text)} is not a number the hub accepts (finite, integers of at most "
            f"{MAX_JSON_DIGITS} digits)",
            field=field,
        )
    if _json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InvalidInput(too_deep, field="body")
    # UTF-8 bytes cannot hold a lone surrogate and JSON text no raw NUL: both arrive as \u escapes.
    if not isinstance(raw, bytes) or _SUSPECT_ESCAPE.search(body):
        _check_strings(data)
    return data


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise InvalidInput("the request needs a JSON body", field="body")
        return {}
    if not request.is_json:
        raise InvalidInput("the request body must be JSON (send Content-Type: application/json)", field="body")
    data = load_json(raw)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    return data


def check_request() -> None:
    """Every query parameter, form field and the path through :func:`check_text` (run before
    each request): NUL or a 1 MB parameter is the caller's mistake wherever it is sent."""
    if "\x00" in request.path:
        raise InvalidInput("the path must not contain the NUL character", field="path")
    for name, value in _items(request.args):
        check_text(name, "query parameter name", max_chars=200)
        check_text(value, name)
    request_clusters()  # every route's ?cluster=, in this one place
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in _items(request.form):
            check_text(name, "form field name", max_chars=200)
            check_text(value, name, max_chars=MAX_BODY_BYTES)


def _items(multi: Any) -> Iterable[tuple[str, str]]:
    return multi.items(multi=True)


# -- whole requests -----------------------------------------------------------------------------
def log_params(args: Mapping[str, Any]) -> LogParams:
    """A log search, histogram or export request (API.md "Logs"); every error names its parameter."""
    start, end = time(args, "start"), time(args, "end")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("the time range is reversed or empty: end must be after start", field="end")
    sort = text(args, "sort").strip().lower() or "desc"
    if sort not in ("desc", "asc"):
        raise InvalidInput(f"sort must be 'desc' or 'asc', got {_short(sort)}", field="sort")
    offset = integer(args, "from", 0, lo=0, hi=MAX_WINDOW)
    size = integer(args, "size", 50, lo=1, hi=MAX_PAGE_SIZE)
    if offset + size > MAX_WINDOW:
        raise InvalidInput(
            f"from + size may reach at most {MAX_WINDOW} lines; narrow the time range instead of paging deeper",
            field="from",
        )
    q = text(args, "q", max_chars=4096)
    interval = duration(args, "interval")
    if interval is not None and (interval < 1 or interval != int(interval)):
        raise InvalidInput("interval must be a whole number of seconds (1s or more)", field="interval")
    return LogParams(
        namespaces=names(args, "namespaces"),
        workloads=names(args, "workloads"),
        pods=names(args, "pods"),
        containers=names(args, "containers"),
        clusters=clusters(args),
        q=q,
        text=parse_keywords(q),
        start=start,
        end=end,
        sort=sort,  # type: ignore[arg-type]
        offset=offset,
        size=size,
        interval=interval,
    )


def monitoring_request(service: Any, level: str, args: Mapping[str, Any]) -> MonitoringRequest:
    """A monitoring request (API.md "Monitoring"): numbers, times and durations are read here,
    names are checked against the catalogue by the service (``MonitoringService.build``)."""
    keys = ("metrics", "sort_metric", "sort_type", "stat", *service.filter_params)
    named = {name: text(args, name) for name in keys if args.get(name) is not None}
    return service.build(
        level,
        named,
        time=time(args, "time"),
        start=time(args, "start"),
        end=time(args, "end"),
        step=duration(args, "step"),
        page=integer(args, "page", 1, lo=1, hi=1_000_000),
        limit=integer(args, "limit", 0, lo=1, hi=service.max_limit) or None,
        window=duration(args, "window"),
    )
