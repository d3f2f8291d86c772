"""Reads the log evidence of alert emails for the renderer (hub/alerts/notify/evidence.py has
the rule): the store's newest error/warning lines and newest lines of an alert's workload or
node within a window, with lines of another workload kind or another node dropped.

Here, not in hub/alerts, because it joins two other areas (the log store and the cluster
cache); the alerting area sees only the callable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hub.alerts.notify.evidence import PROBLEM_WORDS

if TYPE_CHECKING:
    from hub.collectors.cluster import ClusterService
    from hub.collectors.logs.store import LogStore
    from hub.tenancy.scope import LogFloors

log = logging.getLogger("kubehub.alerts")

# Pod names per workload kind (the controllers' naming), for pods no longer in the cluster cache.
_POD_SHAPES = {
    "deployment": r"{name}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}",
    "statefulset": r"{name}-\d+",
    "daemonset": r"{name}-[a-z0-9]{{5}}",
    "job": r"{name}-[a-z0-9]{{5}}",
    "cronjob": r"{name}-\d+-[a-z0-9]{{5}}",
}
_LINE_FETCH = 5  # lines asked of the store per line shown: room for other kinds' and nodes' lines


def pod_filter(cluster: Any, namespace: str, kind: str, workload: str) -> Callable[[str], bool]:
    """Whether a pod (by name) belongs to the workload ``kind/workload``: the cluster cache's
    owner for pods it knows, the controller's naming for pods gone since. Why: the log store
    labels lines with the workload's NAME only, and a Deployment and a StatefulSet of the same
    name must not lend each other evidence."""
    known: dict[str, tuple[str, str] | None] = {}
    if cluster is not None:
        try:
            for pod in cluster.pods([namespace]):
                known[pod.name] = cluster.pod_workload(pod)
        except Exception as exc:  # no cache (yet): the naming rule alone decides
            log.debug("pods of %s unavailable for log evidence: %s", namespace, exc)
    shape = _POD_SHAPES.get(kind.lower())
    pattern = re.compile(shape.format(name=re.escape(workload))) if shape else None

    def belongs(pod: str) -> bool:
        if not kind:
            return True
        if pod in known:
            owner = known[pod]
            return owner is not None and owner[0].lower() == kind.lower() and owner[1] == workload
        return pattern is not None and pattern.fullmatch(pod) is not None

    return belongs


def evidence_lines(store: LogStore | None, cluster: ClusterService | None, floors: Callable[[str], LogFloors]) -> Any:
    """Evidence lines for alert emails, read by the hub itself (no user scope: the email goes
    to the policy's own receivers, who watch that workload or, for node policies, are admins).

    Two store queries over the window: the newest error/warning lines and the newest lines at
    all; hub/alerts/notify/evidence.py picks among them. Lines of the same workload name but
    another kind, or of another node, are dropped here. ``floors`` is the tenancy service's
    predecessor rule for one project (``TenancyService.project_log_floors``): receivers see what
    the project's members would.
    """
    from hub.collectors.logs.query import Or, Term
    from hub.collectors.logs.store import LogQuery

    problems = Or(tuple(Term(w) for w in PROBLEM_WORDS))

    def lines(
        *,
        start: float,
        end: float,
        limit: int,
        namespace: str = "",
        kind: str = "",
        workload: str = "",
        node: str = "",
    ) -> list[dict[str, Any]]:
        if store is None:
            return []
        if node:
            if cluster is None:
                return []
            on_node = sorted({p.name for p in cluster.pods(None) if p.node == node})
            if not on_node:
                return []
            base = LogQuery(visibility=None, pods=tuple(on_node), start=start, end=end, sort="desc", size=limit)

            def keep(line: Any) -> bool:
                return bool(line.node == node)

        else:
            # The tenants' predecessor rule: receivers see what the project's members would.
            rule = floors(namespace)
            base = LogQuery(
                visibility=rule.created,
                namespace_uids=rule.uids,
                workloads=(workload,),
                start=start,
                end=end,
                sort="desc",
                size=limit,
            )
            belongs = pod_filter(cluster, namespace, kind, workload)

            def keep(line: Any) -> bool:
                return belongs(line.pod)

        size = limit * _LINE_FETCH
        found = store.search(replace(base, text=problems, size=size)).items
        found += store.search(replace(base, size=size)).items
        return [line.to_dict() for line in found if keep(line)]

    return lines
