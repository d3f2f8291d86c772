"""docs/tenancy.md and the role table stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from hub.tenancy.roles import (
    ALL_PERMISSIONS,
    BUILTIN_ROLES,
    PERMISSION_DOCS,
    ClusterRole,
    PlatformRole,
    ProjectRole,
    WorkspaceRole,
    permission_level,
    permission_table_markdown,
)

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "tenancy.md"


def test_the_docs_carry_the_generated_role_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    between = text.split("<!-- permission-table:start -->\n", 1)[1].split("\n<!-- permission-table:end -->", 1)[0]
    assert between == permission_table_markdown()


def test_every_permission_is_documented_and_has_a_level() -> None:
    assert set(PERMISSION_DOCS) == set(ALL_PERMISSIONS)
    for permission in ALL_PERMISSIONS:
        assert permission_level(permission) in ("platform", "cluster", "workspace", "project")


def test_the_role_table_has_a_column_for_every_built_in_role() -> None:
    pairs = {(r.level, r.name) for r in BUILTIN_ROLES}
    expected = (
        {("platform", r.value) for r in PlatformRole}
        | {("cluster", r.value) for r in ClusterRole}
        | {("workspace", r.value) for r in WorkspaceRole}
        | {("project", r.value) for r in ProjectRole}
    )
    assert pairs == expected


def test_every_auth_and_tenancy_route_is_in_the_endpoint_table(app: Flask) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(("api_auth.", "api_tenancy.")):
            continue
        path = re.sub(r"<(?:[a-z]+:)?(\w+)>", lambda m: "{" + m.group(1) + "}", rule.rule)
        path = path.replace("{token_id}", "{id}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if f"`{method} {path}`" not in text and not (path in ("/login", "/logout") and f"`POST {path}`" in text):
                missing.append(f"{method} {path}")
    assert missing == []
