"""The data layer: load, detect, map, render, measure.

``render(row) -> Rendered(text, input_ids, loss_mask)`` is the one templating contract: the preview, the
trainer and the chat playground all use it; ``render_pair(row) -> RenderedPair`` is its preference twin
(:mod:`studio.data.pairs`, previewed by :mod:`studio.data.pair_preview`, prepared by :mod:`studio.data.pair_prepare`).
"""
from studio.data.formats import ROLES, Detected, detect_format, normalize_messages, resolve_mapping, to_messages
from studio.data.loading import load_source, peek_rows
from studio.data.prepare import (LoadedData, Prepared, Preview, load_data, prepare_datasets, preview, spec_for,
                                 split_rows)
from studio.data.render import RenderSpec, Rendered, make_spec, render, segments, trained_text
from studio.data.stats import DataStats, compute_stats
from studio.data.pairs import RenderedAnswer, RenderedPair, pair_messages, render_pair, unpair

__all__ = [
    "ROLES", "Detected", "detect_format", "normalize_messages", "resolve_mapping", "to_messages", "load_source",
    "peek_rows", "LoadedData", "Prepared", "Preview", "load_data", "prepare_datasets", "preview", "spec_for",
    "split_rows", "RenderSpec", "Rendered", "make_spec", "render", "segments", "trained_text", "DataStats",
    "compute_stats", "RenderedAnswer", "RenderedPair", "pair_messages", "render_pair", "unpair",
]
