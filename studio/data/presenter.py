"""The Data tab's preview as plain values (no gradio, no figures): load (cached), render, measure, describe.

``studio.data`` loads, detects, renders and measures; :func:`build_preview` turns that into what the tab shows.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.config import RunConfig
from studio.data.checks import template_mismatch
from studio.data.preview_cache import PreviewCache
from studio.errors import StudioError, TemplateError
from studio.formatting import plural

Progress = Callable[[float, str], None]


@dataclass
class PreviewView:
    """What the tab shows for one preview (plain values; the handler turns them into widget updates)."""

    format: str | None = None
    mapping: dict[str, str] = dataclasses.field(default_factory=dict)
    columns: list[str] = dataclasses.field(default_factory=list)
    summary: str = ""
    highlighted: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    lengths: list[int] = dataclasses.field(default_factory=list)
    """Every row's token count (the histogram's data; empty on error)."""
    max_length: int = 0
    stats_rows: list[list[Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    preview: Any = None
    """The ``studio.data.Preview`` (None on error)."""
    question: str | None = None
    """The first row's question (a probe prompt that fits this data)."""


def build_preview(cache: PreviewCache, cfg: RunConfig, n_rows: int = 3, progress: Progress | None = None,
                  describe: Callable[[BaseException], str] = str) -> PreviewView:
    """Load (cached), render ``n_rows`` rows with the model's tokenizer, and measure the whole dataset.

    ``progress(fraction, message)`` hears each stage: reading the file, loading the tokenizer, rendering the
    shown rows, tokenizing every row, the statistics, the chart (fractions only grow; 1.0 at the end, error or not).
    Never raises for bad input: ``describe(error)`` is in ``.error`` (the columns are still filled when the file
    could be read, so the user can fix the mapping).
    """
    from studio.data import preview as data_preview

    report = progress or _no_progress
    view = PreviewView(max_length=cfg.train.max_length)
    try:
        report(0.0, f"reading {_source_name(cfg)}")
        view.columns = cache.columns(cfg.data)
        header = list(view.columns)
        try:
            loaded = cache.loaded(cfg.data, progress=_part(report, 0.05, 0.3))
        except TemplateError:
            raise TemplateError(template_mismatch(template_text(cfg), header, source=_source_name(cfg))
                                or "the template does not fit this file") from None
        view.format, view.mapping, view.columns = loaded.format, dict(loaded.mapping), loaded.columns
        if len(cfg.data.sources) > 1:  # mixed sources are renamed to their roles: show the first one's own columns
            own = cfg.data.sources[0].columns
            view.columns = header
            view.mapping = dict(own) if own else {r: c for r, c in loaded.mapping.items() if c in header}
        mismatch = template_mismatch(template_text(cfg), header, loaded.mapping, _source_name(cfg))
        if mismatch:
            raise TemplateError(mismatch)
        report(0.3, f"loading the tokenizer of {cfg.model.name_or_path}")
        try:
            tok = cache.tokenizer(cfg, progress=_part(report, 0.3, 0.4))
        except StudioError as err:
            raise type(err)(f"the preview needs the tokenizer of {cfg.model.name_or_path!r}: {err}") from None
        pairs = _pair_view(cfg, tok, loaded, n_rows)
        pv = None if pairs else data_preview(cfg, tok, n_rows=n_rows, loaded=loaded,
                                             progress=_part(report, 0.4, 0.95))
    except Exception as err:  # noqa: BLE001 - every failure becomes one sentence in the page
        view.error = describe(err)
        report(1.0, "stopped: see the message below")
        return view
    report(0.95, "drawing the token-length histogram")
    view.question = first_question(loaded)
    if pairs is not None:  # preference rows: the prompt once, both answers, per-side statistics
        view.preview, view.summary, view.highlighted = pairs.preview, pairs.summary, pairs.highlighted
        view.lengths, view.stats_rows, view.warnings = pairs.lengths, pairs.stats_rows, pairs.warnings
        shown = plural(len(pairs.preview.rows[:n_rows]), "pair")
        report(1.0, f"preview ready: {shown} shown, {len(pairs.lengths)} measured")
        return view
    view.preview = pv
    view.summary = _summary(cfg, pv, len(loaded.dataset))
    view.highlighted = highlight_rows(pv.rows)
    view.lengths = list(pv.full_lengths)
    view.stats_rows = stats_rows(pv.stats)
    view.warnings = list(pv.warnings)  # empty answers included (DataStats counts them)
    report(1.0, f"preview ready: {plural(len(pv.rows), 'row')} shown, {pv.stats.n_rows} measured")
    return view


def _pair_view(cfg: RunConfig, tok: Any, loaded: Any, n_rows: int) -> Any:
    """The preference rows' view (``pair_presenter.PairView``), or None for other data."""
    from studio.data.pair_presenter import PREFERENCE_FORMATS, build_pair_view

    return build_pair_view(cfg, tok, loaded, n_rows) if loaded.format in PREFERENCE_FORMATS else None


def _no_progress(fraction: float, message: str) -> None:
    """No bar to move."""


def _part(progress: Progress, lo: float, hi: float) -> Progress:
    """A sub-step's own 0..1 shown as ``lo``..``hi`` of the whole (stages in order, so fractions only grow)."""
    return lambda fraction, message: progress(lo + (hi - lo) * min(1.0, max(0.0, float(fraction))), message)


def template_text(cfg: RunConfig) -> str | None:
    """The text template's text (a named template resolved), or None for the chat template."""
    from studio.templates import NAMED_TEMPLATES

    name = cfg.data.template
    named = NAMED_TEMPLATES.get(name or "")
    return named.template if named is not None else name


def _source_name(cfg: RunConfig) -> str:
    names = [Path(s.path).name or s.path for s in cfg.data.sources]
    return ", ".join(names) if names else "the dataset"


def highlight_rows(rows: list[Any]) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` value: trained spans labelled "trained", rows separated, cut rows marked."""
    out: list[tuple[str, str | None]] = []
    for i, row in enumerate(rows):
        if i:
            out.append(("\n\n", None))
        out.append((f"── row {i + 1} ──\n", "row"))
        for text, trained in row.segments:
            out.append((text, "trained" if trained else None))
        if row.truncated:
            out.append((f" ✂ cut at max_length: {len(row.input_ids)} of {row.full_length} tokens kept", "cut"))
        if not any(row.loss_mask):
            out.append(("  (no trained tokens: this row trains nothing)", "cut"))
    return out


def stats_rows(stats: Any) -> list[list[Any]]:
    """The stats table: one [statistic, value] per line."""
    s = stats
    return [
        ["rows", s.n_rows],
        ["tokens per row: p50 / p95 / max", f"{s.p50_tokens} / {s.p95_tokens} / {s.max_tokens}"],
        ["mean tokens per row", s.mean_tokens],
        [f"rows longer than max_length ({s.max_length})", f"{s.truncated_rows} ({s.truncated_fraction:.1%})"],
        ["share of tokens trained", f"{s.trained_token_fraction:.1%}"],
        ["rows with no trained tokens", s.zero_trained_rows],
        ["duplicate rows", s.duplicate_rows],
    ]


def _summary(cfg: RunConfig, pv: Any, n: int) -> str:
    detected = "detected" if cfg.data.format == "auto" else "chosen"
    mapping = ", ".join(f"{role} ← `{col}`" for role, col in pv.mapping.items())
    how = "the text template" if cfg.data.template else "the model's chat template" if pv.format != "text" \
        else "the text column as is"
    return (f"**{plural(n, 'row')}** · columns {', '.join(f'`{c}`' for c in pv.columns)}  \n"
            f"Format **{pv.format}** ({detected}) · {mapping}  \n"
            f"Rendered with {how}, tokenized by `{cfg.model.name_or_path}`; "
            f"loss on **{cfg.train.loss_on}** tokens (green = trained).")


def first_question(loaded: Any) -> str | None:
    """The first row's question (prompt / instruction / first user turn), for a probe prompt that fits the data."""
    ds, m = loaded.dataset, loaded.mapping
    if not len(ds):
        return None
    row = ds[0]
    if loaded.format == "messages":
        turns = row.get(m.get("messages", ""), []) or []
        text = next((t.get("content") for t in turns if isinstance(t, dict) and t.get("role") == "user"), None)
    else:
        text = row.get(m.get("prompt") or m.get("instruction") or "", None)
    text = str(text).strip() if text is not None else ""
    return text.splitlines()[0][:300] if text else None
