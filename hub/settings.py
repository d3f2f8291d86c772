"""Typed settings: the only module that reads ``os.environ`` or a config file.

Every setting has an environment variable ``KUBEHUB_<GROUP>_<NAME>`` (``KUBEHUB_<NAME>`` for
top-level ones) and a key ``group.name`` in the optional YAML file named by
``KUBEHUB_CONFIG``. The environment wins over the file. Defaults run the hub with no external
service at all: SQLite state and the embedded log store under the data directory.

The README's settings table is generated from the field docs here (``kubehub settings``) and a
test keeps the two in step.

Over 400 lines because every setting of every area is declared here, each with the
documentation the README's table is generated from: one module is what makes this the only
reader of the environment and the config file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.errors import ConfigError


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kubehub"


@dataclass(frozen=True)
class HttpSettings:
    host: str = _doc("Address the console and API listen on.", default="127.0.0.1")
    port: int = _doc("TCP port of the console and API.", default=8080)
    public_url: str = _doc(
        "URL users reach the console at; used for links in emails. Empty: http://host:port.", default=""
    )
    secret_key: str = _doc(
        "Key that signs session cookies. Empty: generated once and kept in the data directory.", default=""
    )
    secure_cookies: bool = _doc("Mark session cookies Secure (set when served over HTTPS).", default=False)
    threads: int = _doc("Worker threads of the WSGI server.", default=8)


@dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: str = _doc(
        "Path of a kubeconfig. Empty: in-cluster service account when running in a pod, else ~/.kube/config "
        "if present, else no cluster. 'none' disables the cluster connection.",
        default="",
    )
    context: str = _doc("kubeconfig context to use. Empty: the current context.", default="")
    serviceaccount_dir: str = _doc(
        "Directory of the service account's token and ca.crt used in-cluster (with KUBERNETES_SERVICE_HOST "
        "and KUBERNETES_SERVICE_PORT); moved only to run the hub as a service account outside a pod.",
        default="/var/run/secrets/kubernetes.io/serviceaccount",
    )
    request_timeout: float = _doc("Seconds before a Kubernetes API call is abandoned.", default=10.0)
    resync_seconds: float = _doc("Seconds between full re-lists of the watch cache.", default=600.0)


@dataclass(frozen=True)
class PrometheusSettings:
    url: str = _doc(
        "Prometheus base URL, e.g. http://prometheus:9090. Empty: monitoring and alerting are off.",
        default="",
    )
    timeout: float = _doc(
        "Seconds a request waits for Prometheus before it is answered 503 (a window ranking's table "
        "goes on building in the background, up to its step and at most 120 s: docs/monitoring.md).",
        default=10.0,
    )
    max_points: int = _doc(
        "Largest number of points a range query may ask for per series ((end-start)/step).", default=11000
    )
    components_wait: float = _doc(
        "Seconds the components page and API wait for Prometheus's live reading of the scraped "
        "components before they show the newest kept one (at most 2 minutes old, its time given); "
        "the live reading goes on for the next view. At prometheus.timeout or more: always live.",
        default=0.15,
    )


@dataclass(frozen=True)
class LogSettings:
    backend: str = _doc(
        "Log store: 'embedded' (SQLite FTS5 in the data directory) or 'elasticsearch'.", default="embedded"
    )
    retention_days: int = _doc("Days of logs kept; older partitions or indices are dropped whole.", default=7)
    export_cap: int = _doc("Most lines one export may stream.", default=100_000)
    ship: bool = _doc("Pull container logs through the Kubernetes API into the store.", default=True)
    ship_namespaces: str = _doc(
        "Comma list of namespaces the shipper follows. Empty: all namespaces of projects.", default=""
    )
    ship_skip_clusters: str = _doc(
        "Comma list of clusters the shipper does not follow because node collectors send their logs "
        "(`kubehub collect-node`). Empty: it follows every cluster of the hub.",
        default="",
    )
    ship_interval: float = _doc("Seconds between shipper polls of each container.", default=10.0)
    spool_max_lines: int = _doc(
        "Lines the shipper may hold on disk while the log store is down; beyond this it stops reading "
        "(backpressure) and the kubelet keeps the lines.",
        default=500_000,
    )
    collector_token_sha256: str = _doc(
        "Comma list of SHA-256 digests (hex) of the collector tokens POST /api/v1/logs/ingest accepts "
        "(node collectors; make one with `kubehub collector-token`). Empty: ingest is closed.",
        default="",
    )


@dataclass(frozen=True)
class ElasticsearchSettings:
    url: str = _doc("Elasticsearch URL, e.g. http://es:9200 (used when logs.backend is elasticsearch).", default="")
    index_prefix: str = _doc("Prefix of the hub's dated log indices.", default="kubehub-logs")
    field_preset: str = _doc(
        "Field names of the indices read: 'kubehub' (written by the hub) or 'kubesphere' "
        "(Fluent Bit's kubernetes.* fields).",
        default="kubehub",
    )
    timeout: float = _doc("Seconds before an Elasticsearch request is abandoned.", default=10.0)
    replicas: int = _doc("Replica shards of each dated index the hub creates (0 on a single-node cluster).", default=0)
    manage_retention: bool = _doc(
        "Delete dated indices older than logs.retention_days. Turn off when another tool (e.g. a curator "
        "of Fluent Bit's indices) owns their lifecycle.",
        default=True,
    )


@dataclass(frozen=True)
class SmtpSettings:
    host: str = _doc("SMTP server host. Empty: notices are queued but not sent.", default="")
    port: int = _doc("SMTP server port.", default=25)
    security: str = _doc("'none', 'starttls' or 'tls' (implicit TLS).", default="none")
    username: str = _doc("SMTP login user. Empty: no authentication.", default="")
    password: str = _doc("SMTP login password.", default="")
    ca_file: str = _doc(
        "PEM file of the CA(s) that sign the relay's certificate (starttls, tls). Empty: the system's CAs.",
        default="",
    )
    sender: str = _doc("From address of alert emails.", default="kubehub@localhost")
    timeout: float = _doc("Seconds before an SMTP attempt is abandoned and retried later.", default=15.0)
    connections: int = _doc("SMTP connections used in parallel when a batch of notices is sent.", default=2)


@dataclass(frozen=True)
class AlertSettings:
    evaluate: bool = _doc("Run the rule engine in this process (false for web-only replicas).", default=True)
    tick_seconds: float = _doc(
        "Seconds between scheduler ticks; each tick evaluates the rules whose period is due.", default=15.0
    )
    language: str = _doc("Default language of alert emails: 'en' or 'zh'.", default="en")
    admin_emails: str = _doc(
        "Comma list of addresses that get the hub's own alerts (e.g. Prometheus unreachable), besides platform "
        "admins with an email address.",
        default="",
    )
    quota_per_hour: int = _doc(
        "Emails one tenant (a project, or the cluster for node policies) may get per clock hour; beyond it, "
        "notices are collected into one digest per receiver at the end of the hour. 0: no quota.",
        default=100,
    )
    group: bool = _doc(
        "Group notices across policies per receiver (docs/alerting.md 'Grouping across policies'): one failing "
        "node that trips five node policies makes one email. false: one message per policy and receiver.",
        default=True,
    )
    group_by: str = _doc(
        "Labels notices are grouped by, per level: 'node=node;workload=namespace,workload;cluster='. A level left "
        "out keeps its default (these). The tenant is always part of a group.",
        default="",
    )
    group_wait_seconds: float = _doc(
        "Seconds a new group waits before its first message, so changes over a few cycles travel together.",
        default=30.0,
    )
    group_interval_seconds: float = _doc(
        "Least seconds between two messages of one group (repeats follow their own schedule). Shorter than "
        "Alertmanager's 5 minutes so a new alert in a group just told waits at most a minute.",
        default=60.0,
    )
    delivery_seconds: float = _doc("Seconds between outbox delivery rounds.", default=5.0)
    retry_initial_seconds: float = _doc(
        "Wait before retrying a message after a retryable SMTP failure; doubles per attempt.", default=10.0
    )
    retry_max_seconds: float = _doc("Longest wait between retries of one message.", default=600.0)


@dataclass(frozen=True)
class AuthSettings:
    session_hours: float = _doc("Hours a console session stays valid.", default=12.0)
    token_days: float = _doc("Default lifetime in days of API tokens.", default=90.0)
    login_attempts: int = _doc("Failed logins allowed per user and per client address within login_window.", default=5)
    login_window: float = _doc("Seconds over which failed logins are counted.", default=300.0)
    password_hash_memory_kib: int = _doc(
        "Memory cost of argon2id password hashing, in KiB (argon2-cffi's default, 64 MiB). Lower only for tests.",
        default=65536,
    )
    password_hash_time_cost: int = _doc("Iterations of argon2id password hashing.", default=3)
    group_mappings: str = _doc(
        "Directory group -> role mappings for LDAP and OIDC sign-in, as a JSON list of "
        '{"group", "level" (platform|workspace|project), "role", "target" (workspace or namespace)} objects. '
        "Shown read-only in the console beside the ones admins add there; the most permissive role wins "
        "(docs/tenancy.md).",
        default="",
    )


@dataclass(frozen=True)
class LdapSettings:
    url: str = _doc(
        "LDAP / Active Directory server, ldap://host:389 (with start_tls) or ldaps://host:636. Empty: no "
        "directory sign-in.",
        default="",
    )
    start_tls: bool = _doc(
        "Upgrade an ldap:// connection with StartTLS before any bind. Turn off only for a directory on loopback: "
        "passwords would cross the network in clear.",
        default=True,
    )
    ca_file: str = _doc(
        "PEM file of the CA(s) that sign the directory's certificate. Empty: the system's CAs.", default=""
    )
    bind_dn: str = _doc(
        "DN of the service account that searches users and groups (empty: anonymous search).", default=""
    )
    bind_password: str = _doc("Password of the service account.", default="")
    user_base: str = _doc("Base DN under which users are searched, e.g. ou=people,dc=example,dc=org.", default="")
    user_filter: str = _doc(
        "Filter that finds one user; {username} is replaced by the escaped user name. Active Directory: "
        "(&(objectClass=user)(sAMAccountName={username})).",
        default="(&(objectClass=inetOrgPerson)(uid={username}))",
    )
    group_base: str = _doc("Base DN under which groups are searched. Empty: user_base.", default="")
    group_filter: str = _doc(
        "Filter that finds the groups with a member; {dn} is replaced by the escaped member DN.",
        default="(&(objectClass=groupOfNames)(member={dn}))",
    )
    group_name_attribute: str = _doc("Attribute of a group that mappings name.", default="cn")
    nested_depth: int = _doc(
        "Levels of nested groups followed (a group that is a member of a group). 0: direct groups only.", default=5
    )
    timeout: float = _doc("Seconds before a directory connection or operation is abandoned (503).", default=5.0)
    recheck_seconds: float = _doc(
        "Longest time an LDAP user's sessions and API tokens are trusted without asking the directory again: "
        "a user removed or disabled there loses access within this time.",
        default=300.0,
    )


@dataclass(frozen=True)
class OidcSettings:
    issuer_url: str = _doc(
        "OpenID Connect provider's issuer URL (its discovery document is at /.well-known/openid-configuration). "
        "Empty: no single sign-on.",
        default="",
    )
    client_id: str = _doc("The hub's client id at the provider.", default="")
    client_secret: str = _doc("The hub's client secret at the provider (confidential client, HTTP Basic).", default="")
    redirect_url: str = _doc(
        "Callback URL registered at the provider. Empty: http.public_url + /login/oidc/callback.", default=""
    )
    scopes: str = _doc(
        "Scopes asked for (space-separated); must include openid.", default="openid profile email groups"
    )
    ca_file: str = _doc(
        "PEM file of the CA(s) that sign the provider's certificate. Empty: the system's CAs.", default=""
    )
    provider_name: str = _doc("Name on the login page's button: Sign in with <provider_name>.", default="SSO")
    username_claim: str = _doc("ID token claim that becomes the kubehub user name.", default="preferred_username")
    groups_claim: str = _doc(
        "ID token (or userinfo) claim listing the user's groups, mapped to roles by auth.group_mappings.",
        default="groups",
    )
    timeout: float = _doc(
        "Seconds before a request to the provider is abandoned (503 naming the provider).", default=10.0
    )
    leeway: float = _doc("Seconds of clock skew allowed when checking an ID token's exp and iat.", default=60.0)


@dataclass(frozen=True)
class RateLimitSettings:
    window: float = _doc(
        "Seconds over which each user's expensive requests below are counted (a sliding window). "
        "Failed logins have their own limit: auth.login_attempts per user name and per client address.",
        default=60.0,
    )
    log_exports: int = _doc("Log exports one user may start per window. 0: no limit.", default=10)
    backtests: int = _doc(
        "Backtests (saved or unsaved policies, API or console) one user may run per window. 0: no limit.", default=10
    )
    long_queries: int = _doc(
        "Log histograms and metric queries spanning more than long_range_hours (a range, or a ranking "
        "window such as 24h) one user may make per window. 0: no limit.",
        default=30,
    )
    long_range_hours: float = _doc(
        "Span beyond which a log histogram or metric query counts as long (a histogram without start spans "
        "the whole retention).",
        default=6.0,
    )


@dataclass(frozen=True)
class LeaderSettings:
    replica_id: str = _doc(
        "This replica's name in the leader lease, /readyz, /metrics and the admin overview. Empty: "
        "hostname:pid (a pod's name in Kubernetes).",
        default="",
    )
    lease_seconds: float = _doc(
        "Seconds a leader's lease lasts without renewal (renewed every third of it). The background work "
        "(rule engine, outbox delivery, log shipping, retention) runs on the lease's holder only; another "
        "replica takes over at most this long after the leader died.",
        default=15.0,
    )


@dataclass(frozen=True)
class ClusterSettings:
    default_name: str = _doc(
        "Name of the cluster the kubernetes.* and prometheus.* settings describe (the implicit cluster; a "
        "single-cluster install has only this one). Further clusters are added in the console or with "
        "POST /api/v1/clusters (docs/cluster.md, 'Several clusters').",
        default="default",
    )
    default_metrics_label: str = _doc(
        "Value of the `cluster` label of the implicit cluster's series when prometheus.url is one endpoint "
        "shared by several clusters (Thanos, Mimir). Empty: prometheus.url is this cluster's own Prometheus "
        "and its series carry no cluster label.",
        default="",
    )
    secret_key: str = _doc(
        "Fernet key(s) that encrypt stored cluster credentials (kubeconfig contents, tokens); a comma list "
        "rotates (the first encrypts, all decrypt). Make one with `kubehub cluster-key`. Empty: clusters "
        "can only be added with a kubeconfig_path on the hub's disk or in-cluster.",
        default="",
    )


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _doc(
        "Directory of the hub's state (SQLite, unless database_url is set), embedded logs and spool.",
        default_factory=_default_data_dir,
    )
    database_url: str = _doc(
        "PostgreSQL URL (postgresql://user:password@host:port/database) that holds all hub state: users, "
        "tenancy, sessions, policies, alert state, outbox, history and audit. Empty: SQLite in the data directory.",
        default="",
    )
    log_level: str = _doc("Log level of the hub's own log: debug, info, warning, error.", default="info")
    http: HttpSettings = field(default_factory=HttpSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    elasticsearch: ElasticsearchSettings = field(default_factory=ElasticsearchSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    ldap: LdapSettings = field(default_factory=LdapSettings)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    clusters: ClusterSettings = field(default_factory=ClusterSettings)

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def public_url(self) -> str:
        return self.http.public_url or f"http://{self.http.host}:{self.http.port}"

    def replace(self, **groups: Any) -> Settings:
        """A copy with some groups or fields changed: ``s.replace(http={"port": 9000})``."""
        changes: dict[str, Any] = {}
        for name, value in groups.items():
            current = getattr(self, name)
            if isinstance(value, dict) and dataclasses.is_dataclass(current):
                changes[name] = dataclasses.replace(current, **value)  # type: ignore[type-var]
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)


_GROUPS = {f.name: f for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(f.default_factory)}


def _coerce(value: Any, typ: Any, setting: str) -> Any:
    if isinstance(typ, str):
        typ = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}[typ]
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if typ is Path:
            return Path(str(value)).expanduser()
        if typ is int and isinstance(value, float):
            raise ValueError(value)
        return typ(value)
    except (TypeError, ValueError) as exc:
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(setting, f"expected {name}, got {value!r}") from exc


def env_name(group: str | None, name: str) -> str:
    return "KUBEHUB_" + (f"{group}_{name}" if group else name).upper()


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    t = hints[name]
    if isinstance(t, types.UnionType):
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t


def load_settings(env: typing.Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    """Build settings from the YAML file (if any) and then the environment.

    Unknown keys in the file and unparseable values are ConfigErrors naming the setting, so a
    typo never silently falls back to a default.
    """
    env = os.environ if env is None else env
    path = config_file or env.get("KUBEHUB_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError("KUBEHUB_CONFIG", f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError("KUBEHUB_CONFIG", f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError("KUBEHUB_CONFIG", f"{path} must hold a mapping of settings")
        file_values = loaded

    top: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name in _GROUPS:
            group_cls = f.default_factory
            raw_group = file_values.get(f.name) or {}
            if not isinstance(raw_group, dict):
                raise ConfigError(f"{f.name}", "expected a mapping of settings")
            known = {g.name for g in dataclasses.fields(group_cls)}  # type: ignore[arg-type]
            for key in raw_group:
                if key not in known:
                    raise ConfigError(f"{f.name}.{key}", f"unknown setting; known: {', '.join(sorted(known))}")
            values: dict[str, Any] = {}
            for g in dataclasses.fields(group_cls):  # type: ignore[arg-type]
                var = env_name(f.name, g.name)
                typ = _field_type(group_cls, g.name)  # type: ignore[arg-type]
                if var in env:
                    values[g.name] = _coerce(env[var], typ, var)
                elif g.name in raw_group:
                    values[g.name] = _coerce(raw_group[g.name], typ, f"{f.name}.{g.name}")
            top[f.name] = group_cls(**values)  # type: ignore[operator]
        else:
            var = env_name(None, f.name)
            typ = _field_type(Settings, f.name)
            if var in env:
                top[f.name] = _coerce(env[var], typ, var)
            elif f.name in file_values:
                top[f.name] = _coerce(file_values[f.name], typ, f.name)
    for key in file_values:
        if key not in {f.name for f in dataclasses.fields(Settings)}:
            raise ConfigError(key, "unknown setting")
    settings = Settings(**top)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.logs.backend not in {"embedded", "elasticsearch"}:
        raise ConfigError("KUBEHUB_LOGS_BACKEND", f"must be 'embedded' or 'elasticsearch', got {s.logs.backend!r}")
    if s.logs.backend == "elasticsearch" and not s.elasticsearch.url:
        raise ConfigError("KUBEHUB_ELASTICSEARCH_URL", "must be set when KUBEHUB_LOGS_BACKEND is elasticsearch")
    for digest in s.logs.collector_token_sha256.split(","):
        if digest.strip() and not re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
            raise ConfigError(
                "KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256", "must be a comma list of SHA-256 digests (64 hex digits each)"
            )
    if s.smtp.security not in {"none", "starttls", "tls"}:
        raise ConfigError("KUBEHUB_SMTP_SECURITY", f"must be none, starttls or tls, got {s.smtp.security!r}")
    if s.smtp.ca_file and not Path(s.smtp.ca_file).is_file():
        raise ConfigError("KUBEHUB_SMTP_CA_FILE", f"no such file: {s.smtp.ca_file}")
    if s.elasticsearch.field_preset not in {"kubehub", "kubesphere"}:
        raise ConfigError("KUBEHUB_ELASTICSEARCH_FIELD_PRESET", "must be 'kubehub' or 'kubesphere'")
    if s.database_url and not s.database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("KUBEHUB_DATABASE_URL", "must be a postgresql:// URL (empty: SQLite in the data directory)")
    if s.alerts.language not in {"en", "zh"}:
        raise ConfigError("KUBEHUB_ALERTS_LANGUAGE", "must be 'en' or 'zh'")
    if not 0 < s.http.port < 65536:
        raise ConfigError("KUBEHUB_HTTP_PORT", f"must be a TCP port, got {s.http.port}")
    if not 0 <= s.prometheus.components_wait <= 600:
        raise ConfigError("KUBEHUB_PROMETHEUS_COMPONENTS_WAIT", "must be between 0 and 600 seconds")
    if not s.rate_limits.window > 0:
        raise ConfigError("KUBEHUB_RATE_LIMITS_WINDOW", f"must be more than 0 seconds, got {s.rate_limits.window}")
    if not s.leader.lease_seconds > 0:
        raise ConfigError("KUBEHUB_LEADER_LEASE_SECONDS", f"must be more than 0 seconds, got {s.leader.lease_seconds}")
    if not s.rate_limits.long_range_hours > 0:
        raise ConfigError("KUBEHUB_RATE_LIMITS_LONG_RANGE_HOURS", "must be more than 0 hours")
    if s.ldap.url and not s.ldap.url.startswith(("ldap://", "ldaps://")):
        raise ConfigError("KUBEHUB_LDAP_URL", f"must be an ldap:// or ldaps:// URL, got {s.ldap.url!r}")
    if s.ldap.url and not s.ldap.user_base:
        raise ConfigError("KUBEHUB_LDAP_USER_BASE", "must be set when KUBEHUB_LDAP_URL is set")
    if s.ldap.url and "{username}" not in s.ldap.user_filter:
        raise ConfigError("KUBEHUB_LDAP_USER_FILTER", "must contain {username}")
    if s.ldap.url and "{dn}" not in s.ldap.group_filter:
        raise ConfigError("KUBEHUB_LDAP_GROUP_FILTER", "must contain {dn}")
    if not 0 <= s.ldap.nested_depth <= 20:
        raise ConfigError("KUBEHUB_LDAP_NESTED_DEPTH", "must be between 0 and 20")
    if not s.ldap.timeout > 0:
        raise ConfigError("KUBEHUB_LDAP_TIMEOUT", "must be more than 0 seconds")
    if not s.ldap.recheck_seconds > 0:
        raise ConfigError("KUBEHUB_LDAP_RECHECK_SECONDS", "must be more than 0 seconds")
    loopback = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")
    if s.oidc.issuer_url and not s.oidc.issuer_url.startswith(("https://", *loopback)):
        raise ConfigError(
            "KUBEHUB_OIDC_ISSUER_URL", f"must be an https:// URL (http only on loopback), got {s.oidc.issuer_url!r}"
        )
    if s.oidc.issuer_url and not s.oidc.client_id:
        raise ConfigError("KUBEHUB_OIDC_CLIENT_ID", "must be set when KUBEHUB_OIDC_ISSUER_URL is set")
    if s.oidc.issuer_url and "openid" not in s.oidc.scopes.split():
        raise ConfigError("KUBEHUB_OIDC_SCOPES", "must include openid")
    if not s.oidc.timeout > 0:
        raise ConfigError("KUBEHUB_OIDC_TIMEOUT", "must be more than 0 seconds")
    if not 0 <= s.oidc.leeway <= 600:
        raise ConfigError("KUBEHUB_OIDC_LEEWAY", "must be between 0 and 600 seconds")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", s.clusters.default_name):
        raise ConfigError("KUBEHUB_CLUSTERS_DEFAULT_NAME", "must be 1-40 lowercase letters, digits or '-'")
    if s.clusters.default_metrics_label and not s.prometheus.url:
        raise ConfigError(
            "KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL", "needs KUBEHUB_PROMETHEUS_URL (the shared endpoint)"
        )
    for name in ("log_exports", "backtests", "long_queries"):
        if getattr(s.rate_limits, name) < 0:
            raise ConfigError(f"KUBEHUB_RATE_LIMITS_{name.upper()}", "must be 0 (no limit) or more")


def secret_from_env(variable: str) -> str | None:
    """The value of an environment variable named by the user (``--password-env VAR``).

    Lives here because this module is the only reader of ``os.environ``.
    """
    return os.environ.get(variable)


def settings_table() -> list[tuple[str, str, str, str]]:
    """(environment variable, file key, default, meaning) for every setting; feeds the README."""
    rows: list[tuple[str, str, str, str]] = []
    for f in dataclasses.fields(Settings):
        if f.name in _GROUPS:
            for g in dataclasses.fields(f.default_factory):  # type: ignore[arg-type]
                rows.append((env_name(f.name, g.name), f"{f.name}.{g.name}", repr(g.default), g.metadata["doc"]))
        else:
            default = "$XDG_DATA_HOME/kubehub (~/.local/share/kubehub)" if f.name == "data_dir" else repr(f.default)
            rows.append((env_name(None, f.name), f.name, default, f.metadata["doc"]))
    return rows


def settings_markdown() -> str:
    lines = ["| environment variable | file key | default | meaning |", "|---|---|---|---|"]
    for var, key, default, doc in settings_table():
        lines.append(f"| `{var}` | `{key}` | `{default}` | {doc} |")
    return "\n".join(lines)
