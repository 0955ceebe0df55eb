"""Per-method config facts and checks (loss variants, sequences per row, default beta) and the evaluation settings'
checks: a foundation module, so the memory estimate and the method registry read them without importing training."""
from __future__ import annotations

import typing
from typing import Any

from studio.config_fields import PrefLoss, check_positive
from studio.errors import ConfigError

PREF_LOSSES = typing.get_args(PrefLoss)


def check_method(tc: Any) -> None:
    """Each method's own settings: beta > 0, a loss variant the method has, KTO's batch of 2 or more."""
    if tc.beta is not None:
        check_positive("train", "beta", tc.beta)
    check_positive("train", "simpo_gamma", tc.simpo_gamma, allow_zero=True)
    if tc.start_from is not None and not str(tc.start_from).strip():
        tc.start_from = None
    if tc.loss_type is not None and tc.loss_type not in LOSS_TYPES.get(tc.method, ()):
        have = LOSS_TYPES.get(tc.method)
        raise ConfigError(f"train.loss_type {tc.loss_type!r} is not a loss of {tc.method}; "
                          + (f"{tc.method} has: {', '.join(have)}" if have else
                             f"{tc.method} has one loss: leave train.loss_type empty"))
    if tc.method == "kto" and tc.batch_size < 2:
        raise ConfigError("train.batch_size must be 2 or more for kto: KTO estimates its KL term from the other "
                          "rows of the same batch (TRL refuses a batch of 1); set train.batch_size=2 or more")


LOSS_TYPES: dict[str, tuple[str, ...]] = {"dpo": PREF_LOSSES[:12], "kto": PREF_LOSSES[12:]}
"""The loss variants each method offers (TRL's names); methods not listed have one loss."""
METHOD_SHAPES: dict[str, tuple[int, bool]] = {"sft": (1, False), "dpo": (2, True), "orpo": (2, False),
                                           "kto": (2, True), "simpo": (2, False)}
"""Per method: sequences per row in a step (a pair is two; KTO adds its KL completions) and whether a reference pass
runs. The memory estimate and the method registry read it; a method not listed counts as ``(1, False)``."""
DEFAULT_BETA: dict[str, float] = {"dpo": 0.1, "orpo": 0.1, "kto": 0.1, "simpo": 2.0}
"""``train.beta`` when left empty (TRL's defaults; SimPO's paper range 2.0-2.5)."""


def check_evaluation(tc: Any) -> None:
    """Early stopping and the task metric: positive counts, and accuracy only with answers generated for it."""
    if tc.early_stopping_patience is not None:
        check_positive("train", "early_stopping_patience", tc.early_stopping_patience)
    check_positive("train", "eval_accuracy_rows", tc.eval_accuracy_rows, allow_zero=True)
    if tc.best_metric == "accuracy" and tc.eval_accuracy_rows < 1:
        raise ConfigError("train.best_metric 'accuracy' needs train.eval_accuracy_rows >= 1 (answers generated at "
                          "each evaluation); or choose eval_loss")
