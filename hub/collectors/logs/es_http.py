"""The log store's search requests to Elasticsearch over a plain keep-alive HTTP connection
per thread (the standard library's ``http.client``), beside the ``elasticsearch`` client.

Why: a search is the hub's hottest call to Elasticsearch, and the client's layers (parameter
rewriting, per-call options, the transport's node pool, retry loop and tracing span, urllib3's
pool, the response wrapper) cost about 0.18 ms of CPU per search against 0.17 ms for the whole
request on a bare connection (measured in one process, load average 8 on 2 cores: 0.35 ms vs
0.17 ms). On the served hub that was a tenth of what it added to a search of the tenant of
1,200 namespaces (bench/logs.py). Everything else (mappings, bulk writes, points in time,
retention, probes) keeps using the client.

Only plain ``http://`` URLs without credentials take this path (:func:`usable`); HTTPS and
URLs with a user go through the client, which owns TLS and authentication settings. The answer
is decoded by msgspec (about twice as fast as ``json.loads`` on a page of hits; a search's
answer is the largest document the hub reads per request). The
connection per thread and the one retry on a connection the server closed while idle (a search
changes nothing) are ``hub/collectors/keepalive_http.py``'s, shared with the Prometheus
adapter; any other failure is the caller's to report, as the client's would be.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any

import msgspec

from hub.collectors.keepalive_http import KeepAliveConnections, usable
from hub.errors import BackendUnavailable

__all__ = ["SearchConnections", "usable"]

BACKEND = "elasticsearch"

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class SearchConnections(KeepAliveConnections):
    """``POST`` requests to one Elasticsearch node, each thread on its own keep-alive connection."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url, timeout, default_port=9200)

    def search(self, pattern: str, body: bytes) -> dict[str, Any]:
        """``POST /<pattern>/_search`` with a JSON body (missing indices are no error, as the
        client's calls say): the decoded answer. Failures are ``BackendUnavailable`` in the
        words the store's client calls use (``search failed ...``)."""
        path = f"/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"
        try:
            status, data = self.post(path, body)
        except (OSError, http.client.HTTPException) as exc:
            detail = str(exc) or type(exc).__name__
            raise BackendUnavailable(BACKEND, f"search failed: {detail} ({self.url})") from exc
        try:
            answer = msgspec.json.decode(data)
        except ValueError:  # msgspec's DecodeError is one
            answer = None
        if status >= 400 or not isinstance(answer, dict):
            raise BackendUnavailable(BACKEND, f"search failed with HTTP {status}: {_reason(answer, data)}")
        return answer

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send ``body`` to ``path`` (with its query string); the answer's status and bytes.
        Raises OSError or http.client.HTTPException when no answer came."""
        return self.request("POST", path, body, _HEADERS)


def _reason(answer: Any, data: bytes) -> str:
    """Elasticsearch's own reason for a refusal (``error.reason``), else the start of the body."""
    err = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(err, Mapping):
        return str(err.get("reason") or err.get("type") or "")
    if err:
        return str(err)
    return data[:200].decode("utf-8", "replace") or "no answer body"
