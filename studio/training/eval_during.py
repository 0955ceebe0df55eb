"""Evaluation during training: how often (a default that costs about a tenth of the training time), the task metric
at each evaluation when asked (``####`` accuracy or the run's answer regex), early stopping, and the best checkpoint
kept as ``adapter/``.

The cost model: one evaluation is a forward pass over the held-out rows, about a third of a training step's work per
row (forward + backward ≈ 3 forwards), so evaluating every ``k`` steps costs ``eval_rows / (3 · rows_per_step · k)``
of the training time; the automatic ``k`` keeps that at or under :data:`AUTO_SHARE`. The task accuracy's answers
(``eval_accuracy_rows``) add their decoding: each pass (one new token for a batch of rows) reads the whole model as
a row's forward does, so it is counted as one row's forward, a third of a row's training work.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from studio.errors import ConfigError
from studio.formatting import plural

AUTO_SHARE = 0.10
"""The share of training time the automatic evaluation interval may cost."""


@dataclass(frozen=True)
class EvalPlan:
    steps: int | None
    """Evaluate every ``steps`` optimizer steps (None: only at the end)."""
    reason: str
    patience: int | None = None
    keep_best: bool = False
    metric: str = "eval_loss"
    """``eval_loss`` (lower is better) or ``eval_accuracy`` (higher is better)."""
    accuracy_rows: int = 0
    warning: str | None = None

    def trainer_kwargs(self) -> dict[str, Any]:
        """TrainingArguments keywords: the evaluation interval, and the best model kept when asked (a checkpoint at
        every evaluation, so the best one exists)."""
        if not self.steps:
            return {"eval_strategy": "no", "eval_steps": None}
        out: dict[str, Any] = {"eval_strategy": "steps", "eval_steps": self.steps}
        if self.keep_best:
            out.update(load_best_model_at_end=True, metric_for_best_model=self.metric,
                       greater_is_better=self.metric == "eval_accuracy", save_strategy="steps",
                       save_steps=self.steps)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "reason": self.reason, "patience": self.patience, "keep_best": self.keep_best,
                "metric": self.metric, "accuracy_rows": self.accuracy_rows}


def cost_share(eval_rows: int, rows_per_step: int, every: int) -> float:
    """The share of training time spent evaluating ``eval_rows`` rows every ``every`` steps."""
    return eval_rows / (3 * max(rows_per_step, 1) * max(every, 1))


def plan_eval(tc: Any, *, eval_rows: int, rows_per_step: int, total_steps: int) -> EvalPlan:
    """The evaluation plan of a run's ``train`` settings for its held-out rows and length.

    Raises:
        ConfigError: early stopping or keeping the best checkpoint without held-out rows, or with an interval that
            leaves fewer than two evaluations.
    """
    patience = getattr(tc, "early_stopping_patience", None)
    keep_best = bool(getattr(tc, "keep_best", False) or patience)
    metric = "eval_accuracy" if getattr(tc, "best_metric", "eval_loss") == "accuracy" else "eval_loss"
    acc_rows = int(getattr(tc, "eval_accuracy_rows", 0) or 0)
    if (acc_rows or metric == "eval_accuracy") and getattr(tc, "method", "sft") != "sft":
        raise ConfigError(f"train.eval_accuracy_rows and best_metric 'accuracy' answer held-out questions, an sft "
                          f"run's task; a {tc.method} run is judged by its eval loss (set best_metric: eval_loss)")
    if eval_rows <= 0:
        if keep_best:
            what = "early stopping" if patience else "keeping the best checkpoint"
            raise ConfigError(f"{what} needs held-out rows to evaluate: set data.eval_fraction above 0 (e.g. 0.1)")
        return EvalPlan(None, "no held-out rows (data.eval_fraction is 0): no evaluation")
    if tc.eval_steps:
        steps, how = int(tc.eval_steps), "set"
    else:
        steps = max(1, math.ceil(eval_rows / (3 * max(rows_per_step, 1) * AUTO_SHARE)))
        how = "automatic"
        if keep_best and total_steps and steps > total_steps // 2:  # early stopping needs several evaluations
            steps = max(1, total_steps // 4)
            how = "automatic, several evaluations for early stopping"
    warning = None
    if total_steps and steps > total_steps:
        if keep_best:
            raise ConfigError(f"train.eval_steps ({steps}) is larger than the run ({plural(total_steps, 'step')}): "
                              f"early stopping and keeping the best checkpoint need evaluations during the run; set "
                              f"train.eval_steps to at most {max(1, total_steps // 2)}")
        if how == "set":
            warning = (f"train.eval_steps ({steps}) is larger than the run ({plural(total_steps, 'step')}): the "
                       f"held-out rows are evaluated at the end only")
        return EvalPlan(None, f"eval at the end only ({plural(eval_rows, 'held-out row')}; every "
                              f"{plural(steps, 'step')} would be longer than the run)", warning=warning)
    share = cost_share(eval_rows, rows_per_step, steps)
    reason = (f"eval every {plural(steps, 'step')} on {plural(eval_rows, 'held-out row')} (~{share:.0%} of training "
              f"time, {how})")
    if acc_rows:
        reason += f"; task accuracy on {plural(acc_rows, 'row')} at each evaluation"
    if keep_best:
        reason += f"; adapter/ = the best checkpoint by {metric}"
    if patience:
        reason += f"; stops after {plural(patience, 'evaluation')} without improvement"
    return EvalPlan(steps, reason, patience, keep_best, metric, acc_rows, warning)


def plan_for(tc: Any, prepared: Any, world_size: int = 1) -> EvalPlan:
    """:func:`plan_eval` for a run's prepared data (rows per optimizer step over every process)."""
    rows_per_step = tc.batch_size * tc.grad_accum * max(world_size, 1)
    total = tc.max_steps if tc.max_steps > 0 else math.ceil(len(prepared.train) / rows_per_step * tc.epochs)
    eval_rows = len(prepared.eval) if prepared.eval is not None else 0
    return plan_eval(tc, eval_rows=eval_rows, rows_per_step=rows_per_step, total_steps=total)


def evaluates_at_end(plan: EvalPlan, step: int, has_eval: bool) -> bool:
    """Whether :func:`end_of_run` evaluates the held-out rows after ``step`` (not when that step was just evaluated,
    nor when the best checkpoint is kept)."""
    return has_eval and not plan.keep_best and (not plan.steps or bool(step % plan.steps))


def final_eval_steps(plan: EvalPlan, *, eval_rows: int, rows_per_step: int, max_steps: int,
                     answer_passes: int = 0) -> float:
    """The end-of-run evaluation's cost in training steps (the cost model above), 0 when there is none:
    ``answer_passes`` decoding passes of the task accuracy's answers are added when it answers them."""
    if not evaluates_at_end(plan, max_steps, eval_rows > 0):
        return 0.0
    answers = answer_passes if plan.steps and plan.accuracy_rows else 0  # the metric runs at periodic evals only
    return (eval_rows + answers) / (3 * max(rows_per_step, 1))


def end_of_run(trainer: Any, plan: EvalPlan, *, tell: Any, emit: Any, eta_s: float | None = None) -> None:
    """After the last step: the final weights' eval loss (a visible phase with its estimated time ``eta_s``;
    skipped when that step was just evaluated or the best checkpoint is kept), then a note of the checkpoint
    adapter/ keeps and why."""
    from studio.events import Note
    from studio.formatting import format_seconds

    step = trainer.state.global_step
    if evaluates_at_end(plan, step, trainer.eval_dataset is not None):
        phase = f"evaluating {len(trainer.eval_dataset)} held-out rows after the last step"
        tell(phase, eta_s)
        about = f" (about {format_seconds(eta_s)})" if eta_s and eta_s >= 1 else ""
        emit(Note(message=f"{phase}...{about}", data={"kind": "phase", "phase": "evaluating",
                                                    "rows": len(trainer.eval_dataset), "eta_s": eta_s}))
        trainer.evaluate()
    kept = kept_note(trainer, plan, trainer.state.max_steps)
    if kept:
        emit(Note(message=kept, data={"kind": "kept_best", "step": trainer.state.best_global_step,
                                      "metric": plan.metric, "value": float(trainer.state.best_metric)}))


def eval_callbacks(plan: EvalPlan, *, eval_dataset: Any, tokenizer: Any, extractor: Any = None) -> list[Any]:
    """The task-metric callback (first, so the metric is there for the best-model and early-stopping checks) and
    transformers' ``EarlyStoppingCallback`` when asked."""
    out: list[Any] = []
    if plan.steps and plan.accuracy_rows and eval_dataset is not None:
        from studio.training.task_metric import task_metric_callback

        out.append(task_metric_callback(eval_dataset, tokenizer, rows=plan.accuracy_rows, extractor=extractor))
    if plan.steps and plan.patience:
        from transformers import EarlyStoppingCallback

        out.append(EarlyStoppingCallback(early_stopping_patience=plan.patience))
    return out


def kept_note(trainer: Any, plan: EvalPlan, max_steps: int) -> str | None:
    """What the run kept and why, once training ended (None when it does not keep the best)."""
    state = trainer.state
    if not plan.keep_best or state.best_global_step is None:
        return None
    metric = plan.metric.replace("eval_", "eval ")
    stopped = state.global_step < max_steps and plan.patience
    why = (f"stopped early at step {state.global_step} of {max_steps}: the {metric} did not improve for "
           f"{plural(plan.patience, 'evaluation')}; " if stopped else "")
    return (f"{why}adapter/ is the checkpoint of step {state.best_global_step}, the best {metric} "
            f"({state.best_metric:.4g})")
