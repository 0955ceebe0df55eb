"""4-bit on CPUs with AVX512-BF16: which layers bitsandbytes can pack, and readable errors where it can't.

bitsandbytes 0.50 repacks a ``Linear4bit`` weight for its AVX512-BF16 kernel the first time the layer runs in
eval mode without grad (``functional._convert_weight_packed_for_cpu``). The repack reshapes the block scales to
``[out_features, in_features // blocksize]`` and tiles rows by ``block_n``, so it needs ``in_features`` to be a
multiple of the quantization block (64) and ``out_features`` a multiple of 32; any other layer fails with
"shape '[128, 5]' is invalid for input of size 704" (or an AssertionError). Such layers are kept unquantized
(``llm_int8_skip_modules``) and the load reason says so; CPUs without AVX512-BF16, and GPUs, never repack.
"""
from __future__ import annotations

import contextlib
import re
import traceback
from typing import Any, Iterator

from studio.errors import ModelError

BLOCKSIZE = 64
"""bitsandbytes' default 4-bit quantization block (``Params4bit(blocksize=64)``), which transformers uses."""
BLOCK_N = 32
"""Rows per tile of the AVX512-BF16 packing (``_convert_weight_packed_for_cpu(block_n=32)``)."""
_PACKING_FRAMES = ("_convert_weight_packed_for_cpu", "gemv_4bit_inference_cpu")


def packs_on_cpu() -> bool:
    """Whether bitsandbytes on this CPU repacks 4-bit weights for its AVX512-BF16 kernel."""
    try:
        from bitsandbytes.functional import has_avx512bf16
    except Exception:  # noqa: BLE001 - no (working) bitsandbytes: nothing is packed
        return False
    return bool(has_avx512bf16())


def packable(in_features: int, out_features: int) -> bool:
    """Whether a ``[out_features, in_features]`` 4-bit weight survives the AVX512-BF16 repack."""
    return in_features % BLOCKSIZE == 0 and out_features % BLOCK_N == 0


def unpackable_layers(model: Any) -> list[tuple[str, int, int]]:
    """``(name, in_features, out_features)`` of every Linear layer of ``model`` the repack can't handle."""
    out = []
    for name, module in model.named_modules():
        k, n = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if isinstance(k, int) and isinstance(n, int) and not packable(k, n):
            out.append((name, k, n))
    return out


def _describe(layers: list[tuple[str, int, int]], limit: int = 3) -> str:
    shown = ", ".join(f"{name} ({k}->{n})" for name, k, n in layers[:limit])
    return shown + (f" and {len(layers) - limit} more" if len(layers) > limit else "")


def plan_cpu_4bit(quant: Any, path: str, kwargs: dict[str, Any], *, device: str,
                  packs: bool | None = None) -> str:
    """Before a 4-bit load on a packing CPU: keep the layers the repack can't handle unquantized.

    Builds the model on the meta device from its config (no weights read), lists the layers with unpackable
    shapes and adds them, with transformers' default skips (the LM head), to ``quant.llm_int8_skip_modules``.
    Returns the reason to show ("" when nothing was changed). ``packs`` overrides :func:`packs_on_cpu`.
    """
    if quant is None or not getattr(quant, "load_in_4bit", False) or device != "cpu":
        return ""
    if not (packs_on_cpu() if packs is None else packs):
        return ""
    try:
        meta = _meta_model(path, kwargs)
    except Exception:  # noqa: BLE001 - the load itself reports a bad model; check_loaded still guards
        return ""
    skips = list(quant.llm_int8_skip_modules or _default_skips(meta))
    layers = [layer for layer in unpackable_layers(meta) if layer[0] not in skips]  # e.g. lm_head: never 4-bit
    if not layers:
        return ""
    quant.llm_int8_skip_modules = sorted(set(skips) | {re.escape(name) for name, _, _ in layers})
    return (f"{len(layers)} layer(s) kept unquantized: bitsandbytes' AVX512-BF16 4-bit kernel on this CPU needs "
            f"in_features divisible by {BLOCKSIZE} and out_features by {BLOCK_N}: {_describe(layers)}")


def _meta_model(path: str, kwargs: dict[str, Any]) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    trust = bool(kwargs.get("trust_remote_code"))
    config = AutoConfig.from_pretrained(path, revision=kwargs.get("revision"), trust_remote_code=trust)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust)


def _default_skips(meta: Any) -> list[str]:
    """What transformers skips when no list is given (tied and output embeddings, e.g. ``lm_head``)."""
    try:
        from transformers.quantizers.base import get_keys_to_not_convert

        return list(get_keys_to_not_convert(meta))
    except Exception:  # noqa: BLE001
        return ["lm_head"]


def check_loaded(model: Any, *, device: str, packs: bool | None = None) -> None:
    """After a load: fail clearly if a 4-bit layer would break the repack (the skip plan could not be made).

    Raises:
        ModelError: names the layers and shapes, and suggests 8-bit or no quantization.
    """
    if device != "cpu" or not getattr(model, "is_loaded_in_4bit", False):
        return
    if not (packs_on_cpu() if packs is None else packs):
        return
    bad = [(name, k, n) for name, k, n in unpackable_layers(model)
           if type(model.get_submodule(name)).__name__ == "Linear4bit"]
    if bad:
        raise ModelError(shape_message(bad))


def keep_unpacked(model: Any) -> int:
    """Turn the AVX512-BF16 repack off on every ``Linear4bit`` of a model that will train; returns how many.

    A packed layer computes through ``gemv_4bit``, which has no backward: after an eval-mode pass (evaluation or
    a probe between steps) gradients would stop flowing through the base layers, silently ("an autograd kernel
    was not registered"). Unpacked layers dequantize per call, which is correct in both modes. bitsandbytes reads
    the per-layer flag ``support_avx512bf16_for_cpu`` (set from ``has_avx512bf16()`` at construction).
    """
    n = 0
    for module in model.modules():
        if type(module).__name__ == "Linear4bit" and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def shape_message(layers: list[tuple[str, int, int]] | None = None) -> str:
    """The one-line explanation of the repack failure, with what to do instead."""
    where = f": {_describe(layers)}" if layers else ""
    return (f"4-bit on this CPU (AVX512-BF16) needs Linear in_features divisible by {BLOCKSIZE} and out_features "
            f"by {BLOCK_N}{where}; load the model in 8-bit (model.quantization: 8bit) or without quantization")


def is_packing_error(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by bitsandbytes' AVX512-BF16 4-bit repack or kernel."""
    if not isinstance(exc, (RuntimeError, AssertionError, ValueError)):
        return False
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    return any(f.name in _PACKING_FRAMES for f in frames)


def explain(exc: BaseException) -> ModelError | None:
    """A :class:`ModelError` for a repack failure raised in a forward pass, else None."""
    return ModelError(shape_message()) if is_packing_error(exc) else None


@contextlib.contextmanager
def readable_errors() -> Iterator[None]:
    """Around a forward pass: a repack failure becomes a :class:`ModelError`; anything else passes through."""
    try:
        yield
    except (RuntimeError, AssertionError, ValueError) as exc:
        err = explain(exc)
        if err is None:
            raise
        raise err from exc
