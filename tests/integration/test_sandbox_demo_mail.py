"""Issue 12 part 5 acceptance: what a fresh `make sandbox` does — the demo users' credentials
(now with addresses), the seed hooks, a running hub — mails the seeded policies' alerts to the
demo users, within two check periods of an alert firing, into the sandbox's SMTP catcher.

The sandbox here may be running with an older seed (or without its hub, as in CI), so the test
takes the same steps against a hub of its own: `complete_credentials` as `up` would write
them, `Seeder.seed_hub` (the very hooks) into the test's data directory, and a hub started on
it with the sandbox's Prometheus and SMTP catcher. The catcher's Maildir is the outside
reference: the test reads the messages there, by envelope recipient and alert id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.notify.reach import REACH_POLICY_ID
from hub.scope import Scope
from hub.settings import Settings
from sandbox.core import Sandbox
from sandbox.kube import KubeRest
from sandbox.seed import Seeder, complete_credentials, load_credentials
from tests.conftest import world_database_url
from tests.integration.alerts_support import mails_to, start_hub, subject_of

pytestmark = pytest.mark.integration

WAIT_FIRING = 300.0  # templates: 1m periods, 3 in a row, plus the first cycles and scrapes


def test_a_fresh_sandbox_mails_the_seeded_alerts_to_the_demo_users(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    creds, _ = complete_credentials(load_credentials(sandbox.state_dir))
    assert creds and all(c["email"] for c in creds), "every demo user has an address"
    (state / "credentials.json").write_text(json.dumps(creds))
    seeder = Seeder(sandbox, KubeRest(sandbox.kubeconfig))
    said: list[str] = []
    seeder.say = said.append  # type: ignore[method-assign]
    database_url = world_database_url()  # the run's state store: the seed writes where the hub reads
    seeder.seed_hub(data_dir=tmp_path / "hub", state_dir=state, database_url=database_url)
    alerting_line = next(s for s in said if "alerting:" in s)
    assert "policies created from rules/" in alerting_line and "warnings" not in alerting_line, said

    settings = Settings(data_dir=tmp_path / "hub", database_url=database_url).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        prometheus={"url": sandbox.prometheus_url, "timeout": 30.0},
        smtp={"host": sandbox.smtp_host, "port": sandbox.smtp_port, "sender": "kubehub-demo@localhost"},
        alerts={"delivery_seconds": 1.0},
    )
    hub = start_hub(settings)
    try:
        svc = hub.alerting
        email_of = {c["username"]: c["email"] for c in creds}

        def seeded_firing() -> list[dict[str, Any]]:
            items, _ = svc.alerts(Scope(all_namespaces=True, namespaces={}), states=["firing"])
            return [a for a in items if a["policy_id"] != REACH_POLICY_ID and not a["policy_id"].startswith("__")]

        deadline = time.monotonic() + WAIT_FIRING
        while not seeded_firing() and time.monotonic() < deadline:
            time.sleep(5)
        firing = seeded_firing()
        assert firing, "no seeded policy fired in the sandbox (its hot workloads and nodes should)"
        checked = 0
        for alert in firing:
            policy = svc.get_policy(
                alert["policy_id"],
                level=alert["level"],
                namespace=alert["namespace"] if alert["level"] == "workload" else None,
            )
            assert policy["created_by"] == "sandbox"
            period = max(float(_seconds(r["period"])) for r in policy["rules"])
            users = [r["user"] for r in policy["notification"]["receivers"]]
            assert users, policy["name"]
            fired = _epoch(alert["fired_at"])
            bound = fired + 2 * period
            for user in users:
                address = email_of[user]

                def arrived(address: str = address, alert_id: str = alert["id"]) -> list[Any]:
                    return [m for m in mails_to(sandbox, address) if alert_id in str(m.get("X-Kubehub-Alerts", ""))]

                while not arrived() and time.time() < bound + 5:
                    time.sleep(1)
                got = arrived()
                assert got, (
                    f"no email to {user} <{address}> for {alert['policy']}/{alert['entity']} by fired + 2 periods"
                )
                first = got[0]
                sent = first.get_date()
                assert sent is not None and sent <= bound, (user, sent, fired, period)
                assert subject_of(first).startswith("[FIRING·"), subject_of(first)
                checked += 1
            detail = svc.alert(alert["id"], Scope(all_namespaces=True, namespaces={}))
            assert detail["undelivered"] == [] and detail["sends"] >= 1, detail
        assert checked >= 1
        # nobody was left unreachable: no meta-alert about the seeded policies
        meta, _ = svc.alerts(Scope(all_namespaces=True, namespaces={}), states=["firing", "resolved"])
        assert not [a for a in meta if a["policy_id"] == REACH_POLICY_ID]
    finally:
        hub.close()


def _seconds(value: Any) -> float:
    from hub.timeutil import parse_duration

    return float(value) if isinstance(value, int | float) else parse_duration(str(value), field="period")


def _epoch(text: str) -> float:
    from hub.timeutil import parse_time

    return parse_time(text, field="fired_at")
