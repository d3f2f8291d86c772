"""Support for the logs integration tests: where the real Elasticsearch is, and a throwaway store.

The Elasticsearch is the sandbox's (``sandbox`` fixture of tests/integration/conftest.py when it
is there, else ``kubehub sandbox status --json``); ``KUBEHUB_TEST_ES_URL`` overrides both. Each
store gets its own index prefix and is deleted with its template afterwards, so tests never see
each other's (or the sandbox's demo) lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hub.collectors.logs.elasticsearch import ElasticsearchLogStore


def sandbox_status(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The sandbox's status (URLs, kubeconfig): the ``sandbox`` fixture's when there is one."""
    try:
        sandbox: Any = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        sandbox = None
    if isinstance(sandbox, dict):
        return sandbox
    if sandbox is not None:
        status = getattr(sandbox, "status", None)
        if callable(status):
            return dict(status())
        return {k: getattr(sandbox, k) for k in ("elasticsearch_url", "kubeconfig") if hasattr(sandbox, k)}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "hub.cli", "sandbox", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return dict(json.loads(out.stdout))
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"the sandbox is not available ({exc}); start it with `kubehub sandbox up`")


def elasticsearch_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("KUBEHUB_TEST_ES_URL") or sandbox_status(request).get("elasticsearch_url")
    if not url:
        pytest.fail("no Elasticsearch: start the sandbox (kubehub sandbox up) or set KUBEHUB_TEST_ES_URL")
    return str(url)


def es_request(url: str, method: str, path: str, body: Any = None) -> Any:
    """A raw HTTP call to Elasticsearch (tests seed foreign-shaped documents without our adapter)."""
    data = None
    headers = {}
    if body is not None:
        if isinstance(body, list):
            data = ("\n".join(json.dumps(line, ensure_ascii=False) for line in body) + "\n").encode()
            headers["Content-Type"] = "application/x-ndjson"
        else:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


@contextmanager
def throwaway_es_store(url: str, **kwargs: Any) -> Iterator[ElasticsearchLogStore]:
    prefix = kwargs.pop("index_prefix", f"kh-test-{uuid.uuid4().hex[:10]}")
    store = ElasticsearchLogStore(url, index_prefix=prefix, **kwargs)
    try:
        yield store
    finally:
        try:
            store.drop_before("9999-12-31")
            es_request(url, "DELETE", f"/_index_template/kubehub-{prefix}")
        except Exception:  # the template may not exist when nothing was written
            pass
        store.close()
