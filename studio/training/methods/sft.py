"""Supervised fine-tuning: rendered rows with a loss mask, TRL's SFTTrainer (through Studio's fast-loss subclass)."""
from __future__ import annotations

from typing import Any

from studio.training.methods import Recipe


def _config_class() -> type:
    from trl import SFTConfig

    return SFTConfig


def _trainer_class() -> type:
    from studio.training.callbacks import trainer_class

    return trainer_class()


def _args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    return dict(base)


RECIPES = {"sft": Recipe(name="sft", title="Supervised (SFT)", data="sft", config_class=_config_class,
                         trainer_class=_trainer_class, args=_args,
                         metrics={"mean_token_accuracy": "Token accuracy", "entropy": "Entropy"})}
