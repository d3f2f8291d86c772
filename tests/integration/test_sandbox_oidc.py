"""The sandbox's ``oidc`` component on a private sandbox (its own directory and port base): started
alone, run as the unprivileged user when the sandbox runs as root, its version and health, the
hub settings it hands out work, passwords survive a restart, and ``down``/``reset`` leave nothing
running or behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.settings import load_settings
from sandbox import oidc, prereqs
from sandbox.core import Sandbox
from tests.integration.test_sandbox_lifecycle import free_port_base
from tests.unit.conftest_tenancy import build_world

pytestmark = pytest.mark.integration


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_the_oidc_component_alone_on_a_private_sandbox(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path / "sb", port_base=free_port_base(), quiet=True)
    try:
        files = oidc.ensure_component(sb)
        assert sb.healthy("oidc") and sb.url_of("oidc") == files.issuer
        assert sb.version_of("oidc") == f"oidc-provider {oidc.VERSION}"
        pid = sb.sup.pid("oidc")
        assert pid is not None
        user = prereqs.es_runs_as()
        if user is not None:  # as root: the unprivileged sandbox user runs it
            import pwd

            assert _uid_of(pid) == pwd.getpwnam(user).pw_uid != 0
        passwords = {name: u.password for name, u in files.users().items()}
        assert set(passwords) == {name for name, _ in oidc.SEED_USERS}
        # the sandbox hub's settings point at it, through the sandbox CA, and a sign-in starts
        settings = load_settings(oidc.hub_environment(sb))
        assert settings.oidc.issuer_url == files.issuer and Path(settings.oidc.ca_file).exists()
        world = build_world(tmp_path / "hub", settings={"oidc": {
            "issuer_url": settings.oidc.issuer_url, "client_id": settings.oidc.client_id,
            "client_secret": settings.oidc.client_secret, "redirect_url": settings.oidc.redirect_url,
            "ca_file": settings.oidc.ca_file}})  # fmt: skip
        try:
            r = world.app.test_client().get("/login/oidc")
            assert r.status_code == 302 and r.headers["Location"].startswith(files.issuer + "/auth?")
        finally:
            world.hub.close()
        # a restart keeps the users' passwords and the signing key
        keys_before = files.keys_file.read_text()
        sb.sup.stop("oidc")
        again = oidc.ensure_component(sb)
        assert {n: u.password for n, u in again.users().items()} == passwords
        assert again.keys_file.read_text() == keys_before
    finally:
        sb.down()
    assert not sb.sup.alive("oidc") and not sb.healthy("oidc")
    where = oidc.sandbox_files(sb).dir
    sb.reset()
    assert not where.exists() and os.listdir(sb.dir) == [".lock"]
