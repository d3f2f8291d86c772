"""A policy save checks the receivers it names, not every user of the hub: with the sandbox's
scale tenancy (1,000 users) listing everyone who may receive first made each save cost
O(users) principal look-ups (hub/runtime/alerting.py ``_Receivers``). The rule itself is
unchanged: unknown, disabled and out-of-project users are refused naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.errors import HubError
from hub.runtime import Hub, build_hub
from hub.settings import load_settings

pytestmark = pytest.mark.unit

USERS = 60


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    settings = load_settings(
        env={"KUBEHUB_DATA_DIR": str(tmp_path), "KUBEHUB_KUBERNETES_KUBECONFIG": "none",
             "KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB": "64", "KUBEHUB_AUTH_PASSWORD_HASH_TIME_COST": "1"}
    )  # fmt: skip
    h = build_hub(settings)
    t = h.tenancy
    t.create_workspace("shop")
    t.create_workspace("other")
    t.create_project("shop", "shop-api")
    t.create_project("other", "other-api")
    t.create_user("root", "Adm1n-pass-word", platform_role="admin", email="root@example.com")
    for i in range(USERS):
        t.create_user(f"user{i:03d}", "Us3r-pass-word", email=f"user{i:03d}@example.com")
        t.set_project_member("shop-api" if i % 2 else "other-api", f"user{i:03d}", "operator")
    t.update_user("user003", disabled=True)
    yield h
    h.close()


def _policy(receivers: list[str]) -> dict[str, Any]:
    return {
        "name": "cpu",
        "level": "workload",
        "namespace": "shop-api",
        "rules": [{"name": "hot", "metric": "workload_cpu_usage", "aggregation": "avg", "comparator": ">",
                   "threshold": 1, "unit": "cores", "period": "1m", "consecutive": 2, "severity": "major"}],
        "notification": {"receivers": [{"user": u} for u in receivers]},
    }  # fmt: skip


def test_a_save_asks_about_the_receivers_it_names_only(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    original = hub.tenancy.may_receive

    def counting(username: str, namespace: str | None, permission: str = "alerts:read") -> bool:
        asked.append(username)
        return original(username, namespace, permission)

    monkeypatch.setattr(hub.tenancy, "may_receive", counting)
    out = hub.alerting.create_policy(_policy(["user001", "user005"]), level="workload", namespace="shop-api", actor="t")
    assert [r["user"] for r in out["notification"]["receivers"]] == ["user001", "user005"]
    assert sorted(set(asked)) == ["user001", "user005"]  # not the other 59 users


@pytest.mark.parametrize(
    "who", ["user002", "user003", "nobody", "USER001"], ids=["other-project", "disabled", "unknown", "not-a-name"]
)
def test_who_may_not_receive_is_still_refused_naming_the_field(hub: Hub, who: str) -> None:
    with pytest.raises(HubError) as err:
        hub.alerting.create_policy(_policy(["user001", who]), level="workload", namespace="shop-api", actor="t")
    assert err.value.status == 422 and "notification.receivers[1].user" in str(err.value.to_dict())


def test_the_collection_still_lists_everyone_who_may_receive(hub: Hub) -> None:
    receivers = hub.alerting.users("shop-api")  # type: ignore[misc]
    listed = sorted(receivers)
    assert listed == sorted(["root", *(f"user{i:03d}" for i in range(1, USERS, 2) if i != 3)])
    assert len(receivers) == len(listed) and "root" in receivers and "user000" not in receivers
    node = hub.alerting.users(None)  # type: ignore[misc]
    assert "user000" in node and "root" in node and "user003" not in node  # node policies: any active user
