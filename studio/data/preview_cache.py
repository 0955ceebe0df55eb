"""Loaded datasets, column lists and tokenizers, reused while a user edits templates (``functools.lru_cache``).

One cache per app (the Data tab creates it), never at module level. Sharing it between browser sessions is safe:
each entry is keyed by everything its value depends on (source paths with file size and mtime, format, row cap,
seed; model id, revision and chat-template choice), and the values are only read (the loaded dataset is an
immutable Arrow table, the preview renders with the tokenizer without changing it), so every session gets what
it would have computed itself.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.config import DataConfig, RunConfig


@dataclass(frozen=True)
class _Keyed:
    """An ``lru_cache`` argument hashed and compared by ``key`` alone; ``make`` builds the value on a miss."""

    key: tuple
    make: Callable[[], Any] = dataclasses.field(compare=False, hash=False)


def _build(arg: _Keyed) -> Any:
    return arg.make()


class PreviewCache:
    """Three small LRU caches (``size`` entries each); ``lru_cache`` keeps its bookkeeping thread-safe."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._data = functools.lru_cache(maxsize=size)(_build)
        self._columns = functools.lru_cache(maxsize=size)(_build)
        self._tokenizers = functools.lru_cache(maxsize=size)(_build)

    def loaded(self, data: DataConfig, progress: Callable[[float, str], None] | None = None) -> Any:
        """``studio.data.load_data`` for ``data`` (cached by sources, format, row cap and seed); ``progress``
        hears about a load, not a cache hit."""
        from studio.data import load_data

        key = (sources_key(data), data.format, data.max_rows, data.seed)
        return self._data(_Keyed(key, lambda: load_data(data, progress=progress)))

    def columns(self, data: DataConfig) -> list[str]:
        """Column names of the first source (to offer in the mapping dropdowns even when mapping fails)."""
        from studio.data import load_source

        src = data.sources[0]
        key = sources_key(DataConfig(sources=[dataclasses.replace(src, columns={})]))
        return list(self._columns(_Keyed(key, lambda: tuple(load_source(src).column_names))))

    def tokenizer(self, cfg: RunConfig, progress: Any = None) -> Any:
        """The tokenizer of the chosen model (preset pad token and chat-template choice applied); ``progress``
        hears about a first GGUF dequantization."""
        from studio.modeling import find_preset, model_id
        from studio.modeling.tokenizer import load_tokenizer

        m = cfg.model
        preset = find_preset(m.name_or_path)

        def make() -> Any:
            tok, _ = load_tokenizer(dataclasses.replace(m, name_or_path=model_id(m)),
                                    pad_token=preset.pad_token if preset else None, progress=progress)
            return tok

        return self._tokenizers(_Keyed((model_id(m), m.revision, m.chat_template, m.trust_remote_code), make))


def sources_key(data: DataConfig) -> tuple:
    """What a load depends on: each source's path, split, name, columns and weight, and a file's mtime and size."""
    out = []
    for s in data.sources:
        p = Path(s.path).expanduser()
        stamp = (p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
        out.append((s.path, s.split, s.name, tuple(sorted(s.columns.items())), s.weight, stamp))
    return tuple(out)
