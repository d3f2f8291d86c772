"""The hub's meta-alert for a cluster whose API server it lost (hub/alerts/notify/clusters.py):
one alert per stale cluster, named in its entity and labels, firing at once and resolved when the
cluster is live again; the others are untouched. Run through the cycle's own stage too."""

from __future__ import annotations

import pytest

from hub.alerts.cycle_stages import hub_alerts, tenants_of
from hub.alerts.engine import EntityState, Evaluation
from hub.alerts.notify import clusters
from hub.timeutil import iso

pytestmark = pytest.mark.unit

T0 = 1_795_219_200.0


def test_a_stale_cluster_fires_its_own_alert_naming_it_and_resolves_when_live() -> None:
    states: dict[tuple[str, str, str], EntityState] = {}
    trs, ended = clusters.track(states, {"cluster-2": T0 - 30}, now=T0, period=15)
    assert [(t.entity, t.to_state, t.labels["cluster"]) for t in trs] == [("cluster/cluster-2", "firing", "cluster-2")]
    assert trs[0].labels["stale_since"] == iso(T0 - 30) and trs[0].value == 30 and not ended
    # still stale, a second cluster goes stale: only the new one moves
    trs, _ = clusters.track(states, {"cluster-2": T0 - 30, "edge": T0 + 10}, now=T0 + 15, period=15)
    assert [(t.entity, t.to_state) for t in trs] == [("cluster/edge", "firing")]
    # cluster-2 is live again: resolved; edge keeps firing
    trs, ended = clusters.track(states, {"edge": T0 + 10}, now=T0 + 30, period=15)
    assert [(t.entity, t.to_state) for t in trs] == [("cluster/cluster-2", "resolved")]
    assert (clusters.STALE_POLICY_ID, clusters.STALE_RULE, "cluster/edge") in states
    assert all(k[0] == clusters.STALE_POLICY_ID for k in states)


def test_the_cycle_stage_adds_the_meta_policy_only_when_asked() -> None:
    ev = Evaluation()
    kwargs = dict(
        ran_queries=False, now=T0, period=15.0, admins=(), track_receivers=False,
        resolve_user=lambda n, ns: None, explain_user=None,
    )  # fmt: skip
    out = hub_alerts(ev, {}, {}, stale_clusters={"cluster-2": T0 - 5}, **kwargs)  # type: ignore[arg-type]
    assert clusters.STALE_POLICY_ID in out.policies
    assert [t.labels["cluster"] for t in out.transitions] == ["cluster-2"]
    assert tenants_of(out.policies)[clusters.STALE_POLICY_ID] == tenants_of({})[clusters.STALE_POLICY_ID]
    ev = Evaluation()
    quiet = hub_alerts(ev, {}, {}, **kwargs)  # type: ignore[arg-type]
    assert clusters.STALE_POLICY_ID not in quiet.policies and not quiet.transitions
