"""Fixtures shared by every test layer.

Area-specific fixtures live beside their tests; the sandbox (real engines) fixture lives in
tests/integration/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a fresh data dir: no cluster, no Prometheus, no SMTP."""
    return Settings(data_dir=tmp_path / "data").replace(kubernetes={"kubeconfig": "none"}, logs={"ship": False})


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from web import create_app

    application = create_app(settings, testing=True)
    yield application
    application.extensions["kubehub"].close()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


# The tenancy world (two workspaces, four projects, a user and token per role) for any area's
# scoping and escape tests; see docs/tenancy.md "Testing helpers".
from tests.unit.conftest_tenancy import tenancy_world  # noqa: E402, F401
