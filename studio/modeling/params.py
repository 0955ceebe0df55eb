"""Exact parameter counts of a model and its LoRA, from a copy built on the meta device (shapes, no memory).

``AutoModelForCausalLM.from_config`` under ``torch.device("meta")`` builds the real module tree without allocating
or reading a weight, and peft wraps it as training will (:func:`studio.modeling.add_lora`), so the counts are
what ``sum(p.numel() for p in model.parameters())`` gives on the loaded model, tied embeddings counted once.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamCounts:
    """Parameters of the base model and of its LoRA adapter."""

    total: int
    """Every base parameter (tied embeddings once)."""
    linear: int
    """Weights of the linear layers k-bit quantization replaces (every ``nn.Linear`` but the output head)."""
    lora: int
    """Trainable parameters once the adapter is added (LoRA matrices, DoRA magnitudes, trained token rows)."""
    lora_inputs: int
    """Sum of the input widths of the adapted layers (each keeps its dropped-out input for backward)."""


def transformers_config(model_config: Any) -> Any:
    """A transformers config from a config object or a mapping (a preset's ``arch``; ``model_type`` defaults to
    llama)."""
    if not isinstance(model_config, dict):
        return model_config
    from studio.imports import ml_libs

    ml_libs()  # the Model tab's estimate and the Data tab's preview may import transformers at the same moment
    from transformers import AutoConfig

    spec = {k: v for k, v in model_config.items() if k != "gated_mlp"}
    return AutoConfig.for_model(spec.pop("model_type", "llama"), **spec)


def count_parameters(model_config: Any, lora: Any) -> ParamCounts:
    """Count on a meta-device build of ``model_config`` with the LoRA section ``lora`` (a ``LoraConfig``)."""
    config = transformers_config(model_config)
    lora_key = json.dumps(dataclasses.asdict(lora), sort_keys=True)
    return _count(config.to_json_string(use_diff=False), type(config).__name__, lora_key)


@functools.lru_cache(maxsize=32)
def _count(config_json: str, config_class: str, lora_key: str) -> ParamCounts:
    """Cached per process: the arguments are the whole key and the result is frozen (nothing to share wrongly)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    from studio.config import LoraConfig, RunConfig
    from studio.modeling.loading import add_lora

    config = getattr(transformers, config_class).from_dict(json.loads(config_json))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    cfg = RunConfig(lora=LoraConfig(**json.loads(lora_key)))
    with torch.device("meta"):
        peft_model = add_lora(model, cfg)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    from peft.tuners.lora import LoraLayer

    inputs = sum(m.in_features for m in peft_model.modules() if isinstance(m, LoraLayer))
    return ParamCounts(total=int(total), linear=int(linear), lora=int(trainable), lora_inputs=int(inputs))
