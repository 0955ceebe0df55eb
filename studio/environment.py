"""What a run ran on: package versions, Python, OS, device and GPU (``environment.json`` of a run folder)."""
from __future__ import annotations

import os
import platform
from typing import Any

from studio import runs

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "tokenizers",
            "flash-attn", "liger-kernel", "gradio")


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment_info(device: str) -> dict[str, Any]:
    """Versions, Python, OS, device and GPU (name, memory, capability), world size."""
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "packages": package_versions(), "device": device, "world_size": runs.world_size(),
                            "cpu_count": os.cpu_count(), "gpu": None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 1024 ** 3, 2),
                       "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                       "count": torch.cuda.device_count(), "cuda": torch.version.cuda}
    return info
