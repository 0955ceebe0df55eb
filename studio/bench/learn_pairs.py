"""``studio bench learn --method dpo|orpo|kto|simpo``: base vs tuned held-out preference accuracy of a trained run."""
from __future__ import annotations

import time
from typing import Any, Callable


def pair_result(job: Any, cfg: Any, *, rows: int | None, steps: int, step_s: float, train_s: float, logs: list[Any],
                report: Callable[[str], None]) -> dict[str, Any]:
    """Score the run's held-out pairs (:func:`studio.evaluate_pairs.evaluate_pairs`), report the table, return
    ``{"method", "steps", "pairs", "base": {...}, "tuned": {...}, ...}``."""
    from studio.evaluate_pairs import evaluate_pairs

    t0 = time.monotonic()
    ev = evaluate_pairs(job.run_dir, rows=rows)
    result = {"method": cfg.train.method, "beta": ev.beta, "steps": steps, "seconds_per_step": round(step_s, 3),
              "train_seconds": round(train_s, 1), "pairs": ev.rows, "eval_seconds": round(time.monotonic() - t0, 1),
              "run_dir": str(job.run_dir), "first_loss": logs[0].loss if logs else None,
              "last_loss": logs[-1].loss if logs else None, "last_reward_accuracy": _last(logs, "rewards/accuracies"),
              "base": ev.base.summary(), "tuned": ev.tuned.summary()}
    for line in table(result):
        report(line)
    return result


def _last(logs: list[Any], key: str) -> float | None:
    values = [(e.metrics or {}).get(key) for e in logs if getattr(e, "metrics", None)]
    values = [v for v in values if v is not None]
    return values[-1] if values else None


def table(result: dict[str, Any]) -> list[str]:
    """Base vs tuned as an aligned text table."""
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v * 100:.0f}%"

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:+.2f}"

    b, t = result["base"], result["tuned"]
    return [f"{'':28}{'base':>10}{'tuned':>10}",
            f"{'preference accuracy':28}{pct(b['preference_accuracy']):>10}{pct(t['preference_accuracy']):>10}",
            f"{'  per-token mean':28}{pct(b['preference_accuracy_per_token']):>10}"
            f"{pct(t['preference_accuracy_per_token']):>10}",
            f"{'mean margin (logp)':28}{num(b['margin']):>10}{num(t['margin']):>10}",
            f"{'reward accuracy':28}{'':>10}{pct(t.get('reward_accuracy')):>10}",
            f"{result['method']}, {result['steps']} steps at {result['seconds_per_step']:.2f} s/step; "
            f"{result['pairs']} held-out pairs scored in {result['eval_seconds']:.0f} s"]
