"""The sandbox hook ``sandbox.hub_seed.seed_tenancy`` (run without a cluster here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.runtime.tenancy import build_service
from hub.settings import Settings
from sandbox.hub_seed import seed_tenancy as seed_sandbox
from tests.conftest import open_test_store
from tests.unit.conftest_tenancy import FAST_AUTH

pytestmark = pytest.mark.unit

STATE = {
    "workspaces": {"retail": ["retail-web", "retail-api"], "analytics": ["analytics-etl"]},
    "credentials": [
        {
            "username": "admin",
            "platform_role": "admin",
            "workspaces": {},
            "projects": {},
            "password": "5wL58U5cFSHUYiF6",
        },
        {
            "username": "retail-admin",
            "platform_role": "regular",
            "workspaces": {"retail": "admin"},
            "projects": {},
            "password": "QNS2M0RnPwgY2yF_",
        },
        {
            "username": "api-operator",
            "platform_role": "regular",
            "workspaces": {},
            "projects": {"retail-api": "operator"},
            "password": "ek4rxSLSZbnrt4R-",
        },
    ],
}


def test_seeding_is_idempotent_and_brings_passwords_and_roles_back(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url).replace(
        kubernetes={"kubeconfig": "none"}, logs={"ship": False}, auth=dict(FAST_AUTH)
    )
    assert seed_sandbox(settings, STATE) == "tenancy: 3 users, 2 workspaces, 3 projects"
    db = open_test_store(settings.state_db)
    try:
        svc = build_service(db, settings)
        svc.update_user("api-operator", password="Changed-in-between-1")
        svc.set_project_member("retail-api", "api-operator", None)
    finally:
        db.close()
    assert seed_sandbox(settings, STATE) == "tenancy: 3 users, 2 workspaces, 3 projects"
    db = open_test_store(settings.state_db)
    try:
        svc = build_service(db, settings)
        assert svc.login("api-operator", "ek4rxSLSZbnrt4R-").name == "api-operator"
        operator = svc.principal_for("api-operator")
        assert operator is not None
        assert sorted(svc.scope(operator).namespaces) == ["retail-api"]
        retail = svc.principal_for("retail-admin")
        assert retail is not None
        assert sorted(svc.scope(retail).namespaces) == ["retail-api", "retail-web"]
        assert [w.name for w in svc.workspaces()] == ["analytics", "retail"]
    finally:
        db.close()
