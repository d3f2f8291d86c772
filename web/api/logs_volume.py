"""``GET /api/v1/logs/ingest/volume-files``: which pods of a node want the log files in their
volumes read (``kubehub.io/log-files``), for that node's collector (docs/logs.md "Volume log
files"; the collector side is :mod:`hub.collectors.logs.nodevolume`).

A module of its own because it is the one route a collector token may *read*: it answers only
names the node's collector would see on its own disk anyway (pods of that node, their UIDs and
the annotation's entries), nothing of any log or any other node.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.collectors.logs import nodevolume, nodewire
from hub.collectors.logs.collection_store import LogCollectionStore
from hub.errors import BackendUnavailable, InvalidInput, NotFound
from web.access import bearer_token, public, request_cluster
from web.util import hub

bp = Blueprint("api_logs_volume", __name__, url_prefix="/api/v1")


@bp.get("/logs/ingest/volume-files")
@public
def ingest_volume_files() -> Any:
    """The pods of ``?node=`` (required; ``?cluster=`` for an added cluster) whose
    ``kubehub.io/log-files`` annotation asks for volume files, with only the entries their
    project collects: ``{"node", "pods": [{"namespace", "pod", "uid", "files": [{"container",
    "volume", "glob"}]}]}``. Authenticated by a collector token (401 otherwise, user tokens
    included), answered from the watch cache (no API request)."""
    h = hub()
    nodewire.check_collector_token(bearer_token(), nodewire.parse_digests(h.settings.logs.collector_token_sha256))
    node = request.args.get("node", "")
    if not node or len(node) > 253:
        raise InvalidInput("node must name the collector's node", field="node")
    name = request_cluster()  # a cluster's name (web.params), or '' for the implicit one
    if name and name != h.clusters.implicit.name:
        if name not in h.clusters.names():
            raise NotFound(f"no cluster {name[:80]!r} is known to this hub", field="cluster")
        cluster = h.added_clusters.get(name)
    else:
        cluster = h.cluster
    if cluster is None:
        raise BackendUnavailable("kubernetes API server", "no cluster is connected, so no pod is known")
    pods = [p for p in cluster.pods() if p.node == node]
    rules = LogCollectionStore(h.db, implicit=h.clusters.implicit.name).rules()
    # Each pod is judged by its own cluster's project of that name (never the implicit namesake).
    wanted = nodevolume.wanted_on_node(pods, lambda ns, container: rules.admits_in(name, ns, container))
    return jsonify({"node": node, "pods": [w.to_dict() for w in wanted]})
