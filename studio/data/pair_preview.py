"""The preview of preference rows, as plain values (the UI renders them; no gradio here): per row the prompt once and
each answer as ``(text, trained)`` segments exactly as the trainer labels them, per-side statistics over all rows,
and warnings for pairs that can't teach anything."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.data.pair_prepare import PROBLEMS, PairStats, check_method_data, pair_problems, pair_stats, side_names
from studio.data.pairs import RenderedPair, render_pair

if TYPE_CHECKING:  # pragma: no cover
    from studio.config import RunConfig
    from studio.data.prepare import LoadedData


@dataclass
class PairRow:
    """One previewed row: the prompt once, each answer's segments, its figures and problems."""

    index: int
    prompt: list[tuple[str, bool]]
    answers: dict[str, list[tuple[str, bool]]]
    """side (chosen/rejected, or desirable/undesirable for KTO rows) -> ``(text, trained)`` segments; the part cut
    by ``max_length`` is an untrained segment."""
    lengths: dict[str, dict[str, int]]
    """side -> ``{tokens (prompt + answer, before the cut), trained, cut}``."""
    problems: list[str] = field(default_factory=list)
    """Sentences for this row (see :data:`~studio.data.pair_prepare.PROBLEMS`): such rows are dropped."""


@dataclass
class PairPreview:
    """Rendered preference rows plus whole-dataset statistics and warnings."""

    format: str
    mapping: dict[str, str]
    columns: list[str]
    rows: list[PairRow]
    stats: PairStats
    pairs: list[RenderedPair] = field(default_factory=list)
    """The rendered rows themselves (ids and masks), for tests and the UI's token view."""

    @property
    def warnings(self) -> list[str]:
        return self.stats.warnings()


def preview_row(pair: RenderedPair, tokenizer: Any, index: int = 0) -> PairRow:
    """The plain-values view of one rendered pair."""
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False)

    prompt_kept = pair.prompt_ids[: pair.max_length]
    answers, lengths = {}, {}
    for side, answer in zip(side_names(pair), [a for a in (pair.chosen, pair.rejected) if a is not None]):
        segs = []
        if answer.kept_ids:
            segs.append((decode(answer.kept_ids), True))
        if answer.cut:
            segs.append((decode(answer.ids[answer.room:]), False))
        answers[side] = segs
        lengths[side] = {"tokens": len(pair.prompt_ids) + len(answer.ids), "trained": answer.trained,
                         "cut": answer.cut}
    return PairRow(index=index, prompt=[(decode(prompt_kept), False)] if prompt_kept else [], answers=answers,
                   lengths=lengths, problems=[PROBLEMS[k] for k in pair_problems(pair)])


def preview_pairs(cfg: "RunConfig", tokenizer: Any, n_rows: int = 5, loaded: "LoadedData | None" = None
                  ) -> PairPreview:
    """Render the first ``n_rows`` preference rows for display and compute statistics over all rows.

    Raises:
        DataError: the data has no pairs for the configured method (or is not preference data), or a row is
            malformed.
    """
    from studio.data.prepare import load_data, spec_for
    from studio.training.methods import recipe

    loaded = loaded or load_data(cfg.data)
    kind = recipe(cfg.train.method).data
    check_method_data(cfg.train.method, kind if kind != "sft" else "paired", loaded)
    spec = spec_for(cfg, loaded, tokenizer)
    ds = loaded.dataset
    pairs = [render_pair(ds[i], tokenizer, spec, where=f"row {i + 1}") for i in range(len(ds))]
    rows = [preview_row(p, tokenizer, i) for i, p in enumerate(pairs[:n_rows])]
    return PairPreview(format=loaded.format, mapping=loaded.mapping, columns=loaded.columns, rows=rows,
                       stats=pair_stats(pairs, spec.max_length), pairs=pairs[:n_rows])
