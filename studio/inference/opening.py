"""Opening a chat engine through Studio's cache, with its stages reported: what the Chat tab's Load, Send and
Evaluate call (no gradio). Whether a load is needed is asked of the engine (:meth:`ChatEngine.serves`), never
guessed from its attributes."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from studio.errors import ModelError, StudioError


def libraries_loaded() -> bool:
    """torch, transformers and peft are imported in this process (the first load pays for them)."""
    return "peft" in sys.modules


def open_engine(studio: Any, source: str) -> tuple[Any, str]:
    """The shared ChatEngine with ``source``'s adapter active; returns ``(engine, adapter name)``.

    A run directory goes through ``Studio.chat_engine`` (cached; "busy" while a run trains on the GPU). An adapter
    folder or Hub id is added to the loaded engine (``load_adapter``, no reload of the base); with no engine loaded
    yet, pick a run first.

    Raises:
        ModelError: no adapter at ``source``, or nothing loaded to add a folder to.
        BusyError: a run trains on the GPU.
    """
    from studio import runs
    from studio.inference.sources import resolve_adapter_source

    if (Path(source) / runs.CONFIG).exists():
        engine = studio.chat_engine(source)
        run = Path(source).resolve()
        name = next((n for n, a in engine.adapters.items() if a.run_dir and Path(a.run_dir).resolve() == run),
                    engine.active)
        return engine, name
    path, run_dir = resolve_adapter_source(source)
    # Loads hold the engine-cache lock only, never the app lock (``Studio``'s lock order): a second browser's
    # Train status, Start and Stop don't wait for a base model or an adapter to load.
    with studio.chat_loading:
        with studio.lock:
            engine = studio.chat
        if engine is None and run_dir is not None:
            engine = studio.chat_engine(run_dir)
        if engine is None or getattr(engine, "model", None) is None:
            raise ModelError("Load a run first (pick it in the Run list and press Load); an adapter folder or Hub "
                             "id is then added on top of that run's base model")
        for name, info in engine.adapters.items():
            if info.source in (str(source), path):
                return engine, name
        return engine, engine.load_adapter(source)


def open_engine_reporting(studio: Any, source: str, progress: Callable[[float, str], None]) -> tuple[Any, str]:
    """``open_engine`` with its stages reported as ``progress(fraction, message)``: the libraries (first load in
    this process), the base model and the adapter (unless already loaded), ready. Raises what ``open_engine``
    raises."""
    from studio import runs
    from studio.config import load_config

    name = Path(source).name or source
    progress(0.0, f"opening {name}")
    engine = studio.chat
    cfg_file = Path(source) / runs.CONFIG
    if engine is None or (cfg_file.exists() and not engine.serves(source)):
        if not libraries_loaded():
            progress(0.05, "loading torch, transformers and peft (first time in this process)")
            import peft  # noqa: F401  (imports torch and transformers: the longest part of a first load)
        try:
            base = load_config(cfg_file).model.name_or_path if cfg_file.exists() else "the base model"
        except StudioError:
            base = "the base model"
        progress(0.4, f"loading {base} and the adapter of {name}")
    else:
        progress(0.4, f"adding the adapter {name} to the loaded {engine.base_model}")
    engine, adapter = open_engine(studio, source)
    progress(1.0, f"ready: {engine.base_model} on {engine.device} with adapter {adapter}")
    return engine, adapter
