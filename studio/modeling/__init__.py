"""Model setup: presets (data under assets/presets/), quantization, attention choice, loading, LoRA, memory estimate.

Heavy imports (torch, transformers, peft) happen inside the functions that need them. The names below are
re-exported so ``from studio.modeling import ...`` keeps working; each lives in the submodule named beside it.
"""
from __future__ import annotations

from studio.modeling.attention import _cuda_capability, _flash_attn_version, choose_attention
from studio.modeling.devices import compute_dtype, resolve_device
from studio.modeling.loading import (
    Loaded,
    _explain_load,
    _from_pretrained,
    add_lora,
    base_tokenizer,
    describe_loaded,
    load_base,
    lora_config,
    quantization_config,
)
from studio.modeling.memory import (
    GB,
    Arch,
    MemoryEstimate,
    _linear_shapes,
    _model_config_for,
    _size,
    arch_of,
    device_memory,
    estimate_memory,
)
from studio.modeling.presets import (
    PRESETS_DIR,
    Preset,
    _load_presets,
    _with_id,
    apply_preset,
    find_preset,
    list_presets,
    model_id,
)

__all__ = [
    "GB", "PRESETS_DIR", "Arch", "Loaded", "MemoryEstimate", "Preset",
    "add_lora", "apply_preset", "arch_of", "base_tokenizer", "choose_attention", "compute_dtype", "describe_loaded",
    "device_memory", "estimate_memory", "find_preset", "list_presets", "load_base", "lora_config", "model_id",
    "quantization_config", "resolve_device",
]
