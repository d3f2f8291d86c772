"""The sandbox: one directory, a port base, and the processes started for them.

``Sandbox.up`` is idempotent: a component already running (same pid, same start time, healthy) is
left alone, a dead one is started again, and seeding only creates what is missing. Anything that
fails to start stops everything this ``up`` started and raises :class:`ComponentError` with one
line and the component's log path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import alertmanager as alertmanagermod
from sandbox import clusters as clustersmod
from sandbox import config as cfgmod
from sandbox import ldap as ldapmod
from sandbox import oidc as oidcmod
from sandbox import pki, prereqs
from sandbox.clusters import CLUSTER_COMPONENTS, ClusterSite
from sandbox.config import SCRAPE_INTERVAL_SECONDS, SandboxConfig
from sandbox.procs import ComponentError, ProcSpec, Supervisor, process_snapshot, rss_bytes, tail, wait_for

# Order of `status` and of starting; `down` stops in reverse.
COMPONENTS = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kube-state-metrics",
    "nodesim",
    "node-exporter",
    "elasticsearch",
    "smtp",
    "postgresql",
    "ldap",
    "oidc",
    "prometheus",
    "alertmanager",
    "hub",
]
PG_SUPERUSER = "kubehub"  # the server's superuser (trust authentication, loopback only)
PG_HUB_DATABASE = "kubehub"  # the sandbox hub's database when it runs with --database postgresql
MAX_HUB_REPLICAS = 9  # hub, hub-2 ... hub-9 on BASE+80..88 (BASE+90 is Prometheus)
# The controller-manager's controllers: all but those needing a cloud or node IPAM. The
# persistentvolume-binder is on: it binds the claims the node simulator provisions volumes for
# (sandbox/volsim.py, the kubehub-sandbox StorageClass).
KCM_CONTROLLERS = "*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle"
NODE_LEASE_SECONDS = 40
HEALTH_TIMEOUT_SECONDS = 10.0  # generous: the machine may be busy with builds and other tests
UNHEALTHY_GRACE_SECONDS = 300.0


class Progress:
    """One line per step on stderr, with seconds since the command started."""

    def __init__(self, quiet: bool = False) -> None:
        self.t0 = time.monotonic()
        self.quiet = quiet
        self._counter_open = False
        self._last_decile: dict[str, int] = {}

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self._counter_open:
            sys.stderr.write("\n")
            self._counter_open = False
        sys.stderr.write(f"[sandbox {time.monotonic() - self.t0:6.1f}s] {message}\n")
        sys.stderr.flush()

    def counter(self, label: str, done: int, total: int) -> None:
        """A counter rewritten in place on a terminal, printed every 10 % otherwise."""
        if self.quiet:
            return
        line = f"[sandbox {time.monotonic() - self.t0:6.1f}s] {label}: {done}/{total}"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line)
            self._counter_open = done < total
            if done >= total:
                sys.stderr.write("\n")
        elif total:
            # Not a terminal (CI logs): a line per tenth reached, whatever the jumps between calls.
            decile = done * 10 // total
            if done == total or decile > self._last_decile.get(label, -1):
                self._last_decile[label] = decile
                sys.stderr.write(line + "\n")
        sys.stderr.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # up | down | starting
    version: str
    url: str
    pid: int | None = None
    log: str = ""
    rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "version": self.version,
            "url": self.url,
            "pid": self.pid,
            "log": self.log,
            "rss_mb": self.rss_mb,
        }


class Sandbox:
    """A sandbox instance rooted at ``dir`` (see docs/sandbox.md for the Python API)."""

    def __init__(self, dir: str | Path | None = None, *, port_base: int | None = None, quiet: bool = False) -> None:
        self.dir = Path(dir).expanduser().resolve() if dir else cfgmod.default_sandbox_dir()
        stored = SandboxConfig.load(self.dir / "sandbox.json")
        self.config = stored or SandboxConfig()
        if port_base is not None:
            self.config.port_base = port_base
        self.sup = Supervisor(self.dir / "run")
        self.say = Progress(quiet=quiet)

    # ---- paths and addresses -------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def mailbox(self) -> Path:
        """A Maildir: one file per message under ``new/``."""
        return self.dir / "mailbox"

    @property
    def pod_logs_dir(self) -> Path:
        return self.dir / "pod-logs"

    @property
    def hub_data_dir(self) -> Path:
        return self.dir / "hub-data"

    def port(self, name: str) -> int:
        return self.config.port(name)

    @property
    def sites(self) -> list[ClusterSite]:
        """The sandbox's Kubernetes clusters (``--clusters``); the first is ``default``."""
        cfg = self.config
        return clustersmod.sites(self.dir, cfg.port_base, cfg.clusters, nodes=cfg.nodes, pods=cfg.pods)

    @property
    def primary(self) -> ClusterSite:
        return self.sites[0]

    def site(self, name: str) -> ClusterSite:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(f"no cluster {name!r} in this sandbox (--clusters {self.config.clusters})")

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.port('kube-apiserver')}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.port('prometheus')}"

    @property
    def elasticsearch_url(self) -> str:
        return f"http://127.0.0.1:{self.port('elasticsearch')}"

    @property
    def smtp_host(self) -> str:
        return "127.0.0.1"

    @property
    def smtp_port(self) -> int:
        return self.port("smtp")

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.port('hub')}"

    @property
    def credentials(self) -> list[dict[str, Any]]:
        from sandbox.seed import load_credentials

        return load_credentials(self.state_dir)

    @property
    def es_dir(self) -> Path:
        """Elasticsearch's data and logs: inside the sandbox unless its user cannot reach it."""
        inside = self.dir / "elasticsearch"
        if prereqs.es_runs_as() is None or prereqs._traversable_by_others(self.dir):
            return inside
        import hashlib

        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
        return Path("/var/lib/kubehub") / f"sandbox-es-{digest}"

    @property
    def pg_dir(self) -> Path:
        """PostgreSQL's data directory's parent: inside the sandbox unless its user cannot reach it
        (as root the server runs as the unprivileged system user Elasticsearch uses)."""
        inside = self.dir / "postgresql"
        if prereqs.es_runs_as() is None or prereqs._traversable_by_others(self.dir):
            return inside
        import hashlib

        digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
        return Path("/var/lib/kubehub") / f"sandbox-pg-{digest}"

    @property
    def ldap_instance(self) -> ldapmod.LdapInstance:
        """The directory (sandbox/ldap.py); files inside the sandbox unless its user cannot reach them."""
        inside = self.dir / "ldap"
        where = inside
        if prereqs.es_runs_as() is not None and not prereqs._traversable_by_others(self.dir):
            import hashlib

            digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
            where = Path("/var/lib/kubehub") / f"sandbox-ldap-{digest}"
        return ldapmod.LdapInstance(where, self.port("ldap"), self.port("ldaps"))

    @property
    def postgres_url(self) -> str:
        """The server's ``postgres`` database as superuser: tests create their own databases here."""
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port('postgresql')}/postgres"

    @property
    def hub_database_url(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port('postgresql')}/{PG_HUB_DATABASE}"

    def url_of(self, name: str) -> str:
        if name.startswith("hub-"):
            return f"http://127.0.0.1:{self.hub_replica_port(name)}"
        base, cluster = clustersmod.split(name)
        if cluster != clustersmod.PRIMARY:
            site = self.site(cluster)
            q = site.port
            return {
                "etcd": f"http://127.0.0.1:{q('etcd')}",
                "kube-apiserver": site.apiserver_url,
                "kube-controller-manager": f"https://127.0.0.1:{q('kube-controller-manager')}",
                "kube-scheduler": f"https://127.0.0.1:{q('kube-scheduler')}",
                "kwok": f"https://127.0.0.1:{q('kwok')}",
                "kube-state-metrics": f"http://127.0.0.1:{q('kube-state-metrics')}",
                "nodesim": f"http://127.0.0.1:{q('nodesim')}",
            }[base]
        p = self.port
        return {
            "etcd": f"http://127.0.0.1:{p('etcd')}",
            "kube-apiserver": self.apiserver_url,
            "kube-controller-manager": f"https://127.0.0.1:{p('kube-controller-manager')}",
            "kube-scheduler": f"https://127.0.0.1:{p('kube-scheduler')}",
            "kwok": f"https://127.0.0.1:{p('kwok')}",
            "kube-state-metrics": f"http://127.0.0.1:{p('kube-state-metrics')}",
            "nodesim": f"http://127.0.0.1:{p('nodesim')}",
            "node-exporter": f"http://127.0.0.1:{p('node-exporter')}",
            "elasticsearch": self.elasticsearch_url,
            "smtp": f"smtp://127.0.0.1:{p('smtp')}",
            "postgresql": f"postgresql://127.0.0.1:{p('postgresql')}",
            "ldap": f"ldap://127.0.0.1:{p('ldap')}",
            "oidc": oidcmod.sandbox_files(self).issuer,
            "prometheus": self.prometheus_url,
            "alertmanager": self.alertmanager_url,
            "hub": self.hub_url,
        }[name]

    # ---- HTTP probes ----------------------------------------------------------------------------

    def _tls(self, pki_dir: Path | None = None) -> ssl.SSLContext:
        pki_dir = pki_dir or self.pki_dir
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # controller and KWOK serving certificates are self-signed
        if (pki_dir / "admin.crt").exists():
            ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        return ctx

    def http(self, url: str, *, timeout: float = 3.0, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None, pki_dir: Path | None = None) -> tuple[int, bytes]:  # fmt: skip
        """``pki_dir``: whose admin certificate to present (another cluster's, for its components)."""
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        ctx = self._tls(pki_dir) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _ok(self, url: str, *, expect: bytes | None = None, timeout: float = HEALTH_TIMEOUT_SECONDS,
            pki_dir: Path | None = None) -> bool:  # fmt: skip
        try:
            code, body = self.http(url, timeout=timeout, pki_dir=pki_dir)
        except (OSError, urllib.error.URLError):
            return False
        return code == 200 and (expect is None or expect in body)

    def healthy(self, name: str) -> bool:
        kind, cluster = clustersmod.split(name)
        if cluster != clustersmod.PRIMARY:  # another cluster's component: its own URL and certificate
            url = self.url_of(name)
            pki_dir = self.site(cluster).pki_dir
            if kind == "etcd":
                return self._ok(url + "/health", expect=b'"true"')
            if kind == "kube-apiserver":
                return self._ok(url + "/readyz", pki_dir=pki_dir)
            return self._ok(url + "/healthz", pki_dir=pki_dir)
        base = self.url_of(name)
        if name == "etcd":
            return self._ok(base + "/health", expect=b'"true"')
        if name == "kube-apiserver":
            return self._ok(base + "/readyz")
        if name in ("kube-controller-manager", "kube-scheduler", "kwok", "kube-state-metrics", "nodesim"):
            return self._ok(base + "/healthz")
        if name == "node-exporter":
            return self._ok(base + "/metrics")
        if name in ("prometheus", "alertmanager"):
            return self._ok(base + "/-/ready")
        if name == "elasticsearch":
            return self._ok(base + "/_cluster/health")
        if name == "hub" or name.startswith("hub-"):
            return self._ok(base + "/healthz")
        if name == "oidc":
            return oidcmod.discovery_answers(base, self.pki_dir / "ca.crt", timeout=HEALTH_TIMEOUT_SECONDS)
        if name == "postgresql":
            return self._pg_version(timeout=HEALTH_TIMEOUT_SECONDS) is not None
        if name == "ldap":
            return self.ldap_instance.healthy(timeout=HEALTH_TIMEOUT_SECONDS)
        if name == "smtp":
            try:
                with socket.create_connection(("127.0.0.1", self.port("smtp")), timeout=HEALTH_TIMEOUT_SECONDS) as s:
                    return s.recv(64).startswith(b"220")
            except OSError:
                return False
        raise KeyError(name)

    def version_of(self, name: str) -> str:
        """The running component's version (asked from it where it can tell), else the binary's."""
        cache = self._versions()
        try:
            if name == "etcd":
                return "v" + json.loads(self.http(self.url_of(name) + "/version")[1])["etcdserver"]
            if name == "kube-apiserver":
                return str(json.loads(self.http(self.apiserver_url + "/version")[1])["gitVersion"])
            if name == "prometheus":
                data = json.loads(self.http(self.prometheus_url + "/api/v1/status/buildinfo")[1])
                return str(data["data"]["version"])
            if name == "elasticsearch":
                data = json.loads(self.http(self.elasticsearch_url + "/_nodes/_local?filter_path=nodes.*.version")[1])
                return next(iter(data["nodes"].values()))["version"]
            if name == "postgresql":
                return self._pg_version() or cache.get(name, "unknown")
            if name == "oidc":
                return f"oidc-provider {oidcmod.VERSION}"
            if name == "alertmanager":
                data = json.loads(self.http(self.alertmanager_url + "/api/v2/status")[1])
                return str(data["versionInfo"]["version"])
            if name == "ldap":
                return ldapmod.slapd_version()
        except (OSError, ValueError, KeyError, StopIteration, urllib.error.URLError):
            pass
        return cache.get("hub" if name.startswith("hub-") else clustersmod.split(name)[0], "unknown")

    def _versions(self) -> dict[str, str]:
        """Versions of the binaries, asked once per sandbox and kept in state/versions.json."""
        path = self.state_dir / "versions.json"
        try:
            cached = dict(json.loads(path.read_text()))
            if "alertmanager" in cached:  # written before Alertmanager joined: ask again
                return cached
        except (OSError, ValueError):
            pass
        import aiosmtpd

        import hub

        out = {
            "etcd": "v" + prereqs.binary_version([str(prereqs.engine("etcd")), "--version"]).lstrip("v"),
            "kube-apiserver": prereqs.binary_version([str(prereqs.engine("kube-apiserver")), "--version"]),
            "kube-controller-manager": prereqs.binary_version(
                [str(prereqs.engine("kube-controller-manager")), "--version"]
            ),
            "kube-scheduler": prereqs.binary_version([str(prereqs.engine("kube-scheduler")), "--version"]),
            "kwok": prereqs.binary_version([str(prereqs.engine("kwok")), "--version"]),
            "kube-state-metrics": "v"
            + prereqs.binary_version([str(prereqs.engine("kube-state-metrics")), "version"]).lstrip("v"),
            "nodesim": f"kubehub-sandbox {hub.__version__}",
            "node-exporter": prereqs.binary_version(["prometheus-node-exporter", "--version"]),
            "prometheus": prereqs.binary_version(["prometheus", "--version"]),
            "elasticsearch": cfgmod.ES_VERSION,
            "smtp": f"aiosmtpd {aiosmtpd.__version__}",
            "postgresql": prereqs.postgres_version(),
            "alertmanager": alertmanagermod.version(),
            "hub": hub.__version__,
        }
        if all(v != "unknown" for v in out.values()):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2))
        return out

    # ---- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The shape of ``kubehub sandbox status --json`` (see the issue and docs/sandbox.md)."""
        comps = []
        expected = self._expected_components()
        for name in [*COMPONENTS, *(n for n in expected if n not in COMPONENTS)]:
            pid = self.sup.pid(name)
            state = "down" if pid is None else "up" if self.healthy(name) else "starting"
            if name not in expected and state == "down":
                continue  # e.g. the hub of a --no-hub sandbox: not part of it
            comps.append(
                ComponentStatus(
                    name=name,
                    state=state,
                    version=self.version_of(name) if state == "up" else self._versions().get(name, "unknown"),
                    url=self.url_of(name),
                    pid=pid,
                    log=str(self.logs_dir / f"{name}.log"),
                    rss_mb=round(rss_bytes(pid) / 2**20, 1) if pid else 0.0,
                ).to_dict()
            )
        return {
            "dir": str(self.dir),
            "port_base": self.config.port_base,
            "nodes": self.config.nodes,
            "pods": self.config.pods,
            "clusters": [
                {
                    "name": s.name,
                    "kubeconfig": str(s.kubeconfig),
                    "context": s.context,
                    "api_server": s.apiserver_url,
                    "nodes": s.nodes,
                    "pods": s.pods,
                }
                for s in self.sites
            ],
            "components": comps,
            "credentials": self.credentials,
            "mailbox": str(self.mailbox),
            "kubeconfig": str(self.kubeconfig),
            "prometheus_url": self.prometheus_url,
            "alertmanager_url": self.alertmanager_url,
            "elasticsearch_url": self.elasticsearch_url,
            "smtp": {"host": self.smtp_host, "port": self.smtp_port},
            "postgresql_url": self.postgres_url,
            "oidc": oidcmod.status(self),
            "ldap": {
                "url": self.ldap_instance.url,
                "ldaps_url": self.ldap_instance.ldaps_url,
                "base_dn": ldapmod.BASE_DN,
                "ca_file": str(self.pki_dir / "ca.crt"),
                "users": {name: u[0] for name, u in ldapmod.USERS.items()},
            },
            "hub_database": self.hub_database_url if self.config.database == "postgresql" else "sqlite",
            "hub_url": self.hub_url if "hub" in expected else None,
            "hub_replicas": [self.url_of(n) for n in self.hub_replicas()] if "hub" in expected else [],
            "rss_mb": round(sum(c["rss_mb"] for c in comps), 1),
            **self._tenants_status(),
        }

    def _tenants_status(self) -> dict[str, Any]:
        """``tenants`` of ``status``: the scale tenancy's size and logins file (absent by default)."""
        if not self.config.tenants:
            return {}
        from sandbox.seed import TENANT_CREDENTIALS
        from sandbox.tenants import plan_tenancy

        return {
            "tenants": {
                **plan_tenancy(self.config.tenants).summary(),
                "credentials": str(self.state_dir / TENANT_CREDENTIALS),
            }
        }

    def _expected_components(self) -> list[str]:
        """COMPONENTS (the hub when wanted), then the hub's further replicas (``--replicas``)."""
        out = [c for c in COMPONENTS if c != "hub" or self.config.hub]
        out += [site.component(c) for site in self.sites[1:] for c in CLUSTER_COMPONENTS]
        if self.config.hub:
            out += self.hub_replicas()[1:]
        return out

    def is_up(self) -> bool:
        """Every expected component runs and answers its health check."""
        return all(self.sup.alive(n) and self.healthy(n) for n in self._expected_components())

    def engines_up(self) -> bool:
        """Every component but the hub runs and answers (what integration tests need)."""
        return all(
            self.sup.alive(n) and self.healthy(n) for n in self._expected_components() if not n.startswith("hub")
        )

    # ---- locking --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.say("another `kubehub sandbox` command works on this sandbox; waiting for it")
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    # ---- up -------------------------------------------------------------------------------------

    def up(self, *, nodes: int | None = None, pods: int | None = None, hub: bool | None = None,
           port_base: int | None = None, skip_hub: bool = False,
           database: str | None = None, replicas: int | None = None,
           clusters: int | None = None, tenants: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Bring every component up (reusing running ones) and seed what is missing.

        ``database`` ("sqlite" or "postgresql") is where the sandbox's hub keeps its state;
        PostgreSQL runs either way (it is light, and the store tests use it).
        ``nodes``, ``pods``, ``hub``, ``database`` and ``port_base`` are remembered in the sandbox directory;
        ``clusters`` is how many Kubernetes clusters run (remembered; see sandbox/clusters.py).
        ``tenants`` is how many workspaces the scale tenancy has (remembered; 0, the default, seeds
        the demo tenancy only; see sandbox/tenants.py).
        ``skip_hub`` leaves the hub alone this once (the test fixture: tests start their own hubs,
        and a hub under development must not keep the engines from coming up).
        """
        with self._locked():
            if port_base is not None:
                self.config.port_base = port_base
            if nodes is not None:
                self.config.nodes = nodes
            if pods is not None:
                self.config.pods = pods
            if hub is not None:
                self.config.hub = hub
            if database is not None:
                if database not in ("sqlite", "postgresql"):
                    raise ComponentError("hub", f"--database must be sqlite or postgresql, got {database!r}")
                self.config.database = database
            if replicas is not None:
                if not 1 <= replicas <= MAX_HUB_REPLICAS:
                    raise ComponentError("hub", f"--replicas must be within 1..{MAX_HUB_REPLICAS}, got {replicas}")
                self.config.replicas = replicas
                if replicas > 1:
                    self.config.database = "postgresql"  # replicas share their state there
            if clusters is not None:
                if not 1 <= clusters <= clustersmod.MAX_CLUSTERS:
                    raise ComponentError(
                        "kube-apiserver", f"--clusters must be within 1..{clustersmod.MAX_CLUSTERS}, got {clusters}"
                    )
                self.config.clusters = clusters
            if tenants is not None:
                from sandbox.tenants import MAX_TENANTS

                if not 0 <= tenants <= MAX_TENANTS:
                    raise ComponentError("hub", f"--tenants must be within 0..{MAX_TENANTS}, got {tenants}")
                self.config.tenants = tenants
            self.config.save(self.dir / "sandbox.json")
            started: list[str] = []
            try:
                self._up(started, with_hub=self.config.hub and not skip_hub)
            except BaseException as exc:
                if isinstance(exc, ComponentError):
                    self.say(f"FAILED {exc}")
                if started:
                    self.say(f"stopping what this run started: {', '.join(started)}")
                    for name in reversed(started):
                        self.sup.stop(name)
                raise
            self.say(f"sandbox up in {self.say.elapsed:.1f}s")
            return self.status()

    def _up(self, started: list[str], *, with_hub: bool) -> None:
        from sandbox import kube, seed

        say = self.say
        for d in (self.logs_dir, self.state_dir, self.pod_logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        if (self.is_up() or (not with_hub and self.engines_up())) and not self._stale_python_components(
            with_hub=with_hub
        ):
            say("every component is already up")
            self._reload_prometheus_if_changed()  # e.g. a rule file changed
            if self.config.tenants:  # `up --tenants N` on a running sandbox: seed what is missing now
                seeder = seed.Seeder(self, kube.KubeRest(self.kubeconfig))
                if self._tenants_pending():
                    seeder.seed_cluster()
                seeder.seed_credentials()
                if with_hub:
                    seeder.seed_hub()  # skips the hooks already run with the same input
            return
        prereqs.ensure_debian_packages(say)
        prereqs.ensure_engines(say)
        es_home = prereqs.ensure_elasticsearch(say)
        prereqs.ensure_es_user()
        for site in self.sites:
            self._site_files(site)
        self._versions()

        # Elasticsearch takes the longest to start: launch it first, wait for it last.
        self._ensure("elasticsearch", self._spec_elasticsearch(es_home), started, wait=False)
        self._ensure("smtp", self._spec_smtp(), started)
        self._ensure_postgresql(started)
        self._ensure_oidc(started)
        self._ensure_ldap(started)
        self._up_cluster(self.primary, started)
        self._ensure("node-exporter", self._spec_node_exporter(), started, timeout=30)

        seeder = seed.Seeder(self, kube.KubeRest(self.kubeconfig))
        seeder.seed_cluster()
        for site in self.sites[1:]:
            self._up_cluster(site, started)
            seed.Seeder(self, kube.KubeRest(site.kubeconfig), site=site).seed_cluster()
        wanted_sites = {site.name for site in self.sites}
        for name in self.sup.names():  # clusters of an earlier --clusters that are not wanted now
            if "@" in name and clustersmod.split(name)[1] not in wanted_sites:
                self.sup.stop(name)
                say(f"{name}: stopped (--clusters {self.config.clusters})")
        self._wait_component("elasticsearch", timeout=180)
        seeder.seed_logs()
        for site in self.sites[1:]:  # their pod logs, registered with their own KWOK
            seed.Seeder(self, kube.KubeRest(site.kubeconfig), site=site).seed_logs()
        seeder.seed_credentials()

        from sandbox import backfill

        if self.config.clusters == 1:
            backfill.ensure_backfill(self)  # only before Prometheus's first start
        elif not (self.dir / "prometheus" / "data").exists():
            say("backfill: skipped (the history is written for one cluster only; --clusters > 1 starts empty)")
        from sandbox import promcfg

        replay = promcfg.replay_bytes(self.dir / "prometheus" / "data")
        prometheus_wait = promcfg.start_timeout(replay)
        if prometheus_wait > promcfg.START_SECONDS and not self.sup.alive("prometheus"):
            say(
                f"prometheus: {replay / 1e9:.1f} GB of write-ahead log to replay; "
                f"waiting up to {prometheus_wait:.0f}s for it to be ready"
            )
        self._ensure("prometheus", self._spec_prometheus(), started, timeout=prometheus_wait)
        self._reload_prometheus_if_changed()
        self._ensure("alertmanager", self._spec_alertmanager(), started, timeout=60)
        if with_hub:
            self._ensure("hub", self._spec_hub(), started, timeout=120)
            for name in self.hub_replicas()[1:]:
                self._ensure(name, self._spec_hub(name), started, timeout=120)
            for name in self.sup.names():  # replicas of an earlier --replicas that are not wanted now
                if name.startswith("hub-") and name not in self.hub_replicas():
                    self.sup.stop(name)
                    self.say(f"{name}: stopped (--replicas {self.config.replicas})")
            self._reload_prometheus_if_changed()  # now with the hub's own target
            seeder.seed_hub()

    def _tenants_pending(self) -> bool:
        """Whether the scale tenancy asked for (``--tenants``) is not seeded in the cluster yet."""
        if not self.config.tenants:
            return False
        try:
            seeded = json.loads((self.state_dir / "seed-timing.json").read_text()).get("tenants", 0)
        except (OSError, ValueError):
            seeded = 0
        return bool(seeded != self.config.tenants)

    def up_clusters_only(self, clusters: int = 2) -> list[ClusterSite]:
        """Only the Kubernetes clusters (control plane, KWOK, kube-state-metrics, nodesim), seeded:
        what the multi-cluster tests need of a private sandbox, without Elasticsearch, PostgreSQL,
        the directory, the SSO provider or Prometheus. The same code as :meth:`up` builds them."""
        from sandbox import kube, seed

        with self._locked():
            self.config.clusters = clusters
            self.config.hub = False
            self.config.save(self.dir / "sandbox.json")
            started: list[str] = []
            try:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                prereqs.ensure_engines(self.say)
                for site in self.sites:
                    self._site_files(site)
                    self._up_cluster(site, started)
                    seed.Seeder(self, kube.KubeRest(site.kubeconfig), site=site).seed_cluster()
            except BaseException:
                for name in reversed(started):
                    self.sup.stop(name)
                raise
            return self.sites

    def _site_files(self, site: ClusterSite) -> None:
        """A cluster's own CA, certificates and admin kubeconfig (made once, kept)."""
        pki.ensure_pki(site.pki_dir, ca_name="kubehub-sandbox-ca" if site.primary else f"kubehub-{site.name}-ca")
        pki.write_kubeconfig(site.kubeconfig, pki=site.pki_dir, server=site.apiserver_url, name=site.context)

    def _up_cluster(self, site: ClusterSite, started: list[str]) -> None:
        """One Kubernetes cluster's control plane, KWOK, kube-state-metrics and nodesim (any cluster)."""
        from sandbox import kube

        for d in (site.state_dir, site.pod_logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        name = site.component
        self._ensure(name("etcd"), self._spec_etcd(site), started, timeout=60)
        self._ensure(name("kube-apiserver"), self._spec_apiserver(site), started, timeout=120)
        api = kube.KubeRest(site.kubeconfig)
        kube.apply_kwok_crds(api)
        if not wait_for(lambda: kube.kwok_crds_established(api), timeout=60):
            raise ComponentError(
                name("kube-apiserver"), "KWOK's CRDs did not become established", self._log(name("kube-apiserver"))
            )
        kube.apply_cluster_object(api, kube.cadvisor_metric())
        kube.apply_cluster_object(api, kube.usage_object())
        kube.kwok_config(site.kwok_config, node_lease_seconds=NODE_LEASE_SECONDS)
        self._ensure(name("kube-controller-manager"), self._spec_kcm(site), started, timeout=90)
        self._ensure(name("kube-scheduler"), self._spec_scheduler(site), started, timeout=90)
        self._ensure(name("kwok"), self._spec_kwok(site), started, timeout=60)
        self._ensure(name("kube-state-metrics"), self._spec_ksm(site), started, timeout=60)
        # nodesim is healthy once it has listed every node: at 1,000 nodes, right after the API
        # server started over 20,000 pods, that list alone took over 30 s once.
        self._ensure(name("nodesim"), self._spec_nodesim(site), started, timeout=30 + self.config.nodes // 10)

    def _reload_prometheus_if_changed(self) -> None:
        """A running Prometheus keeps its configuration; reload it when ``up`` changed it (e.g. --hub)."""
        from sandbox import promcfg

        path = self.dir / "prometheus" / "prometheus.yml"
        wanted = promcfg.render(self)
        if path.exists() and path.read_text(encoding="utf-8") == wanted:
            return
        promcfg.write_config(self, path)
        code, body = self.http(self.prometheus_url + "/-/reload", method="POST", timeout=30)
        if code != 200:
            raise ComponentError("prometheus", f"configuration reload failed: {body[:200]!r}", self._log("prometheus"))
        self.say("prometheus: configuration reloaded")

    def _ensure(self, name: str, spec: ProcSpec, started: list[str], *, timeout: float = 60, wait: bool = True) -> None:
        if self.sup.alive(name) and self.sup.outdated(spec):
            # Started by an older sandbox with other options: bring it in line.
            self.say(f"{name}: command line or code changed; restarting it")
            self.sup.stop(name)
        if self.sup.alive(name):
            if self.healthy(name):
                self.say(f"{name}: already up")
                return
            if not wait:
                return
            # Running but not answering: a busy machine, a WAL replay, a long garbage collection.
            # Restarting would make it worse (and disturb everyone using the sandbox), so it gets
            # a long grace period first.
            grace = max(timeout, UNHEALTHY_GRACE_SECONDS)
            self.say(f"{name}: running but not answering its health check; waiting up to {grace:.0f}s")
            if wait_for(lambda: self.healthy(name), timeout=grace, interval=2, alive=lambda: self.sup.alive(name)):
                self.say(f"{name}: up")
                return
            if self.sup.alive(name):
                self.say(f"{name}: still not healthy after {grace:.0f}s; restarting it")
                self.sup.stop(name)
        self.say(f"{name}: starting")
        self.sup.start(spec)
        started.append(name)
        if wait:
            self._wait_component(name, timeout=timeout)

    def _wait_component(self, name: str, *, timeout: float) -> None:
        log = self.logs_dir / f"{name}.log"
        ok = wait_for(lambda: self.healthy(name), timeout=timeout, alive=lambda: self.sup.alive(name))
        if ok:
            self.say(f"{name}: up")
            return
        if not self.sup.alive(name):
            last = tail(log, 1).strip()
            raise ComponentError(name, f"exited during start-up ({last[-200:] or 'no output'})", log)
        last = tail(log, 1).strip()
        pid = self.sup.pid(name)
        doing = process_snapshot(pid) if pid else "gone"
        said = last[-200:] or "none"
        raise ComponentError(name, f"not healthy after {timeout:.0f}s ({doing}; last line of its log: {said})", log)

    # ---- process specs --------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _spec_etcd(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        p, pp = site.port("etcd"), site.port("etcd-peer")
        return ProcSpec(
            name=site.component("etcd"),
            argv=[
                str(prereqs.engine("etcd")),
                "--name=sandbox",
                f"--data-dir={site.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p}",
                f"--advertise-client-urls=http://127.0.0.1:{p}",
                f"--listen-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{pp}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{pp}",
                "--quota-backend-bytes=8589934592",
                "--auto-compaction-retention=1",
                # A sandbox on a shared disk: skipping fsync makes seeding thousands of objects
                # fast; only a kernel crash (not a process crash) could lose writes.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            log=self._log(site.component("etcd")),
            ports=[p, pp],
        )

    def _spec_apiserver(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        k = site.pki_dir
        return ProcSpec(
            name=site.component("kube-apiserver"),
            argv=[
                str(prereqs.engine("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{site.port('etcd')}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={site.port('kube-apiserver')}",
                f"--tls-cert-file={k / 'apiserver.crt'}",
                f"--tls-private-key-file={k / 'apiserver.key'}",
                f"--client-ca-file={k / 'ca.crt'}",
                f"--service-account-key-file={k / 'sa.pub'}",
                f"--service-account-signing-key-file={k / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={k / 'admin.crt'}",
                f"--kubelet-client-key={k / 'admin.key'}",
                # KWOK's nodes carry InternalIP 127.0.0.1 and KWOK's port: `kubectl logs` reaches KWOK.
                "--kubelet-preferred-address-types=InternalIP",
                # Aggregation-layer settings: without them every component logs a missing CA bundle.
                f"--requestheader-client-ca-file={k / 'ca.crt'}",
                "--requestheader-allowed-names=kubehub-sandbox-admin",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={k / 'admin.crt'}",
                f"--proxy-client-key-file={k / 'admin.key'}",
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--event-ttl=2h",
                "--profiling=false",
            ],
            log=self._log(site.component("kube-apiserver")),
            ports=[site.port("kube-apiserver")],
        )

    def _spec_kcm(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        k = site.pki_dir
        return ProcSpec(
            name=site.component("kube-controller-manager"),
            argv=[
                str(prereqs.engine("kube-controller-manager")),
                f"--kubeconfig={site.kubeconfig}",
                f"--authentication-kubeconfig={site.kubeconfig}",
                f"--authorization-kubeconfig={site.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={site.port('kube-controller-manager')}",
                f"--root-ca-file={k / 'ca.crt'}",
                f"--service-account-private-key-file={k / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                "--node-monitor-period=25s",
                f"--node-monitor-grace-period={NODE_LEASE_SECONDS * 5}s",
                # Scale runs create tens of thousands of pods through the ReplicaSet controller.
                "--kube-api-qps=1000",
                "--kube-api-burst=2000",
                "--concurrent-replicaset-syncs=16",
                "--concurrent-deployment-syncs=16",
                f"--controllers={KCM_CONTROLLERS}",
            ],
            log=self._log(site.component("kube-controller-manager")),
            ports=[site.port("kube-controller-manager")],
        )

    def _spec_scheduler(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        return ProcSpec(
            name=site.component("kube-scheduler"),
            argv=[
                str(prereqs.engine("kube-scheduler")),
                f"--kubeconfig={site.kubeconfig}",
                f"--authentication-kubeconfig={site.kubeconfig}",
                f"--authorization-kubeconfig={site.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={site.port('kube-scheduler')}",
                "--leader-elect=false",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                "--kube-api-qps=1000",
                "--kube-api-burst=2000",
            ],
            log=self._log(site.component("kube-scheduler")),
            ports=[site.port("kube-scheduler")],
        )

    def _spec_kwok(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        k = site.pki_dir
        p = site.port("kwok")
        return ProcSpec(
            name=site.component("kwok"),
            argv=[
                str(prereqs.engine("kwok")),
                f"--kubeconfig={site.kubeconfig}",
                f"--config={site.kwok_config}",
                "--manage-all-nodes=true",
                f"--tls-cert-file={k / 'kwok.crt'}",
                f"--tls-private-key-file={k / 'kwok.key'}",
                "--node-ip=127.0.0.1",
                "--node-name=localhost",
                f"--node-port={p}",
                f"--server-address=127.0.0.1:{p}",
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
                "--enable-crds=" + ",".join(["Metric", "ClusterResourceUsage", "ResourceUsage", "Logs", "ClusterLogs"]),
                "--v=WARN",  # INFO logs every pod patch: gigabytes of log at 20,000 pods
            ],
            log=self._log(site.component("kwok")),
            ports=[p],
        )

    def _spec_ksm(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        return ProcSpec(
            name=site.component("kube-state-metrics"),
            argv=[
                str(prereqs.engine("kube-state-metrics")),
                f"--kubeconfig={site.kubeconfig}",
                "--host=127.0.0.1",
                f"--port={site.port('kube-state-metrics')}",
                "--telemetry-host=127.0.0.1",
                f"--telemetry-port={site.port('kube-state-metrics-telemetry')}",
                "--metric-labels-allowlist=namespaces=[kubesphere.io/workspace]",
            ],
            log=self._log(site.component("kube-state-metrics")),
            ports=site.ports_of("kube-state-metrics"),
        )

    def _python(self, module: str, *args: str, name: str, ports: list[int]) -> ProcSpec:
        root = str(Path(__file__).resolve().parent.parent)
        env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
        # The code's digest is part of the command line, so that `up` restarts our own Python
        # components when the sandbox's code changed (see _ensure).
        argv = [_interpreter(), "-m", module, *args]
        return ProcSpec(name=name, argv=argv, log=self._log(name), env=env, ports=ports, stamp=code_digest("sandbox"))

    def _stale_python_components(self, *, with_hub: bool) -> list[str]:
        """Our own Python components whose code changed since they started (cheap to check)."""
        specs = [*(self._spec_nodesim(site) for site in self.sites), self._spec_smtp()]
        if with_hub:
            specs += [self._spec_hub(name) for name in self.hub_replicas()]
        return [s.name for s in specs if self.sup.alive(s.name) and self.sup.outdated(s)]

    def _spec_nodesim(self, site: ClusterSite | None = None) -> ProcSpec:
        site = site or self.primary
        return self._python(
            "sandbox.nodesim",
            f"--kubeconfig={site.kubeconfig}",
            f"--port={site.port('nodesim')}",
            f"--state={site.state_dir / 'nodesim.json'}",
            f"--pod-logs={site.pod_logs_dir}",
            name=site.component("nodesim"),
            ports=[site.port("nodesim")],
        )

    def _spec_smtp(self) -> ProcSpec:
        return self._python(
            "sandbox.smtp",
            f"--port={self.port('smtp')}",
            f"--maildir={self.mailbox}",
            name="smtp",
            ports=[self.port("smtp")],
        )

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.port('alertmanager')}"

    def _spec_alertmanager(self) -> ProcSpec:
        """Alertmanager (sandbox/alertmanager.py): its config and data under the sandbox's state,
        run unprivileged like PostgreSQL."""
        if alertmanagermod.binary() is None:
            raise ComponentError("alertmanager", "prometheus-alertmanager is not installed (scripts/bootstrap.sh)")
        user = prereqs.es_runs_as()
        pg = self.pg_dir  # inside the sandbox, or where its user can reach: the same choice here
        where = self.dir / "alertmanager" if pg.parent == self.dir else pg.with_name(pg.name.replace("-pg-", "-am-"))
        alertmanagermod.prepare(where, user=user)
        return ProcSpec(
            name="alertmanager",
            argv=alertmanagermod.argv(where, self.port("alertmanager")),
            cwd=where,
            user=user,
            log=self._log("alertmanager"),
            ports=[self.port("alertmanager")],
        )

    def _spec_node_exporter(self) -> ProcSpec:
        return ProcSpec(
            name="node-exporter",
            argv=[
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{self.port('node-exporter')}",
                # Only what the host dashboard needs; the systemd/textfile collectors need setup.
                "--collector.disable-defaults",
                *[
                    f"--collector.{c}"
                    for c in ("cpu", "meminfo", "loadavg", "filesystem", "diskstats", "netdev", "uname", "stat", "time")
                ],
            ],
            log=self._log("node-exporter"),
            ports=[self.port("node-exporter")],
        )

    def _spec_elasticsearch(self, home: Path) -> ProcSpec:
        es = self.es_dir
        user = prereqs.es_runs_as()
        conf = es / "config"
        for sub in ("data", "logs", "tmp"):
            (es / sub).mkdir(parents=True, exist_ok=True)
        if not (conf / "jvm.options").exists():
            shutil.copytree(home / "config", conf, dirs_exist_ok=True)
        # The stock options write GC and crash logs relative to the (read-only) distribution.
        jvm = conf / "jvm.options"
        text = jvm.read_text()
        fixed = text.replace("file=logs/gc.log", f"file={es / 'logs' / 'gc.log'}").replace(
            "-XX:ErrorFile=logs/", f"-XX:ErrorFile={es / 'logs'}/"
        )
        if fixed != text:
            jvm.write_text(fixed)
        if user:
            import pwd

            pw = pwd.getpwnam(user)
            for root, _dirs, files in os.walk(es):
                os.chown(root, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)
        java = prereqs.find_java_home()
        if java is None:
            raise ComponentError("elasticsearch", "no Java 17+ found (apt-get install openjdk-17-jre-headless)")
        return ProcSpec(
            name="elasticsearch",
            argv=[
                str(home / "bin" / "elasticsearch"),
                "-E",
                "discovery.type=single-node",
                "-E",
                "xpack.security.enabled=false",
                "-E",
                "network.host=127.0.0.1",
                "-E",
                f"http.port={self.port('elasticsearch')}",
                "-E",
                f"transport.port={self.port('elasticsearch-transport')}",
                "-E",
                f"path.data={es / 'data'}",
                "-E",
                f"path.logs={es / 'logs'}",
                "-E",
                "cluster.name=kubehub-sandbox",
                "-E",
                "cluster.routing.allocation.disk.threshold_enabled=false",
                "-E",
                "action.destructive_requires_name=false",
            ],
            env={
                "ES_JAVA_HOME": str(java),
                "ES_JAVA_OPTS": "-Xms1g -Xmx1g",
                "ES_PATH_CONF": str(conf),
                # Otherwise every start leaves a /tmp/elasticsearch-<n> directory behind.
                "ES_TMPDIR": str(es / "tmp"),
            },
            cwd=es,
            user=user,
            log=self._log("elasticsearch"),
            ports=[self.port("elasticsearch"), self.port("elasticsearch-transport")],
        )

    # ---- PostgreSQL ------------------------------------------------------------------------------

    def ensure_postgresql(self) -> str:
        """Start the PostgreSQL component alone if it is not running (tests call this even when
        the sandbox's hub runs on SQLite); returns :attr:`postgres_url`. Other components are
        left as they are."""
        if self.sup.alive("postgresql") and self.healthy("postgresql"):
            return self.postgres_url
        with self._locked():
            prereqs.ensure_debian_packages(self.say)
            prereqs.ensure_es_user()
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self._ensure_postgresql([])
        return self.postgres_url

    def ensure_ldap(self) -> ldapmod.LdapInstance:
        """Start the directory alone if it is not running (the LDAP tests call this); returns it."""
        if not (self.sup.alive("ldap") and self.healthy("ldap")):
            with self._locked():
                prereqs.ensure_debian_packages(self.say)
                prereqs.ensure_es_user()
                pki.ensure_pki(self.pki_dir)
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                self._ensure_ldap([])
        return self.ldap_instance

    def _ensure_oidc(self, started: list[str]) -> None:
        """Start the OIDC provider, once more if its first start hangs. Node 20 sometimes stops at
        start-up right after oidc-provider's runtime warning, its main thread in a futex wait with
        no CPU used (seen three times in CI, always on a fresh start; the next start came up in
        under a second), so a start that has not answered in 20 s is stopped and made again. gdb
        later showed the cause, Node's ``generateKeyPairSync`` deadlocking while making the first
        key; all keys are now made in Python (``sandbox.oidc.new_signing_key``) and this retry
        stays only as a safety net."""
        spec = oidcmod.prepare_sandbox(self, self.say)
        try:
            self._ensure("oidc", spec, started, timeout=20)
        except ComponentError as exc:
            if not self.sup.alive("oidc"):
                raise  # it exited or never started (a port in use): a second try would not help
            self.say(f"oidc: {exc.reason}; starting it once more")
            self.sup.stop("oidc")
            self._ensure("oidc", spec, started, timeout=60)

    def _ensure_ldap(self, started: list[str]) -> None:
        instance = self.ldap_instance
        user = prereqs.es_runs_as()
        if not (self.sup.alive("ldap") and self.healthy("ldap")):
            try:
                instance.prepare(self.pki_dir, user=user)
            except RuntimeError as exc:
                raise ComponentError("ldap", str(exc), self._log("ldap")) from exc
        spec = ProcSpec(name="ldap", argv=instance.argv(), cwd=instance.dir, user=user, log=self._log("ldap"),
                        ports=[instance.port, instance.ldaps_port])  # fmt: skip
        self._ensure("ldap", spec, started, timeout=30)

    def _ensure_postgresql(self, started: list[str]) -> None:
        self._ensure("postgresql", self._spec_postgresql(), started, timeout=60)
        import psycopg

        with psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_HUB_DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{PG_HUB_DATABASE}"')

    def _pg_version(self, timeout: float = 3.0) -> str | None:
        """The running server's version, or None when it does not answer."""
        try:
            import psycopg

            with psycopg.connect(self.postgres_url, connect_timeout=max(1, int(timeout))) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except Exception:  # any failure to connect or ask means "not healthy"
            return None
        return str(row[0]).split()[0] if row else None

    def _spec_postgresql(self) -> ProcSpec:
        """The server on its own port, data under :attr:`pg_dir`, run by an unprivileged user
        (PostgreSQL refuses root). ``initdb`` runs once. Loopback TCP only, no Unix socket;
        ``synchronous_commit=off`` is the sandbox's equivalent of SQLite's WAL with
        ``synchronous=NORMAL``: a process crash loses nothing, a kernel crash the last commits."""
        bin_dir = prereqs.postgres_bin()
        if bin_dir is None:
            raise ComponentError("postgresql", "no PostgreSQL server found (apt-get install postgresql)")
        pg = self.pg_dir
        data = pg / "data"
        user = prereqs.es_runs_as()
        if not (data / "PG_VERSION").exists():
            pg.mkdir(parents=True, exist_ok=True)
            if user:
                import pwd

                pw = pwd.getpwnam(user)
                os.chown(pg, pw.pw_uid, pw.pw_gid)
            shutil.rmtree(data, ignore_errors=True)  # a half-done earlier initdb
            argv = [str(bin_dir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8",
                    "--no-locale"]  # fmt: skip
            if user and os.geteuid() == 0:
                argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
            log = self._log("postgresql")
            log.parent.mkdir(parents=True, exist_ok=True)
            self.say("postgresql: initdb")
            import subprocess

            with open(log, "ab") as out:
                rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=pg, check=False).returncode
            if rc != 0:
                raise ComponentError("postgresql", f"initdb failed (exit {rc})", log)
        return ProcSpec(
            name="postgresql",
            argv=[
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port("postgresql")),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "synchronous_commit=off",
                "-c",
                "log_min_messages=warning",
            ],
            cwd=pg,
            user=user,
            log=self._log("postgresql"),
            ports=[self.port("postgresql")],
            stop_signal="SIGINT",
        )

    def _spec_prometheus(self) -> ProcSpec:
        from sandbox import promcfg

        pdir = self.dir / "prometheus"
        cfg = promcfg.write_config(self, pdir / "prometheus.yml")
        return ProcSpec(
            name="prometheus",
            argv=[
                "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={pdir / 'data'}",
                "--storage.tsdb.retention.time=30d",
                f"--web.listen-address=127.0.0.1:{self.port('prometheus')}",
                "--web.enable-lifecycle",
                "--web.enable-admin-api",
                f"--web.external-url={self.prometheus_url}",
                "--log.level=warn",
            ],
            cwd=pdir,
            log=self._log("prometheus"),
            ports=[self.port("prometheus")],
            env={"GOMEMLIMIT": prometheus_memory_limit()},
        )

    def hub_cluster_env(self) -> dict[str, str]:
        """With several clusters the first cluster's series carry ``cluster="default"`` too
        (sandbox/promcfg.py), so the hub reads Prometheus as a shared endpoint for it."""
        return {"KUBEHUB_CLUSTERS_DEFAULT_METRICS_LABEL": self.primary.name} if len(self.sites) > 1 else {}

    def hub_replicas(self) -> list[str]:
        """The hub's process names: ``hub``, then ``hub-2``, ``hub-3``... with ``--replicas``."""
        return ["hub", *(f"hub-{i}" for i in range(2, self.config.replicas + 1))]

    def hub_replica_port(self, name: str) -> int:
        """``hub`` on its port, ``hub-N`` on the next ones (BASE+80, +81, +82...)."""
        return self.port("hub") + (int(name.split("-", 1)[1]) - 1 if name.startswith("hub-") else 0)

    def hub_environment(self) -> dict[str, str]:
        """The environment the sandbox's hub is started with (its settings, for a tool or a test
        that reads the same state: tests/e2e/conftest.py with ``KUBEHUB_E2E_HUB=sandbox``)."""
        return dict(self._spec_hub().env or {})

    def _spec_hub(self, name: str = "hub") -> ProcSpec:
        data_dir = self.hub_data_dir if name == "hub" else self.dir / f"{name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        kubehub = Path(sys.executable).with_name("kubehub")
        argv = [str(kubehub)] if kubehub.exists() else [sys.executable, "-m", "hub.cli"]
        root = str(Path(__file__).resolve().parent.parent)
        port = self.hub_replica_port(name)
        replicas = self.config.replicas > 1
        return ProcSpec(
            name=name,
            argv=[*argv, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={
                "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                "KUBEHUB_DATA_DIR": str(data_dir),
                # Several replicas: each its own name in the lease, /readyz and the admin overview.
                **({"KUBEHUB_LEADER_REPLICA_ID": f"sandbox-{name}"} if replicas else {}),
                "KUBEHUB_KUBERNETES_KUBECONFIG": str(self.kubeconfig),
                "KUBEHUB_PROMETHEUS_URL": self.prometheus_url,
                "KUBEHUB_SMTP_HOST": self.smtp_host,
                "KUBEHUB_SMTP_PORT": str(self.smtp_port),
                "KUBEHUB_ELASTICSEARCH_URL": self.elasticsearch_url,
                "KUBEHUB_HTTP_PUBLIC_URL": self.hub_url,
                **oidcmod.hub_environment(self),
                **({"KUBEHUB_DATABASE_URL": self.hub_database_url} if self.config.database == "postgresql" else {}),
                **ldapmod.hub_env(self.ldap_instance, self.pki_dir),
                **self.hub_cluster_env(),
            },
            log=self._log(name),
            ports=[port],
            # A changed hub (another area's work landed, or another --database) is restarted by the next `up`.
            stamp=code_digest("hub", "web")
            + ("+postgresql" if self.config.database == "postgresql" else "")
            + (f"+replicas{self.config.replicas}" if replicas else ""),
        )

    # ---- down / reset ---------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every process this sandbox started; returns the names that were running."""
        with self._locked():
            stopped = []
            # Further clusters first, each in reverse start order (an API server whose etcd is
            # gone takes 15 s to stop), then the sandbox's own components, then anything left.
            extra = [site.component(c) for site in reversed(self.sites[1:]) for c in reversed(CLUSTER_COMPONENTS)]
            names = [*extra, *reversed(COMPONENTS)]
            names += [n for n in self.sup.names() if n not in names]
            for name in names:
                if self.sup.stop(name):
                    stopped.append(name)
                    self.say(f"{name}: stopped")
            return stopped

    def reset(self) -> None:
        """Stop everything and delete the sandbox's state (built engines and downloads are kept)."""
        self.down()
        es = self.es_dir
        pg = self.pg_dir
        with self._locked():
            keep = {".lock"}
            for child in self.dir.iterdir():
                if child.name in keep:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            if es != self.dir / "elasticsearch":
                shutil.rmtree(es, ignore_errors=True)
            if pg != self.dir / "postgresql":
                shutil.rmtree(pg, ignore_errors=True)
            shutil.rmtree(self.ldap_instance.dir, ignore_errors=True)  # may live outside the directory
            (self.pki_dir / "ldap.crt").unlink(missing_ok=True)  # the pki dir itself went above
            shutil.rmtree(oidcmod.sandbox_files(self).dir, ignore_errors=True)  # may live outside the directory
        self.say(f"removed the state under {self.dir}")

    @classmethod
    def shared(cls, dir: str | Path | None = None) -> Sandbox:
        """The sandbox tests use: the one already running (never a second copy), else brought up.

        Directory: ``dir``, else ``$KUBEHUB_SANDBOX_DIR``, else the default. The hub is never
        started from here (tests start their own); the sandbox's own choice is left as it is, so
        a later ``kubehub sandbox up`` still starts its hub.
        """
        sb = cls(dir or os.environ.get("KUBEHUB_SANDBOX_DIR") or None)
        # A health check may miss on a loaded machine: look twice before going through `up`.
        if not sb.engines_up() and not wait_for(sb.engines_up, timeout=20, interval=5):
            sb.up(skip_hub=True)
        elif sb._stale_python_components(with_hub=False):
            # Our own Python components (node simulator, mail catcher) started from another
            # checkout or older code: the tests must run against this tree's, so `up` restarts
            # them now rather than a test's own `up` in the middle of the run.
            sb.up(skip_hub=True)
        return sb

    def wait_up(self, timeout: float = 60) -> bool:
        return wait_for(self.is_up, timeout=timeout, interval=1)


def _interpreter() -> str:
    """This environment's Python under one name. A venv answers to both ``bin/python`` and
    ``bin/python3``; ``make test`` ran as one and ``make test-postgres`` as the other, so the next
    ``up`` saw another command line and restarted the sandbox's Python components."""
    named = Path(sys.prefix) / "bin" / "python"
    if sys.prefix != sys.base_prefix and named.exists():
        return str(named)
    return sys.executable


def code_digest(*packages: str) -> str:
    """Digest of the source files of packages of this tree (sandbox, hub, web)."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*")):
            if f.is_file() and f.suffix in (".py", ".html", ".js", ".css", ".j2", ".yaml", ".sql", ".json"):
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def ports_table(cfg: SandboxConfig) -> list[tuple[str, int]]:
    return sorted(((n, cfg.port(n)) for n in cfgmod.PORT_OFFSETS), key=lambda x: x[1])


def scrape_interval() -> int:
    return SCRAPE_INTERVAL_SECONDS


Callback = Callable[[str], None]


def prometheus_memory_limit(total_bytes: int | None = None) -> str:
    """Go's soft memory limit for the sandbox's Prometheus: half of this machine's memory.

    Why: Go collects garbage when the heap has doubled since the last collection (GOGC=100), so
    a Prometheus holding 8 GB of live head at the scale profile grows towards 16 GB before it
    collects; on 2026-12-06 the kernel killed it at 17.5 GB on this 24 GiB machine. Near the
    limit Go collects sooner (taking at most half the CPU for it) instead."""
    if total_bytes is None:
        try:
            total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            total_bytes = 8 << 30
    return f"{max(1, total_bytes // 2 >> 20)}MiB"
