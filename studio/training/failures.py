"""Training failures made readable: ``is_oom`` and ``explain_failure`` (a message and a concrete suggestion)."""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError
from studio.modeling import kbit_cpu


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "outofmemory" in text.replace(" ", "").replace("_", "") or "out of memory" in text \
        or "can't allocate memory" in text or "cannot allocate memory" in text or isinstance(exc, MemoryError)


def explain_failure(exc: BaseException, cfg: Any, *, run_dir: Any = None, trainable_params: int = 0) -> tuple[str, str]:
    """A readable message and a concrete suggestion for an exception raised while training."""
    from studio.diskspace import full_message, is_disk_full
    from studio.training.room import checkpoint_need

    if is_disk_full(exc):
        if isinstance(exc, StudioError) and str(exc).startswith("the disk is full"):
            message = str(exc)
        else:
            where = run_dir or cfg.train.output_dir
            message = full_message(where, "the checkpoint", checkpoint_need(where, trainable_params))
        return message, "The run and its last complete checkpoint are kept: resume it once there is room."
    if is_oom(exc):
        tc, mc = cfg.train, cfg.model
        tips = []
        if tc.batch_size > 1:
            tips.append(f"lower train.batch_size to {max(1, tc.batch_size // 2)} (raise train.grad_accum to "
                        f"{tc.grad_accum * 2} to keep the effective batch)")
        if tc.gradient_checkpointing is not True:
            tips.append("turn train.gradient_checkpointing on")
        if tc.max_length > 256:
            tips.append(f"shorten train.max_length to {tc.max_length // 2}")
        if mc.quantization != "4bit":
            tips.append("load the model in 4-bit (model.quantization: 4bit)")
        if cfg.lora.r > 16:
            tips.append(f"use a smaller LoRA rank (lora.r: {max(8, cfg.lora.r // 4)})")
        return ("out of memory while training", "Try: " + "; ".join(tips or ["a smaller model"]) + ".")
    if isinstance(exc, StudioError):
        return str(exc), ""
    packing = kbit_cpu.explain(exc)
    if packing is not None:
        return str(packing), "Train in 8-bit or without quantization, or use a model whose layer sizes are multiples of 64."
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
            "See train.log in the run directory for the full traceback.")
