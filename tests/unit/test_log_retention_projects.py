"""A project's own log retention (issue 19: "retention within the platform's maximum") applied by
the retention job: its lines before its cutoff day go, every other project's stay, and the
full-text index forgets them too (the embedded store's index is contentless: a row left behind
would still be counted and matched). The oracle is the list of records written, filtered by
hand; the store is asked through its ordinary search, count and histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.service import LogService
from hub.collectors.logs.store import LogQuery, LogRecord
from hub.settings import Settings
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit

DAY = 86_400
NOW = 1_795_219_200.0 + 12 * 3600  # 2026-11-21T12:00:00Z


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def audit(self, actor: str, action: str, target: str, result: str, detail: Any = None) -> int:
        self.entries.append((action, target, dict(detail or {})))
        return len(self.entries)


def records() -> list[LogRecord]:
    out = []
    for age in range(6):  # lines from 5 days ago to today
        for ns in ("short", "long", "other"):
            for i in range(4):
                out.append(
                    LogRecord(
                        time=NOW - age * DAY - i * 60,
                        namespace=ns,
                        pod=f"{ns}-0",
                        container="app",
                        message=f"needle age{age} line{i} of {ns}",
                        pod_uid=f"uid-{ns}",
                    )
                )
    return out


def test_a_projects_retention_drops_only_its_own_older_lines_everywhere_the_store_looks(tmp_path: Path) -> None:
    store = EmbeddedLogStore(tmp_path / "logs")
    written = records()
    store.write(written)
    audit = Audit()
    service = LogService(
        store=store,
        settings=Settings(data_dir=tmp_path).replace(logs={"retention_days": 7}),
        tenancy=audit,
        clock=FakeClock(NOW),
        project_retention=lambda: {"short": 2, "long": 7, "other": 30},  # 7 and more: the platform's
    )
    try:
        assert service.project_cutoffs() == {"short": "2026-11-20"}  # today and yesterday kept
        service.apply_retention()
        horizon = 1_795_219_200.0 - DAY  # 2026-11-20T00:00:00Z
        expected = sorted(r.message for r in written if r.namespace != "short" or r.time >= horizon)
        every = store.search(LogQuery(visibility=None, size=1000))
        assert sorted(line.message for line in every.items) == expected and every.total == len(expected)
        hits = store.search(LogQuery(visibility={"short": 0.0}, text=parse_keywords("needle"), size=1000))
        assert sorted(line.message for line in hits.items) == [m for m in expected if m.endswith("of short")]
        assert hits.total == 8  # the index's own count: no row left behind for a deleted line
        assert store.search(LogQuery(visibility=None, text=parse_keywords("age3"), size=100)).total == 8
        buckets = store.histogram(LogQuery(visibility={"short": 0.0}), interval=DAY)
        assert sum(b.count for b in buckets) == 8
        (entry,) = [e for e in audit.entries if e[1] == "namespace/short"]
        assert entry[0] == "logs.retention" and entry[2]["lines"] == 16
        # Lines of that project older than its cutoff are not written again either
        late = LogRecord(time=NOW - 3 * DAY, namespace="short", pod="short-0", container="app", message="late")
        assert service.write([late]) == 0
        assert (
            service.write(
                [LogRecord(time=NOW - 3 * DAY, namespace="long", pod="long-0", container="app", message="ok")]
            )
            == 1
        )
        service.apply_retention()  # again: nothing more to do
        assert store.search(LogQuery(visibility=None, size=1000)).total == len(expected) + 1
    finally:
        store.close()
