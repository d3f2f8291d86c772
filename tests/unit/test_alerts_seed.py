from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import load_settings
from sandbox.hub_seed import seed_alerting, seed_tenancy

pytestmark = pytest.mark.unit

STATE = {
    "credentials": [
        {"username": "boss", "password": "Vq7!long-enough-pass", "platform_role": "admin", "email": "boss@demo.test"},
        {
            "username": "ops",
            "password": "Zr4!another-long-one",
            "projects": {"shop-api": "operator"},
            "email": "ops@demo.test",
        },
        {"username": "lead", "password": "Kp9!third-long-secret", "workspaces": {"shop": "admin"}},
    ],
    "workspaces": {"shop": ["shop-api", "shop-web"], "data": ["data-etl"]},
}


def test_the_sandbox_seed_loads_every_template_once_with_project_members_as_receivers(tmp_path: Path) -> None:
    settings = load_settings(
        env={
            "KUBEHUB_DATA_DIR": str(tmp_path),
            "KUBEHUB_KUBERNETES_KUBECONFIG": "none",
            "KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB": "8192",
        }
    )
    seed_tenancy(settings, STATE)
    first = seed_alerting(settings, STATE)
    again = seed_alerting(settings, STATE)
    templates = sorted(Path(__file__).resolve().parents[2].joinpath("rules").glob("*.yaml"))
    node = [t for t in templates if t.name.startswith(("node-", "component-"))]  # component health: node level
    workload = [t for t in templates if t.name.startswith("workload-")]
    # lead has no address in these credentials: reported, not hidden
    assert first == (
        f"alerting: {len(node) + 3 * len(workload)} policies created from rules/; warnings: "
        "lead has no email address: their notices will not be delivered"
    )
    assert again == "alerting: 0 policies created from rules/"

    from hub.runtime import build_hub

    hub = build_hub(settings)
    try:
        svc = hub.alerting
        api = svc.list_policies(level="workload", namespace="shop-api")
        etl = svc.list_policies(level="workload", namespace="data-etl")
        receivers = {tuple(sorted(r["user"] for r in p["notification"]["receivers"])) for p in api}
        assert receivers == {("lead", "ops")}
        assert all(p["notification"]["receivers"] == [{"user": "boss"}] for p in etl)  # no members: the admins
        nodes = svc.list_policies(level="node")
        assert len(nodes) == len(node) and all(p["notification"]["receivers"] == [{"user": "boss"}] for p in nodes)
        tenancy = hub.tenancy
        assert (tenancy.user_email("boss"), tenancy.user_email("lead")) == ("boss@demo.test", None)
    finally:
        hub.close()
