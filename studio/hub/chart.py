"""A tiny PNG line chart (zlib + struct only) for the model card's loss curve.

matplotlib is not a dependency (it is heavy and not needed elsewhere) and plotly's static export needs kaleido
and a browser; a loss curve needs only lines, a frame, a few numbers and a legend, so it is drawn here on an RGB
raster with a built-in 5x7 bitmap font and encoded as PNG by hand.
"""
from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence

Point = tuple[float, float]
RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
_WHITE: RGB = (255, 255, 255)
_INK: RGB = (40, 40, 40)
_GRID: RGB = (225, 225, 225)

# 5x7 glyphs, one 5-bit row per entry (top to bottom); characters not listed draw as blanks.
_FONT: dict[str, tuple[int, ...]] = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12), ".": (0, 0, 0, 0, 0, 12, 12), "-": (0, 0, 0, 31, 0, 0, 0),
    "+": (0, 4, 4, 31, 4, 4, 0), "e": (0, 0, 14, 17, 31, 16, 14), "a": (0, 0, 14, 1, 15, 17, 15),
    "i": (4, 0, 12, 4, 4, 4, 14), "l": (12, 4, 4, 4, 4, 4, 14), "n": (0, 0, 22, 25, 17, 17, 17),
    "o": (0, 0, 14, 17, 17, 17, 14), "p": (0, 0, 30, 17, 30, 16, 16), "r": (0, 0, 22, 25, 16, 16, 16),
    "s": (0, 0, 14, 16, 14, 1, 30), "t": (8, 8, 28, 8, 8, 9, 6), "v": (0, 0, 17, 17, 17, 10, 4),
    "u": (0, 0, 17, 17, 17, 19, 13), "g": (0, 15, 17, 17, 15, 1, 14), "c": (0, 0, 14, 16, 16, 17, 14),
    "d": (1, 1, 13, 19, 17, 17, 15), "m": (0, 0, 26, 21, 21, 17, 17), "k": (16, 16, 18, 20, 24, 20, 18),
    "x": (0, 0, 17, 10, 4, 10, 17), "y": (0, 0, 17, 17, 15, 1, 14), "h": (16, 16, 22, 25, 17, 17, 17),
    "b": (16, 16, 22, 25, 17, 17, 30), "f": (6, 9, 8, 28, 8, 8, 8), "w": (0, 0, 17, 17, 21, 21, 10),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8), "/": (1, 1, 2, 4, 8, 16, 16),
}


class Canvas:
    """An RGB raster with just the drawing operations a line chart needs."""

    def __init__(self, width: int, height: int, background: RGB = _WHITE):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i:i + 3] = bytes(color)

    def get(self, x: int, y: int) -> RGB:
        i = 3 * (y * self.width + x)
        return tuple(self.pixels[i:i + 3])  # type: ignore[return-value]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        for y in range(max(0, y0), min(self.height, y1 + 1)):
            for x in range(max(0, x0), min(self.width, x1 + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB, thickness: int = 1) -> None:
        """Bresenham's line, drawn ``thickness`` pixels wide."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        lo, hi = -(thickness // 2), (thickness - 1) // 2
        while True:
            for ox in range(lo, hi + 1):
                for oy in range(lo, hi + 1):
                    self.set(x0 + ox, y0 + oy, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: RGB = _INK, scale: int = 2) -> int:
        """Draw ``text`` with its top-left corner at (x, y); returns the width drawn."""
        cx = x
        for ch in text:
            rows = _FONT.get(ch, _FONT.get(ch.lower(), (0,) * 7))
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        self.rect(cx + c * scale, y + r * scale, cx + (c + 1) * scale - 1,
                                  y + (r + 1) * scale - 1, color)
            cx += 6 * scale
        return cx - x

    def png(self) -> bytes:
        return encode_png(self.width, self.height, bytes(self.pixels))


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 6 * scale


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG from raw row-major pixels (filter type 0 on every row)."""
    if len(rgb) != width * height * 3:
        raise ValueError("pixel buffer does not match width x height x 3")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 0.5:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _label(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.1e}"
    return f"{value:.3g}"


def line_chart_png(series: Mapping[str, Sequence[Point]], *, width: int = 720, height: int = 400,
                   x_label: str = "step", y_label: str = "loss") -> bytes:
    """Render named (x, y) series as a PNG line chart with axes, ticks and a legend.

    Args:
        series: label -> points, drawn in order with ``PALETTE`` colours; non-finite points are skipped.
        width, height: image size in pixels.
        x_label, y_label: axis captions (lower-case letters, digits and ``.-+()/`` render).

    Raises:
        ValueError: no series has a finite point.
    """
    clean = {name: [(float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
             for name, pts in series.items()}
    clean = {name: pts for name, pts in clean.items() if pts}
    if not clean:
        raise ValueError("nothing to plot: no finite points")
    xs = [x for pts in clean.values() for x, _ in pts]
    ys = [y for pts in clean.values() for _, y in pts]
    pad = (max(ys) - min(ys)) * 0.05 or abs(ys[0]) * 0.05 or 1.0
    xticks = _nice_ticks(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1)
    yticks = _nice_ticks(min(ys) - pad, max(ys) + pad)
    x0, x1, y0, y1 = xticks[0], xticks[-1], yticks[0], yticks[-1]

    canvas = Canvas(width, height)
    left = 24 + max(text_width(_label(t)) for t in yticks)
    right, top, bottom = width - 20, 44, height - 56

    def px(x: float) -> int:
        return round(left + (x - x0) / (x1 - x0) * (right - left))

    def py(y: float) -> int:
        return round(bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for t in yticks:
        canvas.line(left, py(t), right, py(t), _GRID)
        label = _label(t)
        canvas.text(left - 8 - text_width(label), py(t) - 7, label)
    for t in xticks:
        canvas.line(px(t), top, px(t), bottom, _GRID)
        label = _label(t)
        canvas.text(px(t) - text_width(label) // 2, bottom + 8, label)
    canvas.line(left, top, left, bottom, _INK)
    canvas.line(left, bottom, right, bottom, _INK)
    canvas.text((left + right - text_width(x_label)) // 2, height - 24, x_label)
    canvas.text(8, 12, y_label)

    legend_x = right
    for i, (name, pts) in reversed(list(enumerate(clean.items()))):
        color = PALETTE[i % len(PALETTE)]
        legend_x -= text_width(name) + 34
        canvas.rect(legend_x, 18, legend_x + 20, 21, color)
        canvas.text(legend_x + 26, 12, name)
    for i, (name, pts) in enumerate(clean.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        if len(pts) == 1:
            canvas.rect(px(pts[0][0]) - 3, py(pts[0][1]) - 3, px(pts[0][0]) + 3, py(pts[0][1]) + 3, color)
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            canvas.line(px(ax), py(ay), px(bx), py(by), color, thickness=2)
        if len(pts) <= 20:  # few points (eval loss): mark each one
            for x, y in pts:
                canvas.rect(px(x) - 2, py(y) - 2, px(x) + 2, py(y) + 2, color)
    return canvas.png()
