"""k-bit (QLoRA) preparation without the blanket fp32 upcast.

peft's ``prepare_model_for_kbit_training`` casts *every* non-quantized parameter (embeddings, every norm, the LM
head) to fp32. With a bf16 compute dtype that buys nothing and costs a lot: a Llama-style RMSNorm returns
``weight * x.to(input_dtype)``, so an fp32 norm weight promotes its output -- and from there the whole residual
stream -- to fp32: twice the activation memory, fp32 elementwise kernels, and a bf16->fp32 cast around every
quantized matmul (bitsandbytes computes in bf16 and casts back to the input's dtype).

What stability actually needs in fp32, and where it already happens:

* **Norm statistics**: the RMSNorm/LayerNorm forward upcasts to fp32 internally for the variance, whatever the
  weight's dtype. The weights are frozen, so their storage precision is never rounded by an update: keep bf16.
* **Loss / log-softmax**: TRL's chunked LM head computes the log-probabilities with fp32 accumulation; the frozen
  LM head weight can stay bf16 (and ``cast_lm_head_to_fp32`` exists in TRL if one ever wants it).
* **Embeddings**: frozen lookups, no arithmetic: bf16.
* **Trainable parameters** (LoRA A/B): the only tensors an optimizer rounds. peft creates them in fp32; TRL 1.16 then
  stores them in bf16 for quantized models, following the QLoRA paper. Either way that happens after this function
  and is not an upcast of the base model.
* **fp16 compute** is different: fp16 overflows (norm inputs, large activations), so there we keep peft's fp32
  upcast unchanged.

So with bf16 compute nothing of the frozen base model is kept in fp32; parameters that arrived in fp32 or fp16
(a checkpoint saved that way, or fp16 norms) are brought to bf16.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.speed.checkpointing import CHECKPOINT_KWARGS

QUANTIZED_PARAM_CLASSES = ("Params4bit", "Int8Params")


@dataclass(frozen=True)
class KbitPrep:
    """What :func:`prepare_kbit_model` did."""

    method: str
    """``studio-bf16`` (no upcast), ``peft-fp32`` (fp16 compute: peft's upcast), or ``none`` (not k-bit)."""
    fp32_params: int
    """Non-quantized parameters (elements) left in fp32 after preparation."""
    cast_params: int
    """Parameters (elements) whose dtype changed."""
    reason: str


def is_kbit(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def kbit_compute_dtype(model: Any) -> Any:
    """The dtype the quantized matmuls compute in: the 4-bit config's compute dtype, else (8-bit) the dtype of the
    model's non-quantized weights."""
    import torch

    qc = getattr(model.config, "quantization_config", None)
    dt = qc.get("bnb_4bit_compute_dtype") if isinstance(qc, dict) else getattr(qc, "bnb_4bit_compute_dtype", None)
    if isinstance(dt, str):
        dt = getattr(torch, dt.replace("torch.", ""), None)
    if dt is None:
        p = base_param(model)
        dt = p.dtype if p is not None else torch.float32
    return dt


def base_param(model: Any) -> Any:
    for p in model.parameters():
        if p.__class__.__name__ not in QUANTIZED_PARAM_CLASSES:
            return p
    return None


def fp32_param_count(model: Any) -> int:
    """Elements of non-quantized fp32 parameters (the test's yardstick for upcasting)."""
    import torch

    return sum(p.numel() for p in model.parameters()
               if p.__class__.__name__ not in QUANTIZED_PARAM_CLASSES and p.dtype == torch.float32)


def prepare_kbit_model(model: Any, *, compute_dtype: Any = None, gradient_checkpointing: bool = False) -> KbitPrep:
    """Prepare a bitsandbytes-quantized model for (Q)LoRA training, in place.

    Freezes every base parameter. With a bf16 (or fp32) compute dtype, non-quantized parameters are stored in the
    compute dtype (no fp32 upcast: see the module docstring for why that is safe). With fp16 compute, peft's
    ``prepare_model_for_kbit_training`` runs unchanged. Gradient checkpointing, when asked for, is non-reentrant,
    which needs no ``enable_input_require_grads`` hook.

    Args:
        model: a transformers model loaded with a ``BitsAndBytesConfig`` (anything else is left alone).
        compute_dtype: torch dtype of the matmuls; None reads it from the quantization config.
        gradient_checkpointing: turn non-reentrant checkpointing on.

    Returns:
        A :class:`KbitPrep` saying what was kept and cast.
    """
    import torch

    if not is_kbit(model):
        return KbitPrep("none", fp32_param_count(model), 0, "not a k-bit model: nothing to prepare")
    dtype = compute_dtype or kbit_compute_dtype(model)
    if dtype == torch.float16:
        from peft import prepare_model_for_kbit_training

        before = {n: p.dtype for n, p in model.named_parameters()}
        prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                        gradient_checkpointing_kwargs=dict(CHECKPOINT_KWARGS))
        cast = sum(p.numel() for n, p in model.named_parameters() if before.get(n) != p.dtype)
        return KbitPrep("peft-fp32", fp32_param_count(model), cast,
                        "fp16 compute: norms, embeddings and LM head upcast to fp32 (fp16 would overflow)")
    cast = 0
    for p in model.parameters():
        p.requires_grad_(False)
        if p.__class__.__name__ in QUANTIZED_PARAM_CLASSES:
            continue
        if p.is_floating_point() and p.dtype != dtype:
            cast += p.numel()
            p.data = p.data.to(dtype)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(CHECKPOINT_KWARGS))
    name = str(dtype).replace("torch.", "")
    return KbitPrep("studio-" + name, fp32_param_count(model), cast,
                    f"k-bit prep without fp32 upcast: norms, embeddings and LM head stay {name} "
                    "(norm statistics and the loss already run in fp32)")
