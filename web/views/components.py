"""Console page /components: the platform's own components, their state, since when, and a
24 h strip per component (docs/components.md). Same permission and the same service as
GET /api/v1/components; this module only lays the answer out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from hub.collectors import components
from web.access import permission
from web.util import hub
from web.views.common import page

bp = Blueprint("components", __name__)

# The console's state classes (console.css) of each component state.
STATE_CLASS = {
    "up": "s-ok",
    "down": "s-firing",
    "degraded": "s-pending",
    "unknown": "s-nodata",
    "disabled": "s-inactive",
}


def strip(history: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    """History segments as percentages of the window (zero-length runs drawn 0.3 % wide)."""
    width = max(end - start, 1.0)
    out = []
    for seg in history:
        left = (seg["from"] - start) / width * 100
        span = max((seg["to"] - seg["from"]) / width * 100, 0.3)
        out.append(
            {**seg, "left": round(left, 3), "width": round(min(span, 100 - left), 3), "cls": STATE_CLASS[seg["state"]]}
        )
    return out


@bp.get("/components")
@permission(components.PERMISSION)
def component_health() -> Any:
    """Each component's state, the checks behind it and its 24 h history."""
    service = hub().components
    body = service.health()
    end = body["time"]
    start = end - body["window_seconds"]
    rows = [{**c, "cls": STATE_CLASS[c["state"]], "strip": strip(c["history"], start, end)} for c in body["components"]]
    ticks = [start + i * (end - start) / 4 for i in range(5)]
    return page(
        "components.html", rows=rows, body=body, ticks=ticks, state_class=STATE_CLASS, live_wait=service.live_wait
    )
