"""From a RunConfig to previews, statistics and the tokenized datasets the trainer consumes."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from studio.data.cache import Prepared
from studio.data.formats import ROLES, Detected, detect_format, resolve_mapping, to_messages
from studio.data.loading import load_source
from studio.data.render import RenderSpec, Rendered, make_spec, render
from studio.data.stats import DataStats, compute_stats
from studio.errors import DataError
from studio.formatting import plural

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from studio.config import DataConfig, RunConfig


@dataclass
class LoadedData:
    """All rows of the configured sources, with the resolved format and column mapping."""

    dataset: "Dataset"
    format: str
    mapping: dict[str, str]
    proposed: Detected

    @property
    def columns(self) -> list[str]:
        return list(self.dataset.column_names)


@dataclass
class Preview:
    """Rendered rows plus whole-dataset statistics."""

    format: str
    mapping: dict[str, str]
    columns: list[str]
    rows: list[Rendered]
    stats: DataStats
    full_lengths: list[int] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self.stats.warnings()


def _source_detect(ds: "Dataset", fmt: str, columns_override: dict[str, str]) -> tuple[str, dict[str, str], Detected]:
    first = ds[0] if len(ds) else {}
    proposed = detect_format(list(ds.column_names), first) if fmt == "auto" or not columns_override else None
    chosen = fmt if fmt != "auto" else proposed.format
    base = proposed.mapping if proposed is not None and proposed.format == chosen else {}
    mapping = resolve_mapping(chosen, list(ds.column_names), base, columns_override)
    return chosen, mapping, proposed or Detected(chosen, mapping)


Progress = Callable[[float, str], None]
"""``progress(fraction done in [0, 1], what is running)``: an optional hook for UIs (the Data tab's bar)."""


def _no_progress(fraction: float, message: str) -> None:
    return None


def load_data(cfg: "DataConfig", progress: Progress | None = None) -> LoadedData:
    """Load, map, mix (weights), shuffle and cap the configured sources.

    One source keeps its own columns (templates may name them). Several sources are reduced to the role columns
    of their common format (rows become chat messages when their formats differ) before concatenation.

    Args:
        cfg: the data section of a run.
        progress: optional ``callback(fraction, message)``, called once per source (fractions only grow).

    Raises:
        DataError: no sources, unreadable files, missing columns.
    """
    import datasets

    progress = progress or _no_progress
    if not cfg.sources:
        raise DataError("no dataset chosen: add a source (a local file or a Hub dataset id)")
    loaded = []
    for i, src in enumerate(cfg.sources):
        progress(0.9 * i / len(cfg.sources), f"loading {src.path}"
                 + (f" ({i + 1} of {plural(len(cfg.sources), 'source')})" if len(cfg.sources) > 1 else ""))
        ds = load_source(src)
        fmt, mapping, proposed = _source_detect(ds, cfg.format, src.columns)
        loaded.append((ds, fmt, mapping, proposed, src.weight))
    if len(loaded) == 1 and loaded[0][4] == 1.0:
        ds, fmt, mapping, proposed, _ = loaded[0]
    else:
        formats = {fmt for _, fmt, _, _, _ in loaded}
        target = formats.pop() if len(formats) == 1 else "messages"
        if target == "messages" and "text" in {f for _, f, _, _, _ in loaded}:
            raise DataError("can't mix plain-text sources with chat or prompt/completion sources; "
                            "set the same format for every source")
        parts = [_weighted(_to_roles(ds, fmt, mapping, target), w, cfg.seed) for ds, fmt, mapping, _, w in loaded]
        ds = datasets.concatenate_datasets(parts)
        fmt, mapping = target, {r: r for r in ROLES[target] if r in ds.column_names}
        proposed = Detected(fmt, mapping)
    ds = ds.shuffle(seed=cfg.seed) if len(cfg.sources) > 1 else ds
    if cfg.max_rows is not None and len(ds) > cfg.max_rows:
        ds = ds.select(range(cfg.max_rows))
    progress(1.0, f"loaded {plural(len(ds), 'row')} ({fmt} format)")
    return LoadedData(dataset=ds, format=fmt, mapping=mapping, proposed=proposed)


def _to_roles(ds: "Dataset", fmt: str, mapping: dict[str, str], target: str) -> "Dataset":
    if target == fmt:
        def fn(row):
            return {r: (row[c] if c in row else "") for r, c in mapping.items()}
        keep = [r for r in ROLES[fmt] if r in mapping]
    else:
        def fn(row):
            return {"messages": to_messages(fmt, row, mapping, None)}
        keep = ["messages"]
    out = ds.map(fn, remove_columns=[c for c in ds.column_names if c not in keep] if target != fmt
                 else list(ds.column_names))
    return out.select_columns(keep)


def _weighted(ds: "Dataset", weight: float, seed: int) -> "Dataset":
    import datasets

    whole, frac = int(weight), weight - int(weight)
    parts = [ds] * whole
    if frac > 0:
        n = int(round(len(ds) * frac))
        parts.append(ds.shuffle(seed=seed).select(range(n)))
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def spec_for(cfg: "RunConfig", loaded: LoadedData, tokenizer: Any) -> RenderSpec:
    """The render spec of a run; checks the template against the columns."""
    if cfg.data.format == "messages" or loaded.format == "messages":
        if cfg.data.template:
            raise DataError("chat (messages) rows are rendered with the chat template; clear the text template")
        if not getattr(tokenizer, "chat_template", None):
            raise DataError("chat rows need a chat template, and this model's tokenizer has none; set "
                            "model.chat_template to chatml")
    spec = make_spec(cfg.data, loaded.format, loaded.mapping, cfg.train.loss_on, cfg.train.max_length)
    spec.check_template(loaded.columns)
    return spec


def _row_figures(rendered: Rendered) -> dict[str, Any]:
    digest = hashlib.blake2b(rendered.text.encode("utf-8"), digest_size=8).digest()
    return {"full_length": rendered.full_length, "trained": rendered.trained_tokens,
            "kept": len(rendered.input_ids), "hash": int.from_bytes(digest, "little") >> 1}


def preview(cfg: "RunConfig", tokenizer: Any, n_rows: int = 5, loaded: LoadedData | None = None, *,
            progress: Progress | None = None) -> Preview:
    """Render the first ``n_rows`` rows and compute statistics over all rows.

    Args:
        cfg: the run's config (data, template, max_length, loss_on).
        tokenizer: the model's tokenizer.
        n_rows: rows to render for display.
        loaded: the already loaded data (loaded here when None).
        progress: optional ``callback(fraction, message)``: loading (when ``loaded`` is None), rendering the
            shown rows, tokenizing every row, statistics; fractions only grow and end at 1.0.
    """
    progress = progress or _no_progress
    if loaded is None:
        loaded = load_data(cfg.data, progress=lambda f, m: progress(0.3 * f, m))
    spec = spec_for(cfg, loaded, tokenizer)
    ds = loaded.dataset
    shown = min(n_rows, len(ds))
    progress(0.3, f"rendering {shown} row{'s' if shown != 1 else ''} for the preview")
    rows = [render(ds[i], tokenizer, spec, where=f"row {i + 1}") for i in range(shown)]
    progress(0.4, f"tokenizing all {plural(len(ds), 'row')} for the statistics")
    figures = _figures(ds, tokenizer, spec)
    progress(0.9, "computing the statistics")
    stats = _with_empty_answers(compute_stats(figures["full_length"], figures["trained"], figures["kept"],
                                              figures["hash"], spec.max_length), loaded)
    progress(1.0, f"previewed {shown} of {plural(len(ds), 'row')}")
    return Preview(format=loaded.format, mapping=loaded.mapping, columns=loaded.columns, rows=rows, stats=stats,
                   full_lengths=list(figures["full_length"]))


FIGURES = ("full_length", "trained", "kept", "hash")


def _render_batch(tokenizer: Any, spec: RenderSpec, with_ids: bool) -> Any:
    """A batched ``datasets.map`` function: render each row (the preview's call, without highlight pieces) into
    its figures and, ``with_ids``, its ``input_ids`` and ``completion_mask``. Batches of rows are converted at once
    instead of one dict per row (that per-row formatting was a fifth of the cold path's time)."""

    def fn(batch: dict[str, list], idxs: list[int]) -> dict[str, list]:
        keys = list(batch)
        out: dict[str, list] = {k: [] for k in (("input_ids", "completion_mask") if with_ids else ()) + FIGURES}
        for j, idx in enumerate(idxs):
            r = render({k: batch[k][j] for k in keys}, tokenizer, spec, where=f"row {idx + 1}", with_segments=False)
            if with_ids:
                out["input_ids"].append(r.input_ids)
                out["completion_mask"].append(r.loss_mask)
            for k, v in _row_figures(r).items():
                out[k].append(v)
        return out

    return fn


def _figures(ds: "Dataset", tokenizer: Any, spec: RenderSpec) -> dict[str, list]:
    out = ds.map(_render_batch(tokenizer, spec, with_ids=False), batched=True, batch_size=_BATCH_ROWS,
                 with_indices=True, remove_columns=list(ds.column_names), num_proc=_num_proc(len(ds)),
                 load_from_cache_file=False)
    return {k: _column(out, k) for k in FIGURES}


def _num_proc(n: int) -> int | None:
    cpus = os.cpu_count() or 1
    return min(cpus, 8) if n >= 20_000 and cpus > 1 else None


def prepare_datasets(cfg: "RunConfig", tokenizer: Any, loaded: LoadedData | None = None, *,
                     cache: bool | None = None) -> Prepared:
    """Render, tokenize, cut to max_length, drop rows with nothing to train, and split off the eval rows.

    The result has ``input_ids`` and ``completion_mask`` (the render's loss mask), which TRL turns into labels
    with ``completion_only_loss=True``: the mask the preview shows is the mask that is trained.

    Results are cached on disk by a fingerprint of (data, data config, tokenizer, max_length) -- see
    :mod:`studio.data.cache`; a second call with the same inputs loads them without reading or tokenizing the data.
    ``cache=False`` (or ``STUDIO_DATA_CACHE=0``) skips the cache.

    Raises:
        DataError: nothing left to train on.
    """
    from studio.data import cache as data_cache

    key = data_cache.dataset_key(cfg, tokenizer) if (data_cache.enabled() if cache is None else cache) else None
    if key is not None:
        hit = data_cache.load(key)
        if hit is not None:
            return hit
    prepared = _prepare_uncached(cfg, tokenizer, loaded)
    if key is not None:
        data_cache.save(key, prepared)
    return prepared


def _prepare_uncached(cfg: "RunConfig", tokenizer: Any, loaded: LoadedData | None) -> Prepared:
    loaded = loaded or load_data(cfg.data)
    spec = spec_for(cfg, loaded, tokenizer)
    train_raw, eval_raw = split_rows(cfg.data, loaded)
    def tokenize(ds: "Dataset") -> "Dataset":
        return ds.map(_render_batch(tokenizer, spec, with_ids=True), batched=True, batch_size=_BATCH_ROWS,
                      with_indices=True,
                      remove_columns=list(ds.column_names), num_proc=_num_proc(len(ds)),
                      desc="Rendering and tokenizing")

    train_tok = tokenize(train_raw)
    eval_tok = tokenize(eval_raw) if eval_raw is not None else None
    # per-row figures read back as whole Arrow columns: iterating ``ds[column]`` row by row costs seconds
    fig = {k: _column(train_tok, k) + (_column(eval_tok, k) if eval_tok is not None else []) for k in FIGURES}
    stats = _with_empty_answers(compute_stats(fig["full_length"], fig["trained"], fig["kept"], fig["hash"],
                                              spec.max_length), loaded)
    n_train = len(train_tok)
    train = _keep_trained(train_tok, fig["trained"][:n_train])
    eval_ds = _keep_trained(eval_tok, fig["trained"][n_train:]) if eval_tok is not None else None
    dropped = len(fig["trained"]) - len(train) - (len(eval_ds) if eval_ds is not None else 0)
    if len(train) == 0:
        raise DataError("no row has any trained token: check the response template, the column mapping, or "
                        "raise max_length")
    if eval_ds is not None and len(eval_ds) == 0:
        eval_ds = None
    return Prepared(train=train, eval=eval_ds, spec=spec, stats=stats, dropped_rows=dropped,
                    fingerprint=train_tok._fingerprint)


_BATCH_ROWS = 1000


def _with_empty_answers(stats: DataStats, loaded: LoadedData) -> DataStats:
    import dataclasses

    from studio.data.checks import empty_answers

    n, col = empty_answers(loaded.dataset, loaded.format, loaded.mapping)
    return dataclasses.replace(stats, empty_answer_rows=n, answer_column=col) if n else stats


def _column(ds: "Dataset", name: str) -> list:
    """A whole column as a Python list, through Arrow (respects an indices mapping)."""
    return ds.with_format("arrow")[name].to_pylist()


def _keep_trained(ds: "Dataset", trained: list[int]) -> "Dataset":
    """Rows with at least one trained token, as ``input_ids`` + ``completion_mask`` (no copy when all are kept)."""
    out = ds.select_columns(["input_ids", "completion_mask"])
    keep = [i for i, t in enumerate(trained) if t > 0]
    return out if len(keep) == len(trained) else out.select(keep)


def split_rows(cfg: "DataConfig", loaded: LoadedData) -> tuple["Dataset", "Dataset | None"]:
    """Raw train and held-out rows; the same seed always gives the same split (evaluation reuses it)."""
    ds = loaded.dataset
    if cfg.eval_fraction <= 0 or len(ds) < 10:
        return ds, None
    split = ds.train_test_split(test_size=cfg.eval_fraction, seed=cfg.seed)
    return split["train"], split["test"]
