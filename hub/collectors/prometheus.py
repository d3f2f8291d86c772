"""Prometheus query adapter: the only importer of ``prometheus_api_client``.

Instant and range queries come back as pandas frames in long form, one row per sample:
the label columns (absent labels are ``""``, as PromQL treats them), then ``series`` (the
position of the series in Prometheus's answer), ``timestamp`` and ``value`` (float64; NaN and
±Inf kept). Conversion is vectorised: the per-sample ``[ts, "value"]`` pairs of the JSON
answer go through numpy in one pass, never one Python object per sample. An instant answer
can also come back as a :class:`Vector` (label sets and values, no frame) for the rankings'
hot path, where building the frame would cost more than the rest of the hub's work.

Every failure is translated here: no answer within the timeout, a refused connection, or a
server-side overload becomes ``BackendUnavailable("prometheus", ...)`` (503); a query Prometheus
rejects becomes :class:`PrometheusQueryError` (502) carrying Prometheus's message.

Queries to a plain ``http://`` URL (no credentials, no proxy from the environment) are sent
as a form ``POST`` over a keep-alive ``http.client`` connection per thread
(``hub/collectors/keepalive_http.py``) instead of through the vendor client: its requests
session cost 0.70-0.79 ms of CPU per ``topk`` against 0.20 ms (measured in process), and a
served ranking was 0.8-0.9 ms faster at the median without it. Answers and errors are the
same on both paths (the same parameters, the same translation); every other URL keeps the
vendor client, which owns TLS, credentials and proxies.

Over 400 lines because the two answer shapes (frames, vectors), their pure JSON parsers and
the one client that sends every query and translates every failure belong to this one
adapter, the only importer of the vendor library.
"""

from __future__ import annotations

import ast
import http.client
import json
import logging
import os
import re
import threading
import time as _time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from hub.collectors.keepalive_http import KeepAliveConnections, usable
from hub.errors import BackendUnavailable, HubError

log = logging.getLogger("kubehub.prometheus")

BACKEND = "prometheus"
_T = TypeVar("_T")
VALUE_COLUMNS = ("series", "timestamp", "value")


class PrometheusQueryError(HubError):
    """Prometheus answered but refused the query (a bad expression or data shape)."""

    status = 502

    def __init__(self, message: str, *, query: str) -> None:
        super().__init__(f"prometheus rejected the query: {message}")
        self.query = query


@dataclass(frozen=True)
class QuerySpec:
    """One query to send: instant when ``start`` is None, else a range query."""

    promql: str
    time: float | None = None
    start: float | None = None
    end: float | None = None
    step: float | None = None


@dataclass(frozen=True)
class Vector:
    """An instant query's answer without a frame: per series (in Prometheus's order) its label
    set, sample time and value (float64; NaN and ±Inf kept, as in a frame).

    Why a second shape: a ranking reads a few dozen (labels, value) pairs, and building a pandas
    frame of them costs more than everything else the hub does with the answer (measured on the
    sandbox's 15-series ``topk``: 0.32 ms for :func:`vector_frame` against 0.014 ms to parse the
    JSON, on a ~2 ms raw query). :meth:`frame` gives the same rows as :func:`result_frame`.
    """

    metrics: tuple[Mapping[str, str], ...] = ()
    timestamps: tuple[float, ...] = ()
    values: tuple[float, ...] = ()

    def __len__(self) -> int:
        return len(self.values)

    @property
    def empty(self) -> bool:
        return not self.values

    def frame(self) -> pd.DataFrame:
        """The long frame :func:`result_frame` builds from the same answer."""
        if not self.values:
            return empty_frame()
        data: dict[str, Any] = _label_columns([dict(m) for m in self.metrics], None)
        data["series"] = np.arange(len(self.values), dtype=np.int64)
        data["timestamp"] = np.array(self.timestamps, dtype=np.float64)
        data["value"] = np.array(self.values, dtype=np.float64)
        return pd.DataFrame(data)


def vector_of(result: Any) -> Vector:
    """An instant query's JSON ``result`` (a vector, or a scalar's bare ``[ts, "v"]``) as a
    :class:`Vector`; values parse as :func:`_pairs_to_arrays` does (``float`` reads "NaN",
    "+Inf" and "-Inf" as numpy does). A range result (``values``) is not an instant answer:
    ValueError."""
    if isinstance(result, list) and result and not isinstance(result[0], dict):
        return Vector(({},), (float(result[0]),), (float(result[1]),))
    if not result:
        return Vector()
    if "value" not in result[0]:
        raise ValueError("not an instant vector")
    pairs = [r["value"] for r in result]
    return Vector(
        tuple(r.get("metric", {}) for r in result),
        tuple(float(p[0]) for p in pairs),
        tuple(float(p[1]) for p in pairs),
    )


def frame_vector(frame: pd.DataFrame) -> Vector:
    """A long instant frame as a :class:`Vector` (a series' last row; empty labels dropped, as
    PromQL treats an empty label as absent): for query backends that hold frames."""
    if frame.empty:
        return Vector()
    labels = label_names(frame)
    last = frame.groupby("series", sort=False).tail(1)
    columns = {name: last[name].to_numpy(dtype=object) for name in labels}
    rows = range(len(last))
    return Vector(
        tuple({name: str(columns[name][i]) for name in labels if columns[name][i] != ""} for i in rows),
        tuple(float(t) for t in last["timestamp"].to_numpy(dtype=float)),
        tuple(float(v) for v in last["value"].to_numpy(dtype=float)),
    )


class QueryBackend(Protocol):
    """What the monitoring service needs from Prometheus (tests give it a fake of their own)."""

    def instant(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> pd.DataFrame: ...

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame: ...

    def many(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[pd.DataFrame]: ...

    def vectors(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[Vector]: ...


# ---------------------------------------------------------------------------------------
# JSON result -> frame (pure; unit-tested without a server)
# ---------------------------------------------------------------------------------------


def empty_frame(labels: Sequence[str] = ()) -> pd.DataFrame:
    data: dict[str, Any] = {name: pd.Series([], dtype=object) for name in labels}
    data["series"] = pd.Series([], dtype=np.int64)
    data["timestamp"] = pd.Series([], dtype=np.float64)
    data["value"] = pd.Series([], dtype=np.float64)
    return pd.DataFrame(data)


def _pairs_to_arrays(pairs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """[[ts, "v"], ...] -> (float64 timestamps, float64 values) in one numpy pass.

    Prometheus writes values as strings ("1.5", "NaN", "+Inf"); numpy's str -> float cast
    understands all of them.
    """
    if not pairs:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    arr = np.array(pairs, dtype=object)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError("samples are not [timestamp, value] pairs")
    ts = arr[:, 0].astype(np.float64)
    values = arr[:, 1].astype(str).astype(np.float64)
    return ts, values


def _label_columns(metrics: list[dict[str, str]], repeats: np.ndarray | None) -> dict[str, np.ndarray]:
    names = sorted({k for m in metrics for k in m})
    columns: dict[str, np.ndarray] = {}
    for name in names:
        per_series = np.array([m.get(name, "") for m in metrics], dtype=object)
        columns[name] = per_series if repeats is None else np.repeat(per_series, repeats)
    return columns


def vector_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """An instant vector answer (``[{"metric": {...}, "value": [ts, "v"]}, ...]``) as a frame."""
    if not result:
        return empty_frame()
    ts, values = _pairs_to_arrays([r["value"] for r in result])
    data: dict[str, Any] = _label_columns([r.get("metric", {}) for r in result], None)
    data["series"] = np.arange(len(result), dtype=np.int64)
    data["timestamp"] = ts
    data["value"] = values
    return pd.DataFrame(data)


def matrix_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """A range answer (``[{"metric": {...}, "values": [[ts, "v"], ...]}, ...]``) as a long frame."""
    if not result:
        return empty_frame()
    counts = np.fromiter((len(r["values"]) for r in result), dtype=np.int64, count=len(result))
    ts, values = _pairs_to_arrays(list(chain.from_iterable(r["values"] for r in result)))
    data: dict[str, Any] = _label_columns([r.get("metric", {}) for r in result], counts)
    data["series"] = np.repeat(np.arange(len(result), dtype=np.int64), counts)
    data["timestamp"] = ts
    data["value"] = values
    return pd.DataFrame(data)


def result_frame(result: Any) -> pd.DataFrame:
    """Any query answer as a frame: vector, matrix, or a scalar (one row without labels)."""
    if isinstance(result, list) and result and not isinstance(result[0], dict):
        # scalar / string results are a bare [ts, "v"] pair
        ts, values = _pairs_to_arrays([result])
        return pd.DataFrame({"series": np.zeros(1, dtype=np.int64), "timestamp": ts, "value": values})
    if not result:
        return empty_frame()
    return matrix_frame(result) if "values" in result[0] else vector_frame(result)


def label_names(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in VALUE_COLUMNS]


# ---------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------

_STATUS = re.compile(r"HTTP Status Code (\d+)")
_FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


class _Refused(Exception):
    """A plain-path answer other than 200, worded as the vendor client words it (so one
    :func:`_translate` reads both)."""


class PrometheusClient:
    """Queries one Prometheus with a bounded timeout; thread-safe (one session per thread).

    ``on_query(kind, outcome)`` is called once per query sent (the hub counts them in its
    own metrics; the alerting benchmark reads :attr:`queries_sent`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        workers: int = 4,
        on_query: Callable[[str, str], None] | None = None,
    ) -> None:
        if not url:
            raise ValueError("a Prometheus URL is required")
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self._on_query = on_query
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sent = 0
        # Each client with the thread that owns it: a client's connections are closed once its
        # thread has ended, or short-lived threads (a pool per job) would leave them open until
        # Prometheus hits its connection limit.
        self._clients: list[tuple[threading.Thread, PrometheusConnect]] = []
        # Few workers: Prometheus shares the machine's cores; more would only queue there.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prometheus")
        # Queries skip the vendor client when nothing it owns (TLS, credentials, an
        # environment proxy) applies to the URL; see the module docstring.
        self._plain: KeepAliveConnections | None = None
        if usable(self.url) and not requests.utils.select_proxy(self.url, requests.utils.get_environ_proxies(self.url)):
            self._plain = KeepAliveConnections(self.url, self.timeout)

    # -- plumbing -----------------------------------------------------------------------
    @property
    def queries_sent(self) -> int:
        return self._sent

    def _client(self) -> PrometheusConnect:
        client = getattr(self._local, "client", None)
        if client is None:
            # No retries (a retry with back-off would stretch a bounded timeout several-fold);
            # read=False re-raises a read timeout as such instead of as a connection error.
            retry = Retry(total=0, read=False)
            client = PrometheusConnect(
                url=self.url, disable_ssl=False, retry=retry, timeout=self.timeout, session=self._session()
            )
            self._local.client = client
            with self._lock:
                ended = [c for t, c in self._clients if not t.is_alive()]
                self._clients = [(t, c) for t, c in self._clients if t.is_alive()]
                self._clients.append((threading.current_thread(), client))
            for old in ended:
                old.close()
        return client

    def _session(self) -> requests.Session:
        """A session that reads the environment's proxy and CA-bundle settings once, here.

        With ``trust_env`` on, requests re-reads every proxy variable of ``os.environ`` and
        looks for ``~/.netrc`` on every query: about 0.3 ms of Python per query, measured
        in-process, against a 2-3 ms ``topk`` of a small cluster. The settings it would find
        are taken now instead (a ``.netrc`` login is not used; Prometheus's credentials, if
        any, belong in its URL or a proxy)."""
        session = requests.Session()
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return session

    @property
    def open_clients(self) -> int:
        """Clients and plain connections still held (one per live thread that has queried);
        for tests and /metrics."""
        with self._lock:
            held = len(self._clients)
        return held + (self._plain.open_connections if self._plain is not None else 0)

    def _count(self, kind: str, outcome: str) -> None:
        with self._lock:
            self._sent += 1
        if self._on_query is not None:
            self._on_query(kind, outcome)

    def _call(self, kind: str, promql: str, fn: Callable[[float], Any], timeout: float | None) -> Any:
        # ``timeout``: what is left of a request's budget, or a longer one asked for on purpose
        # by work done away from any request (a window ranking's table, monitoring_view).
        budget = self.timeout if timeout is None else max(0.1, timeout)
        started = _time.perf_counter()
        try:
            data = fn(budget)
        except requests.exceptions.Timeout as exc:
            self._count(kind, "timeout")
            raise BackendUnavailable(BACKEND, f"no answer from {self.url} within {budget:g} s") from exc
        except requests.exceptions.ConnectionError as exc:
            self._count(kind, "unreachable")
            raise BackendUnavailable(BACKEND, f"cannot connect to {self.url}") from exc
        except requests.exceptions.RequestException as exc:
            self._count(kind, "error")
            raise BackendUnavailable(BACKEND, f"request to {self.url} failed: {exc}") from exc
        except TimeoutError as exc:  # the plain path's (requests' own are caught above)
            self._count(kind, "timeout")
            raise BackendUnavailable(BACKEND, f"no answer from {self.url} within {budget:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            self._count(kind, "unreachable")
            raise BackendUnavailable(BACKEND, f"cannot connect to {self.url}") from exc
        except (PrometheusApiClientException, _Refused) as exc:
            self._count(kind, "error")
            raise _translate(str(exc), promql) from exc
        except ValueError as exc:  # a body that is not the query API's JSON
            self._count(kind, "error")
            raise BackendUnavailable(BACKEND, f"{self.url} did not answer like the Prometheus query API") from exc
        self._count(kind, "ok")
        log.debug("%s query in %.1f ms: %s", kind, (_time.perf_counter() - started) * 1000, promql)
        return data

    # -- queries --------------------------------------------------------------------------
    def instant(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> pd.DataFrame:
        return result_frame(self._instant(promql, time, timeout))

    def vector(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> Vector:
        """:meth:`instant` without the frame (:class:`Vector`)."""
        return vector_of(self._instant(promql, time, timeout))

    def _instant(self, promql: str, time: float | None, timeout: float | None) -> Any:
        def run(budget: float) -> Any:
            params = {"timeout": _server_timeout(budget)}
            if time is not None:
                params["time"] = f"{time:.3f}"
            if self._plain is not None:
                return self._post("/api/v1/query", {"query": promql, **params}, budget)
            return self._client().custom_query(promql, params=params, timeout=budget)

        return self._call("instant", promql, run, timeout)

    def _post(self, path: str, form: dict[str, str], budget: float) -> Any:
        """``POST`` ``form`` to the query API's ``path`` on this thread's keep-alive
        connection: the answer's ``data.result``, as ``custom_query``/``custom_query_range``
        return it. A refusal raises :class:`_Refused` in the vendor's words; a body that is
        not the API's JSON, ValueError."""
        assert self._plain is not None
        body = urllib.parse.urlencode(form).encode()
        status, data = self._plain.request("POST", path, body, _FORM, timeout=budget)
        if status != 200:
            raise _Refused(f"HTTP Status Code {status} ({data!r})")
        try:
            return json.loads(data)["data"]["result"]
        except (KeyError, TypeError) as exc:
            raise ValueError("no data.result in the answer") from exc

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame:
        def run(budget: float) -> Any:
            if self._plain is not None:
                # Whole seconds, as custom_query_range sends them (it rounds the datetimes).
                form = {
                    "query": promql,
                    "start": str(round(datetime.fromtimestamp(start, tz=UTC).timestamp())),
                    "end": str(round(datetime.fromtimestamp(end, tz=UTC).timestamp())),
                    "step": f"{step:g}",
                    "timeout": _server_timeout(budget),
                }
                return self._post("/api/v1/query_range", form, budget)
            return self._client().custom_query_range(
                promql,
                start_time=datetime.fromtimestamp(start, tz=UTC),
                end_time=datetime.fromtimestamp(end, tz=UTC),
                step=f"{step:g}",
                params={"timeout": _server_timeout(budget)},
                timeout=budget,
            )

        return result_frame(self._call("range", promql, run, timeout))

    def many(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[pd.DataFrame]:
        """Send several queries concurrently; the first failure is raised after all finished."""
        return self._concurrently(lambda spec: self._one(spec, timeout), specs)

    def vectors(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[Vector]:
        """:meth:`many` for instant queries, answered as :class:`Vector` (no frames)."""
        if any(spec.start is not None for spec in specs):
            raise ValueError("vectors() takes instant queries only")
        return self._concurrently(lambda spec: self.vector(spec.promql, time=spec.time, timeout=timeout), specs)

    def _concurrently(self, one: Callable[[QuerySpec], _T], specs: Sequence[QuerySpec]) -> list[_T]:
        if len(specs) == 1:
            return [one(specs[0])]
        futures = [self._pool.submit(one, spec) for spec in specs]
        results: list[_T] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
        return results

    def _one(self, spec: QuerySpec, timeout: float | None) -> pd.DataFrame:
        if spec.start is None:
            return self.instant(spec.promql, time=spec.time, timeout=timeout)
        assert spec.end is not None and spec.step is not None
        return self.range(spec.promql, start=spec.start, end=spec.end, step=spec.step, timeout=timeout)

    def probe(self) -> str:
        """For /readyz: a trivial query proves the query API answers (raises BackendUnavailable)."""
        self.instant("vector(1)", timeout=min(self.timeout, 5.0))
        return self.url

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for _, client in self._clients:
                client.close()
            self._clients.clear()
        if self._plain is not None:
            self._plain.close()

    stop = close


def _server_timeout(budget: float) -> str:
    """Prometheus's own evaluation timeout, so it stops working on a query we gave up on.
    Whole milliseconds: Prometheus durations take no fractions."""
    return f"{max(1, int(budget * 1000))}ms"


def _translate(message: str, promql: str) -> HubError:
    """PrometheusApiClientException text -> our error. The client keeps the status and body
    only in the message ("HTTP Status Code 400 (b'{...json...}')"), hence the parse."""
    found = _STATUS.search(message)
    status = int(found.group(1)) if found else 0
    detail = message
    start, end = message.find("("), message.rfind(")")
    if 0 <= start < end:
        try:
            body = ast.literal_eval(message[start + 1 : end])
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            detail = str(json.loads(body).get("error") or detail)
        except (ValueError, SyntaxError, AttributeError):
            pass
    if status >= 500 or status in (0, 429) or "timeout" in detail or "timed out" in detail:
        return BackendUnavailable(BACKEND, f"answered {status or 'with an error'}: {detail}")
    return PrometheusQueryError(detail, query=promql)
