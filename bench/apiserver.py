"""The kube-apiserver's own request counters (``apiserver_request_total``), shared by the benches
that count the requests a client causes: bench/collector.py (the node collector's pod reads) and
bench/scale.py (everything the hub asks of the API server).

Why the server's counters and not the client's: they also count what a client does not know it
sends (retries, watch re-lists, the official client's discovery calls), and they are the same
figure an operator of the cluster would look at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

_REQ = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Key = tuple[str, str, str]  # (verb, resource, subresource)


def request_totals(kubeconfig: str | Path) -> dict[Key, float]:
    """Requests served so far by the API server of ``kubeconfig``, by (verb, resource, subresource),
    summed over codes, groups, versions and scopes."""
    from sandbox.kube import KubeRest

    api = KubeRest(Path(kubeconfig), pool=1)
    text = api.http.request("GET", api.server + "/metrics").data.decode()
    out: dict[Key, float] = {}
    for line in text.splitlines():
        m = _REQ.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(1)))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def difference(after: Mapping[Key, float], before: Mapping[Key, float]) -> dict[Key, float]:
    """Requests per key between two readings (keys absent before count from zero)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
