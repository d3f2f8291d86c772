"""The per-cycle re-post of firing alerts to Alertmanager receivers.

Alertmanager expects its clients to re-send every active alert periodically: an alert whose
``endsAt`` passes without a re-post is resolved by Alertmanager itself. The outbox carries the
changes (fired, resolved, closed) with its delivery guarantees; this keeps the firing ones alive
in between, every cycle, with ``endsAt`` a few cycles ahead (``hold``).

Which alerts: those that fired and are still open (firing, or held in ``nodata`` or ``error``)
whose first notice went out (``sends > 0``). So a hub
silence, a policy window or flap damping that held the first notice holds Alertmanager's copy
too, but once an alert was handed over, the hub's own repeat rules do not stop the re-posts:
Alertmanager groups, repeats and silences from there (docs/alerting.md). A failed re-post is
only logged and counted: the next cycle tries again, and what must arrive (the resolve) is in
the outbox.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.alerts.notify import hooks
from hub.alerts.notify.delivery import DEFAULT_HTTP_TIMEOUT, HttpRequest, HttpSender, PendingHttp
from hub.alerts.policy import PolicyInvalid, parse_policy
from hub.errors import InvalidInput
from hub.store.alerts import AlertStore
from hub.timeutil import Clock

log = logging.getLogger("kubehub.alerts")

# An alert that fired stays open through "nodata" (held, docs/alerting.md) and "error" (a query
# error never resolves): Alertmanager keeps it until the hub resolves or closes it.
OPEN_STATES = ("firing", "nodata", "error")


@dataclass
class RepostReport:
    posted: int = 0
    failed: int = 0


class AlertmanagerRepost:
    def __init__(
        self,
        *,
        store: AlertStore,
        http: HttpSender,
        clock: Clock,
        public_url: str,
        hold: float,
        may_send: Callable[[], bool] | None = None,
        implicit_cluster: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        # As the outbox's (Dispatcher.implicit_cluster): the same label set, so Alertmanager
        # sees one alert per hub alert whether the outbox or the re-post sent it.
        self.implicit_cluster = implicit_cluster
        self.http = http
        self.clock = clock
        self.public_url = public_url
        self.hold = hold
        self.may_send = may_send

    def targets(self) -> dict[str, tuple[float, list[str]]]:
        """Alertmanager base URL -> (timeout, ids of the enabled policies that name it)."""
        out: dict[str, tuple[float, list[str]]] = {}
        for row in self.store.policies():
            if not row["enabled"] or "alertmanager" not in row["document"]:
                continue
            try:
                policy = parse_policy(json.loads(row["document"]))
            except (PolicyInvalid, InvalidInput, ValueError):
                continue
            for r in policy.notification.receivers:
                if r.alertmanager:
                    timeout, ids = out.get(r.alertmanager, (r.timeout or DEFAULT_HTTP_TIMEOUT, []))
                    out[r.alertmanager] = (timeout, [*ids, row["id"]])
        return out

    def run(self) -> RepostReport:
        report = RepostReport()
        targets = self.targets()
        if not targets:
            return report
        firing: dict[str, list[Any]] = defaultdict(list)
        wanted = {pid for _, ids in targets.values() for pid in ids}
        for pid in sorted(wanted):
            rows, _ = self.store.alerts(
                namespaces=None, include_cluster=True, states=OPEN_STATES, policy_id=pid, limit=10_000
            )
            firing[pid] = [r for r in rows if r["sends"] > 0 and r["fired_at"] is not None]
        items: list[PendingHttp] = []
        implicit = self.implicit_cluster() if self.implicit_cluster is not None else ""
        for url, (timeout, ids) in sorted(targets.items()):
            alerts = [
                hooks.from_row(r, public_url=self.public_url, implicit_cluster=implicit)
                for pid in ids
                for r in firing[pid]
            ]
            if not alerts:
                continue

            def build(url: str = url, alerts: list[hooks.HookAlert] = alerts, timeout: float = timeout) -> HttpRequest:
                now = self.clock.now()
                body = hooks.body_bytes([a.alertmanager(now=now, hold=self.hold) for a in alerts])
                target = url.rstrip("/") + "/api/v2/alerts"
                return HttpRequest(
                    "repost", f"alertmanager:{url}", target, body, (), f"{len(alerts)} alert(s)", timeout
                )

            items.append(PendingHttp(f"repost:{url}", f"alertmanager:{url}", build, self.may_send))
        for res in self.http.send(items):
            if res.ok:
                report.posted += 1
            else:
                report.failed += 1
                log.warning("re-posting firing alerts to Alertmanager failed (next cycle tries again): %s", res.error)
        return report
