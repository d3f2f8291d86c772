"""The console's policy backtests: starting a replay of a saved policy as a background job,
its progress page, and the timeline of would-be notices and alert spans on the result page.
The routes that call these are in ``web.views.alerting_policies`` (one per policy home).
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for

from hub.errors import BackendUnavailable, HubError, NotFound
from web.access import current_principal
from web.util import hub
from web.views import common
from web.views.alerting_common import _svc
from web.views.common import failed, page


def _policy_url(level: str, ns: str | None, pid: str) -> str:
    if level == "node":
        return url_for(".node_policy", pid=pid)
    return url_for(".workload_policy", ns=ns, pid=pid)


def _backtest(level: str, ns: str | None, pid: str) -> Any:
    """Start replaying the saved policy over the chosen window, then show its job page.

    The replay runs in the background (a week of slots takes seconds); the job page shows its
    progress and then the would-be notices on a timeline. Reloading the result page never
    runs the replay again.
    """
    svc = _svc()
    svc.get_policy(pid, level=level, namespace=ns)  # 404 before any work for a policy out of reach
    window = request.form.get("window") or "24h"
    jobs = hub().backtest_jobs
    try:
        job = jobs.submit(
            lambda progress: svc.backtest(pid, level=level, namespace=ns, start=window, end=None, progress=progress),
            owner=current_principal().username,
            target=(level, ns, pid),
            window=window,
        )
    except HubError as exc:
        return failed(exc, _policy_url(level, ns, pid))
    return redirect(_backtest_url(level, ns, pid, job.id), code=303)


def _backtest_url(level: str, ns: str | None, pid: str, jid: str) -> str:
    if level == "node":
        return url_for(".node_policy_backtest_job", pid=pid, jid=jid)
    return url_for(".workload_policy_backtest_job", ns=ns, pid=pid, jid=jid)


def _backtest_job(level: str, ns: str | None, pid: str, jid: str) -> Any:
    """A backtest's progress while it runs (the page reloads itself), then its result."""
    policy = _svc().get_policy(pid, level=level, namespace=ns)
    job = hub().backtest_jobs.get(jid, owner=current_principal().username, target=(level, ns, pid))
    if job is None:
        raise NotFound("no such backtest (it may have expired; run it again)")
    running = job.running  # read first: a job sets its result or error before it counts as finished
    result, exc = (None, None) if running else (job.result, job.error)
    if exc is not None:
        if isinstance(exc, BackendUnavailable):
            common.backend_down(exc)
        else:
            common.banner("error", exc.message, field=exc.field)
    return page(
        "backtest.html",
        policy=policy,
        job=job,
        running=running,
        result=result,
        window=job.window,
        level=level,
        ns=ns,
        timeline=_timeline(result) if result else None,
        back_url=_policy_url(level, ns, pid),
    )


def _timeline(result: dict[str, Any]) -> dict[str, Any]:
    """Positions (0..100 %) of each would-be email and each alert span on the replay window."""
    from hub.timeutil import parse_time

    start = parse_time(result["start"], field="start")
    end = parse_time(result["end"], field="end")
    span = max(end - start, 1.0)

    def pos(text: str | None, default: float) -> float:
        if not text:
            return default
        return max(0.0, min(100.0, (parse_time(text, field="time") - start) / span * 100))

    marks = [{"left": pos(n["time"], 0), **n} for n in result.get("notices", [])]
    bars = []
    for a in result.get("alerts", []):
        left = pos(a.get("fired_at") or a.get("started_at"), 0)
        right = pos(a.get("ended_at") or a.get("resolved_at"), 100)
        bars.append({"left": left, "width": max(right - left, 0.4), "alert": a})
    ticks = [{"left": i * 25.0, "time": start + span * i / 4} for i in range(5)]
    return {"marks": marks, "bars": bars, "ticks": ticks}
