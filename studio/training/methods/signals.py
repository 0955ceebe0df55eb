"""A method's logged signals in words: the CLI progress line's part and the labels charts use (no torch here)."""
from __future__ import annotations

from typing import Any


def progress_signal(metrics: dict[str, Any]) -> list[str]:
    """``["reward acc 75%", "margin +0.012"]`` for paired methods, ``["KL 0.001", "margin ..."]`` for KTO; nothing
    for SFT (its metrics have no rewards)."""
    parts = []
    if "rewards/accuracies" in metrics:
        parts.append(f"reward acc {100 * float(metrics['rewards/accuracies']):.0f}%")
    if "rewards/margins" in metrics:
        parts.append(f"margin {float(metrics['rewards/margins']):+.4f}")
    if "kl" in metrics:
        parts.append(f"KL {float(metrics['kl']):.4f}")
    return parts


def metric_labels(method: str) -> dict[str, str]:
    """Metric key -> human label of ``method`` (the registry's), for charts and tables."""
    from studio.training.methods import recipe

    return dict(recipe(method).metrics)
