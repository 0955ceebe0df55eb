"""Gradient checkpointing policy: ``train.gradient_checkpointing`` auto | true | false.

Recomputing activations costs about a third more compute (one extra forward per step), so ``auto`` turns it off
whenever the memory estimate *without* it fits the device with a safety margin, and on otherwise. When on, it is
non-reentrant: no ``enable_input_require_grads`` hack, and it works with frozen (k-bit) embeddings.
"""
from __future__ import annotations

from typing import Any

from studio.errors import ConfigError

WORDS: dict[str, Any] = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}
"""Every way to write the setting (YAML, ``--set``, the Train tab's radio) -> ``"auto"``, True or False."""
SHOWN = ("auto", "on", "off")
"""The words the UI offers, in order."""
SAFETY_MARGIN = 0.20
"""Share of device memory kept free when ``auto`` decides (allocator fragmentation, long outlier batches)."""
CHECKPOINT_KWARGS = {"use_reentrant": False}


def parse_setting(value: Any) -> Any:
    """``"auto"``, True or False from a bool or one of :data:`WORDS` (any case).

    Raises:
        ConfigError: any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in WORDS:
        return WORDS[value.strip().lower()]
    raise ConfigError(f"train.gradient_checkpointing must be auto, true or false; got {value!r}")


def setting_word(value: Any) -> str:
    """The word of :data:`SHOWN` for a setting (``"auto"``, True/False or any of :data:`WORDS`)."""
    setting = parse_setting(value)
    return "auto" if setting == "auto" else ("on" if setting else "off")


def decide_checkpointing(setting: Any, estimate: Any = None) -> tuple[bool, str]:
    """Whether to checkpoint activations, and why.

    Args:
        setting: ``"auto"``, True or False (``TrainConfig.gradient_checkpointing`` after validation).
        estimate: a :class:`studio.modeling.MemoryEstimate` for the planned micro-batch (any
            ``gradient_checkpointing``: both activation figures are in it); required for ``auto``.

    Returns:
        ``(on, reason)``
    """
    if setting is True:
        return True, "gradient checkpointing on as configured (non-reentrant)"
    if setting is False:
        return False, "gradient checkpointing off as configured"
    if estimate is None:
        return True, "gradient checkpointing on (auto, no memory estimate available: the safe choice)"
    if estimate.device == "cpu":
        return False, "gradient checkpointing off (auto: CPU run, memory is system RAM)"
    margin = SAFETY_MARGIN  # one margin for every caller (the engine, the estimate, the benchmarks)
    base = estimate.total_gb - estimate.activations_gb
    without = base + estimate.activations_no_ckpt_gb
    budget = (1 - margin) * estimate.device_gb
    if without <= budget:
        return False, (f"gradient checkpointing off (auto): ~{without:.1f} GB without it fits "
                       f"{budget:.1f} GB ({1 - margin:.0%} of {estimate.device_gb:.0f} GB); saves ~25% step time")
    with_ = base + estimate.activations_ckpt_gb
    return True, (f"gradient checkpointing on (auto, non-reentrant): ~{without:.1f} GB without it exceeds "
                  f"{budget:.1f} GB ({1 - margin:.0%} of {estimate.device_gb:.0f} GB); ~{with_:.1f} GB with it")
