"""Packing-aware attention choice.

Padding-free packing (TRL's ``bfd``) flattens a batch into one row and marks sequence starts with
``position_ids`` that restart at 0. What that costs depends on the kernel:

* ``flash_attention_2``: varlen kernel driven by ``cu_seq_lens`` -- each sequence attends to itself only and
  no mask is built. Best where flash-attn is installed on an Ampere+ GPU.
* ``flex_attention``: transformers builds a ``BlockMask`` from the packed sequence ids; fully masked tiles are
  skipped, so the cost follows the real sequences. Ships with torch; its backward does not run on CPU.
* ``sdpa`` / ``eager``: transformers materialises one dense ``(T, T)`` block-diagonal mask over the whole
  flattened batch; SDPA then computes every score of it. Correct, but the attention cost grows with the square of
  the batch, so on CUDA packing with it can be slower than not packing. Acceptable on CPU (tests, tiny models).
"""
from __future__ import annotations

import importlib.util
from typing import Any

from studio.modeling import _cuda_capability, _flash_attn_version, choose_attention

BOUNDARY_AWARE = ("flash_attention_2", "flex_attention")


def flex_available(device: str) -> tuple[bool, str]:
    """Whether PyTorch ``flex_attention`` can train on ``device`` (``(ok, why_not)``)."""
    if importlib.util.find_spec("torch.nn.attention.flex_attention") is None:
        return False, "this torch has no flex_attention"
    if device != "cuda":
        return False, "flex_attention's backward does not run on CPU"
    if importlib.util.find_spec("triton") is None:
        return False, "flex_attention on CUDA needs triton, which is not installed"
    return True, ""


def choose_packed_attention(requested: str = "auto", *, packing: bool, device: str, preset: Any = None,
                            flash_version: str | None | bool = False,
                            capability: tuple[int, int] | None | bool = False,
                            flex_ok: bool | None = None) -> tuple[str, str]:
    """Pick the attention kernel for a run, knowing whether sequences are packed; say why in one sentence.

    Without packing this is :func:`studio.modeling.choose_attention`. With packing:

    * flash-attn installed and an Ampere+ GPU -> ``flash_attention_2`` (varlen, no mask);
    * else on CUDA -> ``flex_attention`` (block-sparse mask); SDPA/eager are never used with a packed dense mask on
      CUDA, even when asked for;
    * on CPU -> ``sdpa`` with the block-diagonal mask (flex's backward does not run there).

    If no boundary-aware kernel is available on CUDA the returned kernel is SDPA and the reason starts with
    ``"no packing:"``; :func:`studio.speed.plan.plan_speed` then turns padding-free packing off.
    ``flash_version`` / ``capability`` / ``flex_ok`` override detection (tests).

    Returns:
        ``(attn_implementation, reason)``
    """
    if not packing:
        return choose_attention(requested, preset=preset, device=device, flash_version=flash_version,
                                capability=capability)
    fv = _flash_attn_version() if flash_version is False else flash_version
    cap = (_cuda_capability() if device == "cuda" else None) if capability is False else capability
    if flex_ok is None:
        flex_ok, flex_why = flex_available(device)
    else:
        flex_why = "" if flex_ok else "flex_attention is not available"
    fa_impl, _ = choose_attention("flash_attention_2", preset=preset, device=device, flash_version=fv,
                                  capability=cap)
    fa_ok = device == "cuda" and fa_impl == "flash_attention_2"
    quirk = (getattr(preset, "attention", None) or {}) if preset is not None else {}
    if device != "cuda":
        if "sdpa" in quirk.get("avoid", ()):
            fb = quirk.get("fallback", "eager")
            return fb, f"packed sequences on CPU: {fb} with a block-diagonal mask ({quirk.get('reason', '')})"
        if requested in ("sdpa", "eager"):
            return requested, f"{requested} as requested (packed: block-diagonal mask; fine on CPU)"
        return "sdpa", ("packed sequences on CPU: SDPA with a block-diagonal mask (flex_attention's backward "
                        "does not run on CPU, flash-attn needs a GPU)")
    if requested == "flex_attention" and flex_ok:
        return "flex_attention", "flex_attention as requested (block-sparse mask over packed sequences)"
    if fa_ok and requested in ("auto", "flash_attention_2", "sdpa", "eager", "flex_attention"):
        why = "as requested" if requested == "flash_attention_2" else "is installed"
        extra = "" if requested in ("auto", "flash_attention_2") else \
            f" ({requested} would build a dense mask over the packed batch)"
        return "flash_attention_2", f"flash-attn {fv} {why}: varlen kernel over packed sequences, no mask{extra}"
    if flex_ok:
        if fv is None:
            lead = "flash-attn not installed"
        elif cap is not None and cap[0] < 8:
            lead = f"flash-attn needs an Ampere or newer GPU (compute capability {cap[0]}.{cap[1]})"
        elif quirk.get("min_flash_attn"):
            lead = f"flash-attn {fv} is older than the {quirk['min_flash_attn']} this model needs"
        else:
            lead = "flash-attn unavailable"
        extra = f"; {requested} would build a dense mask over the whole packed batch" \
            if requested in ("sdpa", "eager", "flash_attention_2") else ""
        return "flex_attention", f"{lead}: flex_attention skips the masked tiles between packed sequences{extra}"
    fallback, text = choose_attention("auto" if requested in ("flex_attention", "flash_attention_2") else requested,
                                      preset=preset, device=device, flash_version=fv, capability=cap)
    return fallback, (f"no packing: neither flash-attn nor flex_attention can train here ({flex_why}); "
                      f"{fallback} with a packed dense mask would cost O(batch^2) -- {text}")


def respects_boundaries_cheaply(attn_impl: str, device: str) -> bool:
    """True when packed sequences cost no more than their own lengths (no dense batch-wide mask) -- or on CPU."""
    return attn_impl in BOUNDARY_AWARE or device != "cuda"
