"""Builds the monitoring area's services into the hub.

``hub.monitoring`` is always there (the catalogue needs no backend);
``hub.prometheus`` only when a Prometheus URL is configured, so that /readyz lists
Prometheus by name and an unconfigured one is not reported as down.

Several clusters: the monitoring service asks :func:`sources` for a cluster's backend and label,
read from the cluster registry (``hub.clusters``) at each request, so an admin's change to a
cluster's metrics source applies at once. A URL equal to ``prometheus.url`` reuses the hub's own
client; another URL gets one client of its own, kept per URL.

Ranking tables in use are built again ahead of their expiry on two threads of their own
(``kubehub-table-renewal``, :class:`Renewals`): started at the first renewal and kept, so that
their connections are opened once; daemon threads, so a renewal in flight never holds up exit.

The window tables' kept points (hub/collectors/monitoring_window.py) outlive a restart:
``kubehub serve`` calls :func:`restore_windows` before it serves and :func:`keep_windows` when it
stops, with :data:`WINDOWS_FILE` in the data directory. The file is a cache: one that cannot be
read is set aside with a warning and the points are asked for again; a hub killed without a
clean stop starts from the last file it wrote. Beside it, :data:`TABLES_FILE` names the window
tables kept at the stop (level, metric, window, statistic, cluster; no answers): after the
points' catch-up the restarted hub builds those tables again, so their first caller after a
restart finds them kept instead of a "being computed" page (2.6-11.4 s of building at 20,000
pods under load, docs/scale.md "Large, tenth look").
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from hub.collectors.catalogue import default_catalogue
from hub.collectors.monitoring import MetricsSources, MonitoringService
from hub.collectors.monitoring_shared import SHARE_SECONDS, TABLE_SECONDS, TABLES_KEPT
from hub.collectors.monitoring_view import WINDOW_BUILD_SECONDS, WindowTableUse
from hub.collectors.prometheus import PrometheusClient, QueryBackend
from hub.errors import HubError

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger(__name__)

WINDOWS_FILE = "monitoring-windows.npz"
TABLES_FILE = "monitoring-window-tables.json"
TABLES_FILE_MAX_BYTES = 64 * 1024  # TABLES_KEPT short entries take about 2 KB
MAX_WINDOW_SECONDS = 31 * 86_400.0


def build(hub: Hub) -> None:
    settings = hub.settings.prometheus
    client = None
    if settings.url:
        counter = hub.metrics.prometheus_queries

        def count(kind: str, outcome: str) -> None:
            counter.labels(kind, outcome).inc()

        client = PrometheusClient(settings.url, timeout=settings.timeout, on_query=count)
        hub.prometheus = client
    hub.monitoring = MonitoringService(
        default_catalogue(),
        client,
        clock=hub.clock,
        timeout=settings.timeout,
        max_points=settings.max_points,
        share_seconds=SHARE_SECONDS,
        table_seconds=TABLE_SECONDS,
        sources=sources(hub, client),
        default_cluster=hub.settings.clusters.default_name,
        spawn=Renewals("kubehub-table-renewal", workers=2),
    )


def sources(hub: Hub, own: PrometheusClient | None) -> MetricsSources:
    """A cluster's name -> (its query backend, its ``cluster`` label value or '')."""
    settings = hub.settings.prometheus
    clients: dict[str, PrometheusClient] = {}
    lock = threading.Lock()

    def source(name: str) -> tuple[QueryBackend | None, str]:
        registry = hub.built_clusters()
        if registry is None:
            return own, ""
        metrics = registry.get(name).metrics  # NotFound naming cluster for an unknown one
        label = metrics.label_value if metrics.mode == "shared" else ""
        url = metrics.url.rstrip("/")
        if metrics.mode == "none" or not url:
            return None, label
        if own is not None and url == settings.url.rstrip("/"):
            return own, label
        with lock:
            client = clients.get(url)
            if client is None:
                client = clients[url] = PrometheusClient(url, timeout=settings.timeout)
        return client, label

    return source


class Renewals:
    """Runs jobs on ``workers`` daemon threads, started at the first job (a hub that never ranks
    from a table starts none). Jobs handle their own errors (SharedAnswers' renewals do)."""

    def __init__(self, name: str, *, workers: int) -> None:
        self._name, self._workers = name, workers
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def __call__(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        if not self._started:
            with self._lock:
                if not self._started:
                    for n in range(self._workers):
                        threading.Thread(target=self._run, name=f"{self._name}-{n}", daemon=True).start()
                    self._started = True

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # a job that did not handle its own error must not end the thread
                log.exception("a background job failed")


def restore_windows(hub: Hub) -> int:
    """Take back the window points the last ``kubehub serve`` kept; how many points. A file that
    is not a snapshot of this version is renamed ``*.unreadable`` (one, replaced each time) and
    nothing is restored. Then, on a thread of its own, the restored points are caught up and
    the tables kept at the stop are built again (:func:`catch_up_windows`)."""
    count = _restore_points(hub)
    uses = read_window_tables(hub)
    if count or uses:
        threading.Thread(target=catch_up_windows, args=(hub, uses), name="kubehub-window-catch-up", daemon=True).start()
    return count


def _restore_points(hub: Hub) -> int:
    path = hub.settings.data_dir / WINDOWS_FILE
    started = time.perf_counter()
    try:
        with path.open("rb") as source:
            count = hub.monitoring.windows.restore(source)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("window points not restored: cannot read %s (%s)", path, exc.strerror)
        return 0
    except ValueError as exc:
        log.warning("window points not restored from %s, set aside as .unreadable: %s", path, exc)
        try:
            os.replace(path, path.with_name(path.name + ".unreadable"))
        except OSError as moved:
            log.warning("cannot set %s aside (%s)", path, moved.strerror)
        return 0
    log.info("restored %d window points from %s in %.2f s", count, path, time.perf_counter() - started)
    return count


def read_window_tables(hub: Hub) -> list[WindowTableUse]:
    """The window tables the last ``kubehub serve`` kept in use (:data:`TABLES_FILE`), at most
    ``TABLES_KEPT``; an entry of the wrong shape is skipped, a file that is not such a list is
    ignored, each with a warning (the file is a hint: nothing is lost without it)."""
    path = hub.settings.data_dir / TABLES_FILE
    try:
        with path.open("rb") as source:
            raw = source.read(TABLES_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("window tables not rebuilt: cannot read %s (%s)", path, exc.strerror)
        return []
    try:
        entries = json.loads(raw) if len(raw) <= TABLES_FILE_MAX_BYTES else None
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        log.warning(
            "window tables not rebuilt: %s is not a list of tables of at most %d bytes", path, TABLES_FILE_MAX_BYTES
        )
        return []
    considered = entries[:TABLES_KEPT]
    uses = [use for entry in considered if (use := _table_use(entry)) is not None]
    if len(uses) < len(considered):
        log.warning("window tables: %d entries of %s skipped (not a table's shape)", len(considered) - len(uses), path)
    return uses


def _table_use(entry: object) -> WindowTableUse | None:
    if not isinstance(entry, dict):
        return None
    texts = [entry.get(name) for name in ("level", "metric", "stat", "cluster")]
    window = entry.get("window")
    if not all(isinstance(t, str) and len(t) <= 253 for t in texts):
        return None
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= MAX_WINDOW_SECONDS:
        return None
    level, metric, stat, cluster = (str(t) for t in texts)
    return WindowTableUse(level, metric, float(window), stat, cluster)


def catch_up_windows(hub: Hub, uses: Sequence[WindowTableUse] = ()) -> int:
    """Ask Prometheus, once after a restore, for the points each restored set lacks up to now
    (SteppedWindows.catch_up says why), each set within a window build's budget; then start
    building the tables of ``uses`` (kept at the last stop) as their first callers would. How
    many sets are whole. Runs on a thread of its own while the hub serves; logs what it did."""
    monitoring = hub.monitoring
    started = time.perf_counter()
    whole = _catch_up_points(hub) if monitoring.windows.keys() else 0
    for use in uses:
        try:
            monitoring.start_window_table(use)
        except HubError as exc:  # a metric no longer in the catalogue, a cluster removed...
            log.warning("window table %s not rebuilt: %s", asdict(use), exc.message)
        except Exception:  # a bug here must not end the thread before the other tables
            log.exception("window table %s not rebuilt", asdict(use))
    if uses:
        log.info(
            "started building %d window tables kept at the last stop (%.1f s after the restore)",
            len(uses),
            time.perf_counter() - started,
        )
    return whole


def _catch_up_points(hub: Hub) -> int:
    monitoring = hub.monitoring
    started = time.perf_counter()
    try:
        whole, problems = monitoring.windows.catch_up(
            monitoring.catalogue,
            monitoring.backend_of,
            at=monitoring.clock.now(),
            now=monitoring.clock.now,
            budget=WINDOW_BUILD_SECONDS,
        )
    except Exception:  # a bug here must not end the process; the rankings fill the points anyway
        log.exception("catching up the restored window points failed")
        return 0
    for problem in problems:
        log.warning("window points not caught up: %s", problem)
    log.info("caught up %d restored window point sets in %.1f s", whole, time.perf_counter() - started)
    return whole


def keep_windows(hub: Hub) -> None:
    """Write the window points' snapshot for the next start (a whole new file, then renamed over
    the old one, so a stop cut short leaves the previous file whole)."""
    path = hub.settings.data_dir / WINDOWS_FILE
    temporary = path.with_name(path.name + ".new")
    try:
        started = time.perf_counter()
        with temporary.open("wb") as out:
            hub.monitoring.windows.snapshot(out)
        os.replace(temporary, path)
        log.info("kept the window points in %s in %.2f s", path, time.perf_counter() - started)
    except OSError as exc:
        log.warning("window points not kept: cannot write %s (%s)", path, exc.strerror)
    tables = hub.settings.data_dir / TABLES_FILE
    try:
        fresh = tables.with_name(tables.name + ".new")
        fresh.write_text(json.dumps([asdict(use) for use in hub.monitoring.window_tables()]), encoding="utf-8")
        os.replace(fresh, tables)
    except OSError as exc:
        log.warning("window tables in use not kept: cannot write %s (%s)", tables, exc.strerror)
