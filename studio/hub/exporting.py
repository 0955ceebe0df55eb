"""Export a run to a folder the Hub (or anyone offline) can use: the adapter, or a merged 16-bit model.

Adapter export copies ``adapter_model.safetensors`` (with the embedding/lm_head rows when the run added tokens),
``adapter_config.json`` (its base pointed at the Hub id instead of a local cache path) and the tokenizer with the
chat template the run trained with, then writes README.md and the loss curve.

Merged export (:mod:`studio.hub.merge`) never merges into quantized weights and must give the adapter model's
greedy answer to a probe before it is saved.

A ``.studio-export.json`` manifest records what is in the folder so a retried push can reuse a merged export.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import HubError, StudioError
from studio.formatting import plural
from studio.hub.card import LOSS_CURVE, loss_curve_png, render_card
from studio.hub.facts import RunFacts, load_facts
from studio.hub.merge import ProbeCheck, export_merged

MANIFEST = ".studio-export.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "vocab.txt", "spiece.model")
Progress = Callable[[float, str], None]


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    merged: bool
    files: list[str] = field(default_factory=list)
    probe: ProbeCheck | None = None
    notes: list[str] = field(default_factory=list)
    """Things the user should know (a 4-bit base reloaded in 16-bit, a reused merge, a missing embedding row)."""
    reused: bool = False


def default_export_dir(run_dir: str | Path, merged: bool) -> Path:
    """Where a push exports before uploading: ``RUN/export/adapter`` or ``RUN/export/merged``."""
    return Path(run_dir) / "export" / ("merged" if merged else "adapter")


def _noop(fraction: float, message: str) -> None:
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_out_dir(out_dir: Path) -> dict[str, Any]:
    """Create ``out_dir``; refuse a non-empty folder that is not a previous export. Returns the old manifest."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HubError(f"{out_dir} is a file; choose a folder to export into")
    manifest: dict[str, Any] = {}
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise HubError(f"{out_dir} is not empty and is not a Fine-Tune Studio export; choose an empty or new "
                           "folder so nothing of yours is overwritten") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    return manifest


def _clear(out_dir: Path, keep: set[str] = frozenset()) -> None:
    for child in out_dir.iterdir():
        if child.name in keep:
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _check_adapter(facts: RunFacts) -> Path:
    adapter = facts.adapter_dir
    missing = [n for n in ADAPTER_FILES if not (adapter / n).is_file()]
    if missing:
        raise HubError(f"{facts.run_dir.name} has no saved adapter ({', '.join(missing)} missing in {adapter}): "
                       "train the run to the end, or stop it (stopping saves the adapter), then export")
    from studio.damage import check_adapter

    check_adapter(adapter, f"train {facts.run_dir.name} again, or resume it from a checkpoint, then export")
    return adapter


def embedding_keys(adapter_file: Path) -> list[str]:
    """Tensor names in an adapter file that hold full embedding / lm_head rows (saved when tokens were added)."""
    from safetensors import safe_open

    with safe_open(str(adapter_file), framework="pt") as fh:
        return [k for k in fh.keys() if ("embed_tokens" in k or "lm_head" in k or "wte" in k)
                and "lora_" not in k]


def _embedding_rows(adapter_file: Path) -> int | None:
    from safetensors import safe_open

    keys = embedding_keys(adapter_file)
    if not keys:
        return None
    with safe_open(str(adapter_file), framework="pt") as fh:
        return max(int(fh.get_slice(k).get_shape()[0]) for k in keys)  # full rows, not a trainable-token delta


def _write_card(out_dir: Path, facts: RunFacts, card: str | None, merged: bool, repo_id: str | None) -> list[str]:
    written = []
    png = loss_curve_png(facts)
    if png:
        (out_dir / LOSS_CURVE).write_bytes(png)
        written.append(LOSS_CURVE)
    text = card if card is not None else render_card(facts.run_dir, repo_id=repo_id, merged=merged, facts=facts)
    (out_dir / "README.md").write_text(text, encoding="utf-8")
    written.append("README.md")
    return written


def _export_adapter(facts: RunFacts, out_dir: Path, notes: list[str], progress: Progress) -> list[str]:
    adapter = _check_adapter(facts)
    written = []
    progress(0.2, "copying the adapter")
    shutil.copyfile(adapter / "adapter_model.safetensors", out_dir / "adapter_model.safetensors")
    written.append("adapter_model.safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    # The model id as configured (a Hub id, the demo id, or the user's folder), not the cache folder it resolved to.
    config["base_model_name_or_path"] = facts.base_id
    config["revision"] = facts.config.model.revision or config.get("revision")
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n",
                                                 encoding="utf-8")
    written.append("adapter_config.json")
    progress(0.5, "writing the tokenizer")
    written += _export_tokenizer(facts, out_dir)
    tokenizer_len = _tokenizer_len(out_dir)
    rows = _embedding_rows(out_dir / "adapter_model.safetensors")
    base_vocab = _base_vocab(facts)
    if tokenizer_len and base_vocab and tokenizer_len > base_vocab and rows is None:
        notes.append(f"the tokenizer has {tokenizer_len - base_vocab} more tokens than the base model but the "
                     "adapter holds no embedding rows: retrain with a current Studio so the new rows are saved")
    elif rows:
        notes.append(f"the run added tokens: the adapter carries the resized embeddings ({plural(rows, 'row')})")
    return written


def _export_tokenizer(facts: RunFacts, out_dir: Path) -> list[str]:
    """The run's own tokenizer files (chat template included); rebuilt from the config for older runs."""
    adapter = facts.adapter_dir
    found = [n for n in TOKENIZER_FILES if (adapter / n).is_file()]
    if any(n in found for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        for name in found:
            shutil.copyfile(adapter / name, out_dir / name)
        return found
    from studio.modeling import find_preset, model_id
    from studio.modeling.tokenizer import load_tokenizer

    mcfg = facts.config.model
    preset = find_preset(mcfg.name_or_path)
    tok, _ = load_tokenizer(dataclasses.replace(mcfg, name_or_path=model_id(mcfg)),
                            pad_token=preset.pad_token if preset else None)
    before = {p.name for p in out_dir.iterdir()}
    tok.save_pretrained(out_dir)
    return sorted({p.name for p in out_dir.iterdir()} - before)


def _tokenizer_len(folder: Path) -> int | None:
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    vocab = data.get("model", {}).get("vocab")
    ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab or [])))
    ids |= {t["id"] for t in data.get("added_tokens", [])}
    return max(ids) + 1 if ids else None


def _base_vocab(facts: RunFacts) -> int | None:
    """The base model's vocabulary size when its config is on disk (no download)."""
    from studio.modeling.sources import resolve_model_path

    base = facts.base_id
    try:
        folder = Path(resolve_model_path(base)) if not facts.base_on_hub else None
        if folder is None:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(base, "config.json", revision=facts.config.model.revision)
            folder = Path(cached).parent if isinstance(cached, str) else None
        if folder is None or not (folder / "config.json").is_file():
            return None
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, StudioError):
        return None
    vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    return int(vocab) if vocab else None


# ------------------------------------------------------------------------------------------------- export
def phased(progress: Progress, phase: str) -> Progress:
    """``progress`` with each message named by its phase (``merge: loading the base model...``), so a status line
    says which of merge, convert, check or push is running; a message that already names it is left alone."""
    def report(fraction: float, message: str) -> None:
        progress(fraction, message if message.startswith(f"{phase}:") else f"{phase}: {message}")
    return report


def export(run_dir: str | Path, out_dir: str | Path, merged: bool = False, card: str | None = None, *,
           repo_id: str | None = None, max_shard_size: str | int = "2GB", dtype: str = "auto", device: str = "auto",
           probe: str | None = None, reuse: bool = False, progress: Progress | None = None) -> ExportResult:
    """Write a run's adapter (default) or merged model, its tokenizer, README.md and loss curve into ``out_dir``.

    Args:
        run_dir: the run directory.
        out_dir: an empty or new folder, or a previous export (its files are replaced).
        merged: fold the adapter into a 16-bit copy of the base instead of exporting the adapter.
        card: the README.md text (from :func:`render_card`, maybe edited); rendered when None.
        repo_id: the target repo, used in the rendered card's title and usage snippet.
        max_shard_size: largest safetensors shard of a merged model (the seed used "2GB").
        dtype: merge dtype: auto, bf16, fp16 or fp32 (never quantized).
        device: where to merge: auto, cuda or cpu.
        probe: the prompt whose greedy answer must match before and after merging.
        reuse: keep the weights of a previous export of the same adapter and kind (only README and curve rewritten).
        progress: ``callback(fraction, message)``.

    Raises:
        HubError: no adapter, a non-empty foreign ``out_dir``, or merged answers that differ.
    """
    progress = phased(progress or _noop, "merge" if merged else "export")
    facts = load_facts(run_dir)
    out_dir = Path(out_dir).expanduser()
    adapter_file = _check_adapter(facts) / "adapter_model.safetensors"
    old = _prepare_out_dir(out_dir)
    digest = _sha256(adapter_file)
    kind = "merged" if merged else "adapter"
    notes: list[str] = []
    result = ExportResult(path=out_dir, merged=merged, notes=notes)
    if reuse and old.get("complete") and old.get("kind") == kind and old.get("adapter_sha256") == digest and \
            all((out_dir / f).is_file() for f in old.get("weights", [])) and old.get("weights"):
        weights = list(old["weights"])
        result.reused = True
        notes.append(f"reused the {kind} weights already exported in {out_dir}")
        if old.get("probe"):
            result.probe = ProbeCheck(**old["probe"])
        _clear(out_dir, keep=set(weights) | {MANIFEST})
    else:
        _clear(out_dir)
        (out_dir / MANIFEST).write_text(json.dumps({"kind": kind, "complete": False}) + "\n", encoding="utf-8")
        if merged:
            weights, result.probe = export_merged(facts, adapter_file.parent, out_dir, notes, progress,
                                                  rows=_embedding_rows(adapter_file), dtype=dtype, device=device,
                                                  max_shard_size=max_shard_size, prompt=probe)
        else:
            weights = _export_adapter(facts, out_dir, notes, progress)
    progress(0.9, "writing the model card and loss curve")
    files = weights + _write_card(out_dir, facts, card, merged, repo_id)
    result.files = sorted(set(files))
    manifest = {"kind": kind, "complete": True, "run": facts.run_dir.name, "adapter_sha256": digest, "weights": weights,
                "files": result.files, "probe": dataclasses.asdict(result.probe) if result.probe else None,
                "notes": notes}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    progress(1.0, f"exported to {out_dir}")
    return result
