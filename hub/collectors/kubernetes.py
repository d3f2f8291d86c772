"""The hub's one door to the Kubernetes API (the only importer of ``kubernetes``).

The official client does authentication (kubeconfig, in-cluster service account, exec plugins,
token refresh), TLS and connection pooling. We skip its model classes and speak JSON: the watch
cache turns dicts into slim domain objects itself, which is several times faster than the
generated models for 20,000 pods and lets one code path serve every resource kind. Pod LIST
pages go further: their bytes are handed to the cache undecoded (``kube_decode``), so the next
page is fetched while this one is decoded.

Everything that leaves this module is a plain dict, a domain object or a HubError:
:func:`hub.collectors.k8s_errors.error_from_status` maps HTTP failures, connection failures
become ``BackendUnavailable("kubernetes API server", ...)``.

Just over 400 lines because it is the one importer of ``kubernetes``: choosing and opening
the connection and every request, list page, watch and log read go through the client here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from hub.collectors.k8s_errors import connection_error, error_from_status
from hub.collectors.kube_decode import list_head
from hub.collectors.watchcache import ListPage, ResourceKind, WatchEvent, WatchExpired
from hub.errors import ConfigError
from hub.settings import KubernetesSettings

log = logging.getLogger("kubehub.cluster.api")

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")  # the default's token
SETTING = "KUBEHUB_KUBERNETES_KUBECONFIG"

# Metadata-only LIST/WATCH: the server strips everything but ``metadata``, so Secret values are
# never sent to the hub at all. No plain-JSON fallback on purpose (every server since 1.15
# supports this; falling back would fetch the values).
ACCEPT_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class Connection:
    """How the hub reaches the cluster: ``disabled``, ``absent``, ``in-cluster`` or ``kubeconfig``."""

    mode: str
    path: Path | None = None
    context: str = ""

    def describe(self) -> str:
        if self.mode == "kubeconfig":
            return f"kubeconfig {self.path}" + (f" (context {self.context})" if self.context else "")
        return self.mode


def choose_connection(
    settings: KubernetesSettings,
    *,
    token_path: Path | None = None,
    default_kubeconfig: Path | None = None,
) -> Connection:
    """Pick the connection as the setting's doc promises.

    An explicit path wins; 'none' disables; empty means: the pod's service account when the
    hub runs in a pod (its token in ``serviceaccount_dir``), else the user's kubeconfig when
    present, else no cluster at all.
    """
    if token_path is None:
        token_path = Path(settings.serviceaccount_dir) / "token"
    value = settings.kubeconfig.strip()
    if value.lower() == "none":
        return Connection("disabled")
    if value:
        return Connection("kubeconfig", Path(value).expanduser(), settings.context)
    if token_path.exists():
        return Connection("in-cluster")
    default = default_kubeconfig or Path(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION.split(":")[0]).expanduser()
    if default.exists():
        return Connection("kubeconfig", default, settings.context)
    return Connection("absent")


def connect(settings: KubernetesSettings, connection: Connection | None = None) -> KubeApi | None:
    """A KubeApi for the chosen connection, or None when no cluster is configured.

    Loading the kubeconfig does not contact the server, so an unreachable API server shows up
    in /readyz and as stale data, not as a failed start.
    """
    connection = connection or choose_connection(settings)
    if connection.mode in ("disabled", "absent"):
        log.info("no Kubernetes cluster: %s", connection.mode)
        return None
    cfg = k8s_client.Configuration()
    try:
        if connection.mode == "in-cluster":
            # The loader, not load_incluster_config(), so the token and CA may live elsewhere than
            # /var/run/secrets (tests run the hub as a service account outside a pod). It re-reads
            # the token file as the kubelet rotates it.
            account = Path(settings.serviceaccount_dir)
            k8s_config.incluster_config.InClusterConfigLoader(
                token_filename=str(account / "token"), cert_filename=str(account / "ca.crt")
            ).load_and_set(client_configuration=cfg)
        else:
            assert connection.path is not None
            if not connection.path.exists():
                raise ConfigError(SETTING, f"kubeconfig {connection.path} does not exist")
            k8s_config.load_kube_config(
                config_file=str(connection.path),
                context=connection.context or None,
                client_configuration=cfg,
                persist_config=False,
            )
    except ConfigException as exc:
        raise ConfigError(SETTING, f"cannot use {connection.describe()}: {exc}") from exc
    # 13 long-lived watches plus concurrent writes share the pool; beyond its size urllib3
    # opens throw-away connections and logs a warning for each.
    cfg.connection_pool_maxsize = 32
    # One quick reconnect, no more: retries multiply the time a request waits on a dead server.
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, raise_on_status=False)
    api_client = k8s_client.ApiClient(configuration=cfg)
    api_client.user_agent = "kubehub"
    return KubeApi(api_client, request_timeout=settings.request_timeout, description=connection.describe())


def connect_cluster(
    settings: KubernetesSettings,
    *,
    name: str,
    mode: str,
    kubeconfig_path: str = "",
    context: str = "",
    credential: tuple[str, str] | None = None,
    server: str = "",
    ca_cert: str = "",
    work_dir: Path,
    description: str,
) -> KubeApi:
    """A KubeApi for one registered cluster (:mod:`hub.clusters`): a kubeconfig file on disk,
    stored kubeconfig contents or a stored token (``credential``: (kind, secret), opened by the
    cluster registry), or the pod's own service account (``in-cluster``).

    ``work_dir`` (0700) is where the client library may write what it needs as files: the
    token's CA certificate, and the base64 certificate data of stored kubeconfig contents, which
    the library always materialises as files (see docs/clusters.md). Errors name the cluster.
    """
    setting = f"cluster {name}"
    work_dir.mkdir(parents=True, exist_ok=True)
    work_dir.chmod(0o700)
    cfg = k8s_client.Configuration()
    try:
        if mode == "in-cluster":
            account = Path(settings.serviceaccount_dir)
            k8s_config.incluster_config.InClusterConfigLoader(
                token_filename=str(account / "token"), cert_filename=str(account / "ca.crt")
            ).load_and_set(client_configuration=cfg)
        elif credential is not None and credential[0] == "token":
            cfg.host = server
            cfg.api_key = {"authorization": "Bearer " + credential[1]}
            if ca_cert:
                ca = work_dir / "ca.crt"
                ca.write_text(ca_cert, encoding="utf-8")
                cfg.ssl_ca_cert = str(ca)
        elif credential is not None and credential[0] == "kubeconfig":
            import yaml

            loaded = yaml.safe_load(credential[1])
            if not isinstance(loaded, dict):
                raise ConfigError(setting, "the stored kubeconfig is not a YAML mapping")
            k8s_config.load_kube_config_from_dict(
                loaded,
                context=context or None,
                client_configuration=cfg,
                persist_config=False,
                temp_file_path=str(work_dir),
            )
        else:
            path = Path(kubeconfig_path).expanduser()
            if not path.exists():
                raise ConfigError(setting, f"kubeconfig {path} does not exist")
            k8s_config.load_kube_config(
                config_file=str(path), context=context or None, client_configuration=cfg, persist_config=False
            )
    except (ConfigException, yaml_error()) as exc:
        # The exception text of a kubeconfig problem never quotes the secret values it holds.
        raise ConfigError(setting, f"cannot use {description}: {type(exc).__name__}") from exc
    cfg.connection_pool_maxsize = 32
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, raise_on_status=False)
    api_client = k8s_client.ApiClient(configuration=cfg)
    api_client.user_agent = "kubehub"
    return KubeApi(api_client, request_timeout=settings.request_timeout, description=description)


def yaml_error() -> type[Exception]:
    import yaml

    return yaml.YAMLError


class KubeApi:
    """JSON calls over the official client's ApiClient; implements the watch cache's KubeSource."""

    def __init__(self, api_client: Any, *, request_timeout: float, description: str) -> None:
        self._client = api_client
        self.request_timeout = request_timeout
        self.description = description
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    # -- raw calls ----------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        read_timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        m, url, hdrs, payload, post = self._client.param_serialize(
            method,
            path,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        timeout = (self.request_timeout, read_timeout or self.request_timeout)
        return self._client.call_api(m, url, hdrs, payload, post, _request_timeout=timeout).response

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        fields: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """One call; the decoded JSON answer (or text when ``raw``), or a HubError naming what failed.

        ``verb``/``resource``/``namespace``/``name`` describe the call for error messages; ``fields``
        maps Kubernetes field paths to the caller's request fields for 422 answers.
        """
        try:
            resp = self._send(method, path, query=query, body=body, content_type=content_type, accept=accept)
            data = resp.data
        except ApiException as exc:  # the client raises these itself for Retry-After answers
            raise error_from_status(
                exc.status or 503, exc.body, verb=verb, resource=resource, namespace=namespace, name=name
            ) from exc
        except _NETWORK_ERRORS as exc:
            raise connection_error(exc, verb=verb, resource=resource) from exc
        if not 200 <= resp.status < 300:
            cause = ApiException(status=resp.status, reason=resp.reason, body=data)
            raise error_from_status(
                resp.status, data, verb=verb, resource=resource, namespace=namespace, name=name, fields=fields
            ) from cause
        if raw:
            return data.decode("utf-8", "replace")
        return json.loads(data) if data else {}

    # -- KubeSource ------------------------------------------------------------------------------
    def list_page(
        self, kind: ResourceKind, *, limit: int, continue_token: str | None, resource_version: str = ""
    ) -> ListPage:
        accept = ACCEPT_METADATA_LIST if kind.metadata_only else "application/json"
        # A continued page carries its version in the token; the server refuses both.
        rv = None if continue_token or not resource_version else resource_version
        try:
            resp = self._send(
                "GET",
                f"{kind.api}/{kind.name}",
                query={"limit": limit, "continue": continue_token, "resourceVersion": rv},
                accept=accept,
                # a page of 500 pods can take a while on a loaded server
                read_timeout=max(self.request_timeout, 60.0),
            )
            data = resp.data
        except _NETWORK_ERRORS as exc:
            raise connection_error(exc, verb="list", resource=kind.name) from exc
        if resp.status == 410:
            raise WatchExpired(f"list of {kind.name}: continue token expired")
        if not 200 <= resp.status < 300:
            raise error_from_status(resp.status, data, verb="list", resource=kind.name) from ApiException(
                status=resp.status, reason=resp.reason, body=data
            )
        if kind.decode_list is not None:  # items decoded later, by the cache, from the bytes
            rv, token = list_head(data)
            return ListPage([], rv, token, decode=partial(kind.decode_list, data))
        doc = json.loads(data)
        meta = doc.get("metadata") or {}
        return ListPage(doc.get("items") or [], meta.get("resourceVersion", ""), meta.get("continue") or None)

    def watch(self, kind: ResourceKind, *, resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        accept = ACCEPT_METADATA if kind.metadata_only else "application/json"
        try:
            resp = self._send(
                "GET",
                f"{kind.api}/{kind.name}",
                query={
                    "watch": "true",
                    "resourceVersion": resource_version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": timeout_seconds,
                },
                accept=accept,
                read_timeout=timeout_seconds + 30,  # the server ends the watch first; this catches a silent peer
            )
        except _NETWORK_ERRORS as exc:
            raise connection_error(exc, verb="watch", resource=kind.name) from exc
        if resp.status == 410:
            resp.release_conn()
            raise WatchExpired(f"watch of {kind.name} from {resource_version}")
        if not 200 <= resp.status < 300:
            data = resp.data
            raise error_from_status(resp.status, data, verb="watch", resource=kind.name) from ApiException(
                status=resp.status, reason=resp.reason, body=data
            )
        return self._events(kind, resp)

    def _events(self, kind: ResourceKind, resp: Any) -> Iterator[WatchEvent]:
        with self._open_lock:
            self._open.add(resp)
        buffer = b""
        try:
            for chunk in resp.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._event(kind, line)
            if buffer.strip():
                yield self._event(kind, buffer)
        except _NETWORK_ERRORS as exc:
            raise connection_error(exc, verb="watch", resource=kind.name) from exc
        finally:
            with self._open_lock:
                self._open.discard(resp)
            resp.release_conn()

    @staticmethod
    def _event(kind: ResourceKind, line: bytes) -> WatchEvent:
        doc = json.loads(line)
        etype = doc.get("type", "")
        obj = doc.get("object") or {}
        if etype == "ERROR":
            code = int(obj.get("code") or 500)
            if code == 410:
                raise WatchExpired(str(obj.get("message", "")))
            raise error_from_status(code, obj, verb="watch", resource=kind.name)
        return WatchEvent(etype, obj)

    def interrupt(self) -> None:
        with self._open_lock:
            streams = list(self._open)
        for resp in streams:
            try:
                resp.shutdown()  # unblocks a thread sitting in recv(); close() alone would not
            except Exception:  # already closed: nothing to interrupt
                pass

    # -- reads that are not cached ---------------------------------------------------------------
    def version(self) -> str:
        doc = self.request("GET", "/version", verb="get", resource="version")
        return str(doc.get("gitVersion", "unknown"))

    def read_log(self, namespace: str, pod: str, *, container: str, tail: int, limit_bytes: int) -> str:
        return str(
            self.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                verb="get",
                resource="pods/log",
                namespace=namespace,
                name=pod,
                query={"container": container or None, "tailLines": tail, "limitBytes": limit_bytes},
                accept="text/plain, */*",
                raw=True,
            )
        )

    def close(self) -> None:
        self.interrupt()
        try:
            self._client.close()
        except Exception:  # closing at shutdown: nothing useful to do about a failure
            pass
