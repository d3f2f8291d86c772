"""A tiny line chart as PNG, for the evidence in alert emails.

Why PNG and not SVG: most mail clients (Gmail, Outlook) strip inline SVG but show an inline
``cid:`` image. Why hand-written: a few dozen lines of numpy + zlib beat pulling a plotting
library into the hub for one sparkline, and it costs a fraction of a millisecond per email
(it runs for every notice, so the outbox's throughput depends on it).
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence

import numpy as np

# A four-colour palette: one byte per pixel compresses three times faster than RGB.
PALETTE = [(255, 255, 255), (232, 232, 232), (31, 111, 235), (214, 48, 49)]
WHITE, GRID, LINE, THRESHOLD = 0, 1, 2, 3
POINT_OVER = THRESHOLD


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_PLTE = _chunk(b"PLTE", bytes(c for rgb in PALETTE for c in rgb))


def _png(pixels: np.ndarray) -> bytes:
    """Palette indices (h, w) as a PNG: every scanline with filter byte 0 (none).

    zlib level 3, not the default 6: on a sparkline it takes 0.06 ms instead of 0.3 ms for
    about 190 more bytes (550 instead of 365), and the compression was a quarter of the chart's
    cost in the outbox's send rate (bench/alerts.py)."""
    height, width = pixels.shape
    raw = np.zeros((height, width + 1), dtype=np.uint8)
    raw[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit palette
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _PLTE
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 3))
        + _chunk(b"IEND", b"")
    )


def _polyline(canvas: np.ndarray, points: list[tuple[int, int, bool] | None], colour: int) -> None:
    """Join consecutive points (a None breaks the line) in one vectorised pass: for every column
    the line covers, fill from its height to the next column's (two pixels thick)."""
    h, w = canvas.shape
    covered = np.zeros(w, dtype=bool)
    xs: list[int] = []
    ys: list[int] = []
    for a, b in itertools.pairwise(points):
        if a is not None and b is not None and b[0] > a[0]:
            covered[a[0] : b[0]] = True
    for p in points:
        if p is not None:
            xs.append(p[0])
            ys.append(p[1])
    if len(xs) < 2 or not covered.any():
        return
    cols = np.arange(w)
    y = np.interp(cols, xs, ys)
    y_next = np.append(y[1:], y[-1])
    lo = np.floor(np.minimum(y, y_next))
    hi = np.ceil(np.maximum(y, y_next)) + 1
    rows = np.arange(h)[:, None]
    canvas[(rows >= lo) & (rows <= hi) & covered] = colour


def sparkline(
    samples: Sequence[tuple[float, float | None]],
    threshold: float,
    *,
    breaching: Sequence[bool] | None = None,
    width: int = 360,
    height: int = 100,
) -> bytes:
    """The samples as a line, the threshold as a dashed red line, breaching points in red."""
    canvas = np.zeros((height, width), dtype=np.uint8)  # WHITE
    pad = 8
    values = [v for _, v in samples if v is not None and math.isfinite(v)]
    lo = min([*values, threshold]) if values else threshold - 1
    hi = max([*values, threshold]) if values else threshold + 1
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    span = hi - lo
    lo, hi = lo - span * 0.1, hi + span * 0.1

    def y_of(v: float) -> int:
        return min(height - 1, max(0, round(pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo)))))

    for k in range(1, 4):  # light horizontal grid in quarters
        canvas[pad + (height - 2 * pad) * k // 4, pad : width - pad] = GRID
    ty = y_of(threshold)
    dashes = np.arange(pad, width - pad)
    canvas[ty, dashes[(dashes - pad) // 4 % 2 == 0]] = THRESHOLD
    n = len(samples)
    points: list[tuple[int, int, bool] | None] = []
    for i, (_, v) in enumerate(samples):
        if v is None or not math.isfinite(v):
            points.append(None)
            continue
        x = pad + ((width - 2 * pad) * i // (n - 1) if n > 1 else (width - 2 * pad) // 2)
        over = bool(breaching[i]) if breaching is not None and i < len(breaching) else False
        points.append((x, y_of(v), over))
    _polyline(canvas, points, LINE)
    for p in points:
        if p is not None:
            x, y, over = p
            canvas[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = POINT_OVER if over else LINE
    return _png(canvas)
