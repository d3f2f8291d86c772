"""Stage: silences. A notice matching an active silence is recorded as silenced, not sent.

A silence names its matchers (policy, rule, entity, severity, level; shell-style globs) and a
time range. Tenants' silences carry their namespace and can only ever match notices of that
namespace; cluster-wide silences (namespace None) are for platform admins.

An alert whose first notice was silenced has not been sent to anyone, so when the silence
ends while it still fires, its first notice goes out then (the repeat stage sees zero sends).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from hub.alerts.notify.notice import Notice

MATCHER_FIELDS = ("policy", "rule", "entity", "severity", "level", "alert")


@dataclass(frozen=True)
class Silence:
    id: str
    namespace: str | None
    matchers: Mapping[str, str]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    def active(self, t: float) -> bool:
        return self.starts_at <= t < self.ends_at

    def matches(self, n: Notice) -> bool:
        if self.namespace is not None and n.namespace != self.namespace:
            return False
        fields = {
            "policy": n.policy_name,
            "rule": n.rule,
            "entity": n.entity,
            "severity": n.severity,
            "level": n.level,
            "alert": n.alert_id,
        }
        return all(fnmatch.fnmatchcase(fields.get(k, ""), pattern) for k, pattern in self.matchers.items())


def silenced_by(n: Notice, silences: list[Silence], t: float) -> Silence | None:
    return next((s for s in silences if s.active(t) and s.matches(n)), None)
