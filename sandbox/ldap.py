"""The sandbox's directory: OpenLDAP's ``slapd`` from Debian, with a seeded tree.

Why slapd: it is the directory most LDAP deployments and tests use, Debian packages it
(``apt-get install slapd ldap-utils``), and it starts in well under a second. Configured with
an old-style ``slapd.conf`` (no cn=config database to bootstrap), an MDB database seeded once
with ``slapadd`` before the first start, and:

- ``ldap://127.0.0.1:<base+389>`` (StartTLS required before any bind: ``security ssf=0
  tls=128`` ... see ``_CONF``) and ``ldaps://127.0.0.1:<base+636>``, both with a server
  certificate from the sandbox's private CA (sandbox/pki.py), so the hub verifies it with
  ``KUBEHUB_LDAP_CA_FILE=<sandbox>/pki/ca.crt``;
- the ``ppolicy`` overlay: an account with ``pwdAccountLockedTime: 000001010000Z`` is locked
  for good (its binds fail), which is how the seeded ``dave`` is disabled;
- the tree (``SEED``): ``ou=people`` (alice, bob, carol, dave, the service account's peers),
  ``ou=groups`` (``groupOfNames``: ops-admins, retail-devs, api-oncall, etl-readers and the
  nested ``sre``, a member of ``api-oncall``), ``ou=services`` (``kubehub-reader``, the
  read-only account the hub searches with).

As root, slapd runs as the unprivileged system user the other engines use (``-u``/``-g`` after
binding its ports is not needed: the ports are above 1024), its files under a directory that
user can reach. Tests that change entries add and remove their own; the seeded ones stay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BASE_DN = "dc=kubehub,dc=sandbox"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "sandbox-ldap-root-9f3k"  # loopback only; tests add and remove their own entries with it
SERVICE_DN = f"cn=kubehub-reader,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "reader-Quiet-Lantern-72"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
MODULES = Path("/usr/lib/ldap")
SCHEMAS = Path("/etc/ldap/schema")

# name -> (password, display name, mail, disabled)
USERS: dict[str, tuple[str, str, str, bool]] = {
    "alice": ("Alice-Ops-Keeps-42", "Alice Ops", "alice@sandbox.example", False),
    "bob": ("Bob-Retail-Builds-17", "Bob Retail", "bob@sandbox.example", False),
    "carol": ("Carol-Nested-Oncall-8", "Carol SRE", "carol@sandbox.example", False),
    "dave": ("Dave-Was-Locked-Out-3", "Dave Departed", "dave@sandbox.example", True),
}
# group -> member users and member groups (sre is nested inside api-oncall)
GROUP_MEMBERS: dict[str, tuple[list[str], list[str]]] = {
    "ops-admins": (["alice"], []),
    "retail-devs": (["bob"], []),
    "api-oncall": ([], ["sre"]),
    "sre": (["carol"], []),
    "etl-readers": (["bob", "dave"], []),
}


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def seed_ldif() -> str:
    """The seeded tree as LDIF (slapadd input)."""
    out = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: kubehub\no: kubehub sandbox\n",
        f"dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: ou=policies,{BASE_DN}\nobjectClass: organizationalUnit\nou: policies\n",
        (
            f"dn: cn=default,ou=policies,{BASE_DN}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\n"
            "pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\n"
        ),
        (
            f"dn: {SERVICE_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n"
            f"cn: kubehub-reader\nuserPassword: {SERVICE_PASSWORD}\n"
        ),
    ]
    for name, (password, display, mail, disabled) in USERS.items():
        entry = (
            f"dn: {user_dn(name)}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {display}\n"
            f"sn: {display.split()[-1]}\ndisplayName: {display}\nmail: {mail}\nuserPassword: {password}\n"
        )
        if disabled:
            entry += "pwdAccountLockedTime: 000001010000Z\n"  # ppolicy: locked until an admin unlocks
        out.append(entry)
    for group, (users, groups) in GROUP_MEMBERS.items():
        members = [user_dn(u) for u in users] + [group_dn(g) for g in groups]
        out.append(
            f"dn: {group_dn(group)}\nobjectClass: groupOfNames\ncn: {group}\n"
            + "".join(f"member: {m}\n" for m in members)
        )
    return "\n".join(out)


_CONF = """\
# Written by sandbox/ldap.py; rewritten at every start.
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
include {schemas}/nis.schema
modulepath {modules}
moduleload back_mdb
moduleload ppolicy
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
loglevel stats
TLSCACertificateFile {dir}/tls/ca.crt
TLSCertificateFile {dir}/tls/ldap.crt
TLSCertificateKeyFile {dir}/tls/ldap.key
# No bind or search in clear: StartTLS (or LDAPS) first; simple binds need a password (an
# unauthenticated bind, a DN with an empty password, is refused by slapd too).
security simple_bind=128 update_ssf=128
disallow bind_anon
require authc

database mdb
maxsize 67108864
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/data
index objectClass eq
index uid eq
index member eq
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{base}"
ppolicy_use_lockout
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{service_dn}" read
    by users read
    by * none
"""


@dataclass(frozen=True)
class LdapInstance:
    """One slapd: its directory, ports and the CA-signed certificate it serves."""

    dir: Path
    port: int
    ldaps_port: int

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def prepare(self, pki_dir: Path, *, user: str | None = None) -> None:
        """Write the configuration and TLS files; seed the database once (slapadd)."""
        from sandbox import pki

        tls = self.dir / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        if not (pki_dir / "ldap.crt").exists():
            pki._issue(pki_dir, "ldap", "/CN=kubehub-sandbox-ldap", server_names=["127.0.0.1", "localhost"])
            (pki_dir / "ldap.key").chmod(0o600)
        for name in ("ca.crt", "ldap.crt", "ldap.key"):
            shutil.copyfile(pki_dir / name, tls / name)
        (tls / "ldap.key").chmod(0o600)
        conf = _CONF.format(
            schemas=SCHEMAS,
            modules=MODULES,
            dir=self.dir,
            base=BASE_DN,
            root_dn=ROOT_DN,
            root_pw=ROOT_PASSWORD,
            service_dn=SERVICE_DN,
        )
        (self.dir / "slapd.conf").write_text(conf, encoding="utf-8")
        data = self.dir / "data"
        if not (data / "data.mdb").exists():
            data.mkdir(parents=True, exist_ok=True)
            (self.dir / "seed.ldif").write_text(seed_ldif(), encoding="utf-8")
            proc = subprocess.run(
                [str(SLAPADD), "-q", "-f", str(self.dir / "slapd.conf"), "-l", str(self.dir / "seed.ldif")],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                shutil.rmtree(data, ignore_errors=True)
                raise RuntimeError(f"slapadd failed: {proc.stderr.strip()[-300:]}")
        if user and os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam(user)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def argv(self) -> list[str]:
        # -d keeps slapd in the foreground (the supervisor owns it); "stats" logs binds and searches
        return [
            str(SLAPD),
            "-d",
            "stats",
            "-f",
            str(self.dir / "slapd.conf"),
            "-h",
            f"{self.url}/ {self.ldaps_url}/",
        ]

    def healthy(self, timeout: float = 3.0) -> bool:
        """A StartTLS search of the root DSE (ldapsearch from ldap-utils) answers."""
        env = dict(os.environ, LDAPTLS_CACERT=str(self.dir / "tls" / "ca.crt"))
        try:
            proc = subprocess.run(
                ["ldapsearch", "-x", "-ZZ", "-H", self.url, "-D", SERVICE_DN, "-w", SERVICE_PASSWORD,
                 "-b", BASE_DN, "-s", "base", "-o", f"nettimeout={max(1, int(timeout))}", "dn"],
                capture_output=True, text=True, timeout=timeout + 2, env=env, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return False
        return proc.returncode == 0


def slapd_version() -> str:
    try:
        out = subprocess.run([str(SLAPD), "-VV"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = out.stdout + out.stderr
    marker = "slapd "
    at = text.find(marker)
    return "slapd " + text[at + len(marker) :].split()[0] if at >= 0 else "unknown"


def hub_env(instance: LdapInstance, pki_dir: Path) -> dict[str, str]:
    """The hub's settings for this directory (the sandbox's hub and the tests use them)."""
    import json

    mappings = [
        {"group": "ops-admins", "level": "platform", "role": "admin"},
        {"group": "retail-devs", "level": "workspace", "target": "retail", "role": "regular"},
        {"group": "api-oncall", "level": "project", "target": "retail-api", "role": "operator"},
        {"group": "etl-readers", "level": "project", "target": "analytics-etl", "role": "viewer"},
    ]
    return {
        "KUBEHUB_LDAP_URL": instance.url,
        "KUBEHUB_LDAP_CA_FILE": str(pki_dir / "ca.crt"),
        "KUBEHUB_LDAP_BIND_DN": SERVICE_DN,
        "KUBEHUB_LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
        "KUBEHUB_LDAP_USER_BASE": PEOPLE,
        "KUBEHUB_LDAP_GROUP_BASE": GROUPS,
        "KUBEHUB_AUTH_GROUP_MAPPINGS": json.dumps(mappings),
    }
