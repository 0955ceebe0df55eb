"""Held-out evaluation of a preference run: does the model prefer ``chosen`` over ``rejected`` on pairs it never saw?

The pairs are the run's eval split (the rows training kept out), rendered by :func:`studio.data.pairs.render_pair`
exactly as the trainer saw them. For each model (tuned: the run's adapter; base: the same weights inside
``model.disable_adapter()``) and each pair, the log-probability of each answer is summed over its answer tokens:

- **preference accuracy**: the share of pairs where ``logp(chosen) > logp(rejected)`` (also per-token means, which
  does not favour the shorter answer), and the mean margin ``logp(chosen) - logp(rejected)``;
- **reward accuracy** (tuned only): the share of pairs whose implicit reward margin
  ``(logp_θ(c) - logp_ref(c)) - (logp_θ(r) - logp_ref(r))`` is positive, the reference being the base; and that
  margin's mean times ``beta`` (DPO's reward scale).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.errors import ConfigError, DataError

LogP = tuple[float, int]
"""An answer's summed log-probability over its answer tokens, and how many tokens that is."""


def is_preference_run(cfg: Any) -> bool:
    """The run trained a preference method (dpo, orpo, kto, simpo)."""
    method = getattr(cfg.train, "method", "sft")
    if method == "sft":
        return False
    from studio.training.methods import recipe

    return recipe(method).preference


def beta_of(cfg: Any) -> float | None:
    """The run's ``train.beta``, else its method's default."""
    from studio.config import DEFAULT_BETA

    beta = getattr(cfg.train, "beta", None)
    return beta if beta is not None else DEFAULT_BETA.get(getattr(cfg.train, "method", ""))


@dataclass
class PairScores:
    """One model's numbers on the held-out pairs."""

    preference_accuracy: float | None = None
    """Pairs where the summed log-probability of chosen beats rejected's / pairs."""
    preference_accuracy_per_token: float | None = None
    """The same with per-token mean log-probabilities (length-neutral)."""
    margin: float | None = None
    """Mean of ``logp(chosen) - logp(rejected)`` (summed over answer tokens)."""
    chosen_logp: float | None = None
    rejected_logp: float | None = None
    reward_accuracy: float | None = None
    """Tuned only: pairs whose implicit reward margin over the reference (the base) is > 0 / pairs."""
    reward_margin: float | None = None
    """Tuned only: ``beta`` times the mean implicit reward margin."""
    pairs: int = 0
    wins: int = 0

    def summary(self) -> dict[str, Any]:
        keys = ["preference_accuracy", "preference_accuracy_per_token", "margin", "chosen_logp", "rejected_logp"]
        if self.reward_accuracy is not None:
            keys += ["reward_accuracy", "reward_margin"]
        return {**{k: getattr(self, k) for k in keys}, "pairs": self.pairs}


def pair_scores(chosen: Sequence[LogP], rejected: Sequence[LogP], *, ref_chosen: Sequence[LogP] | None = None,
                ref_rejected: Sequence[LogP] | None = None, beta: float | None = None) -> PairScores:
    """Scores from per-pair log-probabilities (the reference ones give the reward accuracy and margin).

    A tie counts as not preferring chosen."""
    n = len(chosen)
    if n != len(rejected) or n == 0:
        raise DataError(f"preference scores need as many chosen as rejected answers (and some): {n} and "
                        f"{len(rejected)}")
    margins = [c[0] - r[0] for c, r in zip(chosen, rejected)]
    per_token = [c[0] / max(c[1], 1) - r[0] / max(r[1], 1) for c, r in zip(chosen, rejected)]
    wins = sum(m > 0 for m in margins)
    out = PairScores(preference_accuracy=wins / n, preference_accuracy_per_token=sum(m > 0 for m in per_token) / n,
                     margin=sum(margins) / n, chosen_logp=sum(c[0] for c in chosen) / n,
                     rejected_logp=sum(r[0] for r in rejected) / n, pairs=n, wins=wins)
    if ref_chosen is not None and ref_rejected is not None:
        rewards = reward_margins(chosen, rejected, ref_chosen, ref_rejected)
        out.reward_accuracy = sum(r > 0 for r in rewards) / n
        out.reward_margin = (beta if beta is not None else 1.0) * sum(rewards) / n
    return out


def reward_margins(chosen: Sequence[LogP], rejected: Sequence[LogP], ref_chosen: Sequence[LogP],
                   ref_rejected: Sequence[LogP]) -> list[float]:
    """Per pair: ``(logp_θ(c) - logp_ref(c)) - (logp_θ(r) - logp_ref(r))`` (unscaled by beta)."""
    return [(c[0] - rc[0]) - (r[0] - rr[0]) for c, r, rc, rr in zip(chosen, rejected, ref_chosen, ref_rejected)]


@dataclass
class PairRow:
    """One held-out pair: its texts and each model's margin."""

    index: int
    prompt: str
    chosen: str
    rejected: str
    base_margin: float | None = None
    tuned_margin: float | None = None
    reward_margin: float | None = None


@dataclass
class PairReport:
    """Base vs tuned on a preference run's held-out pairs."""

    run_dir: str
    method: str
    beta: float | None
    base: PairScores
    tuned: PairScores
    rows: int
    per_row: list[PairRow] = field(default_factory=list)
    adapter: str = ""
    kind: str = "preference"

    def summary(self) -> dict[str, Any]:
        """``{"base": {...}, "tuned": {...}, "rows": N, "method", "beta"}`` (what ``studio eval --json`` prints)."""
        return {"base": self.base.summary(), "tuned": self.tuned.summary(), "rows": self.rows, "kind": self.kind,
                "method": self.method, "beta": self.beta}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "run_dir": self.run_dir, "adapter": self.adapter,
                "per_row": [asdict(r) for r in self.per_row]}

    def table(self) -> list[list[str]]:
        """Rows of a base-vs-tuned table: metric, base, tuned."""
        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v * 100:.1f}%"

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:+.3f}"

        b, t = self.base, self.tuned
        return [["preference accuracy", pct(b.preference_accuracy), pct(t.preference_accuracy)],
                ["  per-token mean", pct(b.preference_accuracy_per_token), pct(t.preference_accuracy_per_token)],
                ["mean margin (logp)", num(b.margin), num(t.margin)],
                ["reward accuracy", "", pct(t.reward_accuracy)],
                [f"reward margin (x beta {self.beta:g})" if self.beta else "reward margin", "", num(t.reward_margin)]]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path


def answer_logps(engine: Any, rendered: Sequence[Any], *, adapter: str | None, batch_size: int = 8,
                 progress: Callable[[int], None] | None = None) -> tuple[list[LogP], list[LogP]]:
    """``(chosen, rejected)`` log-probabilities of rendered pairs under one of the engine's adapters (or
    ``studio.inference.BASE``): the trained tokens of each kept sequence, as the trainer labels them."""
    rows = []
    for pair in rendered:
        rows += [pair.sequence("chosen"), pair.sequence("rejected")]
    parts = engine.loss(rows, adapter=adapter, batch_size=batch_size, progress=progress)[0]
    logps = [(-nll, k) for nll, k in parts]
    return logps[0::2], logps[1::2]


def evaluate_pairs(run_dir: str | Path, *, rows: int | None = None, batch_size: int = 8, engine: Any = None,
                   adapter: str | None = None, device: str = "auto",
                   progress: Callable[[float, str], None] | None = None) -> PairReport:
    """Score the base model and the run's adapter on the run's held-out preference pairs.

    Args:
        run_dir: a preference run's directory.
        rows: use the first N held-out pairs (None: all).
        engine: a loaded ``ChatEngine`` to reuse, else the run is loaded (one copy of the weights).
        adapter: which of the engine's adapters is "tuned" (default: the run's own, else the active one).
        progress: called with (fraction done, what is running).

    Raises:
        DataError: no held-out pairs, or the held-out rows are unpaired (KTO labels).
        ModelError: the model or adapter can't be loaded.
    """
    from studio import runs
    from studio.config import load_config
    from studio.data.formats import PAIRED
    from studio.data.pairs import render_pair
    from studio.evaluate import RESULTS_FILE, heldout_rows
    from studio.inference import BASE, ChatEngine, run_prompt_setup

    run_dir = Path(run_dir)
    report_progress = progress or (lambda f, m: None)
    cfg = load_config(run_dir / runs.CONFIG)
    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {rows}")
    report_progress(0.0, "loading the model")
    engine = engine or ChatEngine.from_run(run_dir, device=device)
    if adapter is None:
        adapter = next((n for n, a in engine.adapters.items() if a.run_dir and Path(a.run_dir) == run_dir),
                       engine.active)
    builder, loaded = run_prompt_setup(cfg, engine.tokenizer, run_dir)
    spec = dataclasses.replace(builder.spec, max_length=cfg.train.max_length)
    if spec.format != PAIRED:
        raise DataError(f"preference accuracy needs paired held-out rows (prompt/chosen/rejected); this run's rows "
                        f"are {spec.format}")
    held = heldout_rows(cfg, loaded, run_dir)
    if rows is not None:
        held = held.select(range(min(rows, len(held))))
    data = [held[i] for i in range(len(held))]
    rendered = [render_pair(r, engine.tokenizer, spec, where=f"held-out pair {i + 1}") for i, r in enumerate(data)]
    n = len(rendered)
    logps = {}
    for k, (side, name) in enumerate((("tuned", adapter), ("base", BASE))):
        def tick(done: int, k: int = k, side: str = side) -> None:
            report_progress(min((k + done / max(2 * n, 1)) / 2, 1.0),
                            f"{side} log-probabilities: {min(done, 2 * n)}/{2 * n} answers (chosen and rejected)")
        tick(0)
        logps[side] = answer_logps(engine, rendered, adapter=name, batch_size=batch_size, progress=tick)
    beta = beta_of(cfg)
    base = pair_scores(*logps["base"])
    tuned = pair_scores(*logps["tuned"], ref_chosen=logps["base"][0], ref_rejected=logps["base"][1], beta=beta)
    rewards = reward_margins(*logps["tuned"], *logps["base"])
    per_row = [PairRow(index=i, prompt=p.prompt_text, chosen=p.chosen.text, rejected=p.rejected.text,
                       base_margin=bc[0] - br[0], tuned_margin=tc[0] - tr[0], reward_margin=rw)
               for i, (p, bc, br, tc, tr, rw) in enumerate(zip(rendered, *logps["base"], *logps["tuned"], rewards))]
    report_progress(1.0, "done")
    report = PairReport(run_dir=str(run_dir), method=cfg.train.method, beta=beta, base=base, tuned=tuned, rows=n,
                        per_row=per_row, adapter=adapter or "")
    if runs.is_main_process():
        report.save(run_dir / RESULTS_FILE)  # the model card reads it
    return report
