"""The sandbox's OpenID Connect provider: ``oidc-provider`` from the npm registry, run by Node.

Why this provider: it is OpenID Certified, installs offline here from the npm registry in about
two seconds (40 small packages, 3.4 MB; ``npm ci`` against ``oidc-provider/package-lock.json``),
and needs nothing else than the Node already on the machine. Ory Hydra would be built from the
Go module proxy (minutes of compiling on 2 cores, plus a login/consent app and a database);
Keycloak's server is not on Maven Central and current Dex is not served by the Go proxy.

What runs: ``sandbox/oidc-provider/provider.mjs`` (a copy next to the installed modules), with a
login page of its own that checks the seeded users' passwords, automatic consent for the hub,
RP-initiated logout, PKCE required, and a ``groups`` claim. It serves HTTPS with a certificate
from the sandbox's private CA (``pki/ca.crt``), so the hub's ``oidc.ca_file`` setting is
exercised the way a company's private CA would be; the hub's own sandbox URL stays plain HTTP on
loopback. As root it runs as the unprivileged sandbox user, like Elasticsearch and PostgreSQL,
with its files where that user can read them.

``ProviderFiles`` writes one provider's configuration; the sandbox component and the tests'
private copies (which stop it, rotate its keys) both use it. The module is about 500
lines because it keeps one provider's whole life together (install, certificate, files, the
component, a private copy's process), so that the component and the tests' copies cannot drift.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import pki, prereqs
from sandbox.config import cache_root
from sandbox.procs import ComponentError, ProcSpec, process_snapshot

SOURCE = Path(__file__).resolve().parent / "oidc-provider"
VERSION = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))["dependencies"]["oidc-provider"]
MIN_NODE = (20, 19)  # oidc-provider 9 and jose 6 are ES modules loaded with require(esm)

HUB_CLIENT = "kubehub"  # the sandbox hub's client
TEST_CLIENT = "kubehub-tests"  # tests' hubs (Flask test clients): the redirect URL is only a string
TEST_REDIRECT = "http://kubehub.test/login/oidc/callback"

# Seeded users: (user name, groups). The groups are the sandbox directory's (sandbox/ldap.py), as
# when a company's identity provider federates its directory, so the sandbox hub's one set of
# group mappings (auth.group_mappings, sandbox/ldap.py hub_env) serves both sign-in methods.
# The names differ from the directory's users: one name belongs to one source.
SEED_USERS: list[tuple[str, list[str]]] = [
    ("olivia", ["ops-admins"]),  # platform admin
    ("sam", ["retail-devs", "api-oncall"]),  # workspace retail regular, project retail-api operator
    ("ana", ["etl-readers"]),  # project analytics-etl viewer
    ("noel", []),  # no mapped group: signs in, sees nothing
]

Say = Callable[[str], None]


def install_dir() -> Path:
    """Where the npm packages are installed: the cache, or (as root, when the unprivileged
    user cannot enter the cache under /root) /var/cache/kubehub."""
    if os.geteuid() == 0 and not prereqs._traversable_by_others(cache_root()):
        return Path("/var/cache/kubehub") / f"oidc-provider-{VERSION}"
    return cache_root() / f"oidc-provider-{VERSION}"


def node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        return tuple(int(p) for p in out.lstrip("v").split("."))
    except ValueError:
        return None


def ensure_installed(say: Say) -> Path:
    """``npm ci`` the pinned provider once (about 2 s); returns the directory holding ``node_modules``
    and the program's copy. Node >= 20.19 and npm must be on the PATH (Debian: nodejs, npm)."""
    home = install_dir()
    script = home / "provider.mjs"
    marker = home / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists() and json.loads(marker.read_text(encoding="utf-8")).get("version") == VERSION:
        if not script.exists() or script.read_bytes() != (SOURCE / "provider.mjs").read_bytes():
            shutil.copy2(SOURCE / "provider.mjs", script)
        return home
    version = node_version()
    if version is None or version[:2] < MIN_NODE or shutil.which("npm") is None:
        found = "none" if version is None else ".".join(map(str, version))
        raise ComponentError(
            "oidc",
            f"Node >= {MIN_NODE[0]}.{MIN_NODE[1]} with npm is needed for the OIDC provider (found {found}; "
            "apt-get install nodejs npm)",
        )
    say(f"oidc: installing oidc-provider {VERSION} from the npm registry into {home}")
    home.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(SOURCE / name, home / name)
    started = time.monotonic()
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--omit=dev"], cwd=home, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ComponentError("oidc", f"npm ci failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    shutil.copy2(SOURCE / "provider.mjs", script)
    for root, dirs, files in os.walk(home):  # readable by the unprivileged user
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    say(f"oidc: installed in {time.monotonic() - started:.1f}s")
    return home


def issue_certificate(pki_dir: Path, name: str = "oidc") -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1/localhost from the CA in ``pki_dir`` (made if absent)."""
    if not (pki_dir / "ca.crt").exists():
        pki_dir.mkdir(parents=True, exist_ok=True)
        pki._openssl("genrsa", "-out", "ca.key", "2048", cwd=pki_dir)
        pki._openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=kubehub-test-ca", "-days", "3650", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", "ca.crt",
            cwd=pki_dir,
        )  # fmt: skip
    if not (pki_dir / f"{name}.crt").exists():
        pki._issue(pki_dir, name, f"/CN=kubehub-sandbox-{name}", server_names=["127.0.0.1", "localhost"])
    return pki_dir / f"{name}.crt", pki_dir / f"{name}.key"


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class User:
    username: str
    password: str
    groups: tuple[str, ...]
    email: str = ""
    disabled: bool = False

    @property
    def sub(self) -> str:
        # A stable opaque subject, as real providers give: not the user name.
        return "u-" + hashlib.sha256(self.username.encode()).hexdigest()[:16]


class ProviderFiles:
    """The files of one provider instance in ``dir``: ``config.json`` (clients, users with their
    passwords: mode 0600), ``keys.json`` (private signing keys, all made here by
    ``new_signing_key``; the provider only reads them) and the TLS pair. ``spec()`` is the
    process to run; ``rotate()`` puts a new signing key first."""

    def __init__(
        self, dir: Path, *, port: int, tls: tuple[Path, Path] | None, name: str = "kubehub sandbox SSO"
    ) -> None:
        self.dir = dir
        self.port = port
        self.tls = tls
        self.name = name

    @property
    def issuer(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.dir / "config.json"

    @property
    def keys_file(self) -> Path:
        return self.dir / "keys.json"

    def write(
        self,
        clients: list[Client],
        users: list[User],
        *,
        ttl: dict[str, int] | None = None,
        claims_in_id_token: bool = True,
    ) -> None:
        """Write ``config.json``; ``claims_in_id_token=False`` keeps the profile, email and groups
        claims in userinfo only (OIDC Core 5.4, as strict providers do)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        old = self.read()
        doc = {
            "name": self.name,
            "issuer": self.issuer,
            "host": "127.0.0.1",
            "port": self.port,
            "tls": {"cert": str(self.tls[0]), "key": str(self.tls[1])} if self.tls else None,
            "keys_file": str(self.keys_file),
            "cookie_keys": old.get("cookie_keys") or [secrets.token_urlsafe(32)],
            "clients": [
                {
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uris": list(c.redirect_uris),
                    "post_logout_redirect_uris": list(c.post_logout_redirect_uris),
                }
                for c in clients
            ],
            "users": [
                {
                    "sub": u.sub,
                    "username": u.username,
                    "password": u.password,
                    "name": u.username.capitalize(),
                    "email": u.email,
                    "groups": list(u.groups),
                    "disabled": u.disabled,
                }
                for u in users
            ],
            "ttl": ttl or {},
            "conform_id_token_claims": not claims_in_id_token,
        }
        self._ensure_keys()
        text = json.dumps(doc, indent=1)
        if self.config_file.exists() and self.config_file.read_text(encoding="utf-8") == text:
            return
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.config_file)

    def _ensure_keys(self) -> None:
        """The first signing key, made here (``new_signing_key``) rather than by the provider."""
        if not self.keys_file.exists():
            self._write_keys([new_signing_key()])

    def signing_keys(self) -> list[dict[str, str]]:
        """The private JWKs in ``keys.json``, the one that signs first."""
        return list(json.loads(self.keys_file.read_text(encoding="utf-8"))["keys"])

    def _write_keys(self, keys: list[dict[str, str]]) -> None:
        """Replace ``keys.json`` at once (the provider never reads half a file), mode 0600, with
        the old file's owner (as root, the unprivileged user that runs the provider)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.keys_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": keys}, indent=1), encoding="utf-8")
        tmp.chmod(0o600)
        if os.geteuid() == 0 and self.keys_file.exists():
            st = self.keys_file.stat()
            os.chown(tmp, st.st_uid, st.st_gid)
        tmp.replace(self.keys_file)

    def read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.config_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def users(self) -> dict[str, User]:
        return {
            u["username"]: User(u["username"], u["password"], tuple(u["groups"]), u["email"], u["disabled"])
            for u in self.read().get("users", [])
        }

    def client(self, client_id: str) -> Client:
        for c in self.read().get("clients", []):
            if c["client_id"] == client_id:
                return Client(c["client_id"], c["client_secret"], tuple(c["redirect_uris"]),
                              tuple(c["post_logout_redirect_uris"]))  # fmt: skip
        raise KeyError(client_id)

    def spec(self, home: Path, *, log: Path, name: str = "oidc", user: str | None = None) -> ProcSpec:
        node = shutil.which("node") or "node"
        script = home / "provider.mjs"
        return ProcSpec(
            name=name,
            argv=[node, str(script), "--modules", str(home / "node_modules"), "--config", str(self.config_file)],
            log=log,
            cwd=self.dir,
            user=user,
            env={"NODE_ENV": "production"},
            ports=[self.port],
            stamp=hashlib.sha256(script.read_bytes() + self.config_file.read_bytes()).hexdigest()[:12],
        )

    def rotate(self) -> str:
        """A new signing key (``new_signing_key``) first in ``keys.json``; the previous one stays
        published so that ID tokens it signed still verify, older ones are retired. Takes effect
        when the provider starts again (it reads the file at start only). Returns the new key id."""
        fresh = new_signing_key()
        self._write_keys([fresh, *self.signing_keys()][:2])
        return fresh["kid"]

    def chown(self, user: str | None) -> None:
        if not user or os.geteuid() != 0:
            return
        import pwd

        pw = pwd.getpwnam(user)
        for path in [self.dir, *self.dir.iterdir()]:
            os.chown(path, pw.pw_uid, pw.pw_gid)


def new_signing_key() -> dict[str, str]:
    """A new RSA-2048 private JWK with a fresh ``kid``, RS256, ``use: sig``: the form
    oidc-provider takes in its ``jwks`` option. Every signing key, the first and each rotated
    one, is made here and never by the provider: Node 20's ``generateKeyPairSync`` can deadlock.
    gdb on a provider hung at start (2026-12-06) showed its main thread waiting on its own lock:
    a garbage collection during the JWK export ran a weak callback that destroys a ``KeyGenJob``
    and takes that job's mutex again. Every hung start seen in CI was one that made a key, and
    a test that rotated keys through Node could hang the same way (one CI run lost an hour)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    public = numbers.public_numbers

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA", "n": b64(public.n), "e": b64(public.e), "d": b64(numbers.d),
        "p": b64(numbers.p), "q": b64(numbers.q), "dp": b64(numbers.dmp1),
        "dq": b64(numbers.dmq1), "qi": b64(numbers.iqmp),
        "kid": base64.urlsafe_b64encode(secrets.token_bytes(9)).rstrip(b"=").decode(),
        "alg": "RS256", "use": "sig",
    }  # fmt: skip


def sandbox_files(sb: Any) -> ProviderFiles:
    """The sandbox component's files: in ``<sandbox>/oidc`` unless the unprivileged user cannot
    reach the sandbox directory (then under /var/lib/kubehub, like PostgreSQL's data)."""
    inside = sb.dir / "oidc"
    if prereqs.es_runs_as() is None or prereqs._traversable_by_others(sb.dir):
        where = inside
    else:
        digest = hashlib.sha1(str(sb.dir).encode()).hexdigest()[:12]
        where = Path("/var/lib/kubehub") / f"sandbox-oidc-{digest}"
    tls = (where / "tls.crt", where / "tls.key")
    return ProviderFiles(where, port=sb.port("oidc"), tls=tls)


def prepare_sandbox(sb: Any, say: Say) -> ProcSpec:
    """Install, certificate (from the sandbox CA), configuration (clients and seeded users,
    passwords kept across runs) and the process spec of the sandbox component."""
    home = ensure_installed(say)
    files = sandbox_files(sb)
    files.dir.mkdir(parents=True, exist_ok=True)
    crt, key = issue_certificate(sb.pki_dir, "oidc")
    shutil.copy2(crt, files.dir / "tls.crt")
    shutil.copy2(key, files.dir / "tls.key")
    old = files.read()
    secret_of = {c["client_id"]: c["client_secret"] for c in old.get("clients", [])}
    known = files.users()
    clients = [
        Client(
            HUB_CLIENT,
            secret_of.get(HUB_CLIENT) or secrets.token_urlsafe(24),
            (sb.hub_url + "/login/oidc/callback",),
            (sb.hub_url + "/login?logged_out=1",),
        ),
        Client(TEST_CLIENT, secret_of.get(TEST_CLIENT) or secrets.token_urlsafe(24), (TEST_REDIRECT,)),
    ]
    users = [
        User(
            name,
            known[name].password if name in known else secrets.token_urlsafe(12),
            tuple(groups),
            f"{name}@example.test",
        )
        for name, groups in SEED_USERS
    ]
    files.write(clients, users)
    user = prereqs.es_runs_as()
    files.chown(user)
    return files.spec(home, log=sb.logs_dir / "oidc.log", user=user)


def hub_environment(sb: Any) -> dict[str, str]:
    """The sandbox hub's OIDC settings (its client, the sandbox CA)."""
    files = sandbox_files(sb)
    try:
        client = files.client(HUB_CLIENT)
    except KeyError:
        return {}
    return {
        "KUBEHUB_OIDC_ISSUER_URL": files.issuer,
        "KUBEHUB_OIDC_CLIENT_ID": client.client_id,
        "KUBEHUB_OIDC_CLIENT_SECRET": client.client_secret,
        "KUBEHUB_OIDC_REDIRECT_URL": client.redirect_uris[0],
        "KUBEHUB_OIDC_CA_FILE": str(sb.pki_dir / "ca.crt"),
        "KUBEHUB_OIDC_PROVIDER_NAME": files.name,
    }


class RunningProvider:
    """A private provider process (tests): started, stopped and restarted at will, never the
    sandbox's shared component. ``ca`` is the file that verifies its certificate."""

    def __init__(self, files: ProviderFiles, home: Path, *, log: Path, ca: Path | None) -> None:
        self.files = files
        self.home = home
        self.log = log
        self.ca = ca
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until it answers. A first start that runs but has not answered in
        20 s is stopped and made once more, as the sandbox does (Sandbox._ensure_oidc): Node 20
        used to stop at start-up right after oidc-provider's runtime warning, its main thread
        in a futex wait (``generateKeyPairSync``, see ``new_signing_key``: no longer called, the
        retry stays as a safety net); what each of its threads was doing goes to the log first."""
        deadline = time.monotonic() + timeout
        if self._try_start(min(20.0, timeout)):
            return
        with open(self.log, "a") as out:
            out.write(f"[kubehub] no answer in 20 s ({_threads(self.proc)}); starting it once more\n")
        self.stop()
        if not self._try_start(max(1.0, deadline - time.monotonic())):
            self.stop()  # a hung provider must not outlive the test that started it
            last = self.log.read_text(errors="replace").strip().splitlines()[-1:] if self.log.exists() else []
            raise ComponentError("oidc", f"not answering after {timeout:.0f}s (last line: {last})", self.log)

    def _try_start(self, timeout: float) -> bool:
        spec = self.files.spec(self.home, log=self.log)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                list(spec.argv), cwd=spec.cwd, env={**os.environ, **(spec.env or {})}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ComponentError("oidc", f"exited during start-up (exit {self.proc.returncode})", self.log)
            if self.answers():
                return True
            time.sleep(0.1)
        return False

    def answers(self) -> bool:
        return discovery_answers(self.files.issuer, self.ca)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _threads(proc: subprocess.Popen[bytes] | None) -> str:
    """Each thread of a running process as name:state:kernel wait, for a start-up that hangs."""
    if proc is None or proc.poll() is not None:
        return "not running"
    parts = [process_snapshot(proc.pid)]
    for task in sorted(Path(f"/proc/{proc.pid}/task").glob("*")):
        try:
            name = (task / "comm").read_text().strip()
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = (task / "wchan").read_text().strip()
        except OSError:
            continue
        parts.append(f"{name}:{state}:{wchan or '-'}")
    return "; ".join(parts)


def discovery_answers(issuer: str, ca: Path | None, timeout: float = 3.0) -> bool:
    """Whether the provider serves its discovery document (the health check)."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(ca)) if ca and issuer.startswith("https") else None
    try:
        url = issuer + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("issuer") == issuer
    except (OSError, ValueError):
        return False


def status(sb: Any) -> dict[str, Any] | None:
    """What ``kubehub sandbox status`` shows of the provider: issuer, CA, users and passwords."""
    files = sandbox_files(sb)
    users = files.users()
    if not users:
        return None
    return {
        "issuer": files.issuer,
        "ca_file": str(sb.pki_dir / "ca.crt"),
        "users": {name: {"password": u.password, "groups": list(u.groups)} for name, u in users.items()},
    }


def ensure_component(sb: Any) -> ProviderFiles:
    """Start the sandbox's ``oidc`` component alone if it is not running (tests of the component
    on a private sandbox); other components are left as they are."""
    if not (sb.sup.alive("oidc") and sb.healthy("oidc")):
        with sb._locked():
            prereqs.ensure_es_user()
            pki.ensure_pki(sb.pki_dir)
            sb.logs_dir.mkdir(parents=True, exist_ok=True)
            sb._ensure("oidc", prepare_sandbox(sb, sb.say), [], timeout=60)
    return sandbox_files(sb)
