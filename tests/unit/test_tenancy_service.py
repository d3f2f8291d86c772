from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hub.errors import BackendUnavailable, Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated, Unprocessable
from hub.scope import Scope
from hub.settings import AuthSettings
from hub.store import Database
from hub.store.audit import AuditFilter
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.roles import PlatformRole, ProjectRole, WorkspaceRole
from hub.tenancy.service import WORKSPACE_LABEL, LoginThrottled, TenancyService
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

ADMIN_SCOPE = Scope(all_namespaces=True, namespaces={})  # the audit log is read as a platform admin

pytestmark = pytest.mark.unit

PW = "Plenty-of-chars-7"
T0 = 1_795_000_000.0


class RecordingCluster:
    """Our own stand-in for the cluster service's namespace callables (not a vendor client)."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.down = False
        self.foreign: dict[str, str] = {}

    def ensure_namespace(self, name: str, labels: Mapping[str, str]) -> float:
        if self.down:
            raise BackendUnavailable("kubernetes", "connection refused")
        if name in self.foreign:
            raise Conflict(f"namespace {name} already belongs to workspace {self.foreign[name]}", field="name")
        self.created.setdefault(name, 1_700_000_000.0 + len(self.created))
        self.labels[name] = dict(labels)
        return self.created[name]

    def namespace_created(self, name: str) -> float | None:
        return self.created.get(name)

    def namespace_uid(self, name: str) -> str | None:
        return f"uid-{name}-{self.created[name]:.0f}" if name in self.created else None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_test_store(tmp_path / "state.sqlite3")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def svc(db: Database, clock: FakeClock) -> TenancyService:
    return TenancyService(db, auth=AuthSettings(), clock=clock, hashing=PasswordHashing(memory_kib=1024, time_cost=1))


def test_a_created_user_can_log_in_and_the_wrong_password_cannot(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    assert svc.login("Alice ", PW, client="10.0.0.1").name == "alice"
    with pytest.raises(Unauthenticated, match="invalid user name or password"):
        svc.login("alice", PW + "x", client="10.0.0.1")


def test_unknown_and_disabled_users_fail_exactly_like_a_wrong_password(svc: TenancyService) -> None:
    svc.create_user("root", PW, platform_role="admin")
    svc.create_user("alice", PW)
    svc.update_user("alice", disabled=True)
    messages = set()
    for name, password in (("alice", PW), ("nobody", PW), ("root", "wrong-password-1")):
        with pytest.raises(Unauthenticated) as info:
            svc.login(name, password, client=f"10.0.0.{len(messages)}")
        messages.add(info.value.message)
    assert len(messages) == 1


def test_user_names_and_passwords_are_validated_with_the_field_named(svc: TenancyService) -> None:
    with pytest.raises(Unprocessable) as bad_name:
        svc.create_user("Bad Name!", PW)
    assert bad_name.value.field == "name"
    for weak in ("short1", "aaaaaaaaaaaaaa", "password123", "alice-is-me-123"):
        with pytest.raises(Unprocessable) as info:
            svc.create_user("alice", weak)
        assert info.value.field == "password"
    with pytest.raises(Unprocessable) as role:
        svc.create_user("alice", PW, platform_role="god")
    assert role.value.field == "platform_role" and "admin, regular" in role.value.message
    with pytest.raises(Unprocessable) as mail:
        svc.create_user("alice", PW, email="not-an-address")
    assert mail.value.field == "email"


def test_a_duplicate_user_is_a_conflict(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    with pytest.raises(Conflict):
        svc.create_user("ALICE", PW)


def test_the_last_active_platform_admin_cannot_be_demoted_disabled_or_deleted(svc: TenancyService) -> None:
    svc.create_user("root", PW, platform_role="admin")
    for change in ({"platform_role": "regular"}, {"disabled": True}):
        with pytest.raises(Conflict, match="last active platform admin"):
            svc.update_user("root", **change)
    with pytest.raises(Conflict):
        svc.delete_user("root")
    svc.create_user("root2", PW, platform_role="admin")
    svc.update_user("root", platform_role="regular")
    assert svc.user("root").platform_role == "regular"


def test_disabling_a_user_ends_sessions_and_revokes_tokens(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    sid = svc.start_session("alice")
    token = svc.issue_token("alice", name="ci").token
    assert svc.principal_from_session(sid) and svc.principal_from_token(token)
    svc.update_user("alice", disabled=True)
    assert svc.principal_from_session(sid) is None
    assert svc.principal_from_token(token) is None
    svc.update_user("alice", disabled=False)
    assert svc.principal_from_token(token) is None, "re-enabling must not resurrect revoked tokens"


def test_tokens_expire_and_revoked_tokens_stop_working(svc: TenancyService, clock: FakeClock) -> None:
    svc.create_user("alice", PW)
    login = svc.issue_token("alice", kind="login")
    named = svc.issue_token("alice", name="ci", ttl=3600)
    assert login.expires_at == T0 + 12 * 3600
    clock.advance(3600)
    assert svc.principal_from_token(named.token) is None
    assert svc.principal_from_token(login.token) is not None
    principal = svc.principal_for("alice")
    assert principal is not None
    svc.revoke_token(login.id, by=principal)
    assert svc.principal_from_token(login.token) is None


def test_a_token_lifetime_beyond_a_year_is_refused(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    with pytest.raises(Unprocessable) as info:
        svc.issue_token("alice", ttl=400 * 86400)
    assert info.value.field == "expires_in"


def test_another_users_token_is_not_found_not_forbidden(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_user("bob", PW)
    bobs = svc.issue_token("bob", name="ci")
    alice = svc.principal_for("alice")
    assert alice is not None
    with pytest.raises(NotFound) as foreign:
        svc.revoke_token(bobs.id, by=alice)
    with pytest.raises(NotFound) as missing:
        svc.revoke_token(999_999, by=alice)
    assert foreign.value.message.replace(str(bobs.id), "N") == missing.value.message.replace("999999", "N")
    assert svc.principal_from_token(bobs.token) is not None


def test_malformed_tokens_and_session_ids_are_simply_unknown(svc: TenancyService) -> None:
    for value in ("", "khub_", "x" * 5000, "khub_" + "A" * 43, "' OR 1=1 --"):
        assert svc.principal_from_token(value) is None
        assert svc.principal_from_session(value) is None


def test_sessions_expire_after_the_configured_hours(svc: TenancyService, clock: FakeClock) -> None:
    svc.create_user("alice", PW)
    sid = svc.start_session("alice")
    clock.advance(12 * 3600 - 1)
    assert svc.principal_from_session(sid) is not None
    clock.advance(1)
    assert svc.principal_from_session(sid) is None


def test_failed_logins_lock_the_user_name_even_for_the_right_password(svc: TenancyService, clock: FakeClock) -> None:
    svc.create_user("alice", PW)
    for i in range(5):
        with pytest.raises(Unauthenticated):
            svc.login("alice", "wrong-password-1", client=f"10.0.0.{i}")
    with pytest.raises(LoginThrottled) as info:
        svc.login("alice", PW, client="10.9.9.9")
    assert info.value.status == 429 and info.value.retry_after == 300
    clock.advance(301)
    assert svc.login("alice", PW, client="10.9.9.9").name == "alice"


def test_failed_logins_lock_the_client_address_across_user_names(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    for name in ("u1", "u2", "u3", "u4", "u5"):
        with pytest.raises(Unauthenticated):
            svc.login(name, "whatever-password", client="10.0.0.7")
    with pytest.raises(LoginThrottled):
        svc.login("alice", PW, client="10.0.0.7")
    assert svc.login("alice", PW, client="10.0.0.8").name == "alice"


def test_the_lockout_message_is_the_same_for_existing_and_unknown_users(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    messages = []
    for name, client in (("alice", "10.0.0.1"), ("nobody", "10.0.0.2")):
        for _ in range(5):
            with pytest.raises(Unauthenticated):
                svc.login(name, "wrong-password-1", client=client)
        with pytest.raises(LoginThrottled) as info:
            svc.login(name, "wrong-password-1", client=client)
        messages.append(info.value.message)
    assert messages[0] == messages[1]


def test_a_successful_login_clears_the_user_names_failures(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            svc.login("alice", "wrong-password-1", client=f"10.1.0.{_}")
    svc.login("alice", PW, client="10.2.0.1")
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            svc.login("alice", "wrong-password-1", client=f"10.3.0.{_}")
    assert svc.login("alice", PW, client="10.4.0.1").name == "alice"


def test_login_rehashes_a_password_hashed_with_older_parameters(db: Database, clock: FakeClock) -> None:
    weak = TenancyService(db, clock=clock, hashing=PasswordHashing(memory_kib=1024, time_cost=1))
    weak.create_user("alice", PW)
    before = weak.user("alice").password_hash
    stronger = TenancyService(db, clock=clock, hashing=PasswordHashing(memory_kib=2048, time_cost=2))
    stronger.login("alice", PW)
    after = stronger.user("alice").password_hash
    assert before != after and "m=2048,t=2" in after


def test_changing_ones_password_needs_the_current_one_and_ends_other_sessions(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    mine, other = svc.start_session("alice"), svc.start_session("alice")
    with pytest.raises(Unprocessable) as info:
        svc.change_password("alice", "not-the-password", "Another-secret-8", keep_session=mine)
    assert info.value.field == "current_password"
    svc.change_password("alice", PW, "Another-secret-8", keep_session=mine)
    assert svc.principal_from_session(mine) is not None
    assert svc.principal_from_session(other) is None
    assert svc.login("alice", "Another-secret-8").name == "alice"


# -- workspaces, projects, members ----------------------------------------------------------------
def test_a_project_without_a_cluster_is_recorded_with_the_given_or_current_time(
    svc: TenancyService, clock: FakeClock
) -> None:
    svc.create_workspace("ws-a")
    assert svc.create_project("ws-a", "team-a").created == T0
    assert svc.create_project("ws-a", "team-b", created=123.0).created == 123.0
    assert [p.namespace for p in svc.projects("ws-a")] == ["team-a", "team-b"]


def test_a_project_with_a_cluster_gets_a_labelled_namespace_and_its_creation_time(
    db: Database, clock: FakeClock
) -> None:
    cluster = RecordingCluster()
    svc = TenancyService(
        db,
        clock=clock,
        hashing=PasswordHashing(memory_kib=1024, time_cost=1),
        ensure_namespace=cluster.ensure_namespace,
        namespace_created=cluster.namespace_created,
        namespace_uid=cluster.namespace_uid,
    )
    svc.create_workspace("ws-a")
    project = svc.create_project("ws-a", "team-a", created=5.0)
    assert cluster.labels["team-a"] == {WORKSPACE_LABEL: "ws-a"}
    assert project.created == cluster.created["team-a"]
    assert project.uid == cluster.namespace_uid("team-a") == svc.project("team-a").uid

    cluster.created["team-a"] = 1_800_000_000.0  # the namespace was deleted and recreated
    assert svc.refresh_floors() == 1
    assert svc.project("team-a").created == 1_800_000_000.0
    assert svc.project("team-a").uid == "uid-team-a-1800000000"
    assert svc.refresh_floors() == 0
    entries, _ = svc.audit_log(ADMIN_SCOPE, AuditFilter(action="project.floor"))
    assert entries[0].namespaces == ("team-a",)

    cluster.foreign["team-x"] = "secret-ws"
    with pytest.raises(Conflict) as info:
        svc.create_project("ws-a", "team-x")
    assert "secret-ws" not in info.value.message and info.value.field == "namespace"
    assert svc.project("team-x") is None

    cluster.down = True
    with pytest.raises(BackendUnavailable):
        svc.create_project("ws-a", "team-b")
    assert svc.project("team-b") is None, "a project whose namespace could not be made is not recorded"


def test_observing_a_recreated_namespace_moves_its_log_floor(svc: TenancyService) -> None:
    svc.create_workspace("ws-a")
    svc.create_project("ws-a", "team-a", created=100.0)
    assert svc.observe_namespace("team-a", created=100.0) is False
    assert svc.observe_namespace("team-a", created=200.0) is True
    assert svc.observe_namespace("unknown", created=200.0) is False
    svc.create_user("alice", PW)
    svc.set_project_member("team-a", "alice", "viewer")
    principal = svc.principal_for("alice")
    assert principal is not None
    assert svc.scope(principal).floor("team-a") == 200.0
    # the UID arrives with the watch: the same creation time with a UID is still news
    assert svc.observe_namespace("team-a", created=200.0, uid="uid-2") is True
    assert svc.observe_namespace("team-a", created=200.0, uid="uid-2") is False
    floors = svc.scope(principal).log_floors(["team-a"])
    assert (floors.created, floors.uids) == ({"team-a": 200.0}, {"team-a": "uid-2"})
    assert svc.observe_namespace("team-a", created=300.0, uid="uid-3") is True
    assert svc.scope(principal).log_floors(["team-a"]).uids == {"team-a": "uid-3"}
    # platform admins get no rule at all: a predecessor's lines are theirs to read
    svc.create_user("root", PW, platform_role="admin")
    admin = svc.principal_for("root")
    assert admin is not None
    assert svc.scope(admin).log_floors(["team-a"]).uids == {}


def test_system_namespaces_are_never_projects(svc: TenancyService) -> None:
    svc.create_workspace("ws-a")
    for ns in ("kube-system", "kube-public", "default"):
        with pytest.raises(Unprocessable) as info:
            svc.create_project("ws-a", ns)
        assert info.value.field == "namespace"
    assert svc.create_project("ws-a", "default", allow_default=True).namespace == "default"


def test_project_and_workspace_names_must_be_dns_labels(svc: TenancyService) -> None:
    with pytest.raises(Unprocessable):
        svc.create_workspace("WS_A")
    svc.create_workspace("ws-a")
    for bad in ("Team-A", "-a", "a" * 64, "a.b"):
        with pytest.raises(Unprocessable):
            svc.create_project("ws-a", bad)
    with pytest.raises(InvalidInput):
        svc.create_project("ws-a", "")


def test_a_namespace_can_belong_to_only_one_workspace(svc: TenancyService) -> None:
    svc.create_workspace("ws-a")
    svc.create_workspace("ws-b")
    svc.create_project("ws-a", "team-a")
    with pytest.raises(Conflict) as info:
        svc.create_project("ws-b", "team-a")
    assert "ws-a" not in info.value.message


def test_a_workspace_with_projects_cannot_be_deleted(svc: TenancyService) -> None:
    svc.create_workspace("ws-a")
    svc.create_project("ws-a", "team-a")
    with pytest.raises(Conflict):
        svc.delete_workspace("ws-a")
    svc.delete_project("team-a", confirm="team-a")
    svc.delete_workspace("ws-a")
    assert svc.workspace("ws-a") is None


def test_memberships_are_set_changed_and_removed(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_workspace("ws-a", admin="alice")
    svc.create_project("ws-a", "team-a")
    svc.set_project_member("team-a", "alice", "operator")
    svc.set_project_member("team-a", "alice", "viewer")
    principal = svc.principal_for("alice")
    assert principal is not None
    assert principal.workspaces == {"ws-a": WorkspaceRole.ADMIN}
    assert principal.projects == {"team-a": ProjectRole.VIEWER}
    svc.set_workspace_member("ws-a", "alice", None)
    svc.set_project_member("team-a", "alice", None)
    principal = svc.principal_for("alice")
    assert principal is not None and not principal.workspaces and not principal.projects
    with pytest.raises(NotFound):
        svc.set_project_member("team-a", "alice", None)
    with pytest.raises(Unprocessable) as info:
        svc.set_project_member("team-a", "alice", "owner")
    assert info.value.field == "role"
    with pytest.raises(NotFound):
        svc.set_project_member("team-a", "nobody", "viewer")


def test_deleting_a_project_drops_its_memberships_from_the_scope(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_workspace("ws-a")
    svc.create_project("ws-a", "team-a")
    svc.set_project_member("team-a", "alice", "admin")
    svc.delete_project("team-a", confirm="team-a")
    principal = svc.principal_for("alice")
    assert principal is not None
    assert svc.scope(principal).namespaces == {}


# -- authorization ---------------------------------------------------------------------------------
def test_an_unknown_namespace_is_refused_exactly_like_a_foreign_one(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_workspace("ws-a")
    svc.create_workspace("ws-b")
    svc.create_project("ws-a", "team-a")
    svc.create_project("ws-b", "team-b")
    svc.set_project_member("team-a", "alice", "admin")
    alice = svc.principal_for("alice")
    assert alice is not None
    errors = []
    for ns in ("team-b", "ghost"):
        with pytest.raises(Forbidden) as info:
            svc.authorize(alice, "logs:read", namespace=ns)
        errors.append(info.value.message.replace(ns, "NS"))
    assert errors[0] == errors[1]
    svc.authorize(alice, "logs:read", namespace="team-a")


def test_a_namespace_named_under_the_wrong_workspace_is_refused(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_workspace("ws-a", admin="alice")
    svc.create_workspace("ws-b")
    svc.create_project("ws-a", "team-a")
    svc.create_project("ws-b", "team-b")
    alice = svc.principal_for("alice")
    assert alice is not None
    svc.authorize(alice, "projects:delete", namespace="team-a", workspace="ws-a")
    with pytest.raises(Forbidden):
        svc.authorize(alice, "projects:delete", namespace="team-b", workspace="ws-a")


def test_namespaces_for_checks_named_namespaces_and_defaults_to_the_callers_own(svc: TenancyService) -> None:
    svc.create_user("root", PW, platform_role=PlatformRole.ADMIN)
    svc.create_user("alice", PW)
    svc.create_workspace("ws-a")
    for ns in ("team-a", "team-b", "team-c"):
        svc.create_project("ws-a", ns)
    svc.set_project_member("team-a", "alice", "operator")
    svc.set_project_member("team-b", "alice", "viewer")
    alice, root = svc.principal_for("alice"), svc.principal_for("root")
    assert alice is not None and root is not None
    assert svc.namespaces_for(alice, "logs:read") == ["team-a", "team-b"]
    assert svc.namespaces_for(alice, "policies:write") == ["team-a"]
    assert svc.namespaces_for(alice, "logs:read", ["team-b", " "]) == ["team-b"]
    with pytest.raises(Forbidden):
        svc.namespaces_for(alice, "logs:read", ["team-a", "team-c"])
    assert svc.namespaces_for(root, "logs:read") is None
    assert svc.namespaces_for(root, "logs:read", ["kube-system"]) == ["kube-system"]


# -- audit -------------------------------------------------------------------------------------------
def test_audit_entries_drop_secret_looking_keys_and_index_namespaces(svc: TenancyService, clock: FakeClock) -> None:
    svc.audit(
        "alice",
        "logs.search",
        "logs",
        "ok",
        {"namespaces": ["team-a", "team-b"], "q": "error", "password": "p", "nested": {"api_token": "t", "n": 1}},
    )
    clock.advance(10)
    svc.audit("bob", "policy.update", "namespace/team-c", "ok")
    entries, total = svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="team-a"))
    assert total == 1
    assert entries[0].detail == {"namespaces": ["team-a", "team-b"], "q": "error", "nested": {"n": 1}}
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="team-c"))[0][0].actor == "bob"
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="team"))[1] == 0, "namespace filter matches whole names"
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(action="policy."))[1] == 1
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(start=T0 + 5))[1] == 1
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(end=T0 + 5))[1] == 1
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(action="%"))[1] == 0, "LIKE wildcards in filters are literal"


def test_audit_files_an_added_clusters_entry_under_its_namespace_not_the_cluster(svc: TenancyService) -> None:
    # targets name a project by its key: <ns> in the implicit cluster, <cluster>/<ns> in an added one
    svc.audit("ann", "project.create", "namespace/cluster-2/shop", "ok")
    svc.audit("ann", "policy.update", "namespace/cluster-2/shop/policy/7", "ok")
    svc.audit("bob", "policy.update", "namespace/shop/policy/8", "ok")
    svc.audit("bob", "member.add", "namespace/policy/member/eve", "ok")  # a namespace called policy
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="shop"))[1] == 3
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="cluster-2"))[1] == 0
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="policy"))[0][0].actor == "bob"


# -- the scope cache and the receivers of notices ---------------------------------------------------
def _fresh_scope(svc: TenancyService, user: str) -> Any:
    """The oracle: the scope built from scratch by the pure rule over every project."""
    from hub.tenancy import scope as rules

    principal = svc.principal_for(user)
    assert principal is not None
    return rules.scope_for(principal, svc.projects())


def _same(a: Any, b: Any) -> bool:
    keys = ("all_namespaces", "namespaces", "workspaces", "uids", "username", "roles", "grants")
    return all(dict(getattr(a, k)) == dict(getattr(b, k)) if k not in ("all_namespaces", "username")
               else getattr(a, k) == getattr(b, k) for k in keys)  # fmt: skip


def test_the_cached_scope_follows_membership_and_project_writes(svc: TenancyService) -> None:
    svc.create_user("alice", PW)
    svc.create_workspace("ws")
    svc.create_project("ws", "team-a")
    svc.create_project("ws", "team-b")
    svc.set_project_member("team-a", "alice", "viewer")
    first = svc.scope(svc.principal_for("alice"))  # type: ignore[arg-type]
    assert svc.scope(svc.principal_for("alice")) is first, "a second request is answered from the cache"  # type: ignore[arg-type]
    assert _same(first, _fresh_scope(svc, "alice")) and set(first.namespaces) == {"team-a"}
    assert not first.may("alerts:write", "team-a") and first.may("logs:read", "team-a")
    # a membership change (the principal of the next request differs): rebuilt
    svc.set_project_member("team-a", "alice", "operator")
    svc.set_workspace_member("ws", "alice", "viewer")
    second = svc.scope(svc.principal_for("alice"))  # type: ignore[arg-type]
    assert second is not first and _same(second, _fresh_scope(svc, "alice"))
    assert second.may("alerts:write", "team-a") and set(second.namespaces) == {"team-a", "team-b"}
    # a project write (the trigger-bumped generation moved): rebuilt
    svc.create_project("ws", "team-c")
    third = svc.scope(svc.principal_for("alice"))  # type: ignore[arg-type]
    assert third is not second and "team-c" in third.namespaces and _same(third, _fresh_scope(svc, "alice"))
    # a project write by ANOTHER process (straight into the store, bypassing this service): seen
    svc.store.db.execute("DELETE FROM projects WHERE namespace = ?", ("team-c",))
    fourth = svc.scope(svc.principal_for("alice"))  # type: ignore[arg-type]
    assert "team-c" not in fourth.namespaces and _same(fourth, _fresh_scope(svc, "alice"))


def test_a_kept_principal_follows_every_role_write_even_another_process(svc: TenancyService) -> None:
    """A token's principal is kept between requests; each write that can change it, made
    straight in the store as another process would, is seen at the very next request."""
    svc.create_user("alice", PW)
    svc.create_workspace("ws")
    svc.create_project("ws", "team-a")
    token = svc.issue_token("alice", kind="named", name="t").token
    first = svc.principal_from_token(token)
    assert first is not None and svc.principal_from_token(token) is first, "the next request reuses it"
    sql = svc.store.db.execute
    sql("UPDATE users SET last_login_at = 1, display_name = 'A' WHERE name = 'alice'")
    assert svc.principal_from_token(token) is first, "a write that changes no role keeps it"

    steps: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO project_members(namespace, username, role) VALUES (?, ?, ?)", ("team-a", "alice", "viewer")),
        ("UPDATE project_members SET role = ? WHERE username = ?", ("operator", "alice")),
        ("INSERT INTO workspace_members(workspace, username, role) VALUES (?, ?, ?)", ("ws", "alice", "viewer")),
        ("INSERT INTO cluster_members(cluster, username, role) VALUES (?, ?, ?)", ("default", "alice", "viewer")),
        (
            "INSERT INTO custom_roles(name, level, permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            ("reader", "project", '["logs:read"]', T0, T0),
        ),
        ("INSERT INTO custom_role_bindings(role, username, target) VALUES (?, ?, ?)", ("reader", "alice", "team-a")),
        ("UPDATE custom_roles SET permissions = ? WHERE name = ?", ('["logs:read", "metrics:read"]', "reader")),
        ("UPDATE users SET platform_role = ? WHERE name = ?", ("admin", "alice")),
        ("DELETE FROM workspace_members WHERE username = ?", ("alice",)),
        ("DELETE FROM custom_roles WHERE name = ?", ("reader",)),  # its binding goes by cascade
    ]
    before = first
    for statement, args in steps:
        sql(statement, args)
        now = svc.principal_from_token(token)
        assert now is not None and now is not before, statement
        assert now == svc.principal_for("alice", via_token=True), statement  # as built from the rows
        before = now
    assert before.is_platform_admin and not before.custom and not before.workspaces
    assert before.projects == {"team-a": ProjectRole.OPERATOR}
    sql("DELETE FROM projects WHERE namespace = ?", ("team-a",))  # the membership goes by cascade
    after = svc.principal_from_token(token)
    assert after is not None and not after.projects and after == svc.principal_for("alice", via_token=True)
    sql("UPDATE users SET disabled = 1 WHERE name = 'alice'")
    assert svc.principal_from_token(token) is None, "a user disabled by another process is out at once"


def test_notice_receivers_are_decided_by_the_scope(svc: TenancyService) -> None:
    """Who may receive a project's notices is the scope's alerts:read, the same rule as the API."""
    for user in ("viewer", "outsider", "gone"):
        svc.create_user(user, PW)
    svc.create_workspace("ws")
    svc.create_workspace("other")
    svc.create_project("ws", "team-a")
    svc.create_project("other", "team-z")
    svc.set_project_member("team-a", "viewer", "viewer")
    svc.set_project_member("team-a", "gone", "viewer")
    svc.set_project_member("team-z", "outsider", "admin")
    svc.update_user("gone", disabled=True)
    assert svc.may_receive("viewer", "team-a")
    assert not svc.may_receive("outsider", "team-a"), "a member of another tenant is never a receiver"
    assert not svc.may_receive("viewer", "no-such-ns")
    assert not svc.may_receive("gone", "team-a") and not svc.may_receive("gone", None)
    assert svc.may_receive("outsider", None), "node-level notices: any active user named"
    svc.set_project_member("team-a", "viewer", None)
    assert not svc.may_receive("viewer", "team-a"), "removed after the policy was written: no longer told"


def test_the_audit_log_is_read_with_a_platform_scope_only(svc: TenancyService) -> None:
    from hub.errors import Forbidden as Refused

    svc.create_user("alice", PW)
    svc.create_workspace("ws")
    svc.create_project("ws", "team-a")
    svc.set_project_member("team-a", "alice", "admin")
    tenant = svc.scope(svc.principal_for("alice"))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="audit:read"):
        svc.audit_log(tenant, AuditFilter(namespace="team-a"))
    assert svc.audit_log(ADMIN_SCOPE, AuditFilter(namespace="team-a"))[1] >= 1
