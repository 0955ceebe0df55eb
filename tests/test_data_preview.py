"""The Data tab's core without gradio: the preview as plain values, and the cache behind it."""
from __future__ import annotations

import os
import shutil

import pytest

from studio.config import RunConfig
from studio.data import presenter
from studio.data.presenter import build_preview
from studio.data.preview_cache import PreviewCache
from studio.paths import ASSETS


def _cfg(path, **data) -> RunConfig:
    return RunConfig.from_dict({"data": {"sources": [{"path": str(path)}], "format": "prompt_completion",
                                         "template": "{Problem}\n ### Solution: {Solution}",
                                         "response_template": "### Solution:", "max_rows": 30, **data},
                                "train": {"max_length": 64}})


@pytest.fixture
def counted_loads(monkeypatch):
    """How many times the cache really loaded a dataset."""
    import studio.data as data

    calls = []
    real = data.load_data

    def load(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "load_data", load)
    return calls


def test_preview_is_plain_values_with_trained_spans_lengths_and_stats():
    view = build_preview(PreviewCache(), _cfg(ASSETS / "datasets" / "linear_equations.csv"), 2)
    assert view.error is None and view.format == "prompt_completion"
    trained = "".join(text for text, label in view.highlighted if label == "trained")
    assert trained and "### Solution:" not in trained and "row 2" in "".join(t for t, _ in view.highlighted)
    assert len(view.lengths) == 30 and view.max_length == 64
    assert dict(view.stats_rows)["rows"] == 30
    assert view.question and view.question.startswith(("Solve", "Find", "What"))


def test_an_error_is_one_sentence_through_describe_and_the_bar_ends(tmp_path):
    calls = []
    view = build_preview(PreviewCache(), _cfg(tmp_path / "missing.csv"), 2, progress=lambda f, m: calls.append(f),
                         describe=lambda err: f"said: {err}")
    assert view.error.startswith("said: ") and "missing.csv" in view.error and view.lengths == []
    assert calls[-1] == 1.0 and calls == sorted(calls)


def test_the_cache_reuses_a_load_until_the_file_changes(tmp_path, counted_loads):
    path = tmp_path / "eq.csv"
    shutil.copy(ASSETS / "datasets" / "linear_equations.csv", path)
    cache = PreviewCache()
    first = cache.loaded(_cfg(path).data)
    assert cache.loaded(_cfg(path).data) is first and len(counted_loads) == 1
    assert cache.loaded(_cfg(path, seed=7).data) is not first and len(counted_loads) == 2  # another key
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))  # the file changed on disk
    assert cache.loaded(_cfg(path).data) is not first and len(counted_loads) == 3


def test_the_cache_keeps_the_most_recent_entries_only(tmp_path, counted_loads):
    path = ASSETS / "datasets" / "linear_equations.csv"
    cache = PreviewCache(size=2)
    for seed in (1, 2, 1, 3):  # 1 is used again before 3 arrives, so 2 is the one evicted
        cache.loaded(_cfg(path, seed=seed).data)
    assert [c.seed for c in counted_loads] == [1, 2, 3]
    cache.loaded(_cfg(path, seed=1).data)
    cache.loaded(_cfg(path, seed=2).data)
    assert [c.seed for c in counted_loads] == [1, 2, 3, 2]


def test_nothing_cached_at_module_level():
    """Each app makes its own cache: two caches never share an entry."""
    path = ASSETS / "datasets" / "linear_equations.csv"
    a, b = PreviewCache(), PreviewCache()
    assert a.loaded(_cfg(path).data) is not b.loaded(_cfg(path).data)
    assert not any(isinstance(v, PreviewCache) for v in vars(presenter).values())
