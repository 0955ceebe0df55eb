"""Attention kernel choice: flash_attention_2, SDPA or eager, with a one-sentence reason."""
from __future__ import annotations

import importlib.util

from studio.modeling.devices import resolve_device
from studio.modeling.presets import Preset


def _flash_attn_version() -> str | None:
    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        import flash_attn  # noqa: F401

        return getattr(flash_attn, "__version__", "0")
    except Exception:  # noqa: BLE001 - a broken build counts as missing
        return None


def _cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability()


def choose_attention(requested: str = "auto", *, preset: Preset | None = None, device: str = "auto",
                     flash_version: str | None | bool = False,
                     capability: tuple[int, int] | None | bool = False) -> tuple[str, str]:
    """Pick the attention kernel and say why in one sentence.

    ``auto``: flash_attention_2 when flash-attn imports and the GPU is Ampere or newer (compute capability >= 8),
    else PyTorch SDPA. A preset can rule SDPA out (Gemma-2 soft-capping -> eager). Asking for flash_attention_2
    without the package (or without a suitable GPU) falls back with that sentence instead of an ImportError.
    ``flash_version`` / ``capability`` override detection (tests).

    Returns:
        ``(attn_implementation, reason)``
    """
    fv = _flash_attn_version() if flash_version is False else flash_version
    dev = resolve_device(device) if device == "auto" else device
    cap = (_cuda_capability() if dev == "cuda" else None) if capability is False else capability
    quirk = (preset.attention if preset else {}) or {}
    min_fa = quirk.get("min_flash_attn")

    def _vt(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in "".join(c if c.isdigit() or c == "." else " " for c in v).split()[0].split(".")
                     if x.isdigit())

    fa_ok = fv is not None and cap is not None and cap[0] >= 8 and (not min_fa or _vt(fv) >= _vt(min_fa))
    if fv is None:
        why_not = "flash-attn not installed"
    elif cap is None:
        why_not = "flash-attn needs a CUDA GPU"
    elif cap[0] < 8:
        why_not = f"flash-attn needs an Ampere or newer GPU (compute capability {cap[0]}.{cap[1]} < 8.0)"
    elif min_fa and _vt(fv) < _vt(min_fa):
        why_not = f"flash-attn {fv} is older than the {min_fa} this model needs"
    else:
        why_not = ""
    fallback = "sdpa"
    fallback_text = "PyTorch SDPA, which uses FlashAttention kernels on Ampere+"
    if "sdpa" in quirk.get("avoid", ()):
        fallback = quirk.get("fallback", "eager")
        fallback_text = f"{fallback} attention ({quirk.get('reason', 'this model needs it')})"

    if requested == "flash_attention_2":
        if fa_ok:
            return "flash_attention_2", f"flash-attn {fv} as requested"
        return fallback, f"{why_not}: using {fallback_text}"
    if requested == "auto":
        if fa_ok:
            return "flash_attention_2", f"flash-attn {fv} is installed and the GPU supports it"
        return fallback, f"{why_not}: using {fallback_text}"
    if requested == "sdpa" and fallback != "sdpa":
        return fallback, f"sdpa was requested, but {quirk.get('reason', 'this model needs another kernel')}: " \
                         f"using {fallback}"
    return requested, f"{requested} as requested"
