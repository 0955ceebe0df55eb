"""The current presets (issue 23.11): their bundled shapes give the published parameter totals offline."""
from __future__ import annotations

import pytest

from studio.config import LoraConfig
from studio.modeling.params import count_parameters
from studio.modeling.presets import find_preset

PUBLISHED = {  # the model cards' (or the Hub's safetensors) totals, at the precision they are published
    "llama-3.2-1b-instruct": 1_235_814_400,
    "llama-3.2-3b-instruct": 3_212_749_824,
    "gemma-3-1b-it": 999_885_952,
    "phi-4-mini-instruct": 3_836_021_760,
    "qwen3-0.6b": "0.6B",
    "qwen3-1.7b": "1.7B",
    "qwen3-4b": "4.0B",
    "qwen3-8b": "8.2B",
    "smollm3-3b": "3.08B",
}


def _as_published(total: int, published: int | str) -> int | str:
    if isinstance(published, int):
        return total
    digits = len(published[:-1].split(".")[1])
    return f"{total / 1e9:.{digits}f}B"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_current_preset_counts_its_published_total(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = find_preset(name)
    assert preset is not None and preset.arch, name
    assert find_preset(preset.model) is preset  # the Hub id finds it too
    total = count_parameters(preset.arch, LoraConfig()).total
    assert _as_published(total, PUBLISHED[name]) == PUBLISHED[name], (name, f"{total:,}")
