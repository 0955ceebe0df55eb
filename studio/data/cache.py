"""Tokenized datasets cached on disk, so the second run with the same data starts training at once.

The key is a fingerprint of everything the tokenized rows depend on:

* the data: each source's file content hash (plus size and mtime), a folder's file list with sizes and mtimes, or a
  Hub id with split, configuration name and revision (the commit it resolves to now when the Hub answers, else the
  configured revision);
* how rows become text: the whole ``data`` config section (format, mapping, template, response template, system
  prompt, eval split, row cap, seed), ``train.max_length`` and ``train.loss_on``;
* the tokenizer: its serialized vocabulary/merges, chat template and special tokens;
* the rendering code itself (studio/data/*.py and templates.py), so a fix to rendering never reads stale rows.

Entries live under ``<cache root>/datasets/<key>/`` (``train/``, ``eval/``, ``meta.json``), written to a
temporary folder and renamed into place, so a crash or a second process never sees half an entry.
``STUDIO_DATA_CACHE=0`` turns the cache off.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.data.render import RenderSpec
from studio.data.stats import DataStats
from studio.paths import cache_root

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

CACHE_VERSION = 1
HASH_CONTENT_UP_TO = 2 * 1024 ** 3
"""Files up to this size are content-hashed; larger ones are keyed by size and mtime only."""
_CODE_FILES = ("data/render.py", "data/chat_masks.py", "data/prepare.py", "data/formats.py", "data/loading.py",
               "data/stats.py", "templates.py")


@dataclass
class Prepared:
    """Tokenized splits (``input_ids`` + ``completion_mask``) ready for TRL's SFTTrainer."""

    train: "Dataset"
    eval: "Dataset | None"
    spec: RenderSpec
    stats: DataStats
    dropped_rows: int
    fingerprint: str


def enabled() -> bool:
    """False when ``STUDIO_DATA_CACHE`` is 0/false/off."""
    return os.environ.get("STUDIO_DATA_CACHE", "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    return cache_root() / "datasets"


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
    return h.hexdigest()


def file_fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    out: dict[str, Any] = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if st.st_size <= HASH_CONTENT_UP_TO:
        h = hashlib.blake2b(digest_size=16)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out["blake2b"] = h.hexdigest()
    return out


def source_fingerprint(src: Any) -> dict[str, Any]:
    """What one ``SourceConfig`` reads, without loading it."""
    p = Path(src.path).expanduser()
    base = {"split": src.split, "name": src.name, "columns": dict(src.columns), "weight": src.weight}
    if p.is_file():
        return {"kind": "file", **file_fingerprint(p), **base}
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        listing = [(str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return {"kind": "folder", "path": str(p.resolve()), "files": listing, **base}
    return {"kind": "hub", "path": src.path, "revision": hub_revision(src.path, getattr(src, "revision", None)),
            **base}


HUB_REVISION_TIMEOUT_S = 5.0


def hub_revision(repo_id: str, revision: str | None) -> str:
    """The commit a Hub dataset's ``revision`` points at now, so a dataset that changed is tokenized again.

    Offline, or when the Hub can't be asked, the configured revision (``main`` when none) stands in.
    """
    configured = revision or "main"
    try:
        from huggingface_hub import HfApi, constants

        if constants.HF_HUB_OFFLINE:
            return configured
        info = HfApi().dataset_info(repo_id, revision=revision, timeout=HUB_REVISION_TIMEOUT_S)
        return getattr(info, "sha", None) or configured
    except Exception:  # noqa: BLE001 - no answer: key by the configured revision
        return configured


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what tokenization depends on: vocabulary/merges/normalizer, chat template, special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        core = backend.to_str().encode("utf-8")
    else:
        core = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode("utf-8")
    extra = {"class": type(tokenizer).__name__, "chat_template": getattr(tokenizer, "chat_template", None),
             "special": {k: str(v) for k, v in (getattr(tokenizer, "special_tokens_map", {}) or {}).items()},
             "add_bos": getattr(tokenizer, "add_bos_token", None), "add_eos": getattr(tokenizer, "add_eos_token", None),
             "len": len(tokenizer)}
    return _digest(core, json.dumps(extra, sort_keys=True, default=str).encode("utf-8"))


def code_fingerprint() -> str:
    root = Path(__file__).resolve().parent.parent
    return _digest(*[(root / f).read_bytes() for f in _CODE_FILES if (root / f).is_file()])


def dataset_key(cfg: Any, tokenizer: Any) -> str | None:
    """The cache key of ``prepare_datasets(cfg, tokenizer)``, or None when it can't be computed (no sources)."""
    if not cfg.data.sources:
        return None
    try:
        sources = [source_fingerprint(s) for s in cfg.data.sources]
    except OSError:
        return None
    data = dataclasses.asdict(cfg.data)
    blob = {"version": CACHE_VERSION, "data": data, "sources": sources, "max_length": cfg.train.max_length,
            "loss_on": cfg.train.loss_on, "tokenizer": tokenizer_fingerprint(tokenizer), "code": code_fingerprint()}
    return _digest(json.dumps(blob, sort_keys=True, default=str).encode("utf-8"))


def load(key: str) -> "Prepared | None":
    """The cached ``Prepared`` for ``key``, or None (missing or unreadable entries are a miss)."""
    folder = cache_dir() / key
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        import datasets

        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION:
            return None
        train = datasets.load_from_disk(str(folder / "train"))
        eval_ds = datasets.load_from_disk(str(folder / "eval")) if (folder / "eval").is_dir() else None
        return Prepared(train=train, eval=eval_ds, spec=RenderSpec(**meta["spec"]), stats=DataStats(**meta["stats"]),
                        dropped_rows=int(meta["dropped_rows"]), fingerprint=meta["fingerprint"])
    except Exception:  # noqa: BLE001 - a broken entry is a miss; it is rewritten after tokenizing
        return None


def save(key: str, prepared: "Prepared") -> Path | None:
    """Write ``prepared`` under ``key`` atomically; returns the folder, or None if the cache is not writable."""
    root = cache_dir()
    final = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        from datasets.utils import logging as ds_logging

        quiet = ds_logging.is_progress_bar_enabled()
        if quiet:
            ds_logging.disable_progress_bar()
        try:
            prepared.train.save_to_disk(str(tmp / "train"))
            if prepared.eval is not None:
                prepared.eval.save_to_disk(str(tmp / "eval"))
        finally:
            if quiet:
                ds_logging.enable_progress_bar()
        meta = {"version": CACHE_VERSION, "spec": dataclasses.asdict(prepared.spec),
                "stats": prepared.stats.to_dict(), "dropped_rows": prepared.dropped_rows,
                "fingerprint": prepared.fingerprint, "rows": len(prepared.train)}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final
    except OSError:
        shutil.rmtree(locals().get("tmp", root / ".none"), ignore_errors=True)
        return None


def clear() -> int:
    """Delete every cached dataset; returns how many entries were removed."""
    root = cache_dir()
    if not root.is_dir():
        return 0
    n = 0
    for entry in root.iterdir():
        shutil.rmtree(entry, ignore_errors=True)
        n += 1
    return n
