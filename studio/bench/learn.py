"""``studio bench learn``: does a real model learn? SmolLM2 on the bundled word problems, base vs tuned.

Trains the run's LoRA for N steps through the real engine (``TrainingJob``), then scores the base model and the
adapter on held-out rows with the run's evaluation (greedy answers, the number after ``####``): accuracy, and the
format rate (answers that have a ``####`` line). Both figures come from the same call, so the comparison is fair.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from studio.paths import ASSETS

DEFAULT_CONFIG = ASSETS / "configs" / "smollm2_word_problems.yaml"
PREFERENCE_CONFIG = ASSETS / "configs" / "smollm2_dpo.yaml"
"""``--method dpo|orpo|kto|simpo``: the bundled pairs, scored by held-out preference accuracy."""
DEFAULT_STEPS = 30
DEFAULT_ROWS = 20


def learn(*, config: str | Path | None = None, steps: int = DEFAULT_STEPS, rows: int | None = DEFAULT_ROWS,
          overrides: list[str] | None = None, runs_dir: str | Path | None = None, method: str | None = None,
          report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate base and tuned, and return ``{"steps", "seconds_per_step", "base", "tuned", ...}``.

    ``method`` (dpo, orpo, kto, simpo) trains that method on the bundled pairs (``smollm2_dpo.yaml`` unless
    ``config`` is given) and scores held-out preference accuracy on every held-out pair (``rows``: the first N).

    Raises:
        ConfigError: impossible steps/rows.
        TrainingError: the run failed (its folder is kept and named).
    """
    from studio.config import load_config
    from studio.errors import ConfigError, TrainingError
    from studio.evaluate import evaluate_run
    from studio.events import Failed, Log
    from studio.training import TrainingJob

    if steps < 1 or (rows is not None and rows < 1):
        raise ConfigError(f"--steps and --rows must be >= 1, got {steps} and {rows}")
    preference = method not in (None, "sft")
    cfg = load_config(config or (PREFERENCE_CONFIG if preference else DEFAULT_CONFIG)).with_overrides(
        [*([f"train.method={method}"] if method else []), f"train.max_steps={steps}", f"train.save_steps={steps + 1}",
         "train.tensorboard=false", *(overrides or [])])
    work = Path(runs_dir) if runs_dir else Path(tempfile.mkdtemp(prefix="studio-bench-learn-"))
    job = TrainingJob(cfg, work)
    report(f"training {cfg.model.name_or_path} for {steps} steps (batch {cfg.train.batch_size}) in {job.run_dir}")
    started = time.monotonic()
    job.start()
    job.wait()
    train_s = time.monotonic() - started
    if isinstance(job.result, Failed):
        raise TrainingError(f"{job.result.message}. Run kept: {job.run_dir}")
    logs = [e for e in job.events.since(0)[0] if isinstance(e, Log) and e.loss is not None]
    step_s = _seconds_per_step(logs) or train_s / steps
    report(f"trained in {train_s:.0f} s ({step_s:.2f} s/step); loss {logs[0].loss:.3f} -> {logs[-1].loss:.3f}"
           if logs else f"trained in {train_s:.0f} s")
    t0 = time.monotonic()
    from studio.evaluate_pairs import is_preference_run

    if is_preference_run(cfg):
        from studio.bench.learn_pairs import pair_result

        return pair_result(job, cfg, rows=None if rows == DEFAULT_ROWS else rows, steps=steps, step_s=step_s,
                           train_s=train_s, logs=logs, report=report)
    ev = evaluate_run(job.run_dir, rows=rows,
                      progress=lambda f, m: None)
    eval_s = time.monotonic() - t0
    result = {"steps": steps, "seconds_per_step": round(step_s, 3), "rows": ev.rows,
              "eval_seconds": round(eval_s, 1), "run_dir": str(job.run_dir),
              "first_loss": logs[0].loss if logs else None, "last_loss": logs[-1].loss if logs else None,
              "base": _scores(ev.base), "tuned": _scores(ev.tuned)}
    for line in table(result):
        report(line)
    return result


def _seconds_per_step(logs: list[Any]) -> float | None:
    """Median wall time between consecutive logged steps (skips the first, which includes warm-up)."""
    stamps = [(e.step, getattr(e, "time", None)) for e in logs]
    gaps = sorted((t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(stamps[1:], stamps[2:])
                  if t1 is not None and t2 is not None and s2 > s1)
    return gaps[len(gaps) // 2] if gaps else None


def _scores(s: Any) -> dict[str, Any]:
    format_rate = None if s.unclear_rate is None else 1.0 - s.unclear_rate
    return {"accuracy": s.accuracy, "format_rate": format_rate, "correct": s.correct, "scored": s.scored,
            "loss": s.loss}


def table(result: dict[str, Any]) -> list[str]:
    """The result as an aligned text table (base vs tuned)."""
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 100:.0f}%"

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    b, t = result["base"], result["tuned"]
    lines = [f"{'':18}{'base':>10}{'tuned':>10}",
             f"{'accuracy':18}{pct(b['accuracy']):>10}{pct(t['accuracy']):>10}",
             f"{'#### format rate':18}{pct(b['format_rate']):>10}{pct(t['format_rate']):>10}",
             f"{'held-out loss':18}{num(b['loss']):>10}{num(t['loss']):>10}",
             f"{result['steps']} steps at {result['seconds_per_step']:.2f} s/step; {result['rows']} held-out rows "
             f"scored in {result['eval_seconds']:.0f} s"]
    return lines
