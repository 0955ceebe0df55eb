"""What the training job asks of a method's recipe: its data, its speed-plan config, its trainer keywords and its
trainer. Kept here so ``studio/training/job.py`` stays one call per step for every method."""
from __future__ import annotations

import dataclasses
from typing import Any

from studio.training.methods import Recipe

FP32_REASON = ("precision: fp32 for {method} on CPU: its loss compares small log-probability differences between "
               "two answers; bf16 autocast added ~0.01 to SmolLM2's early DPO margins of 0.0001-0.001 and flipped "
               "the sign of 25-38% of them (scripts/bench_pref_precision.py)")


def prepare_for(rec: Recipe, cfg: Any, tokenizer: Any) -> Any:
    """The method's prepared data: SFT rows (cached) or pre-tokenized preference rows."""
    if rec.data == "sft":
        from studio.data import prepare_datasets

        return prepare_datasets(cfg, tokenizer)
    if rec.data == "prompts":
        from studio.training.methods.grpo import prepare

        return prepare(cfg, tokenizer)
    from studio.data.pair_prepare import prepare_pairs

    return prepare_pairs(cfg, tokenizer, rec.data)


def data_warnings(rec: Recipe, prepared: Any) -> list[str]:
    """Warnings the run should note: SFT's empty answers, or every preference-data warning (dropped pairs...)."""
    stats = prepared.stats
    if rec.data != "sft":
        return list(stats.warnings())
    if getattr(stats, "empty_answer_rows", 0):
        return [w for w in stats.warnings() if "empty answer" in w][:1]
    return []


def plan_config(rec: Recipe, cfg: Any) -> Any:
    """The config the speed plan sees: preference rows are never packed (each row is two sequences)."""
    if rec.data == "sft" or not cfg.train.packing:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, packing=False))


def mean_tokens(rec: Recipe, dataset: Any) -> float | None:
    """Mean tokens per sequence of the prepared rows (prompt + one answer for preference rows)."""
    from studio.speed.plan import mean_row_tokens

    if rec.data == "sft":
        return mean_row_tokens(dataset)
    if rec.data == "prompts":  # prompt text; completions add up to max_completion_length
        return None
    answer = "chosen_ids" if "chosen_ids" in dataset.column_names else "completion_ids"
    lengths = [len(p) + len(a) for p, a in zip(dataset["prompt_ids"], dataset[answer])]
    return sum(lengths) / len(lengths) if lengths else None


def trainer_kwargs(rec: Recipe, cfg: Any, base: dict[str, Any], speed: dict[str, Any], device: str) -> dict[str, Any]:
    """The method's TRL config keywords from the run's shared ones (``sft_args``) and the speed plan's.

    Preference methods take only the plan's micro-batch and checkpointing (no packing, no padding-free rows), and
    stay fp32 on CPU (:data:`FP32_REASON`)."""
    if rec.data == "sft":
        return rec.args(cfg, {**base, **speed})
    keep = ("gradient_checkpointing", "gradient_checkpointing_kwargs", "per_device_train_batch_size")
    merged = {**base, **{k: v for k, v in speed.items() if k in keep}}
    merged.pop("completion_only_loss", None)
    if rec.cpu_fp32 and device == "cpu":
        merged.update(bf16=False, fp16=False)
    if rec.name == "kto" and merged.get("per_device_train_batch_size", 2) < 2:
        merged["per_device_train_batch_size"] = 2  # TRL refuses 1: the KL term needs another row of the batch
    return rec.args(cfg, merged)


def plan_lines(rec: Recipe, device: str, cfg: Any = None) -> list[str]:
    """Lines the run adds to its speed plan for this method."""
    lines = []
    if rec.name == "grpo" and cfg is not None:
        from studio.training.methods.grpo import plan_lines as grpo_lines

        lines += grpo_lines(cfg, device)
    if rec.preference:
        lines.append(f"method: {rec.name} ({rec.title}); "
                     + ("reference = the same model with its adapter disabled (no second copy)" if rec.uses_reference
                        else "no reference model"))
        if rec.cpu_fp32 and device == "cpu":
            lines.append(FP32_REASON.format(method=rec.name))
    return lines


def build_trainer(rec: Recipe, args: Any, *, model: Any, tokenizer: Any, prepared: Any, peft_config: Any,
                  callbacks: list[Any], token_window: Any) -> Any:
    """The method's trainer on the prepared data (``peft_config`` None when the model already has its adapter)."""
    from studio.training.start_from import save_trained_adapter_only

    extra = {"token_window": token_window} if rec.data == "sft" else {}
    trainer = rec.trainer_class()(model=model, args=args, train_dataset=prepared.train, eval_dataset=prepared.eval,
                                  processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks, **extra)
    save_trained_adapter_only(trainer.model)  # a start_from run: TRL's frozen "ref" copy stays out of the saves
    return trainer
