"""Which log lines an alert email carries as evidence.

The rule (docs/alerting.md "Email"): the NEWEST lines up to the notice time, from the alert's
own workload (kind and name: a Deployment and a StatefulSet of the same name never mix) or
node, within the breach span (from the start of the first breaching period; for a repeat, from
the previous send, so each repeat shows what happened since); error and warning lines first.

Why newest and not oldest: on a busy workload the oldest lines of the span are pre-incident
noise, and every repeat would show the same ones. Why errors first: they are what an on-call
engineer looks for, and they are rarer than the noise around them. The store is asked twice
(the newest error/warning lines, and the newest lines at all) by the runtime; this module only
decides, so the rule is tested without a store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.alerts.notify.notice import Notice

# Words the store's keyword search is asked for (whole words, any case) ...
PROBLEM_WORDS = ("error", "warn", "warning", "fatal", "panic", "exception", "critical")
# ... and the same test applied to each line it returns (plus klog's E1205/W1205/F1205 prefix).
_PROBLEM = re.compile(r"\b(?:" + "|".join(PROBLEM_WORDS) + r")\b|(?:^|\s)[EWF]\d{4}\s", re.IGNORECASE)


def is_problem(message: str) -> bool:
    """An error or warning line (its level word, e.g. ``ERROR``, ``level=warn``, ``W1205``)."""
    return bool(_PROBLEM.search(message))


def window(n: Notice) -> tuple[float, float]:
    """[start, end] of the lines a notice may show: the breach span up to the notice time;
    for a repeat, only what came since the previous send."""
    start = n.started_at - n.period
    if n.kind == "repeat" and n.since is not None:
        start = max(start, n.since)
    return start, n.at


def _key(line: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(line.get("time", "")),
        str(line.get("pod", "")),
        str(line.get("container", "")),
        str(line.get("message")),
    )


def pick(lines: Iterable[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """Up to ``limit`` lines: the newest error/warning lines, then the newest others to fill;
    shown errors first, each group in time order. ``lines`` may repeat and come in any order."""
    seen: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
    for line in lines:
        seen.setdefault(_key(line), line)
    newest = sorted(seen.values(), key=_key, reverse=True)
    problems = [x for x in newest if is_problem(str(x.get("message", "")))][:limit]
    others = [x for x in newest if not is_problem(str(x.get("message", "")))][: limit - len(problems)]
    return sorted(problems, key=_key) + sorted(others, key=_key)


def subject_of(n: Notice) -> dict[str, str] | None:
    """Whose lines: ``{"namespace", "kind", "workload"}`` or ``{"node"}``; None when the alert
    is about neither (the hub's own meta-alerts)."""
    if n.policy_id.startswith("__meta"):
        return None
    if n.level == "workload":
        name = n.labels.get("workload") or ""
        if not n.namespace or not name:
            return None
        kind = n.labels.get("kind") or n.labels.get("workload_kind") or ""
        return {"namespace": n.namespace, "kind": kind, "workload": name}
    node = n.labels.get("node") or ""
    return {"node": node} if node else None


def sequence(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines as the email prints them (for tests and logs)."""
    return [f"{x.get('time', '')} {x.get('pod', '')} {x.get('message', '')}" for x in lines]
