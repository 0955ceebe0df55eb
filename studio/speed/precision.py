"""Training precision: ``train.precision`` auto | fp32 | bf16, decided per device, CPU kind and method.

On CPUs with native bf16 (AVX512-BF16 or AMX, asked of torch, never guessed from a model name) a LoRA step runs
the frozen base in bf16 with the LoRA weights and the optimizer in fp32 under ``torch.autocast``, its projections
returning fp32 so the LoRA update is not rounded away (:mod:`studio.speed.bf16_linear`).
Where the CPU lacks it, bf16 is emulated and slower, so ``auto`` stays fp32 as before. Each training method says whether bf16 was measured safe for
it on CPU (:data:`CPU_BF16_METHODS`): preference losses compare small log-probability margins that bf16 can swamp,
so they stay fp32 until measured (a method module registers itself with :func:`allow_cpu_bf16`). On a GPU ``auto``
keeps ``model.compute_dtype`` (bf16 where supported, else fp16).
"""
from __future__ import annotations

from typing import Any

CPU_BF16_METHODS: dict[str, str] = {
    "sft": "measured on SmolLM2: 1.82x plain TRL's fp32 steps/s against 1.53x in fp32, losses 0.08 % apart over "
           "20 steps"}
"""Methods measured safe (and faster) in bf16 on CPUs with native bf16, with what was measured.
``studio bench train --setup uniform --precision bf16 --steps 20 --rounds 2`` on SmolLM2 (AVX512-BF16 + AMX): with
the whole base in bf16 the losses lagged fp32's by 1.7 % on average (3.7 % at most), the LoRA update rounded away
in bf16 outputs; with the projections returning fp32 (:mod:`studio.speed.bf16_linear`) 0.08 % (0.21 % at most),
at 1.82x plain TRL's steps/s where Studio's fp32 ran 1.47-1.53x, and 0.74x its peak RSS."""


BF16_WHAT = "bf16 base whose projections return fp32, fp32 LoRA and optimizer (autocast)"


def allow_cpu_bf16(method: str, measured: str) -> None:
    """Let ``auto`` pick bf16 on capable CPUs for ``method`` (say what was measured: it is shown in the plan)."""
    CPU_BF16_METHODS[method] = measured


def cpu_bf16_support() -> tuple[bool, str]:
    """``(native, what)``: whether this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch reports it."""
    import torch

    found = []
    for name, label in (("_is_avx512_bf16_supported", "AVX512-BF16"), ("_is_amx_tile_supported", "AMX")):
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                found.append(label)
        except Exception:  # noqa: BLE001 - a probe that fails detects nothing
            pass
    return (True, " and ".join(found)) if found else (False, "no AVX512-BF16 or AMX")


def choose_precision(cfg: Any, device: str, *, support: tuple[bool, str] | None = None) -> tuple[str, str]:
    """``(precision, reason)`` for a run: ``bf16`` (bf16 base, fp32 LoRA and optimizer, autocast), ``fp32``, or on a
    GPU ``auto`` (``model.compute_dtype`` decides). ``support``: the CPU detection (tests pass their own)."""
    setting = getattr(cfg.train, "precision", "auto")
    method = getattr(cfg.train, "method", "sft")
    if device != "cpu":
        if setting == "auto":
            return "auto", f"GPU: model.compute_dtype {cfg.model.compute_dtype} (bf16 where supported, else fp16)"
        return setting, f"{setting} as configured (train.precision)"
    native, what = support if support is not None else cpu_bf16_support()
    if setting == "fp32":
        return "fp32", "fp32 as configured (train.precision)"
    if setting == "bf16":
        if native:
            return "bf16", f"{BF16_WHAT} as configured; this CPU has {what}"
        return "bf16", (f"bf16 as configured, but this CPU has {what}: bf16 is emulated and likely slower than fp32 "
                        f"(train.precision: auto picks fp32 here)")
    if not native:
        return "fp32", f"fp32 (auto): this CPU has {what}, so bf16 would be emulated and slower"
    if method not in CPU_BF16_METHODS:
        return "fp32", (f"fp32 (auto): bf16 on this CPU ({what}) is not yet measured at fp32's loss for {method} "
                        f"(it is for sft); train.precision: bf16 forces it")
    if cfg.model.quantization != "none":
        return "fp32", f"fp32 (auto): bf16 on CPU is measured for unquantized bases, not {cfg.model.quantization}"
    if cfg.model.compute_dtype == "fp32":
        return "fp32", "fp32 (auto): model.compute_dtype is fp32"
    return "bf16", f"{BF16_WHAT} (auto: this CPU has {what}; {CPU_BF16_METHODS[method]})"


def compute_dtype_for(precision: str, model_cfg: Any, device: str) -> str:
    """The ``model.compute_dtype`` a run loads its base with under ``precision``."""
    if precision in ("bf16", "fp32"):
        return precision
    return model_cfg.compute_dtype if device != "cpu" else "fp32"
