"""Provisioning, mappings and the bounded re-check of directory users in the tenancy service,
through its own ``PasswordDirectory`` interface (a scripted directory; the real slapd is in
tests/integration/test_ldap_login.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.errors import BackendUnavailable, Conflict, InvalidInput, Unauthenticated, Unprocessable
from hub.settings import AuthSettings
from hub.store import Database
from hub.store.audit import AuditFilter
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.external import AccountRefused, ExternalUser
from hub.tenancy.service import TenancyService
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

RECHECK = 300.0
MAPPINGS = json.dumps(
    [
        {"group": "ops", "level": "platform", "role": "admin"},
        {"group": "devs", "level": "workspace", "target": "retail", "role": "regular"},
        {"group": "auditors", "level": "workspace", "target": "retail", "role": "viewer"},
        {"group": "oncall", "level": "project", "target": "retail-api", "role": "operator"},
    ]
)


class ScriptedDirectory:
    """Users and passwords held in memory; ``down`` makes every call fail like a dead server."""

    source = "ldap"
    recheck_seconds = RECHECK

    def __init__(self) -> None:
        self.users: dict[str, tuple[str, ExternalUser]] = {}
        self.disabled: set[str] = set()
        self.down = False
        self.calls: list[str] = []

    def add(self, name: str, password: str, *groups: str) -> None:
        self.users[name] = (password, ExternalUser(name, f"{name.title()} Example", f"{name}@example.org", groups))

    def authenticate(self, username: str, password: str) -> ExternalUser:
        self.calls.append("authenticate:" + username)
        if self.down:
            raise BackendUnavailable("ldap directory", "connection refused")
        if username not in self.users:
            raise AccountRefused("not in the directory")
        if username in self.disabled:
            raise AccountRefused("disabled in the directory")
        stored, user = self.users[username]
        if password != stored:
            raise Unauthenticated("invalid user name or password")
        return user

    def lookup(self, username: str) -> ExternalUser | None:
        self.calls.append("lookup:" + username)
        if self.down:
            raise BackendUnavailable("ldap directory", "connection refused")
        if username not in self.users or username in self.disabled:
            return None
        return self.users[username][1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_test_store(tmp_path / "state.sqlite3")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def directory() -> ScriptedDirectory:
    d = ScriptedDirectory()
    d.add("ann", "ann-secret", "devs", "auditors", "oncall")
    d.add("olga", "olga-secret", "ops")
    return d


@pytest.fixture
def svc(db: Database, clock: FakeClock, directory: ScriptedDirectory) -> TenancyService:
    s = TenancyService(
        db,
        auth=AuthSettings(group_mappings=MAPPINGS),
        clock=clock,
        hashing=PasswordHashing(memory_kib=1024, time_cost=1),
        directory=directory,
    )
    s.create_user("root", "Break-Glass-Lantern-55", platform_role="admin")
    s.create_workspace("retail")
    s.create_project("retail", "retail-api")
    return s


def test_first_login_provisions_with_the_most_permissive_mapped_roles(svc: TenancyService) -> None:
    user = svc.login("Ann", "ann-secret")
    assert (user.name, user.source, user.display_name, user.email) == ("ann", "ldap", "Ann Example", "ann@example.org")
    workspaces, projects = svc.memberships_of("ann")
    assert {w: r.value for w, r in workspaces.items()} == {"retail": "viewer"}  # devs regular < auditors viewer
    assert {n: r.value for n, r in projects.items()} == {"retail-api": "operator"}
    assert svc.login("olga", "olga-secret").platform_role == "admin"
    assert [e.action for e in svc.audit_store.search(AuditFilter(), limit=50)[0]].count("user.provision") == 2


def test_local_accounts_never_ask_the_directory_and_are_never_taken_over(
    svc: TenancyService, directory: ScriptedDirectory
) -> None:
    directory.down = True
    assert svc.login("root", "Break-Glass-Lantern-55").source == "local"
    assert directory.calls == []
    directory.down = False
    directory.add("root", "directory-root", "ops")
    with pytest.raises(Unauthenticated):
        svc.login("root", "directory-root")  # a local name is checked locally only
    assert directory.calls == []
    # and provisioning refuses a name held by a local user (e.g. an OIDC sign-in)
    with pytest.raises(Unauthenticated):
        svc.provision("oidc", ExternalUser("root", groups=("ops",)))


def test_wrong_passwords_and_refused_accounts_are_401_and_counted_and_down_is_503(
    svc: TenancyService, directory: ScriptedDirectory
) -> None:
    with pytest.raises(Unauthenticated):
        svc.login("ann", "nope")
    with pytest.raises(Unauthenticated):
        svc.login("ghost", "whatever")
    with pytest.raises(InvalidInput):
        svc.login("ann", "")  # empty: refused before the directory is asked
    assert directory.calls == ["authenticate:ann", "authenticate:ghost"]
    directory.down = True
    with pytest.raises(BackendUnavailable) as err:
        svc.login("ann", "ann-secret")
    assert err.value.backend == "ldap directory"


def test_tokens_and_sessions_of_a_removed_user_end_within_the_recheck_interval(
    svc: TenancyService, directory: ScriptedDirectory, clock: FakeClock
) -> None:
    svc.login("ann", "ann-secret")
    token = svc.issue_token("ann", kind="named", name="ci").token
    sid = svc.start_session("ann")
    directory.disabled.add("ann")
    clock.advance(RECHECK - 1)
    assert svc.principal_from_token(token) is not None  # still within the last confirmation
    assert not [c for c in directory.calls if c.startswith("lookup")]
    clock.advance(2)
    assert svc.principal_from_token(token) is None
    assert svc.principal_from_session(sid) is None
    assert svc.tokens("ann")[0].revoked_at is not None
    directory.disabled.discard("ann")
    assert svc.login("ann", "ann-secret").name == "ann"  # back in the directory: back in


def test_a_recheck_refreshes_roles_and_a_down_directory_is_trusted_one_more_interval_only(
    svc: TenancyService, directory: ScriptedDirectory, clock: FakeClock
) -> None:
    svc.login("ann", "ann-secret")
    token = svc.issue_token("ann", kind="named", name="ci").token
    directory.add("ann", "ann-secret", "ops")  # moved to another group in the directory
    clock.advance(RECHECK + 1)
    principal = svc.principal_from_token(token)
    assert principal is not None and principal.is_platform_admin and dict(principal.workspaces) == {}
    directory.down = True
    clock.advance(RECHECK + 1)
    assert svc.principal_from_token(token) is not None  # confirmed RECHECK+1 ago: one more interval
    clock.advance(RECHECK)
    with pytest.raises(BackendUnavailable):
        svc.principal_from_token(token)


def test_a_sign_in_that_changes_no_role_writes_no_role(svc: TenancyService, directory: ScriptedDirectory) -> None:
    """Each role write moves the identity generation, which makes every replica rebuild every
    kept principal: a directory user signing in again with the same groups must not write."""
    svc.create_custom_role({"name": "reader", "level": "project", "permissions": ["logs:read"]}, actor="root")
    svc.create_group_mapping(
        {"group": "auditors", "level": "project", "target": "retail-api", "role": "custom:reader"}, actor="root"
    )
    svc.login("ann", "ann-secret")
    kept = svc.store.identity_generation()
    svc.login("ann", "ann-secret")
    assert svc.store.identity_generation() == kept, "the same groups again: nothing written"
    before = svc.principal_for("ann")
    assert before is not None and before.custom and before.projects

    directory.add("ann", "ann-secret", "devs")  # left auditors and oncall
    svc.login("ann", "ann-secret")
    assert svc.store.identity_generation() != kept
    after = svc.principal_for("ann")
    assert after is not None and not after.custom
    workspaces, projects = svc.memberships_of("ann")
    assert {w: r.value for w, r in workspaces.items()} == {"retail": "regular"}
    assert {n: r.value for n, r in projects.items()} == {}


def test_admins_disable_directory_users_here_and_cannot_give_them_passwords(
    svc: TenancyService, directory: ScriptedDirectory
) -> None:
    svc.login("ann", "ann-secret")
    with pytest.raises(Unprocessable) as err:
        svc.update_user("ann", password="Another-Secret-91", actor="root")
    assert err.value.field == "password"
    svc.update_user("ann", disabled=True, actor="root")
    calls = len(directory.calls)
    with pytest.raises(Unauthenticated):
        svc.login("ann", "ann-secret")
    assert len(directory.calls) == calls  # a kubehub-disabled user is refused without asking


def test_console_mappings_add_to_the_settings_and_conflicts_are_409(svc: TenancyService) -> None:
    with pytest.raises(Conflict):
        svc.create_group_mapping({"group": "OPS", "level": "platform", "role": "regular"}, actor="root")
    m = svc.create_group_mapping(
        {"group": "readers", "level": "project", "target": "retail-api", "role": "viewer"}, actor="root"
    )
    with pytest.raises(Conflict):
        svc.create_group_mapping(
            {"group": "Readers", "level": "project", "target": "retail-api", "role": "admin"}, actor="root"
        )
    assert [x.origin for x in svc.group_mappings()] == ["settings"] * 4 + ["console"]
    assert svc.update_group_mapping(m.id or 0, {"role": "admin"}, actor="root").role == "admin"
    with pytest.raises(Unprocessable):
        svc.update_group_mapping(m.id or 0, {"role": "owner"}, actor="root")
    svc.delete_group_mapping(m.id or 0, actor="root")
    assert len(svc.group_mappings()) == 4
