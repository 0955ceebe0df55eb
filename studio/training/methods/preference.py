"""Preference methods: DPO and KTO (stable TRL), ORPO and SimPO (``trl.experimental``: ORPO, and CPO with
``loss_type="simpo"``). Each trainer takes the rows Studio rendered (:mod:`studio.data.pairs`), already tokenized,
so the preview's trained tokens are the trainer's labels. The reference is the same model with its adapter
disabled (peft), never a second copy of the weights.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from studio.training.methods import Recipe

PAIRED_METRICS = {"rewards/chosen": "Reward of chosen", "rewards/rejected": "Reward of rejected",
                  "rewards/margins": "Reward margin", "rewards/accuracies": "Reward accuracy",
                  "logps/chosen": "Log-prob of chosen", "logps/rejected": "Log-prob of rejected"}
ORPO_METRICS = {**PAIRED_METRICS, "nll_loss": "NLL of chosen", "log_odds_ratio": "Log odds ratio",
                "log_odds_chosen": "Log odds of chosen"}
KTO_METRICS = {"rewards/chosen": "Reward of desirable", "rewards/rejected": "Reward of undesirable",
               "rewards/margins": "Reward margin", "kl": "KL to the reference",
               "logps/chosen": "Log-prob of desirable", "logps/rejected": "Log-prob of undesirable"}
SIMPO_METRICS = {**PAIRED_METRICS, "nll_loss": "NLL of chosen"}


def _kwargs_for(config_class: type, base: dict[str, Any]) -> dict[str, Any]:
    """The shared trainer keywords this config class knows (SFT-only ones such as packing are left out)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return {k: v for k, v in base.items() if k in names}


def _beta(cfg: Any) -> float:
    from studio.config import DEFAULT_BETA

    return cfg.train.beta if cfg.train.beta is not None else DEFAULT_BETA[cfg.train.method]


# ------------------------------------------------------------------ configs
def _dpo_config() -> type:
    from trl import DPOConfig

    return DPOConfig


def _kto_config() -> type:
    from trl import KTOConfig

    return KTOConfig


def _orpo_config() -> type:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig


def _cpo_config() -> type:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.cpo import CPOConfig

    return CPOConfig


def _dpo_args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    return {**_kwargs_for(_dpo_config(), base), "beta": _beta(cfg), "loss_type": [cfg.train.loss_type or "sigmoid"],
            "truncation_mode": "keep_start", "precompute_ref_log_probs": False}


def _kto_args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    return {**_kwargs_for(_kto_config(), base), "beta": _beta(cfg), "loss_type": cfg.train.loss_type or "kto"}


def _orpo_args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    return {**_kwargs_for(_orpo_config(), base), "beta": _beta(cfg), "remove_unused_columns": False}


def _simpo_args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    return {**_kwargs_for(_cpo_config(), base), "beta": _beta(cfg), "loss_type": "simpo", "cpo_alpha": 0.0,
            "simpo_gamma": cfg.train.simpo_gamma, "remove_unused_columns": False}


# ------------------------------------------------------------------ trainers
def _dpo_trainer() -> type:
    from trl import DPOTrainer

    class StudioDPOTrainer(DPOTrainer):
        """DPOTrainer that takes Studio's pre-tokenized pairs (``prompt_ids``/``chosen_ids``/``rejected_ids``)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in getattr(dataset, "column_names", ()):
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return StudioDPOTrainer


def _kto_trainer() -> type:
    from trl import KTOTrainer

    class StudioKTOTrainer(KTOTrainer):
        """KTOTrainer that takes Studio's pre-tokenized rows (``prompt_ids``/``completion_ids``/``label``); the KL
        completions are built as TRL builds them (each batch's completions rotated by one)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in getattr(dataset, "column_names", ()):
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if self.calculate_KL and "KL_completion_ids" not in dataset.column_names:
                def add_kl(examples):
                    examples["KL_completion_ids"] = [examples["completion_ids"][-1]] + examples["completion_ids"][:-1]
                    return examples

                dataset = dataset.map(add_kl, batched=True, batch_size=args.per_device_train_batch_size)
            return dataset

    return StudioKTOTrainer


def _pretokenized_row(trainer: Any, feature: dict[str, Any]) -> dict[str, Any]:
    """ORPO/CPO's ``tokenize_row`` output from Studio's ids: prompt + answer, labels -100 on the prompt."""
    prompt = list(feature["prompt_ids"])
    out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        ids = prompt + list(feature[f"{side}_ids"])
        out[f"{side}_input_ids"] = ids
        out[f"{side}_attention_mask"] = [1] * len(ids)
        out[f"{side}_labels"] = [-100] * len(prompt) + list(feature[f"{side}_ids"])
    return out


def _orpo_trainer() -> type:
    _orpo_config()
    from trl.experimental.orpo import ORPOTrainer

    class StudioORPOTrainer(ORPOTrainer):
        """ORPOTrainer that takes Studio's pre-tokenized pairs."""

        def tokenize_row(self, feature, model=None):
            if "prompt_ids" in feature:
                return _pretokenized_row(self, feature)
            return super().tokenize_row(feature, model)

    return StudioORPOTrainer


def _cpo_trainer() -> type:
    _cpo_config()
    from trl.experimental.cpo import CPOTrainer

    class StudioCPOTrainer(CPOTrainer):
        """CPOTrainer (SimPO with ``loss_type="simpo"``) that takes Studio's pre-tokenized pairs."""

        def tokenize_row(self, feature, model=None):
            if "prompt_ids" in feature:
                return _pretokenized_row(self, feature)
            return super().tokenize_row(feature, model)

    return StudioCPOTrainer


def _shape(method: str) -> dict[str, Any]:
    from studio.config import METHOD_SHAPES

    sequences, reference = METHOD_SHAPES[method]
    return {"answers_per_row": sequences, "uses_reference": reference}


_ZERO_NOTE = ("At step 1 the adapter is zero, so the policy equals the reference: rewards and margins are 0 and "
              "the {what} is {value}; that is the start, not a fault.")

RECIPES = {
    "dpo": Recipe(name="dpo", title="DPO (direct preference optimisation)", data="paired",
                  config_class=_dpo_config, trainer_class=_dpo_trainer, args=_dpo_args, metrics=PAIRED_METRICS,
                  progress_metric="rewards/accuracies",
                  first_step={"loss": math.log(2), "rewards/margins": 0.0, "rewards/chosen": 0.0},
                  first_step_note=_ZERO_NOTE.format(what="DPO loss", value="ln 2 = 0.693"),
                  **_shape("dpo"), cpu_fp32=True),
    "kto": Recipe(name="kto", title="KTO (unpaired: desirable / undesirable answers)", data="unpaired",
                  config_class=_kto_config, trainer_class=_kto_trainer, args=_kto_args, metrics=KTO_METRICS,
                  progress_metric="rewards/margins", first_step={"loss": 0.5, "kl": 0.0},
                  first_step_note=_ZERO_NOTE.format(what="KTO loss", value="0.5 and the KL 0"),
                  **_shape("kto"), cpu_fp32=True),
    "orpo": Recipe(name="orpo", title="ORPO (odds ratio, no reference)", data="paired",
                   config_class=_orpo_config, trainer_class=_orpo_trainer, args=_orpo_args, metrics=ORPO_METRICS,
                   progress_metric="rewards/accuracies",
                   first_step_note="ORPO has no reference: its loss is the chosen answer's NLL plus beta times the "
                                   "odds-ratio term, so step 1 shows the model's own preference.",
                   **_shape("orpo"), cpu_fp32=True),
    "simpo": Recipe(name="simpo", title="SimPO (length-normalised, no reference)", data="paired",
                    config_class=_cpo_config, trainer_class=_cpo_trainer, args=_simpo_args, metrics=SIMPO_METRICS,
                    progress_metric="rewards/accuracies",
                    first_step_note="SimPO has no reference: rewards are beta times the mean log-probability of "
                                    "each answer, and the loss wants the margin above gamma.",
                    **_shape("simpo"), cpu_fp32=True),
}
