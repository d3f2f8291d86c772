"""Clusters as typed values: how the hub reaches each one's API server, metrics and logs.

Pure: no I/O, no clock, no vendor library. A cluster is one of two things:

* the **implicit** cluster, named by ``clusters.default_name`` (``default``), built from today's
  settings (``kubernetes.*``, ``prometheus.url``, ``logs.*``): a single-cluster install has only
  this one and notices nothing;
* a **registered** cluster, added by a platform admin through ``/api/v1/clusters`` or the
  console, kept in the state store, its credentials (kubeconfig contents or a bearer token)
  encrypted at rest (:mod:`hub.clusters.secretbox`) and never shown back.

Metrics come either from the cluster's **own** Prometheus (``metrics.mode = own``: a URL, series
without a ``cluster`` label) or from one **shared** Prometheus-compatible endpoint holding every
cluster's series apart by a label (``metrics.mode = shared``: the URL, and the value of the
``cluster`` label this cluster's series carry), as Thanos Query or Mimir setups do. Logs likewise:
a store shared by clusters with every line labelled with its cluster (``logs.mode = shared``), or
one store per cluster (``logs.mode = own``: an Elasticsearch URL and the prefix of the cluster's
dated indices there, ``index_prefix``, so two clusters may also keep apart stores in one
Elasticsearch).

:func:`parse_cluster` validates an API body and names the field at fault in every error, in the
request's own terms (``connection.kubeconfig``, ``metrics.label_value``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hub.errors import InvalidInput, Unprocessable

# DNS-1123 label: the name goes into URLs, label values, mail subjects and log fields as it is.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
# A Prometheus label value may be anything; ours is a name an admin types, so the same rule plus dots.
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,62}[A-Za-z0-9])?$")
CONNECTION_MODES = ("kubeconfig", "in-cluster")
METRICS_MODES = ("own", "shared", "none")
LOG_MODES = ("shared", "own")
MAX_KUBECONFIG_BYTES = 256 * 1024  # a kubeconfig with embedded certificates is a few kB
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True)
class Connection:
    """How to reach the API server. Credentials themselves are never part of this value: a
    stored cluster carries ``has_credentials`` and the store keeps the sealed bytes apart."""

    mode: str  # kubeconfig | in-cluster (the implicit cluster also: auto | none, as its settings say)
    kubeconfig_path: str = ""  # a file on the hub's disk (no stored credentials)
    context: str = ""  # kubeconfig context; empty: the current one
    server: str = ""  # with a stored token: the API server URL
    ca_cert: str = ""  # with a stored token: the API server's CA (PEM; public, shown back)
    credential_kind: str = ""  # "" | kubeconfig | token: what the store keeps sealed

    @property
    def has_credentials(self) -> bool:
        return bool(self.credential_kind)

    def describe(self) -> str:
        if self.mode == "in-cluster":
            return "in-cluster service account"
        if self.mode == "none":  # the implicit cluster with KUBEHUB_KUBERNETES_KUBECONFIG=none
            return "no connection"
        if self.mode == "auto":  # the implicit cluster with an empty kubeconfig setting
            return "in-cluster service account or ~/.kube/config" + (
                f" (context {self.context})" if self.context else ""
            )
        if self.credential_kind == "token":
            return f"token for {self.server}"
        what = "stored kubeconfig" if self.credential_kind == "kubeconfig" else f"kubeconfig {self.kubeconfig_path}"
        return what + (f" (context {self.context})" if self.context else "")


@dataclass(frozen=True)
class MetricsSource:
    mode: str  # own | shared | none
    url: str = ""
    label_value: str = ""  # shared: the value of the `cluster` label of this cluster's series

    def selector(self) -> str:
        """The label matcher every query of this cluster carries ('' for its own Prometheus)."""
        return f'cluster="{self.label_value}"' if self.mode == "shared" else ""


# The index name rule of the Elasticsearch store (lower case; the dated suffix follows).
INDEX_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class LogSource:
    mode: str  # shared | own
    url: str = ""  # own: the cluster's Elasticsearch URL
    label_value: str = ""  # shared: the value of the `cluster` field of this cluster's lines
    index_prefix: str = ""  # own: prefix of its dated indices ("": the hub's elasticsearch.index_prefix)


@dataclass(frozen=True)
class Cluster:
    name: str
    display_name: str
    connection: Connection
    metrics: MetricsSource
    logs: LogSource
    implicit: bool = False  # from settings; cannot be edited or removed through the API
    created: float | None = None
    updated: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The public view: never any credential, only whether one is stored."""
        conn = self.connection
        return {
            "name": self.name,
            "display_name": self.display_name,
            "implicit": self.implicit,
            "connection": {
                "mode": conn.mode,
                "kubeconfig_path": conn.kubeconfig_path,
                "context": conn.context,
                "server": conn.server,
                "ca_cert": conn.ca_cert,
                "credentials": conn.credential_kind or "none",
            },
            "metrics": {"mode": self.metrics.mode, "url": self.metrics.url, "label_value": self.metrics.label_value},
            "logs": {
                "mode": self.logs.mode,
                "url": self.logs.url,
                "label_value": self.logs.label_value,
                "index_prefix": self.logs.index_prefix,
            },
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class ClusterSpec:
    """A validated add or edit request: the cluster, and the credentials to seal (if any)."""

    cluster: Cluster
    kubeconfig: str | None = None  # new kubeconfig contents; None: keep what is stored
    token: str | None = None  # new bearer token; None: keep what is stored
    drop_credentials: bool = False

    @property
    def new_credentials(self) -> bool:
        return self.kubeconfig is not None or self.token is not None


def _obj(body: Any, path: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidInput(f"{path or 'body'} must be a JSON object", field=path or None)
    return body


def _str(body: dict[str, Any], key: str, path: str, *, default: str = "", limit: int = 2048) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{path} must be a string", field=path)
    if len(value.encode("utf-8")) > limit:
        raise Unprocessable(f"{path} is longer than {limit} bytes", field=path)
    return value.strip() if key not in ("kubeconfig", "token") else value


def _url(value: str, path: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable(f"{path} must be an http:// or https:// URL, got {value!r}", field=path)
    return value.rstrip("/")


def _check_unknown(body: dict[str, Any], known: set[str], path: str) -> None:
    for key in body:
        if key not in known:
            where = f"{path}.{key}" if path else key
            raise InvalidInput(f"unknown field {where}; known: {', '.join(sorted(known))}", field=where)


def parse_cluster(body: Any, *, name: str | None = None, existing: Cluster | None = None) -> ClusterSpec:
    """Validate an add (``existing`` None) or a full edit of a cluster.

    ``name`` is the path's name on an edit (the body may repeat it, not change it). Credentials:
    ``connection.kubeconfig`` (the file's contents) or ``connection.token`` (with
    ``connection.server``) replace what is stored; leaving both out keeps it;
    ``connection.credentials: "none"`` drops it.
    """
    body = _obj(body, "")
    _check_unknown(body, {"name", "display_name", "connection", "metrics", "logs"}, "")
    given = _str(body, "name", "name", limit=64)
    if name is not None and given and given != name:
        raise Unprocessable(f"name cannot be changed (the path names {name!r})", field="name")
    cluster_name = name if name is not None else given
    if not cluster_name:
        raise Unprocessable("name is required", field="name")
    if not NAME_RE.match(cluster_name):
        raise Unprocessable(
            "name must be 1-40 lowercase letters, digits or '-', starting and ending with a letter or digit",
            field="name",
        )
    display = _str(body, "display_name", "display_name", default=cluster_name, limit=200) or cluster_name

    connection, kubeconfig, token, drop = _connection(_obj(body.get("connection"), "connection"), existing)
    metrics = _metrics(_obj(body.get("metrics"), "metrics"))
    logs = _logs(_obj(body.get("logs"), "logs"), cluster_name)
    cluster = Cluster(
        name=cluster_name,
        display_name=display,
        connection=connection,
        metrics=metrics,
        logs=logs,
        created=existing.created if existing else None,
        updated=existing.updated if existing else None,
    )
    return ClusterSpec(cluster, kubeconfig, token, drop_credentials=drop)


def _connection(body: dict[str, Any], existing: Cluster | None) -> tuple[Connection, str | None, str | None, bool]:
    """The connection, the new kubeconfig contents or token (None: none given), and whether the
    stored credentials are to be dropped.

    Exactly one source per cluster in mode ``kubeconfig``: a file on the hub's disk
    (``kubeconfig_path``), kubeconfig contents (``kubeconfig``), or ``server`` and ``token`` (with
    the server's CA in ``ca_cert``). Leaving the credentials out of an edit keeps the stored ones;
    ``credentials: "none"`` drops them.
    """
    known = {"mode", "kubeconfig_path", "context", "server", "ca_cert", "kubeconfig", "token", "credentials"}
    _check_unknown(body, known, "connection")
    mode = _str(body, "mode", "connection.mode", default="kubeconfig")
    if mode not in CONNECTION_MODES:
        raise Unprocessable(f"connection.mode must be one of {', '.join(CONNECTION_MODES)}", field="connection.mode")
    path = _str(body, "kubeconfig_path", "connection.kubeconfig_path")
    context = _str(body, "context", "connection.context", limit=253)
    server = _str(body, "server", "connection.server")
    ca_cert = _str(body, "ca_cert", "connection.ca_cert", limit=64 * 1024)
    kubeconfig: str | None = None
    token: str | None = None
    if body.get("kubeconfig") is not None:
        kubeconfig = _str(body, "kubeconfig", "connection.kubeconfig", limit=MAX_KUBECONFIG_BYTES)
        if not kubeconfig.strip():
            raise Unprocessable("connection.kubeconfig is empty", field="connection.kubeconfig")
    if body.get("token") is not None:
        token = _str(body, "token", "connection.token", limit=MAX_TOKEN_BYTES).strip()
        if not token:
            raise Unprocessable("connection.token is empty", field="connection.token")
    keep = _str(body, "credentials", "connection.credentials", default="keep")
    if keep not in ("keep", "none"):
        raise Unprocessable("connection.credentials must be 'keep' or 'none'", field="connection.credentials")
    stored = existing.connection.credential_kind if existing else ""
    if mode == "in-cluster":
        for key, value in (("kubeconfig_path", path), ("kubeconfig", kubeconfig), ("token", token),
                           ("server", server), ("ca_cert", ca_cert)):  # fmt: skip
            if value:
                raise Unprocessable(f"connection.{key} is not used with connection.mode in-cluster",
                                    field=f"connection.{key}")  # fmt: skip
        return Connection("in-cluster", context=context), None, None, bool(stored)
    if kubeconfig is not None and token is not None:
        raise Unprocessable("give connection.kubeconfig or connection.token, not both", field="connection.token")
    if path and (kubeconfig is not None or token is not None):
        field_name = "connection.kubeconfig" if kubeconfig is not None else "connection.token"
        raise Unprocessable(f"give {field_name} or connection.kubeconfig_path, not both", field=field_name)
    if kubeconfig is not None:
        kind = "kubeconfig"
    elif token is not None:
        kind = "token"
    elif path:
        kind = ""
    elif stored and keep == "keep":
        kind = stored  # an edit that leaves the credentials out keeps them
    else:
        raise Unprocessable(
            "connection needs kubeconfig_path, kubeconfig (the file's contents), or server and token",
            field="connection.kubeconfig_path",
        )
    if kind == "token":
        if not server:
            raise Unprocessable("connection.server is required with a token", field="connection.server")
        server = _url(server, "connection.server")
        if not server.startswith("https://"):
            raise Unprocessable("connection.server must be an https:// URL", field="connection.server")
        if ca_cert and "-----BEGIN CERTIFICATE-----" not in ca_cert:
            raise Unprocessable("connection.ca_cert must be a PEM certificate", field="connection.ca_cert")
    else:
        for key, value in (("server", server), ("ca_cert", ca_cert)):
            if value:
                raise Unprocessable(f"connection.{key} is only used with a token", field=f"connection.{key}")
    drop = bool(stored) and kind == ""
    conn = Connection("kubeconfig", path, context, server, ca_cert, credential_kind=kind)
    return conn, kubeconfig, token, drop


def _metrics(body: dict[str, Any]) -> MetricsSource:
    _check_unknown(body, {"mode", "url", "label_value"}, "metrics")
    mode = _str(body, "mode", "metrics.mode", default="none")
    if mode not in METRICS_MODES:
        raise Unprocessable(f"metrics.mode must be one of {', '.join(METRICS_MODES)}", field="metrics.mode")
    url = _str(body, "url", "metrics.url")
    label = _str(body, "label_value", "metrics.label_value", limit=64)
    if mode == "none":
        if url or label:
            raise Unprocessable("metrics.mode none takes no url or label_value", field="metrics.mode")
        return MetricsSource("none")
    if not url:
        raise Unprocessable(f"metrics.url is required with metrics.mode {mode}", field="metrics.url")
    url = _url(url, "metrics.url")
    if mode == "shared":
        if not label:
            raise Unprocessable("metrics.label_value is required with metrics.mode shared", field="metrics.label_value")
        if not LABEL_VALUE_RE.match(label):
            raise Unprocessable(
                "metrics.label_value must be letters, digits, '-', '_' or '.' (at most 64)", field="metrics.label_value"
            )
    elif label:
        raise Unprocessable("metrics.label_value is only for metrics.mode shared", field="metrics.label_value")
    return MetricsSource(mode, url, label)


def _logs(body: dict[str, Any], cluster_name: str) -> LogSource:
    _check_unknown(body, {"mode", "url", "label_value", "index_prefix"}, "logs")
    mode = _str(body, "mode", "logs.mode", default="shared")
    if mode not in LOG_MODES:
        raise Unprocessable(f"logs.mode must be one of {', '.join(LOG_MODES)}", field="logs.mode")
    url = _str(body, "url", "logs.url")
    label = _str(body, "label_value", "logs.label_value", limit=64)
    prefix = _str(body, "index_prefix", "logs.index_prefix", limit=64)
    if mode == "own":
        if not url:
            raise Unprocessable("logs.url is required with logs.mode own", field="logs.url")
        if label:
            raise Unprocessable("logs.label_value is only for logs.mode shared", field="logs.label_value")
        if urlsplit(url).username or urlsplit(url).password:
            # the URL is shown back and audited: credentials have no place in it
            raise Unprocessable("logs.url must not carry a user or password", field="logs.url")
        if prefix and not INDEX_PREFIX_RE.match(prefix):
            raise Unprocessable(
                "logs.index_prefix must be lower-case letters, digits, '-', '_' or '.' (at most 63)",
                field="logs.index_prefix",
            )
        return LogSource("own", _url(url, "logs.url"), index_prefix=prefix)
    if url:
        raise Unprocessable("logs.url is only for logs.mode own (shared uses the hub's log store)", field="logs.url")
    if prefix:
        raise Unprocessable("logs.index_prefix is only for logs.mode own", field="logs.index_prefix")
    label = label or cluster_name
    if not LABEL_VALUE_RE.match(label):
        raise Unprocessable("logs.label_value must be letters, digits, '-', '_' or '.'", field="logs.label_value")
    return LogSource("shared", "", label)
