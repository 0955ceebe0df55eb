"""Training methods as recipes: method name -> how its data is shaped, which TRL config and trainer train it, what
it logs. One module per method family (``sft``, ``preference``); a new family (GRPO) is one more module listed in
``_FAMILIES`` plus its name in :data:`studio.config_fields.Method`.

Everything here is light: TRL is imported only when a recipe's ``config_class()``/``trainer_class()`` is called.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from studio.errors import ConfigError

DataKind = str
"""``"sft"`` (rendered rows with a loss mask), ``"paired"`` (prompt + chosen + rejected) or ``"unpaired"``
(prompt + completion + label)."""


@dataclass(frozen=True)
class Recipe:
    """How one method trains.

    ``config_class``/``trainer_class`` import TRL when called; ``args(cfg, base_kwargs)`` turns the run's shared
    trainer keywords (:func:`studio.training.args.sft_args` minus SFT-only keys) into the method's config keywords.
    """

    name: str
    title: str
    data: DataKind
    config_class: Callable[[], type]
    trainer_class: Callable[[], type]
    args: Callable[[Any, dict[str, Any]], dict[str, Any]]
    metrics: dict[str, str] = field(default_factory=dict)
    """Logged metric key -> human label (beside loss, learning rate and grad norm)."""
    progress_metric: str | None = None
    """The metric the CLI progress line shows (reward accuracy for paired methods)."""
    first_step: dict[str, float] = field(default_factory=dict)
    """What step 1 logs when the policy equals the reference (DPO: loss ln 2, margins 0)."""
    first_step_note: str = ""
    """That expectation in words, for charts."""
    uses_reference: bool = False
    """A reference pass (the base with the adapter disabled) runs beside the policy."""
    answers_per_row: int = 1
    """Sequences per row in a forward pass (2 for paired methods)."""
    cpu_fp32: bool = False
    """Keep fp32 on CPU: bf16 autocast swamps the small log-probability differences the loss compares."""

    @property
    def preference(self) -> bool:
        return self.data in ("paired", "unpaired")


_FAMILIES = ("studio.training.methods.sft", "studio.training.methods.preference",
             "studio.training.methods.grpo")
"""Each module has ``RECIPES: dict[str, Recipe]``."""


def recipes() -> dict[str, Recipe]:
    """Every method's recipe, by name."""
    out: dict[str, Recipe] = {}
    for module in _FAMILIES:
        out.update(importlib.import_module(module).RECIPES)
    return out


def recipe(method: str) -> Recipe:
    """The recipe of ``method``.

    Raises:
        ConfigError: no such method.
    """
    found = recipes()
    if method not in found:
        raise ConfigError(f"train.method must be one of {', '.join(found)}; got {method!r}")
    return found[method]


__all__ = ["DataKind", "Recipe", "recipe", "recipes"]
