"""Directory sign-in against the sandbox's real OpenLDAP ``slapd`` (sandbox/ldap.py).

The outside references are the directory itself, asked with OpenLDAP's own command-line tools
(``ldapsearch``, ``ldapwhoami``, ``ldapmodify``): which groups hold a user, whether slapd itself
refuses a locked account's bind. Entries a test changes are its own (a ``t-…`` user and group,
added and deleted here); the seeded tree stays as it is. The directory-down case runs a private
slapd on ports of its own and stops it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.errors import BackendUnavailable, Unauthenticated
from hub.runtime import Hub, build_hub
from hub.settings import Settings, load_settings
from hub.tenancy.ldap_directory import LdapDirectory
from hub.timeutil import FakeClock
from sandbox import ldap as sl
from sandbox.core import Sandbox
from tests.conftest import world_database_url
from tests.integration.cluster_support import FAST_AUTH, free_port_block

pytestmark = pytest.mark.integration

LOCAL_ADMIN = "root-admin"
LOCAL_PASSWORD = "Break-Glass-Lantern-55"
RECHECK = 300.0


# ---------------------------------------------------------------------------- directory tools
def _env(instance: sl.LdapInstance) -> dict[str, str]:
    return dict(os.environ, LDAPTLS_CACERT=str(instance.dir / "tls" / "ca.crt"))


def ldap_tool(instance: sl.LdapInstance, tool: str, *args: str, stdin: str = "", as_root: bool = True) -> str:
    """Run an OpenLDAP client over StartTLS (as the directory's root DN unless told otherwise)."""
    auth = ["-D", sl.ROOT_DN, "-w", sl.ROOT_PASSWORD] if as_root else []
    proc = subprocess.run(
        [tool, "-x", "-ZZ", "-H", instance.url, *auth, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(instance),
        timeout=20,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def groups_of_dn(instance: sl.LdapInstance, dn: str) -> set[str]:
    """The cn of every groupOfNames listing ``dn`` as a member, straight from ldapsearch."""
    out = ldap_tool(instance, "ldapsearch", "-LLL", "-b", sl.GROUPS, f"(member={dn})", "cn")
    return {line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("cn:")}


def transitive_groups(instance: sl.LdapInstance, dn: str) -> set[str]:
    """Brute force over ldapsearch answers: groups of the DN, of those groups, and so on."""
    found: set[str] = set()
    todo = [dn]
    while todo:
        for cn in groups_of_dn(instance, todo.pop()):
            if cn not in found:
                found.add(cn)
                todo.append(sl.group_dn(cn))
    return found


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def directory(sandbox: Sandbox) -> sl.LdapInstance:
    return sandbox.ensure_ldap()


class LdapHub:
    def __init__(self, hub: Hub, clock: FakeClock) -> None:
        from web import create_app

        self.hub = hub
        self.clock = clock
        self.app = create_app(hub=hub, testing=True)

    def client(self) -> Any:
        return self.app.test_client()

    def login(self, username: str, password: str) -> Any:
        """A fresh client with a console session (JSON login); returns (client, response)."""
        client = self.client()
        r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        return client, r

    def token(self, username: str, password: str) -> Any:
        return self.client().post("/api/v1/auth/token", json={"username": username, "password": password})

    def admin(self) -> Any:
        client, r = self.login(LOCAL_ADMIN, LOCAL_PASSWORD)
        assert r.status_code == 200, r.get_json()
        client.environ_base["HTTP_X_CSRF_TOKEN"] = r.get_json()["csrf_token"]
        return client


def make_hub(tmp: Path, instance: sl.LdapInstance, pki_dir: Path, **ldap: Any) -> LdapHub:
    env = sl.hub_env(instance, pki_dir)
    base = load_settings(env, config_file=os.devnull)
    settings = Settings(data_dir=tmp, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        auth={**FAST_AUTH, "group_mappings": base.auth.group_mappings},
        ldap={**{k: getattr(base.ldap, k) for k in ("url", "ca_file", "bind_dn", "bind_password", "user_base",
                                                    "group_base")}, "recheck_seconds": RECHECK, "timeout": 3.0,
              **ldap},
    )  # fmt: skip
    clock = FakeClock(time.time())
    hub = build_hub(settings, clock=clock)
    t = hub.tenancy
    t.create_user(LOCAL_ADMIN, LOCAL_PASSWORD, platform_role="admin")
    for ws, ns in (("retail", "retail-api"), ("analytics", "analytics-etl")):
        t.create_workspace(ws)
        t.create_project(ws, ns)
    return LdapHub(hub, clock)


@pytest.fixture()
def lhub(tmp_path: Path, directory: sl.LdapInstance, sandbox: Sandbox) -> Iterator[LdapHub]:
    h = make_hub(tmp_path, directory, sandbox.pki_dir)
    yield h
    h.hub.close()


@pytest.fixture()
def temp_user(directory: sl.LdapInstance) -> Iterator[tuple[str, str, str]]:
    """A user and a group of this test's own: (uid, password, group cn); deleted afterwards."""
    uid = "t-" + secrets.token_hex(4)
    group = uid + "-team"
    password = "Temp-" + secrets.token_urlsafe(12)
    ldif = (
        f"dn: {sl.user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Temp {uid}\nsn: Temp\n"
        f"mail: {uid}@sandbox.example\nuserPassword: {password}\n\n"
        f"dn: {sl.group_dn(group)}\nobjectClass: groupOfNames\ncn: {group}\nmember: {sl.user_dn(uid)}\n"
    )
    ldap_tool(directory, "ldapadd", stdin=ldif)
    yield uid, password, group
    for dn in (sl.group_dn(group), sl.user_dn(uid)):
        subprocess.run(
            ["ldapdelete", "-x", "-ZZ", "-H", directory.url, "-D", sl.ROOT_DN, "-w", sl.ROOT_PASSWORD, dn],
            env=_env(directory), capture_output=True, timeout=20, check=False,
        )  # fmt: skip


# ---------------------------------------------------------------------------- tests
def test_password_login_provisions_users_with_the_roles_their_groups_map_to(
    lhub: LdapHub, directory: sl.LdapInstance
) -> None:
    client, r = lhub.login("alice", sl.USERS["alice"][0])
    assert r.status_code == 200, r.get_json()
    me = client.get("/api/v1/me").get_json()
    assert me["platform_role"] == "admin"  # ops-admins -> platform admin
    assert "ops-admins" in groups_of_dn(directory, sl.user_dn("alice"))

    client, r = lhub.login("BOB", sl.USERS["bob"][0])  # user names are case-insensitive
    assert r.status_code == 200, r.get_json()
    me = client.get("/api/v1/me").get_json()
    assert me["user"] == "bob" and me["platform_role"] == "regular"
    bob_groups = groups_of_dn(directory, sl.user_dn("bob"))
    assert bob_groups == {"retail-devs", "etl-readers"}
    assert {w["name"]: w["role"] for w in me["workspaces"]} == {"retail": "regular"}
    roles = {p["namespace"]: p["role"] for p in me["projects"]}
    assert roles == {"analytics-etl": "viewer"}  # a workspace regular reaches no project by itself

    users = {u["name"]: u for u in lhub.admin().get("/api/v1/users").get_json()["items"]}
    assert users["bob"]["source"] == "ldap" and users["bob"]["display_name"] == "Bob Retail"
    assert users["bob"]["email"] == "bob@sandbox.example"
    assert users[LOCAL_ADMIN]["source"] == "local"
    page = lhub.admin().get("/users").get_data(as_text=True)
    assert 'class="source">LDAP<' in page and 'class="source">local<' in page

    # A token from a directory password works like a session.
    tok = lhub.token("bob", sl.USERS["bob"][0]).get_json()["token"]
    who = lhub.client().get("/api/v1/me", headers={"Authorization": f"Bearer {tok}"}).get_json()
    assert who["user"] == "bob"


def test_nested_groups_count_like_direct_ones(lhub: LdapHub, directory: sl.LdapInstance) -> None:
    carol = sl.user_dn("carol")
    assert groups_of_dn(directory, carol) == {"sre"}  # api-oncall holds carol only through sre
    expected = transitive_groups(directory, carol)
    assert expected == {"sre", "api-oncall"}
    found = LdapDirectory(lhub.hub.settings.ldap).lookup("carol")
    assert found is not None and set(found.groups) == expected
    client, r = lhub.login("carol", sl.USERS["carol"][0])
    assert r.status_code == 200
    projects = {p["namespace"]: p["role"] for p in client.get("/api/v1/me").get_json()["projects"]}
    assert projects == {"retail-api": "operator"}  # api-oncall -> retail-api operator
    # depth 0: direct groups only, so carol's nested role disappears
    shallow = LdapDirectory(lhub.hub.settings.ldap.__class__(**{**lhub.hub.settings.ldap.__dict__, "nested_depth": 0}))
    assert set(shallow.authenticate("carol", sl.USERS["carol"][0]).groups) == {"sre"}


def test_roles_follow_the_directory_and_the_mappings_at_each_login(
    lhub: LdapHub, directory: sl.LdapInstance, temp_user: tuple[str, str, str]
) -> None:
    uid, password, group = temp_user
    admin = lhub.admin()
    # conflicting mappings for one user: viewer through their own group, regular through... none yet
    r = admin.post("/api/v1/auth/group-mappings",
                   json={"group": group, "level": "workspace", "target": "retail", "role": "viewer"})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    mapping_id = r.get_json()["id"]
    client, r = lhub.login(uid, password)
    assert r.status_code == 200
    me = client.get("/api/v1/me").get_json()
    assert {w["name"]: w["role"] for w in me["workspaces"]} == {"retail": "viewer"}
    assert {p["namespace"]: p["role"] for p in me["projects"]} == {"retail-api": "viewer"}
    created = admin.get(f"/api/v1/users/{uid}").get_json()
    assert created["source"] == "ldap"

    # Also in retail-devs (mapped to workspace regular by the settings): the most permissive wins.
    ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.group_dn('retail-devs')}\nchangetype: modify\n"
              f"add: member\nmember: {sl.user_dn(uid)}\n")  # fmt: skip
    try:
        client, _ = lhub.login(uid, password)
        me = client.get("/api/v1/me").get_json()
        assert {w["name"]: w["role"] for w in me["workspaces"]} == {"retail": "viewer"}
    finally:
        ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.group_dn('retail-devs')}\nchangetype: modify\n"
                  f"delete: member\nmember: {sl.user_dn(uid)}\n")  # fmt: skip

    # The admin raises the mapping: the next login carries it.
    assert admin.patch(f"/api/v1/auth/group-mappings/{mapping_id}", json={"role": "admin"}).status_code == 200
    client, _ = lhub.login(uid, password)
    me = client.get("/api/v1/me").get_json()
    assert {w["name"]: w["role"] for w in me["workspaces"]} == {"retail": "admin"}

    # Taken out of the group in the directory: the next login has no role left.
    ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.group_dn(group)}\nchangetype: modify\n"
              f"replace: member\nmember: {sl.user_dn('alice')}\n")  # fmt: skip
    client, r = lhub.login(uid, password)
    assert r.status_code == 200
    me = client.get("/api/v1/me").get_json()
    assert me["workspaces"] == [] and me["projects"] == []

    # The mapping list shows the settings' (read-only) and the console's, and bad input names the field.
    listed = admin.get("/api/v1/auth/group-mappings").get_json()["items"]
    assert {m["origin"] for m in listed} == {"settings", "console"}
    bad = admin.post("/api/v1/auth/group-mappings", json={"group": group, "level": "project", "role": "owner",
                                                          "target": "retail-api"})  # fmt: skip
    assert bad.status_code == 422 and bad.get_json()["field"] == "role"
    dup = admin.post("/api/v1/auth/group-mappings", json={"group": group.upper(), "level": "workspace",
                                                          "target": "retail", "role": "viewer"})  # fmt: skip
    assert dup.status_code == 409
    assert admin.delete(f"/api/v1/auth/group-mappings/{mapping_id}").status_code == 204
    assert admin.delete(f"/api/v1/auth/group-mappings/{mapping_id}").status_code == 404
    # a directory user's password is the directory's
    assert admin.patch(f"/api/v1/users/{uid}", json={"password": "Another-Secret-91"}).status_code == 422


def test_a_user_disabled_or_removed_in_the_directory_loses_tokens_and_sessions_within_the_recheck(
    lhub: LdapHub, directory: sl.LdapInstance, temp_user: tuple[str, str, str]
) -> None:
    uid, password, _group = temp_user
    client, r = lhub.login(uid, password)
    assert r.status_code == 200
    tok = lhub.token(uid, password).get_json()["token"]
    bearer = {"Authorization": f"Bearer {tok}"}
    assert lhub.client().get("/api/v1/me", headers=bearer).status_code == 200

    # Locked the ppolicy way; slapd itself now refuses the user's bind (the outside reference).
    ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.user_dn(uid)}\nchangetype: modify\n"
              "add: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")  # fmt: skip
    with pytest.raises(AssertionError):
        ldap_tool(directory, "ldapwhoami", "-D", sl.user_dn(uid), "-w", password, as_root=False)

    # Within the re-check interval the earlier confirmation still holds ...
    lhub.clock.advance(RECHECK - 5)
    assert lhub.client().get("/api/v1/me", headers=bearer).status_code == 200
    # ... past it, the next request asks the directory: token and session end.
    lhub.clock.advance(10)
    assert lhub.client().get("/api/v1/me", headers=bearer).status_code == 401
    assert client.get("/api/v1/me").status_code == 401
    _, again = lhub.login(uid, password)
    assert again.status_code == 401
    audit = lhub.admin().get("/api/v1/audit?action=user.directory-refused").get_json()["items"]
    assert any(e["target"] == f"user/{uid}" for e in audit)

    # Unlocked, then deleted: a fresh login works, and after removal the session ends too.
    ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.user_dn(uid)}\nchangetype: modify\n"
              "delete: pwdAccountLockedTime\n")  # fmt: skip
    client, r = lhub.login(uid, password)
    assert r.status_code == 200
    ldap_tool(directory, "ldapdelete", sl.user_dn(uid))
    lhub.clock.advance(RECHECK + 1)
    assert client.get("/api/v1/me").status_code == 401
    assert lhub.login(uid, password)[1].status_code == 401


def test_the_seeded_disabled_account_is_refused(lhub: LdapHub, directory: sl.LdapInstance) -> None:
    password = sl.USERS["dave"][0]
    with pytest.raises(AssertionError):  # slapd's ppolicy refuses the bind itself
        ldap_tool(directory, "ldapwhoami", "-D", sl.user_dn("dave"), "-w", password, as_root=False)
    r = lhub.token("dave", password)
    assert r.status_code == 401 and r.get_json()["error"] == "invalid user name or password"
    assert lhub.hub.tenancy.user("dave") is None  # never provisioned


@pytest.mark.parametrize(
    "username",
    ["*", "al*", "alice)(uid=*", "*)(objectClass=*", "alice\x00", "alice\\2a", "(uid=alice)", "alice)(|(uid=*"],
)
def test_ldap_injection_in_the_user_name_never_signs_in(lhub: LdapHub, username: str) -> None:
    r = lhub.token(username, sl.USERS["alice"][0])
    assert r.status_code in (400, 401), r.get_data(as_text=True)
    assert "token" not in (r.get_json() or {})
    # the adapter on its own refuses them too (defence in depth: the filter is escaped as well)
    with pytest.raises(Unauthenticated):
        LdapDirectory(lhub.hub.settings.ldap).authenticate(username, sl.USERS["alice"][0])


def test_an_empty_password_is_refused_before_any_bind(lhub: LdapHub, directory: sl.LdapInstance) -> None:
    # slapd would treat "DN + empty password" as an unauthenticated bind (RFC 4513 5.1.2)
    for body in ({"username": "alice", "password": ""}, {"username": "alice"}):
        r = lhub.token(body["username"], body.get("password", ""))
        assert r.status_code == 400 and r.get_json()["field"] == "password"
    with pytest.raises(Unauthenticated):
        LdapDirectory(lhub.hub.settings.ldap).authenticate("alice", "")
    assert lhub.token("alice", " ").status_code == 401  # a blank but non-empty password is a wrong one


def test_tls_is_verified_against_the_configured_ca_and_ldaps_works(lhub: LdapHub, directory: sl.LdapInstance) -> None:
    s = lhub.hub.settings.ldap
    wrong = LdapDirectory(s.__class__(**{**s.__dict__, "ca_file": "/etc/ssl/certs/ca-certificates.crt"}))
    with pytest.raises(BackendUnavailable) as err:
        wrong.authenticate("alice", sl.USERS["alice"][0])
    assert "certificate" in err.value.message and err.value.backend == "ldap directory"
    ldaps = LdapDirectory(s.__class__(**{**s.__dict__, "url": directory.ldaps_url}))
    assert ldaps.authenticate("alice", sl.USERS["alice"][0]).groups == ("ops-admins",)
    clear = LdapDirectory(s.__class__(**{**s.__dict__, "start_tls": False}))
    with pytest.raises(BackendUnavailable):  # slapd refuses binds without TLS (security simple_bind=128)
        clear.authenticate("alice", sl.USERS["alice"][0])


def test_directory_down_answers_503_naming_it_and_local_login_still_works(tmp_path: Path, sandbox: Sandbox) -> None:
    base = free_port_block(39400, 2)
    private = sl.LdapInstance(tmp_path / "slapd", base, base + 1)
    private.prepare(sandbox.pki_dir)
    proc = subprocess.Popen(private.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not private.healthy() and time.monotonic() < deadline:
            time.sleep(0.2)
        h = make_hub(tmp_path / "hub", private, sandbox.pki_dir)
        client, r = h.login("bob", sl.USERS["bob"][0])
        assert r.status_code == 200
        proc.terminate()
        proc.wait(timeout=20)

        r = h.token("bob", sl.USERS["bob"][0])
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["backend"] == "ldap directory"
        assert h.token(LOCAL_ADMIN, LOCAL_PASSWORD).status_code == 200  # break-glass
        assert h.login(LOCAL_ADMIN, LOCAL_PASSWORD)[1].status_code == 200
        # bob's session: trusted one more interval while the directory is down, then 503
        h.clock.advance(RECHECK + 1)
        assert client.get("/api/v1/me").status_code == 200
        h.clock.advance(RECHECK)
        down = client.get("/api/v1/me")
        assert down.status_code == 503 and down.get_json()["backend"] == "ldap directory"
        h.hub.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_a_directory_that_accepts_but_never_answers_times_out_as_503(lhub: LdapHub) -> None:
    """A hung server (the TCP connection is accepted, nothing is ever answered): the sign-in
    gives up after ``ldap.timeout`` seconds with a 503, instead of holding a worker thread."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        s = lhub.hub.settings.ldap
        port = listener.getsockname()[1]
        hung = LdapDirectory(s.__class__(**{**s.__dict__, "url": f"ldap://127.0.0.1:{port}", "timeout": 1.0}))
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as err:
            hung.authenticate("alice", sl.USERS["alice"][0])
        elapsed = time.monotonic() - started
        assert err.value.backend == "ldap directory"
        assert elapsed < 5.0, elapsed
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()
