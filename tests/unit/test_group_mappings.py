"""Group -> role mappings (hub.tenancy.mappings): parsing with field-named errors, and the
most-permissive rule checked against a brute-force oracle built from the permission table
(hub.tenancy.roles' permission sets), not from the rank tables resolve() uses."""

from __future__ import annotations

import itertools
import json

import pytest

from hub.errors import ConfigError, Unprocessable
from hub.tenancy.mappings import GroupMapping, parse_mapping, parse_mappings_setting, resolve
from hub.tenancy.roles import (
    ALL_PERMISSIONS,
    PROJECT_ROLE_PERMISSIONS,
    PlatformRole,
    ProjectRole,
    WorkspaceRole,
    workspace_role_permissions,
)


def test_parse_mapping_accepts_each_level() -> None:
    assert parse_mapping({"group": "Ops", "level": "platform", "role": "admin"}) == GroupMapping(
        "Ops", "platform", "admin"
    )
    ws = parse_mapping({"group": "retail-devs", "level": "workspace", "role": "VIEWER", "target": "retail"})
    assert (ws.level, ws.role, ws.target) == ("workspace", "viewer", "retail")
    pr = parse_mapping({"group": "cn=x", "level": "project", "role": "operator", "target": "retail-api"})
    assert (pr.level, pr.role, pr.target) == ("project", "operator", "retail-api")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("ops", "mapping"),
        ({"level": "platform", "role": "admin"}, "group"),
        ({"group": " ", "level": "platform", "role": "admin"}, "group"),
        ({"group": "a\x00b", "level": "platform", "role": "admin"}, "group"),
        ({"group": "x" * 257, "level": "platform", "role": "admin"}, "group"),
        ({"group": "ops", "level": "galaxy", "role": "admin"}, "level"),
        ({"group": "ops", "level": "platform", "role": "operator"}, "role"),
        ({"group": "ops", "level": "platform", "role": "admin", "target": "retail"}, "target"),
        ({"group": "ops", "level": "workspace", "role": "admin"}, "target"),
        ({"group": "ops", "level": "project", "role": "admin", "target": "Not_A_Label"}, "target"),
        ({"group": "ops", "level": "platform", "role": "admin", "extra": 1}, "extra"),
    ],
)
def test_parse_mapping_names_the_bad_field(raw: object, field: str) -> None:
    with pytest.raises(Unprocessable) as err:
        parse_mapping(raw)
    assert err.value.field == field


def test_settings_mappings_are_json_and_errors_name_the_setting() -> None:
    text = json.dumps([{"group": "ops", "level": "platform", "role": "admin"}])
    (only,) = parse_mappings_setting(text)
    assert only.origin == "settings" and only.role == "admin"
    assert parse_mappings_setting("  ") == ()
    for bad in ("{", '{"group": "ops"}', '[{"group": "ops", "level": "platform", "role": "root"}]'):
        with pytest.raises(ConfigError) as err:
            parse_mappings_setting(bad)
        assert "KUBEHUB_AUTH_GROUP_MAPPINGS" in str(err.value.to_dict())


def _granted(platform: PlatformRole, ws: dict[str, WorkspaceRole], pr: dict[str, ProjectRole]) -> set[tuple[str, str]]:
    """(target, permission) pairs a set of roles grants, straight from the permission table."""
    if platform is PlatformRole.ADMIN:
        return {("*", p) for p in ALL_PERMISSIONS}
    out = {(f"ws/{w}", p) for w, r in ws.items() for p in workspace_role_permissions(r)}
    out |= {(f"ns/{n}", p) for n, r in pr.items() for p in PROJECT_ROLE_PERMISSIONS[r]}
    return out


def test_conflicting_mappings_resolve_to_the_most_permissive_role_by_the_permission_table() -> None:
    """Every pair and triple of roles on one target, in every order: the resolved role grants
    a superset of what each mapped role grants on its own (the oracle), and is one of them."""
    levels = [
        ("platform", "", list(PlatformRole)),
        ("workspace", "retail", list(WorkspaceRole)),
        ("project", "retail-api", list(ProjectRole)),
    ]
    for level, target, roles in levels:
        for combo in itertools.chain(itertools.permutations(roles, 2), itertools.permutations(roles, 3)):
            mappings = [GroupMapping(f"g{i}", level, r.value, target) for i, r in enumerate(combo)]  # type: ignore[arg-type]
            got = resolve([f"G{i}" for i in range(len(combo))], mappings)  # case-insensitive groups
            got_set = _granted(got.platform_role, dict(got.workspaces), dict(got.projects))
            for r in combo:
                alone = resolve(["g0"], [GroupMapping("g0", level, r.value, target)])  # type: ignore[arg-type]
                assert _granted(alone.platform_role, dict(alone.workspaces), dict(alone.projects)) <= got_set
            chosen = {"platform": got.platform_role, "workspace": got.workspaces.get(target),
                      "project": got.projects.get(target)}[level]  # fmt: skip
            assert chosen in combo


def test_roles_on_different_targets_add_up_and_unmatched_groups_grant_nothing() -> None:
    mappings = [
        GroupMapping("retail", "workspace", "admin", "retail"),
        GroupMapping("etl", "project", "viewer", "analytics-etl"),
        GroupMapping("ops", "platform", "admin"),
    ]
    got = resolve(["retail", "etl", "other"], mappings)
    assert got.platform_role is PlatformRole.REGULAR
    assert dict(got.workspaces) == {"retail": WorkspaceRole.ADMIN}
    assert dict(got.projects) == {"analytics-etl": ProjectRole.VIEWER}
    assert got.matched == ("etl", "retail")
    assert resolve([], mappings) == resolve(["nobody"], mappings)
    assert resolve([], mappings).platform_role is PlatformRole.REGULAR
