"""How every front end writes progress, clock times, sizes and numbers (CLI, Train tab, card, disk messages).

Progress and clock times are tqdm's formatters; sizes and table values are written here, each with its reason.
"""
from __future__ import annotations

from typing import Any, Iterable

BAR_WIDTH = 20


def format_seconds(seconds: float | None) -> str:
    """``00:07``, ``1:02:03`` (tqdm's ``[H:]MM:SS``); ``?`` when unknown."""
    from tqdm import tqdm

    return "?" if seconds is None else tqdm.format_interval(max(0, round(seconds)))


def format_bytes(n: int | float | None) -> str:
    """``1536`` -> ``1.5 KB`` (binary units); ``?`` when unknown."""
    # kept by hand: tqdm.format_sizeof(n, "B", 1024) writes "1.50kB" / "48.8kB" (no space, three significant
    # digits, lowercase k), and the disk and upload messages users and tests read say "1.5 KB" / "48.8 KB"
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def format_value(value: Any, spec: str | None = None) -> str:
    """A value for a table cell or a log line: ``-`` when unknown, lists comma-joined, floats (and, given ``spec``,
    any number) in ``spec`` (default ``.4g``), anything else as ``str``."""
    # kept by hand: no library formats "a config value or a metric" this way (tqdm only has format_num)
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float) or (spec and isinstance(value, int) and not isinstance(value, bool)):
        return format(value, spec or ".4g")
    return str(value)


def progress_parts(step: int, total: int | None, *, loss: float | None = None, eta_s: float | None = None,
                   extra: Iterable[str] = (), bar: bool = False) -> list[str]:
    """``["step 12/30", "loss 4.8120", *extra, "ETA 00:07"]``; with ``bar`` the first part is tqdm's ASCII meter,
    ``[########............] 12/30``. Unknown parts are left out; an unknown total reads ``?``."""
    if bar:
        from tqdm import tqdm

        head = tqdm.format_meter(step, total or None, 0, ascii=".#",
                                 bar_format=f"[{{bar:{BAR_WIDTH}}}] {{n_fmt}}/{{total_fmt}}")
    else:
        head = f"step {step}/{total or '?'}"
    parts = [head]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    parts.extend(extra)
    if eta_s is not None:
        parts.append(f"ETA {format_seconds(eta_s)}")
    return parts


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows`` (``many`` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
