"""The Data tab's preview of preference rows as plain values (no gradio): each row's prompt once and both answers
(chosen / rejected, or a KTO row's answer with its label) with the trainer's labelled tokens marked "trained",
per-side statistics and the pairs' warnings. Built on :func:`studio.data.pair_preview.preview_pairs`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from studio.data.formats import PAIRED, UNPAIRED
from studio.formatting import plural

PREFERENCE_FORMATS = (PAIRED, UNPAIRED)
MEASURED_ROWS = 1000
"""Rows rendered for the length histogram and the statistics (the first ones; a bigger file says so)."""
SIDE_HEADS = {"chosen": "✔ chosen", "rejected": "✘ rejected", "desirable": "👍 answer · label true (desirable)",
              "undesirable": "👎 answer · label false (undesirable)"}


@dataclass
class PairView:
    """What the Data tab shows for preference data (the fields ``PreviewView`` takes)."""

    preview: Any
    highlighted: list[tuple[str, str | None]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    stats_rows: list[list[Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""


def method_note(fmt: str, method: str) -> tuple[str, str | None]:
    """``(method the rows are previewed for, a note or None)``: KTO rows preview as KTO whatever the method (the
    note says to pick it); pairs under SFT train their chosen answer only."""
    if fmt == UNPAIRED and method != "kto":
        return "kto", (f"these rows are labelled answers (prompt/completion/label): they train with the KTO method "
                       f"(pick it in the Train tab; now {method})")
    if fmt == PAIRED and method == "sft":
        return "dpo", ("the method is SFT, which trains the chosen answers only: pick DPO, ORPO, SimPO or KTO in the "
                       "Train tab to learn from both answers")
    return method, None


def build_pair_view(cfg: Any, tokenizer: Any, loaded: Any, n_rows: int = 3) -> PairView:
    """Render the first ``n_rows`` rows for display and measure up to ``MEASURED_ROWS`` rows.

    Raises:
        DataError: a malformed row, or data that does not fit the method (as :func:`preview_pairs` says).
    """
    from studio.data.pair_preview import preview_pairs

    chosen_method = cfg.train.method
    method, note = method_note(loaded.format, chosen_method)
    if method != cfg.train.method:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, method=method))
    n_all = min(len(loaded.dataset), max(n_rows, MEASURED_ROWS))
    pp = preview_pairs(cfg, tokenizer, n_rows=n_all, loaded=loaded)
    view = PairView(preview=pp, highlighted=highlight_pairs(pp.rows[:n_rows]),
                    lengths=[max(len(p.prompt_ids) + len(a.ids) for a in (p.chosen, p.rejected) if a is not None)
                             for p in pp.pairs],
                    stats_rows=pair_stats_rows(pp.stats), warnings=([note] if note else []) + list(pp.warnings))
    n = len(loaded.dataset)
    measured = f" (statistics of the first {n_all})" if n_all < n else ""
    mapping = ", ".join(f"{role} ← `{col}`" for role, col in pp.mapping.items())
    detected = "detected" if cfg.data.format == "auto" else "chosen"
    answers = "each answer with its label" if loaded.format == UNPAIRED else "the prompt once, then both answers"
    view.summary = (f"**{plural(n, 'row')}**{measured} · columns {', '.join(f'`{c}`' for c in pp.columns)}  \n"
                    f"Format **{pp.format}** ({detected}) · {mapping}  \n"
                    f"Preference rows (method **{chosen_method.upper()}**): {answers}, rendered with the model's chat template "
                    f"and tokenized by `{cfg.model.name_or_path}` (green = the answer tokens the trainer scores).")
    return view


def highlight_pairs(rows: list[Any]) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` value: per row the prompt once, then each answer under its head, its trained
    tokens labelled "trained", the part cut by max_length unlabelled with a "cut" note, and the row's problems."""
    out: list[tuple[str, str | None]] = []
    for i, row in enumerate(rows):
        if i:
            out.append(("\n\n", None))
        out.append((f"── row {row.index + 1} ──\n", "row"))
        out.append(("prompt ▸ ", "row"))
        out.extend((text, None) for text, _ in row.prompt)
        for side, segments in row.answers.items():
            figures = row.lengths.get(side, {})
            out.append((f"\n{SIDE_HEADS.get(side, side)} · {figures.get('trained', 0)} trained tokens ▸ ", "row"))
            out.extend((text, "trained" if trained else None) for text, trained in segments)
            if figures.get("cut"):
                out.append((f" ✂ {figures['cut']} answer tokens cut at max_length (not trained)", "cut"))
        for problem in row.problems:
            out.append((f"\n⚠ {problem}: this row is dropped from training", "cut"))
    return out


def pair_stats_rows(stats: Any) -> list[list[Any]]:
    """The statistics table for preference data: rows, then per side lengths, cut rows and trained tokens, then
    the pairs dropped by kind."""
    from studio.data.pair_prepare import PROBLEMS

    out: list[list[Any]] = [["rows", stats.n_rows]]
    for side, f in stats.sides.items():
        out += [[f"{side}: tokens (prompt + answer) p50 / p95 / max",
                 f"{int(f['p50_tokens'])} / {int(f['p95_tokens'])} / {int(f['max_tokens'])}"],
                [f"{side}: rows cut by max_length ({stats.max_length})", int(f["cut_rows"])],
                [f"{side}: trained tokens (mean per row)", f"{int(f['trained_tokens'])} ({f['mean_trained_tokens']})"]]
    out += [[f"dropped: {PROBLEMS[k]}", n] for k, n in stats.problems.items()]
    return out
