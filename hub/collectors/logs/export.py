"""Export of log lines to CSV or JSON lines: streamed in chunks, capped, colour codes stripped.

The stream is a generator of text chunks, so the web layer sends the first rows while later
ones are still being read, and memory stays flat for 100,000 lines. When the cap is reached
the file itself says so in its last line (a reader of the file alone must not mistake a
partial export for a complete one); so does an export cut short by a backend failure.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from hub.collectors.logs.store import LogLine, strip_ansi
from hub.errors import HubError

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# The cluster comes last: files of single-cluster hubs kept their columns where they were.
COLUMNS = ("time", "namespace", "workload", "pod", "container", "node", "message", "cluster")
CHUNK_LINES = 500
# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "@", "\t", "\r")


@dataclass(frozen=True)
class Export:
    filename: str
    content_type: str
    chunks: Iterator[str]


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _row(line: LogLine) -> list[str]:
    return [
        line.iso_time(),
        line.namespace,
        line.workload,
        line.pod,
        line.container,
        line.node,
        _cell(strip_ansi(line.message)),
        line.cluster,
    ]


def _json(line: LogLine) -> str:
    doc = {
        "time": line.iso_time(),
        "namespace": line.namespace,
        "workload": line.workload,
        "pod": line.pod,
        "container": line.container,
        "node": line.node,
        "message": strip_ansi(line.message),
        "cluster": line.cluster,
    }
    return json.dumps(doc, ensure_ascii=False) + "\n"


def render(lines: Iterator[LogLine], *, fmt: str, limit: int) -> Iterator[str]:
    """Chunks of the file. ``lines`` should yield up to ``limit + 1`` lines: one more than the cap
    is how the export knows there was more to say."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(COLUMNS)
    written = 0
    pending = 0
    capped = False
    failure = ""
    try:
        for line in lines:
            if written >= limit:
                capped = True
                break
            if fmt == "csv":
                writer.writerow(_row(line))
            else:
                buf.write(_json(line))
            written += 1
            pending += 1
            if pending >= CHUNK_LINES:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
                pending = 0
    except HubError as exc:
        failure = exc.message
    if capped:
        note = (
            f"export capped at {limit} lines; more lines matched. "
            "Narrow the time range or the filters to export the rest."
        )
        if fmt == "csv":
            writer.writerow([f"# {note}"])
        else:
            buf.write(json.dumps({"capped": True, "limit": limit, "note": note}) + "\n")
    if failure:
        note = f"export stopped after {written} lines: {failure}"
        if fmt == "csv":
            writer.writerow([f"# {note}"])
        else:
            buf.write(json.dumps({"error": note}) + "\n")
    tail = buf.getvalue()
    if tail:
        yield tail
