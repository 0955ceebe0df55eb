"""Trainer arguments of a RunConfig: ``sft_args`` (the SFTConfig keywords) and ``default_callbacks``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio import runs


def sft_args(cfg: Any, run_dir: Path, *, device: str, gradient_checkpointing: bool, has_eval: bool) -> dict[str, Any]:
    """The ``SFTConfig`` keyword arguments of a RunConfig (shared with the benchmark's plain-TRL baseline).

    The data layer's ``completion_mask`` decides which tokens are trained (``completion_only_loss=True``), so
    ``train.loss_on`` is already applied there. The engine overrides the fast-path settings with
    :func:`studio.speed.sft_speed_kwargs` (packing, checkpointing, micro-batch; boosters are applied to the model,
    not through TRL). Here Liger is only asked of TRL where it is installed: a missing booster never fails a run.
    """
    import importlib.util

    import torch

    from studio.modeling import compute_dtype
    from studio.training import trackers

    tc = cfg.train
    dtype = compute_dtype(cfg.model, device)
    bf16 = device == "cuda" and dtype == torch.bfloat16
    fp16 = device == "cuda" and dtype == torch.float16
    eval_steps = tc.eval_steps if has_eval and tc.eval_steps else None
    use_liger = device == "cuda" and tc.booster in ("auto", "liger") \
        and importlib.util.find_spec("liger_kernel") is not None
    return dict(
        output_dir=str(Path(run_dir) / runs.CHECKPOINTS), max_steps=tc.max_steps, num_train_epochs=tc.epochs,
        per_device_train_batch_size=tc.batch_size, per_device_eval_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.grad_accum, learning_rate=tc.learning_rate,
        lr_scheduler_type=tc.lr_scheduler, warmup_steps=float(tc.warmup_ratio), weight_decay=tc.weight_decay,
        max_grad_norm=tc.max_grad_norm, optim=tc.optim, seed=tc.seed, logging_steps=tc.logging_steps,
        logging_first_step=True,
        save_strategy="steps", save_steps=tc.save_steps, save_total_limit=tc.save_total_limit,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
        max_length=tc.max_length, packing=tc.packing, completion_only_loss=True,
        gradient_checkpointing=gradient_checkpointing, bf16=bf16, fp16=fp16,
        use_cpu=device == "cpu", dataloader_pin_memory=device == "cuda", disable_tqdm=True,
        report_to=trackers.report_to(cfg, run_dir), project=trackers.PROJECT, run_name=Path(run_dir).name,
        use_liger_kernel=use_liger, ddp_find_unused_parameters=False if runs.world_size() > 1 else None,
    )


def default_callbacks(cfg: Any) -> list[Any]:
    """Callbacks the app and the CLI add: probe prompts answered at every checkpoint when configured."""
    if not cfg.train.probe_prompts:
        return []
    from studio.probes import probe_callback

    return [probe_callback()]
