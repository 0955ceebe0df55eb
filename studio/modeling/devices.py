"""Device and compute dtype: which device ``auto`` means, which torch dtype to compute in.

torch is imported inside the functions.
"""
from __future__ import annotations

from typing import Any

from studio.errors import ModelError


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device is cuda but no CUDA GPU is visible; use auto or cpu")
    return device


def compute_dtype(model_cfg: Any, device: str) -> Any:
    """torch dtype for weights/compute: ``auto`` is bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    choice = model_cfg.compute_dtype
    if choice == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[choice]
