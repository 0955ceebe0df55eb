"""Model presets (data under assets/presets/): Preset, list/find/apply, and the Hub id a model setting stands for."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import yaml

from studio.errors import ModelError
from studio.paths import ASSETS

PRESETS_DIR = ASSETS / "presets"


@dataclass(frozen=True)
class Preset:
    """What a model family needs, learned the hard way (pad token, chat template, LoRA, attention quirks).

    ``config`` is a partial RunConfig mapping (model/lora/train sections) that :func:`apply_preset` layers under
    the user's choices; ``arch`` lets :func:`estimate_memory` work before anything is downloaded.
    """

    name: str
    model: str
    family: str = ""
    description: str = ""
    pad_token: str | None = None
    license: str | None = None
    """The base model's licence id on the Hub (used by the model card when the base card isn't on disk)."""
    notes: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    arch: dict[str, Any] = field(default_factory=dict)
    attention: dict[str, Any] = field(default_factory=dict)
    offline_gguf: dict[str, str] = field(default_factory=dict)
    """``{package, file}``: a GGUF an installed Python package ships, used when the Hub is out of reach."""


@functools.lru_cache(maxsize=1)
def _load_presets() -> tuple[Preset, ...]:
    out = []
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        raw["notes"] = tuple(raw.get("notes") or ())
        for key in ("config", "arch", "attention", "offline_gguf"):
            raw[key] = raw.get(key) or {}
        out.append(Preset(**raw))
    return tuple(out)


def list_presets() -> list[Preset]:
    """All presets, the demo model first."""
    return sorted(_load_presets(), key=lambda p: (p.name != "demo-tiny", p.name))


def find_preset(name_or_path: str) -> Preset | None:
    """The preset named ``name_or_path`` or whose Hub id it is (case-insensitive), else None."""
    key = name_or_path.strip().lower()
    for p in _load_presets():
        if key in (p.name.lower(), p.model.lower()):
            return p
    return None


def apply_preset(cfg: Any, preset: Preset | str) -> Any:
    """A copy of RunConfig ``cfg`` with the preset's model/lora/train settings and its Hub id."""
    from studio.config import RunConfig

    preset = find_preset(preset) if isinstance(preset, str) else preset
    if preset is None:
        raise ModelError("unknown preset")
    raw = cfg.to_dict()
    for section, values in preset.config.items():
        raw[section].update(values)
    raw["model"]["name_or_path"] = preset.model
    return RunConfig.from_dict(raw)


def model_id(model_cfg: Any) -> str:
    """The Hub id or folder that ``model_cfg.name_or_path`` stands for (a preset name maps to its Hub id)."""
    preset = find_preset(model_cfg.name_or_path)
    return preset.model if preset else model_cfg.name_or_path


def _with_id(model_cfg: Any) -> Any:
    mid = model_id(model_cfg)
    return model_cfg if mid == model_cfg.name_or_path else dataclasses.replace(model_cfg, name_or_path=mid)
