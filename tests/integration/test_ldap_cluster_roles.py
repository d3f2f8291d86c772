"""Cluster roles and custom roles granted by directory groups, against the sandbox's real slapd.

A test user in a group of its own (added with ``ldapadd`` and deleted afterwards, see
tests/integration/test_ldap_login.py): the group is mapped to the cluster viewer role and to a
custom project role; an LDAP sign-in carries both; once ``ldapmodify`` takes the user out of the
group, the next directory re-check takes both away from the token already issued.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import ldap as sl
from sandbox.core import Sandbox
from tests.integration.test_ldap_login import RECHECK, LdapHub, directory, ldap_tool, make_hub, temp_user

pytestmark = pytest.mark.integration

__all__ = ["directory", "temp_user"]  # fixtures reused from the LDAP login tests


@pytest.fixture()
def lhub(tmp_path: Path, directory: sl.LdapInstance, sandbox: Sandbox) -> Iterator[LdapHub]:
    h = make_hub(tmp_path, directory, sandbox.pki_dir)
    yield h
    h.hub.close()


def test_directory_groups_grant_cluster_and_custom_roles_until_the_directory_says_otherwise(
    lhub: LdapHub, directory: sl.LdapInstance, temp_user: tuple[str, str, str]
) -> None:
    uid, password, group = temp_user
    admin = lhub.admin()
    r = admin.post("/api/v1/auth/group-mappings", json={"group": group, "level": "cluster", "role": "viewer"})
    assert r.status_code == 201, r.get_json()
    role = {"name": "etl-logs", "level": "project", "permissions": ["logs:read", "members:read"]}
    assert admin.post("/api/v1/roles", json=role).status_code == 201
    r = admin.post(
        "/api/v1/auth/group-mappings",
        json={"group": group, "level": "project", "target": "analytics-etl", "role": "custom:etl-logs"},
    )
    assert r.status_code == 201, r.get_json()

    tok = lhub.token(uid, password).get_json()["token"]
    bearer = {"Authorization": f"Bearer {tok}"}
    me = lhub.client().get("/api/v1/me", headers=bearer).get_json()
    assert me["clusters"] == [{"name": "default", "role": "viewer"}]
    assert me["custom_roles"] == [{"role": "etl-logs", "level": "project", "target": "analytics-etl"}]
    c = lhub.client()
    assert c.get("/api/v1/alerting/policies", headers=bearer).status_code == 200  # node-policies:read
    assert c.get("/api/v1/namespaces/analytics-etl/members", headers=bearer).status_code == 200
    assert c.get("/api/v1/namespaces/retail-api/members", headers=bearer).status_code == 403

    ldap_tool(directory, "ldapmodify", stdin=f"dn: {sl.group_dn(group)}\nchangetype: modify\n"
              f"replace: member\nmember: {sl.user_dn('alice')}\n")  # fmt: skip
    lhub.clock.advance(RECHECK + 1)  # the next request asks the directory again
    me = c.get("/api/v1/me", headers=bearer).get_json()
    assert me["clusters"] == [] and me["custom_roles"] == []
    assert c.get("/api/v1/alerting/policies", headers=bearer).status_code == 403
    assert c.get("/api/v1/namespaces/analytics-etl/members", headers=bearer).status_code == 403
