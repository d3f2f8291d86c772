"""The hub's own alert for a cluster that went away: one alert per cluster whose API server the
hub's watch cache lost (``stale_since`` set), on entity ``cluster/<name>`` with the cluster's
name and the time it went stale in its labels, so the notice names the cluster; it resolves
when the watches are connected again (or the cluster is removed).

Why a meta-alert: a cluster that cannot be watched still shows its last state in every page,
marked stale; the people who answer for the platform must hear that the state is old rather
than notice it. Its receivers are the hub's admins, as for the other meta-alerts.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence

from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify.meta import step_observed
from hub.alerts.policy import Policy, Receiver
from hub.alerts.policy_model import hub_policy
from hub.timeutil import iso

StateKey = tuple[str, str, str]

STALE_POLICY_ID = "__meta_clusters__"
STALE_POLICY_NAME = "kubehub-cluster-unreachable"
STALE_RULE = "cluster-stale"


def stale_policy(receivers: Sequence[Receiver], period: float) -> Policy:
    """The meta policy: one alert per cluster whose API server the hub cannot watch."""
    return hub_policy(
        name=STALE_POLICY_NAME,
        rule=STALE_RULE,
        metric="kubehub_cluster_stale_seconds",
        severity="critical",
        receivers=receivers,
        period=period,
        description="The hub lost the API server of a cluster: its pages show the last known state.",
    )


def entity_of(cluster: str) -> str:
    return f"cluster/{cluster}"


def track(
    states: MutableMapping[StateKey, EntityState],
    stale: Mapping[str, float],
    *,
    now: float,
    period: float,
) -> tuple[list[Transition], list[StateKey]]:
    """Step the meta-alert of every cluster: stale (``stale[name]`` is when it went stale):
    breach, valued by the seconds since; tracked but live again, or gone: ok. Updates
    ``states``; returns (transitions, ended keys)."""
    observed: dict[StateKey, tuple[str, float, dict[str, str]]] = {}
    for name, since in stale.items():
        labels = {"cluster": name, "stale_since": iso(since), "namespace": ""}
        observed[(STALE_POLICY_ID, STALE_RULE, entity_of(name))] = ("breach", max(0.0, now - since), labels)
    for key, st in list(states.items()):
        if key[0] == STALE_POLICY_ID and key not in observed:
            observed[key] = ("ok", 0.0, dict(st.labels))
    return step_observed(states, observed, policy_id=STALE_POLICY_ID, rule=STALE_RULE, now=now, period=period)
