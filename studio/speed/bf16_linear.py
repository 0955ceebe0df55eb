"""A bf16 base on the CPU whose residual stream stays fp32.

With the whole frozen base in bf16, every layer's output is bf16 and peft adds the LoRA update to it in bf16: an
update smaller than half a bf16 step of the output (about 0.2 % of it) is rounded away, so early in training the
forward pass barely sees what the adapter learned. Measured on SmolLM2 (``studio bench train --setup uniform
--precision bf16 --steps 20``): the loss lagged fp32's by 1.7 % on average, 3.7 % at most.

Here every frozen bf16 linear layer but the LM head multiplies in bf16 and returns fp32, so the LoRA update is added
in fp32, and the residual stream and what reads the projections (attention, the MLP's product) see it (same run:
0.08 % on average, 0.21 % at most). Fp32 outputs only where a layer writes the residual stream (``o_proj``,
``down_proj``) measured 1.2 % apart: the other projections' updates matter too. Each layer casts its input to bf16
itself, the head included, so the model also runs outside autocast (generation, evaluation); the LM head's output is
left as it was (the loss computes the head in fp32, :mod:`studio.speed.loss`).
"""
from __future__ import annotations

from typing import Any


def _linear_forward(layer: Any, fp32_out: bool) -> Any:
    import torch

    linear = torch.nn.functional.linear

    def forward(x: Any) -> Any:
        weight, bias = layer.weight, layer.bias
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = linear(x.to(weight.dtype), weight, bias.to(weight.dtype) if bias is not None else None)
        return out.float() if fp32_out else out

    return forward


def keep_residual_fp32(model: Any) -> dict[str, int]:
    """Patch ``model`` (a loaded bf16 base, before its adapter: peft keeps each layer as its ``base_layer``) as the
    module docstring says. Returns how many linear layers now return fp32 (``fp32_out``) and bf16 (``bf16_out``: the
    LM head)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    counts = {"fp32_out": 0, "bf16_out": 0}
    for module in model.modules():
        if type(module) is not torch.nn.Linear or module.weight.dtype != torch.bfloat16:
            continue
        fp32_out = module is not head
        module.forward = _linear_forward(module, fp32_out)
        counts["fp32_out" if fp32_out else "bf16_out"] += 1
    return counts
