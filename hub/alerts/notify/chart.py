"""A tiny line chart as PNG, for the evidence in alert emails.

Why PNG and not SVG: most mail clients (Gmail, Outlook) strip inline SVG but show an inline
``cid:`` image. Why hand-written: a few dozen lines of zlib + struct beat pulling a plotting
library into the hub for one sparkline.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

WHITE = (255, 255, 255)
GRID = (232, 232, 232)
LINE = (31, 111, 235)
THRESHOLD = (214, 48, 49)
POINT_OVER = (214, 48, 49)


def _png(width: int, height: int, pixels: bytearray) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = bytearray()
    stride = width * 3
    for y in range(height):
        raw.append(0)  # filter: none
        raw += pixels[y * stride : (y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(WHITE * (width * height))

    def dot(self, x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(colour)

    def line(
        self, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int], *, thick: bool = False, dash: int = 0
    ) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, n = dx + dy, 0
        while True:
            if not dash or (n // dash) % 2 == 0:
                self.dot(x0, y0, colour)
                if thick:
                    self.dot(x0, y0 + 1, colour)
                    self.dot(x0 + 1, y0, colour)
            n += 1
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def square(self, x: int, y: int, r: int, colour: tuple[int, int, int]) -> None:
        for yy in range(y - r, y + r + 1):
            for xx in range(x - r, x + r + 1):
                self.dot(xx, yy, colour)


def sparkline(
    samples: Sequence[tuple[float, float | None]],
    threshold: float,
    *,
    breaching: Sequence[bool] | None = None,
    width: int = 360,
    height: int = 100,
) -> bytes:
    """The samples as a line, the threshold as a dashed red line, breaching points in red."""
    c = _Canvas(width, height)
    pad = 8
    values = [v for _, v in samples if v is not None and math.isfinite(v)]
    lo = min([*values, threshold]) if values else threshold - 1
    hi = max([*values, threshold]) if values else threshold + 1
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    span = hi - lo
    lo, hi = lo - span * 0.1, hi + span * 0.1

    def y_of(v: float) -> int:
        return round(pad + (height - 2 * pad) * (1 - (v - lo) / (hi - lo)))

    for k in range(1, 4):  # light horizontal grid in quarters
        gy = pad + (height - 2 * pad) * k // 4
        c.line(pad, gy, width - pad, gy, GRID)
    ty = y_of(threshold)
    c.line(pad, ty, width - pad, ty, THRESHOLD, dash=4)
    n = len(samples)
    points: list[tuple[int, int, bool] | None] = []
    for i, (_, v) in enumerate(samples):
        if v is None or not math.isfinite(v):
            points.append(None)
            continue
        x = pad + ((width - 2 * pad) * i // max(1, n - 1) if n > 1 else (width - 2 * pad) // 2)
        over = bool(breaching[i]) if breaching is not None and i < len(breaching) else False
        points.append((x, y_of(v), over))
    prev = None
    for p in points:
        if p is not None and prev is not None:
            c.line(prev[0], prev[1], p[0], p[1], LINE, thick=True)
        prev = p
    for p in points:
        if p is not None:
            c.square(p[0], p[1], 2, POINT_OVER if p[2] else LINE)
    return _png(width, height, c.px)
