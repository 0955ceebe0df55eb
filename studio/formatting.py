"""The progress line and clock times every front end shows (CLI, Train tab), on tqdm's formatters."""
from __future__ import annotations

from typing import Iterable

BAR_WIDTH = 20


def format_seconds(seconds: float | None) -> str:
    """``00:07``, ``1:02:03`` (tqdm's ``[H:]MM:SS``); ``?`` when unknown."""
    from tqdm import tqdm

    return "?" if seconds is None else tqdm.format_interval(max(0, round(seconds)))


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
