"""Stage: per-tenant notification quota, with a digest when it overflows.

A tenant (a project for workload policies, the cluster for node policies) may get at most
``limit`` messages per clock hour. Beyond that, each receiver's further notices of the hour
are collected into one digest message sent when the hour ends, so a runaway policy costs its
receivers one extra email per hour instead of a storm, and nothing is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

from hub.alerts.notify.window import MessagePlan

HOUR = 3600.0


def apply(
    messages: list[MessagePlan],
    *,
    now: float,
    limit: int,
    count_since: Callable[[str, float], int],
    exempt: Collection[str] = (),
) -> list[MessagePlan]:
    if limit <= 0:
        return messages
    hour_start = math.floor(now / HOUR) * HOUR
    hour_end = hour_start + HOUR
    used: dict[str, int] = {}
    out: list[MessagePlan] = []
    for m in messages:
        if m.reason or m.tenant in exempt or m.extra.get("joins"):  # joins a waiting group message: no new one
            out.append(m)
            continue
        if m.tenant not in used:
            used[m.tenant] = count_since(m.tenant, hour_start)
        if used[m.tenant] >= limit:
            out.append(
                MessagePlan(
                    mkey=f"digest:{m.tenant}:{m.recipient}:{hour_end:.0f}",
                    tenant=m.tenant,
                    policy_id=m.policy_id,
                    recipient=m.recipient,
                    language=m.language,
                    notices=m.notices,
                    not_before=hour_end,
                    reason="quota",
                )
            )
            continue
        used[m.tenant] += 1
        out.append(m)
    return out
