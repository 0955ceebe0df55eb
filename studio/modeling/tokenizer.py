"""Load a model's tokenizer with the pad-token fix and the chat-template choice applied."""
from __future__ import annotations

from typing import Any

from studio.errors import ModelError, hub_unreachable
from studio.templates import CHATML_TEMPLATE

CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def load_tokenizer(model_cfg: Any, pad_token: str | None = None, progress: Any = None) -> tuple[Any, int]:
    """Load the tokenizer for ``model_cfg`` and return ``(tokenizer, n_added_tokens)``.

    ``pad_token``: a preset's pad token (Falcon has none: the seed used ``>>SUFFIX<<``); otherwise eos.
    A ``chatml`` choice installs ChatML (with ``{% generation %}`` markers) and adds its tokens when missing,
    in which case the model's embeddings must be resized and saved with the adapter. ``progress(fraction,
    message)`` hears about a first GGUF dequantization.

    Raises:
        ModelError: the model id or folder can't be found or has no tokenizer.
    """
    from studio.modeling.sources import resolve_model_path
    from studio.imports import ml_libs

    AutoTokenizer = ml_libs()[0].AutoTokenizer

    path = resolve_model_path(model_cfg.name_or_path, progress)
    check_model_files(path, model_cfg.name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=model_cfg.revision,
                                            trust_remote_code=model_cfg.trust_remote_code)
    except OSError as exc:
        raise ModelError(_explain_missing(model_cfg.name_or_path, exc)) from None
    except ValueError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelError(f"{model_cfg.name_or_path}: the tokenizer could not be loaded ({detail})") from None
    added = 0
    if model_cfg.chat_template == "chatml":
        missing = [t for t in CHATML_TOKENS if t not in tok.get_vocab()]
        if missing:
            added += tok.add_special_tokens({"additional_special_tokens": missing})
        tok.chat_template = CHATML_TEMPLATE
        if tok.eos_token is None or tok.eos_token not in CHATML_TOKENS and missing:
            tok.eos_token = "<|im_end|>"
    elif model_cfg.chat_template == "none":
        tok.chat_template = None
    if tok.pad_token is None:
        if pad_token and pad_token in tok.get_vocab():
            tok.pad_token = pad_token
        elif pad_token:
            added += tok.add_special_tokens({"pad_token": pad_token})
        else:
            tok.pad_token = tok.eos_token
    if tok.eos_token is None:
        raise ModelError(f"{model_cfg.name_or_path}: the tokenizer has no end-of-sequence token; set one")
    return tok, added


def _explain_missing(name: str, exc: Exception) -> str:
    from pathlib import Path

    if Path(name).expanduser().exists():
        return f"{name} has no tokenizer files (tokenizer.json or tokenizer_config.json)"
    text = str(exc)
    if hub_unreachable(exc):
        return (f"can't reach the Hugging Face Hub to download {name!r}; use a local folder or the offline demo "
                f"model 'studio/demo-tiny'")
    return f"model {name!r} was not found locally or on the Hub ({text.splitlines()[0][:160]})"


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
JSON_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json",
              "generation_config.json")


def check_model_files(path: Any, name: str) -> None:
    """Name a broken JSON file of a local model folder (a cut download, a hand edit) before loading it.

    Raises:
        ModelError: ``<folder>/config.json is not valid JSON (line 3, column 5: ...)``.
    """
    import json
    from pathlib import Path

    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        return
    for fname in JSON_FILES:
        f = folder / fname
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ModelError(f"{name}: {fname} is not UTF-8 text; re-download the model or repair the file") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"{name}: {fname} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg}); re-download the model or repair the file") from None
        if not isinstance(data, dict):
            raise ModelError(f"{name}: {fname} must hold a JSON object, got {type(data).__name__}")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(f"{name} has no tokenizer files (tokenizer.json or tokenizer_config.json)")
