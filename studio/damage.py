"""Damaged or cut files that Studio reads become one sentence naming the file and what to do.

``safetensors``, ``json``, ``torch.load`` and ``zipfile`` each say a damaged file their own way
(``SafetensorError: invalid header length``, ``JSONDecodeError``, ``PytorchStreamReader failed reading zip
archive``). :func:`is_damage` recognises them, :func:`reading` turns them into :class:`DamagedFileError`, and the
``check_*`` helpers test a file cheaply (a header, a zip directory) before a library reads it.
"""
from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

from studio.errors import DamagedFileError

_TORCH_SIGNS = ("PytorchStreamReader", "failed finding central directory", "not a ZIP archive",
                "unexpected EOF", "invalid load key", "Ran out of input", "file might be corrupted",
                "Error while deserializing header", "MetadataIncompleteBuffer", "incomplete metadata")


def is_damage(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says a file is cut or not what its name says."""
    import pickle

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "SafetensorError" or isinstance(
                exc, (json.JSONDecodeError, UnicodeDecodeError, EOFError, pickle.UnpicklingError,
                      zipfile.BadZipFile)):
            return True
        if isinstance(exc, (RuntimeError, OSError, ValueError)) and any(s in str(exc) for s in _TORCH_SIGNS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def damaged(path: str | Path, todo: str) -> DamagedFileError:
    """The one sentence: ``<path> is damaged or cut short; <todo>``."""
    return DamagedFileError(f"{path} is damaged or cut short (it can't be read); {todo}")


@contextlib.contextmanager
def reading(path: str | Path, todo: str) -> Iterator[None]:
    """Turn a damaged-file error raised inside the block into :func:`damaged` for ``path``."""
    try:
        yield
    except DamagedFileError:
        raise
    except Exception as exc:
        if is_damage(exc):
            raise damaged(path, todo) from None
        raise


def safetensors_ok(path: str | Path) -> bool:
    """The header parses and every tensor lies inside the file (safetensors checks both on open)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except Exception:  # noqa: BLE001 - SafetensorError, OSError: any of them means unreadable
        return False
    return True


def torch_file_ok(path: str | Path, *, crc: bool = True) -> bool:
    """A ``torch.save`` file (a zip archive) whose central directory (and, with ``crc``, every member) reads back."""
    try:
        with zipfile.ZipFile(path) as zf:
            return not crc or zf.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False


def json_ok(path: str | Path) -> bool:
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def first_damaged(folder: str | Path, *, json_names: tuple[str, ...] = (), crc: bool = True) -> Path | None:
    """The first unreadable file in ``folder``: its ``*.safetensors``, torch ``*.pt``/``*.pth``/``*.bin`` files and
    the JSON files named in ``json_names`` (the ones that exist); ``crc=False`` skips reading zip members."""
    folder = Path(folder)
    for name in json_names:
        if (folder / name).is_file() and not json_ok(folder / name):
            return folder / name
    for path in sorted(folder.glob("*.safetensors")):
        if not safetensors_ok(path):
            return path
    for pattern in ("*.pt", "*.pth", "*.bin"):
        for path in sorted(folder.glob(pattern)):
            if not torch_file_ok(path, crc=crc):
                return path
    return None


def check_adapter(folder: str | Path, todo: str) -> None:
    """Raise :func:`damaged` for an adapter folder whose ``adapter_config.json`` or weights can't be read."""
    folder = Path(folder)
    if folder.is_dir():
        bad = first_damaged(folder, json_names=("adapter_config.json",))
        if bad is not None:
            raise damaged(bad, todo)


def check_weights(folder: str | Path, todo: str) -> None:
    """Raise :func:`damaged` for a model folder whose config.json or weights can't be read."""
    folder = Path(folder)
    if folder.is_dir():
        bad = first_damaged(folder, json_names=("config.json", "model.safetensors.index.json"))
        if bad is not None:
            raise damaged(bad, todo)


def resume_skipped(checkpoints: list[Path], chosen: Path | None) -> str:
    """The sentence a resume says when checkpoints newer than ``chosen`` can't be read ('' when none were skipped).
    """
    if chosen is None:
        return ""
    newer = [p for p in checkpoints if int(p.name.split("-")[-1]) > int(chosen.name.split("-")[-1])]
    if not newer:
        return ""
    names = ", ".join(p.name for p in newer)
    return (f"{names} {'is' if len(newer) == 1 else 'are'} damaged or incomplete; resuming from {chosen.name}, "
            "the last complete checkpoint")
