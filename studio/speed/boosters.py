"""Kernel boosters: ``train.booster`` auto | none | liger (a table, so another booster is one more entry).

Liger swaps RMSNorm, RoPE and SwiGLU for fused Triton kernels. Its fused linear cross-entropy stays off: TRL 1.16
already computes the loss through its own chunked LM head and refuses Liger's (see STACK-NOTES). A missing package,
an unsupported architecture or a failing patch never stops a run: the booster is skipped with a one-line reason
that goes to the UI and the run's environment.json.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

LIGER_ARCHS = frozenset({"llama", "mistral", "gemma", "gemma2", "qwen2", "qwen3", "phi3"})
"""Model types whose Liger kernels are known to fit (Llama, Mistral, Gemma, Qwen, Phi-3 families)."""
LIGER_KERNELS = dict(rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False)


def liger_version() -> str | None:
    """The installed liger-kernel version, or None."""
    if importlib.util.find_spec("liger_kernel") is None:
        return None
    try:
        return importlib.metadata.version("liger-kernel")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def choose_booster(requested: str, model_type: str | None, *, device: str,
                   liger: str | None | bool = False) -> tuple[str, str]:
    """Which booster to apply and why, in one line. Never raises.

    Args:
        requested: ``auto``, ``none`` or ``liger``.
        model_type: the transformers ``config.model_type`` (``llama``, ``phi``, ...).
        device: ``cuda`` or ``cpu`` (Liger's kernels are Triton: GPU only).
        liger: the installed liger-kernel version; ``False`` detects it (tests pass None or a string).

    Returns:
        ``("liger" | "none", reason)``
    """
    if requested == "none":
        return "none", "booster off (train.booster: none)"
    version = liger_version() if liger is False else liger
    mt = (model_type or "unknown").lower()
    if version is None:
        return "none", "Liger kernels skipped: liger-kernel is not installed (pip install liger-kernel)"
    if device != "cuda":
        return "none", "Liger kernels skipped: they are Triton GPU kernels and this run is on CPU"
    if mt not in LIGER_ARCHS:
        return "none", (f"Liger kernels skipped: architecture {mt!r} is not supported "
                        f"(supported: {', '.join(sorted(LIGER_ARCHS))})")
    return "liger", f"Liger {version}: fused RMSNorm, RoPE and SwiGLU kernels for {mt}"


def apply_liger(model: Any) -> tuple[bool, str]:
    """Patch ``model`` (a transformers model or a peft wrapper around one) in place with Liger's layer kernels.

    Returns:
        ``(applied, reason)``; a failure is a reason, not an exception.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except Exception as exc:  # noqa: BLE001 - a broken install is the same as none
        return False, f"Liger kernels skipped: liger-kernel failed to import ({type(exc).__name__}: {exc})"
    try:
        _apply_liger_kernel_to_instance(model=base, **LIGER_KERNELS)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return False, f"Liger kernels skipped: patching failed ({first})"
    return True, "Liger RMSNorm/RoPE/SwiGLU kernels applied"


BOOSTERS = {"liger": apply_liger}
"""booster name -> ``fn(model) -> (applied, reason)``."""


def apply_named_booster(model: Any, booster: str) -> tuple[bool, str]:
    """Apply booster ``booster`` (``none`` does nothing)."""
    fn = BOOSTERS.get(booster)
    if fn is None:
        return False, "no booster"
    return fn(model)
