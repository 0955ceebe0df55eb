"""The model card's loss-curve PNG, drawn with Pillow.

Pillow comes with gradio (and is listed in pyproject); matplotlib is not installed and plotly's static export needs
kaleido and a browser. Pillow draws the lines, the text (its bundled scalable font) and writes the PNG; it has no
notion of axes, so choosing round tick values (:func:`_nice_ticks`) and placing the frame stay here.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

Point = tuple[float, float]
RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
_WHITE: RGB = (255, 255, 255)
_INK: RGB = (40, 40, 40)
_GRID: RGB = (225, 225, 225)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering ``lo``..``hi``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
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
        x_label, y_label: axis captions.

    Raises:
        ValueError: no series has a finite point.
    """
    from PIL import Image, ImageDraw, ImageFont

    clean = {name: sorted((float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y))
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

    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, round(height / 28)))
    line_h = font.getbbox("0")[3]
    left = 16 + max(draw.textlength(_label(t), font=font) for t in yticks)
    right, top, bottom = width - 16, 20 + 2 * line_h, height - 24 - 2 * line_h

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for t in yticks:
        draw.line([(left, py(t)), (right, py(t))], fill=_GRID)
        draw.text((left - 8, py(t)), _label(t), fill=_INK, font=font, anchor="rm")
    for t in xticks:
        draw.line([(px(t), top), (px(t), bottom)], fill=_GRID)
        draw.text((px(t), bottom + 6), _label(t), fill=_INK, font=font, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=_INK)
    draw.text(((left + right) / 2, height - 8), x_label, fill=_INK, font=font, anchor="mb")
    draw.text((8, 10), y_label, fill=_INK, font=font, anchor="lt")

    legend_x = right
    for i, name in reversed(list(enumerate(clean))):
        legend_x -= draw.textlength(name, font=font) + 34
        draw.line([(legend_x, 10 + line_h / 2), (legend_x + 20, 10 + line_h / 2)], fill=PALETTE[i % len(PALETTE)],
                  width=3)
        draw.text((legend_x + 26, 10), name, fill=_INK, font=font, anchor="lt")
    for i, pts in enumerate(clean.values()):
        color = PALETTE[i % len(PALETTE)]
        points = [(px(x), py(y)) for x, y in pts]
        if len(points) > 1:
            draw.line(points, fill=color, width=2, joint="curve")
        if len(points) <= 20:  # few points (eval loss): mark each one
            for cx, cy in points:
                draw.ellipse([(cx - 3, cy - 3), (cx + 3, cy + 3)], fill=color)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
