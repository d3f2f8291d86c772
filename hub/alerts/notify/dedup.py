"""Stage: de-duplication against the notification log.

Every decided notice is recorded under its deterministic key (``alert:kind:sequence``); a key
already in the log is dropped. This is what keeps a re-run cycle, a replay or two racing
workers from telling anyone the same thing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hub.alerts.notify.notice import Notice


def fresh(notices: list[Notice], existing: Callable[[Iterable[str]], set[str]]) -> list[Notice]:
    """The notices whose keys are neither in the log nor repeated within this batch."""
    seen = existing([n.key for n in notices]) if notices else set()
    out: list[Notice] = []
    for n in notices:
        if n.key in seen:
            continue
        seen.add(n.key)
        out.append(n)
    return out
