"""Tokenized datasets are cached by (data, data config, tokenizer, max_length): the second call reads them back."""
from __future__ import annotations

import shutil

import pytest

from studio.data import cache as data_cache
from studio.data import prepare as prep_mod
from studio.data import prepare_datasets


@pytest.fixture(scope="module")
def tok():
    from studio.config import ModelConfig
    from studio.modeling.tokenizer import load_tokenizer

    return load_tokenizer(ModelConfig())[0]


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    from conftest import tiny_config_dict

    from studio.config import RunConfig
    from studio.paths import ASSETS

    monkeypatch.setenv("STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STUDIO_DATA_CACHE", raising=False)
    data = tmp_path / "eq.csv"
    shutil.copy(ASSETS / "datasets" / "linear_equations.csv", data)
    raw = tiny_config_dict(tmp_path / "runs")
    raw["data"]["sources"] = [{"path": str(data)}]
    raw["data"]["eval_fraction"] = 0.2
    raw["data"]["max_rows"] = None
    return RunConfig.from_dict(raw)


def test_second_call_reads_the_cache(cfg, tok, monkeypatch):
    first = prepare_datasets(cfg, tok)
    monkeypatch.setattr(prep_mod, "_prepare_uncached", lambda *a: pytest.fail("tokenized again"))
    second = prepare_datasets(cfg, tok)
    assert second.train["input_ids"] == first.train["input_ids"]
    assert second.train["completion_mask"] == first.train["completion_mask"]
    assert second.eval["input_ids"] == first.eval["input_ids"]
    assert (second.stats, second.spec, second.dropped_rows, second.fingerprint) == \
        (first.stats, first.spec, first.dropped_rows, first.fingerprint)


def test_cache_can_be_bypassed(cfg, tok, monkeypatch):
    prepare_datasets(cfg, tok)
    calls = []
    real = prep_mod._prepare_uncached
    monkeypatch.setattr(prep_mod, "_prepare_uncached", lambda *a: calls.append(1) or real(*a))
    prepare_datasets(cfg, tok, cache=False)
    monkeypatch.setenv("STUDIO_DATA_CACHE", "0")
    prepare_datasets(cfg, tok)
    assert len(calls) == 2


def test_key_follows_data_template_tokenizer_and_max_length(cfg, tok):
    key = data_cache.dataset_key(cfg, tok)
    assert key == data_cache.dataset_key(cfg, tok)
    assert data_cache.dataset_key(cfg.with_overrides(["train.max_length=64"]), tok) != key
    assert data_cache.dataset_key(cfg.with_overrides(['data.template="Q {Problem} ### Solution: {Solution}"']),
                                  tok) != key
    other = tok.__class__.from_pretrained(tok.name_or_path)
    other.chat_template = "{{ messages }}"
    assert data_cache.dataset_key(cfg, other) != key
    path = cfg.data.sources[0].path
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("x + 1 = 2,x = 1\n")
    assert data_cache.dataset_key(cfg, tok) != key


def test_changed_file_is_tokenized_again(cfg, tok):
    first = prepare_datasets(cfg, tok)
    path = cfg.data.sources[0].path
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows[:-5])
    second = prepare_datasets(cfg, tok)
    assert len(second.train) + len(second.eval or []) < len(first.train) + len(first.eval or [])


def test_broken_entry_is_a_miss(cfg, tok):
    prepare_datasets(cfg, tok)
    key = data_cache.dataset_key(cfg, tok)
    (data_cache.cache_dir() / key / "meta.json").write_text("{not json", encoding="utf-8")
    assert data_cache.load(key) is None
    again = prepare_datasets(cfg, tok)  # rewritten
    assert data_cache.load(key) is not None and len(again.train) > 0
    assert data_cache.clear() >= 1
