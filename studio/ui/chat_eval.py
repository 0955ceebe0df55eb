"""The Chat tab's Evaluate panel for preference runs, as plain values (no gradio): base vs tuned held-out preference
accuracy, margins and reward accuracy, and the pairs one by one."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

PAIR_HEADERS = ["#", "Prompt", "Chosen", "Rejected", "Base margin", "Tuned margin", "Reward margin"]
"""Per-pair columns: the margins are ``logp(chosen) - logp(rejected)``; the reward margin is tuned minus base."""


def is_preference(run_dir: str | None) -> bool:
    """The run at ``run_dir`` trained a preference method (its Evaluate panel scores pairs)."""
    if not run_dir:
        return False
    from studio import runs
    from studio.config import load_config
    from studio.errors import StudioError
    from studio.evaluate_pairs import is_preference_run

    cfg_file = Path(run_dir) / runs.CONFIG
    try:
        return cfg_file.is_file() and is_preference_run(load_config(cfg_file))
    except StudioError:
        return False


def pair_tables(report: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    """(summary rows: metric, base, tuned; per-pair table as ``{"headers", "data"}``) of a ``PairReport``."""
    summary = [["held-out pairs (n)", str(report.rows), str(report.rows)], *report.table()]

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:+.3f}"

    rows = [[r.index + 1, r.prompt, r.chosen, r.rejected, num(r.base_margin), num(r.tuned_margin),
             num(r.reward_margin)] for r in report.per_row]
    return summary, {"headers": PAIR_HEADERS, "data": rows}


def evaluate_pairs_panel(run_dir: str, *, engine: Any, adapter: str | None, rows: int,
                         progress: Callable[[float, str], None] | None = None
                         ) -> tuple[list[list[Any]], dict[str, Any]]:
    """Score the first ``rows`` held-out pairs of a preference run with the playground's engine."""
    from studio.evaluate_pairs import evaluate_pairs

    return pair_tables(evaluate_pairs(run_dir, rows=rows, engine=engine, adapter=adapter, progress=progress))
