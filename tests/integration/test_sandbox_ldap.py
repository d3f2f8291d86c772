"""The sandbox's directory component on a private instance (never the shared sandbox's slapd).

A temporary sandbox directory on a free port base starts only this component
(``ensure_ldap``): slapd as the unprivileged sandbox user, its version in ``status`` (the
binary's own ``-VV``), the seeded tree as ``ldapsearch`` sees it over StartTLS and LDAPS with
the sandbox CA, a clear-text bind refused, and ``down``/``reset`` leaving nothing behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import ldap as sl
from sandbox.core import Sandbox
from sandbox.procs import group_members, port_in_use
from tests.integration.test_sandbox_lifecycle import free_port_base, processes_mentioning

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("ldap-sandbox"), port_base=free_port_base(), quiet=True)
    yield sb
    where = sb.ldap_instance.dir
    sb.reset()
    assert processes_mentioning(str(where)) == []
    assert not where.exists()


def _search(sb: Sandbox, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LDAPTLS_CACERT=str(sb.pki_dir / "ca.crt"))
    return subprocess.run(
        ["ldapsearch", "-x", *args, "-H", url, "-D", sl.SERVICE_DN, "-w", sl.SERVICE_PASSWORD, "-LLL",
         "-b", sl.BASE_DN, "(objectClass=*)", "dn"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )  # fmt: skip


def test_slapd_starts_alone_as_an_unprivileged_user_with_the_seeded_tree(private: Sandbox) -> None:
    instance = private.ensure_ldap()
    assert instance.port == private.port("ldap") and instance.ldaps_port == private.port("ldaps")
    assert [n for n in private.sup.names() if private.sup.alive(n)] == ["ldap"]  # nothing else started
    comp = next(c for c in private.status()["components"] if c["name"] == "ldap")
    out = subprocess.run([str(sl.SLAPD), "-VV"], capture_output=True, text=True, check=False)
    assert comp["state"] == "up" and comp["version"].split()[1] in out.stdout + out.stderr
    pid = private.sup.pid("ldap")
    assert pid is not None
    assert Path(f"/proc/{pid}").stat().st_uid != 0 or os.geteuid() != 0  # never root

    seeded = {line.split(":", 1)[1].strip() for line in sl.seed_ldif().splitlines() if line.startswith("dn:")}
    for args, url in ((["-ZZ"], instance.url), ([], instance.ldaps_url)):
        found = _search(private, url, *args)
        assert found.returncode == 0, found.stderr
        dns = {line.split(":", 1)[1].strip() for line in found.stdout.splitlines() if line.startswith("dn:")}
        assert dns == seeded
    clear = _search(private, instance.url)  # no StartTLS: slapd refuses the simple bind
    assert clear.returncode != 0 and "onfidentiality required" in clear.stderr
    assert private.ensure_ldap() == instance and private.sup.pid("ldap") == pid  # reused


def test_down_stops_it(private: Sandbox) -> None:
    instance = private.ensure_ldap()
    pid = private.sup.pid("ldap")
    assert pid is not None
    assert "ldap" in private.down()
    assert group_members(pid) == []
    assert not port_in_use(instance.port) and not port_in_use(instance.ldaps_port)
    assert processes_mentioning(str(instance.dir)) == []
