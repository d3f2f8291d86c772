"""The console's log search: filters, keyword box, time range, histogram, highlighted matches.

Searches go through the logs service exactly as ``GET /api/v1/logs`` does (the service scopes
them to the caller's namespaces and floors, and audits them); export links point at the API's
own streaming endpoint with the same parameters, so the browser downloads the file with the
session cookie.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, request
from markupsafe import Markup, escape

from hub.collectors.logs.store import MAX_WINDOW
from hub.collectors.logs.words import match_spans
from web.access import permission, scope
from web.params import integer, log_params
from web.util import hub
from web.views import common
from web.views.common import attempt, page

bp = Blueprint("logs", __name__)

RANGES = (("15m", 900), ("1h", 3600), ("6h", 6 * 3600), ("24h", 86400), ("7d", 7 * 86400))
DEFAULT_RANGE = "24h"
PAGE_SIZE = 50
FILTERS = ("namespaces", "workloads", "pods", "containers")


@bp.app_template_filter("highlight")
def highlight(message: str, terms: list[str]) -> Markup:
    """The message, HTML-escaped, with every keyword term wrapped in <mark>.

    Marked where the word rule says the term matches (docs/logs.md "Words": whole words, CJK
    inside one run), so what is marked is what matched.
    """
    spans = sorted(span for term in set(terms) for span in match_spans(message, term))
    out: list[str] = []
    last = mark_start = 0
    for start, end in spans:
        if start < last:  # overlaps the previous mark: extend it
            if end > last:
                out[-1] = f"<mark>{escape(message[mark_start:end])}</mark>"
                last = end
            continue
        out.append(str(escape(message[last:start])))
        out.append(f"<mark>{escape(message[start:end])}</mark>")
        mark_start, last = start, end
    out.append(str(escape(message[last:])))
    return Markup("".join(out))


def keyword_terms(q: str) -> list[str]:
    """The terms and phrases of a keyword query (operators dropped), for highlighting."""
    terms = [m for m in re.findall(r'"([^"]+)"', q)]
    rest = re.sub(r'"[^"]*"?', " ", q)
    terms += [w for w in rest.split() if w not in ("AND", "OR")]
    return [t.strip() for t in terms if t.strip()]


@bp.get("/logs")
@permission(None)
def search() -> Any:
    """Search the user's logs; without any filter it searches all namespaces the user may read."""
    args = request.args
    range_name = args.get("range") or ("" if args.get("start") else DEFAULT_RANGE)
    params: dict[str, str] = {k: args.get(k, "").strip() for k in FILTERS if args.get(k, "").strip()}
    q = args.get("q", "").strip()
    if q:
        params["q"] = q
    now = hub().clock.now()  # the hub's injected clock, as every "last hour" elsewhere
    seconds = dict(RANGES).get(range_name)
    if seconds:
        params["start"] = str(int(now - seconds))
        params["end"] = str(int(now) + 1)
    else:
        for key in ("start", "end"):
            if args.get(key):
                params[key] = args[key].strip()
    params["sort"] = "asc" if args.get("sort") == "asc" else "desc"
    if args.get("cluster", "").strip():  # the cluster switcher's choice (web/views/switcher.py)
        params["cluster"] = args["cluster"].strip()
    offset = integer(args, "from", 0, lo=0, hi=MAX_WINDOW - PAGE_SIZE, lenient=True)
    searched = "search" in args or bool(q) or any(k in params for k in FILTERS)
    result: dict[str, Any] | None = None
    histogram: dict[str, Any] | None = None
    if searched:
        caller = scope()
        svc = hub().logs
        if svc is not None:
            result = attempt(
                lambda: svc.search(caller, log_params({**params, "from": str(offset), "size": str(PAGE_SIZE)})), None
            )
            if result is not None:
                histogram = attempt(lambda: svc.histogram(caller, log_params(params)), None)
    export_query = urlencode(params)
    peak = max((b["count"] for b in (histogram or {}).get("buckets", [])), default=0)
    return page(
        "logs.html",
        args=args,
        params=params,
        q=q,
        range_name=range_name,
        ranges=RANGES,
        result=result,
        histogram=histogram,
        peak=peak,
        offset=offset,
        size=PAGE_SIZE,
        terms=keyword_terms(q),
        export_query=export_query,
        namespaces=common.visible_namespaces("logs:read"),
        searched=searched,
    )
