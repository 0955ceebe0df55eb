"""Preference data for the trainers: check that the rows are pairs (or labelled answers), render every row with
:func:`studio.data.pairs.render_pair`, drop the pairs that can't teach anything (saying how many and why), and
hand TRL pre-tokenized rows. Statistics per side feed the preview and the run's notes.

Dropped, with a warning (never silently): pairs whose two answers are identical, pairs with an empty answer, pairs
whose answers differ only after the ``max_length`` cut, and rows whose prompt alone fills ``max_length``.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.data.formats import PAIRED, UNPAIRED
from studio.data.pairs import RenderedPair, render_pair
from studio.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from studio.config import RunConfig
    from studio.data.prepare import LoadedData, Prepared

PROBLEMS = {
    "identical": "chosen and rejected are the same answer",
    "empty": "an answer is empty",
    "same_after_cut": "the answers differ only after the max_length cut",
    "prompt_cut": "the prompt alone fills max_length",
}
"""Why a pair is dropped, per kind."""


def pair_problems(pair: RenderedPair) -> list[str]:
    """The :data:`PROBLEMS` kinds of one rendered pair (empty: it trains)."""
    out = []
    answers = [a for a in (pair.chosen, pair.rejected) if a is not None]
    if pair.rejected is not None and pair.chosen.ids == pair.rejected.ids:
        out.append("identical")
    elif pair.rejected is not None and pair.chosen.kept_ids == pair.rejected.kept_ids:
        out.append("same_after_cut")
    if any(a.blank for a in answers):
        out.append("empty")
    if pair.prompt_cut:
        out.append("prompt_cut")
    return out


@dataclass
class PairStats:
    """Per-side figures over all rows (plain values) and the problem counts."""

    n_rows: int
    sides: dict[str, dict[str, float]] = field(default_factory=dict)
    """side -> ``{rows, p50_tokens, p95_tokens, max_tokens, mean_tokens, cut_rows, trained_tokens,
    mean_trained_tokens}`` (tokens of prompt + answer before the cut; trained = answer tokens kept)."""
    problems: dict[str, int] = field(default_factory=dict)
    max_length: int = 0
    empty_answer_rows: int = 0
    """Rows with an empty answer (the name SFT's statistics use)."""

    def warnings(self) -> list[str]:
        out = [f"{n} of {self.n_rows} row{'s' if self.n_rows != 1 else ''}: {PROBLEMS[k]} (dropped from training)"
               for k, n in self.problems.items() if n]
        for side, fig in self.sides.items():
            if fig.get("cut_rows"):
                out.append(f"{int(fig['cut_rows'])} {side} answer(s) cut by max_length={self.max_length}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "sides": self.sides, "problems": self.problems, "max_length": self.max_length,
                "warnings": self.warnings()}


def side_names(pair: RenderedPair) -> list[str]:
    """``["chosen", "rejected"]`` for a pair; ``["desirable"]`` / ``["undesirable"]`` for a KTO row."""
    if pair.rejected is not None:
        return ["chosen", "rejected"]
    return ["desirable" if pair.chosen.label else "undesirable"]


def pair_stats(pairs: list[RenderedPair], max_length: int) -> PairStats:
    figures: dict[str, dict[str, list[int]]] = {}
    problems = {k: 0 for k in PROBLEMS}
    for p in pairs:
        for kind in pair_problems(p):
            problems[kind] += 1
        for side, answer in zip(side_names(p), [a for a in (p.chosen, p.rejected) if a is not None]):
            fig = figures.setdefault(side, {"full": [], "trained": []})
            fig["full"].append(len(p.prompt_ids) + len(answer.ids))
            fig["trained"].append(answer.trained)
    sides = {}
    for side, fig in figures.items():
        full = sorted(fig["full"])
        sides[side] = {"rows": len(full), "p50_tokens": full[len(full) // 2],
                       "p95_tokens": full[min(len(full) - 1, int(0.95 * len(full)))], "max_tokens": full[-1],
                       "mean_tokens": round(statistics.fmean(full), 1),
                       "cut_rows": sum(1 for f in full if f > max_length), "trained_tokens": sum(fig["trained"]),
                       "mean_trained_tokens": round(statistics.fmean(fig["trained"]), 1)}
    return PairStats(n_rows=len(pairs), sides=sides, problems=problems, max_length=max_length,
                     empty_answer_rows=problems["empty"])


def check_method_data(method: str, kind: str, loaded: "LoadedData") -> None:
    """The data fits the method: paired methods need preference rows; KTO takes kto rows or pairs (unpaired).

    Raises:
        DataError: naming the method, the format the data was read as, and its columns.
    """
    fmt, cols = loaded.format, ", ".join(loaded.columns)
    if kind == "paired" and fmt != PAIRED:
        missing = [r for r in ("chosen", "rejected") if r not in {c.lower() for c in loaded.columns}]
        what = f"no {' or '.join(repr(m) for m in missing)} column" if missing else f"rows read as {fmt}"
        raise DataError(f"train.method {method} needs pairs (prompt, chosen, rejected) and this data has {what}; "
                        f"its columns: {cols}. Map them with data.sources[].columns (chosen: ..., rejected: ...) "
                        f"or set data.format=preference")
    if kind == "unpaired" and fmt not in (PAIRED, UNPAIRED):
        raise DataError(f"train.method kto needs labelled answers (prompt, completion, label) or pairs (prompt, "
                        f"chosen, rejected); this data was read as {fmt} with columns: {cols}")


def render_all(ds: Any, tokenizer: Any, spec: Any, offset: int = 0) -> list[RenderedPair]:
    return [render_pair(ds[i], tokenizer, spec, where=f"row {offset + i + 1}") for i in range(len(ds))]


def trainer_rows(pairs: list[RenderedPair], kind: str) -> list[dict[str, Any]]:
    """Pre-tokenized rows for TRL (problem rows left out); pairs become two labelled rows for KTO."""
    rows: list[dict[str, Any]] = []
    for p in pairs:
        if pair_problems(p):
            continue
        if kind == "paired":
            rows.append(p.trainer_row())
        elif p.rejected is None:
            rows.append({"prompt_ids": p.prompt_ids, "completion_ids": p.chosen.kept_ids, "label": p.chosen.label})
        else:
            rows.append({"prompt_ids": p.prompt_ids, "completion_ids": p.chosen.kept_ids, "label": True})
            rows.append({"prompt_ids": p.prompt_ids, "completion_ids": p.rejected.kept_ids, "label": False})
    return rows


def prepare_pairs(cfg: "RunConfig", tokenizer: Any, kind: str, loaded: "LoadedData | None" = None) -> "Prepared":
    """Render, check and split preference data into pre-tokenized train/eval datasets for TRL.

    Raises:
        DataError: the data has no pairs for this method, a row is malformed (or paired and unpaired rows are mixed),
            or no row is left to train on.
    """
    import datasets

    from studio.data.prepare import Prepared, load_data, spec_for, split_rows

    loaded = loaded or load_data(cfg.data)
    check_method_data(cfg.train.method, kind, loaded)
    spec = spec_for(cfg, loaded, tokenizer)
    train_raw, eval_raw = split_rows(cfg.data, loaded)
    train_pairs = render_all(train_raw, tokenizer, spec)
    eval_pairs = render_all(eval_raw, tokenizer, spec, offset=len(train_raw)) if eval_raw is not None else []
    stats = pair_stats(train_pairs + eval_pairs, spec.max_length)
    train_rows, eval_rows = trainer_rows(train_pairs, kind), trainer_rows(eval_pairs, kind)
    if not train_rows:
        why = "; ".join(stats.warnings()) or "no rows"
        raise DataError(f"no preference row is left to train on ({why})")
    if kind == "unpaired" and len({r["label"] for r in train_rows}) < 2:
        raise DataError("kto needs both desirable (label true) and undesirable (label false) answers; this data "
                        "has only one kind")
    digest = hashlib.blake2b(json.dumps(train_rows[:200]).encode(), digest_size=8).hexdigest()
    dropped = len(train_pairs) + len(eval_pairs) - sum(1 for p in train_pairs + eval_pairs if not pair_problems(p))
    return Prepared(train=datasets.Dataset.from_list(train_rows),
                    eval=datasets.Dataset.from_list(eval_rows) if eval_rows else None, spec=spec, stats=stats,
                    dropped_rows=dropped, fingerprint=digest)
