"""The data layer: loading errors, format detection, rendering and loss masks, statistics."""
from __future__ import annotations

import json

import pytest

from studio.config import ASSETS_CONFIGS, RunConfig, load_config
from studio.data import (detect_format, load_data, peek_rows, prepare_datasets, preview, render, resolve_mapping,
                         trained_text)
from studio.data.render import make_spec
from studio.errors import DataError, TemplateError

BUNDLED = {"linear_equations": "prompt_completion", "word_problems": "prompt_completion",
           "python_assistant": "instruction", "chat": "messages"}


@pytest.fixture(scope="module")
def tok():
    from studio.config import ModelConfig
    from studio.modeling.tokenizer import load_tokenizer

    return load_tokenizer(ModelConfig())[0]


def cfg_for(path, **data):
    return RunConfig.from_dict({"data": {"sources": [{"path": str(path)}], **data},
                                "train": {"max_length": 256}})


@pytest.mark.parametrize("name, fmt", BUNDLED.items())
def test_bundled_configs_detect_their_format(name, fmt):
    cfg = load_config(ASSETS_CONFIGS / f"{name}.yaml")
    loaded = load_data(cfg.data)
    assert loaded.format == fmt
    assert len(loaded.dataset) >= 200
    auto = detect_format(loaded.columns, loaded.dataset[0])
    assert auto.format == fmt


def test_detection_mappings():
    assert detect_format(["question", "answer"]).mapping == {"prompt": "question", "completion": "answer"}
    assert detect_format(["Problem", "Solution"]).mapping == {"prompt": "Problem", "completion": "Solution"}
    assert detect_format(["instruction", "input", "output"]).mapping == {
        "instruction": "instruction", "output": "output", "input": "input"}
    assert detect_format(["id", "conv"], {"id": 1, "conv": [{"from": "human", "value": "hi"}]}).format == "messages"
    assert detect_format(["body"]).format == "text"
    with pytest.raises(DataError, match="can't tell the format"):
        detect_format(["a", "b"], {"a": 1, "b": 2})


def test_mapping_override_names_missing_column():
    with pytest.raises(DataError, match=r"column 'questoin' \(for prompt\) is not in the data; available columns: "
                                        r"question, answer"):
        resolve_mapping("prompt_completion", ["question", "answer"], {}, {"prompt": "questoin"})
    with pytest.raises(DataError, match="needs a column for 'completion'"):
        resolve_mapping("prompt_completion", ["question", "x"], {}, {"prompt": "question"})


def test_solution_template_masks_only_the_answer(tok, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"Problem": "Solve 2x = 4", "Solution": "x = 2"}) + "\n")
    cfg = cfg_for(p, template="{Problem}\n ### Solution: {Solution}", response_template="### Solution:")
    loaded = load_data(cfg.data)
    spec = make_spec(cfg.data, loaded.format, loaded.mapping, "completion", 256)
    r = render(loaded.dataset[0], tok, spec)
    assert r.text == "Solve 2x = 4\n ### Solution: x = 2" + tok.eos_token
    assert trained_text(tok, r) == " x = 2" + tok.eos_token
    assert r.input_ids[-1] == tok.eos_token_id and r.loss_mask[-1] == 1 and r.loss_mask[0] == 0
    # loss_on=all trains the same ids everywhere
    spec_all = make_spec(cfg.data, loaded.format, loaded.mapping, "all", 256)
    r_all = render(loaded.dataset[0], tok, spec_all)
    assert r_all.input_ids == r.input_ids and all(r_all.loss_mask)


def test_template_without_marker_splits_at_answer_placeholder(tok, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"q": "2+2?", "a": "4"}) + "\n")
    cfg = cfg_for(p, format="prompt_completion", template="Q: {q}\nA: {a}",
                  sources=[{"path": str(p), "columns": {"prompt": "q", "completion": "a"}}])
    loaded = load_data(cfg.data)
    r = render(loaded.dataset[0], tok, make_spec(cfg.data, loaded.format, loaded.mapping, "completion", 256))
    assert trained_text(tok, r) == "4" + tok.eos_token


def test_missing_response_marker_trains_nothing_and_is_counted(tok, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) for i in range(4)))
    cfg = cfg_for(p, template="{prompt} {completion}", response_template="### Answer:")
    result = preview(cfg, tok, n_rows=1)
    assert result.stats.zero_trained_rows == 4
    assert any("no trained tokens" in w for w in result.warnings)
    with pytest.raises(DataError, match="no row has any trained token"):
        prepare_datasets(cfg, tok)


def test_chat_rows_train_assistant_turns_only(tok):
    cfg = load_config(ASSETS_CONFIGS / "chat.yaml")
    loaded = load_data(cfg.data)
    row = next(r for r in loaded.dataset if sum(m["role"] == "assistant" for m in r["messages"]) >= 2)
    r = render(row, tok, make_spec(cfg.data, loaded.format, loaded.mapping, "completion", 4096))
    trained = trained_text(tok, r)
    for m in row["messages"]:
        if m["role"] == "assistant":
            assert m["content"] + "<|im_end|>" in trained
        else:
            assert m["content"] not in trained
    assert "<|im_start|>" not in trained


def test_instruction_rows_become_system_user_assistant(tok):
    cfg = load_config(ASSETS_CONFIGS / "python_assistant.yaml")
    loaded = load_data(cfg.data)
    row = loaded.dataset[0]
    r = render(row, tok, make_spec(cfg.data, loaded.format, loaded.mapping, "completion", 4096))
    assert r.text.startswith("<|im_start|>system\n" + cfg.data.system_prompt)
    assert trained_text(tok, r) == row["output"] + "<|im_end|>"


def test_truncation_and_stats(tok):
    cfg = load_config(ASSETS_CONFIGS / "word_problems.yaml").with_overrides(["train.max_length=40"])
    result = preview(cfg, tok, n_rows=2)
    s = result.stats
    assert s.n_rows == len(result.full_lengths) >= 200
    assert s.p50_tokens <= s.p95_tokens <= s.max_tokens
    assert s.truncated_rows == sum(1 for n in result.full_lengths if n > 40) > 0
    assert 0 < s.truncated_fraction <= 1 and 0 < s.trained_token_fraction < 1
    assert all(len(r.input_ids) <= 40 for r in result.rows)
    assert any("longer than max_length=40" in w for w in result.warnings)


def test_preview_and_load_report_progress_in_order(tok):
    cfg = load_config(ASSETS_CONFIGS / "word_problems.yaml")
    seen: list[tuple[float, str]] = []
    result = preview(cfg, tok, n_rows=2, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] < 0.3 and fractions[-1] == 1.0
    assert all(isinstance(m, str) and len(m) > 8 for _, m in seen)
    messages = " | ".join(m for _, m in seen)
    for words in ("loading", "rendering 2 rows", f"tokenizing all {result.stats.n_rows} rows", "statistics"):
        assert words in messages, messages
    loads: list[tuple[float, str]] = []
    loaded = load_data(cfg.data, progress=lambda f, m: loads.append((f, m)))
    assert [f for f, _ in loads] == sorted(f for f, _ in loads) and loads[-1][0] == 1.0
    assert f"loaded {len(loaded.dataset)} rows" in loads[-1][1]
    assert preview(cfg, tok, n_rows=2, loaded=loaded).stats == result.stats  # the hook is optional


def test_duplicates_counted(tok, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join([json.dumps({"text": "same row"})] * 3 + [json.dumps({"text": "other"})]))
    assert preview(cfg_for(p), tok).stats.duplicate_rows == 2


def test_prepared_dataset_carries_the_render_mask(tok):
    cfg = load_config(ASSETS_CONFIGS / "linear_equations.yaml")
    prepared = prepare_datasets(cfg, tok)
    assert set(prepared.train.column_names) == {"input_ids", "completion_mask"}
    assert prepared.eval is not None and len(prepared.eval) > 0
    n = len(prepared.train) + len(prepared.eval) + prepared.dropped_rows
    assert n == prepared.stats.n_rows


# ---- bad input: a clear message for each ----------------------------------------------------------------------

def _write(tmp_path, name, content: bytes):
    p = tmp_path / name
    p.write_bytes(content)
    return p


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", b'{"text": "ok"}\n{"text": broken}\n', "bad.jsonl line 2: malformed JSON"),
    ("list.jsonl", b'{"text": "ok"}\n[1, 2]\n', "line 2: each line must be a JSON object"),
    ("empty.jsonl", b"", "empty.jsonl is empty"),
    ("blank.csv", b"\n\n", "blank.csv is empty"),
    ("latin.csv", b"text\ncaf\xe9\n", "latin.csv line 2: bytes that are not UTF-8"),
    ("data.xlsx", b"PK", "unsupported file type .xlsx"),
])
def test_broken_files_get_specific_errors(tmp_path, name, content, message):
    p = _write(tmp_path, name, content)
    with pytest.raises(DataError) as err:
        load_data(cfg_for(p).data)
    assert message in str(err.value)


def test_missing_path_and_hub_offline(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="file not found"):
        load_data(cfg_for(tmp_path / "missing.jsonl").data)
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # both libraries read it once, at import: set their copies too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="can't reach the Hugging Face Hub to load 'someone/some-data'"):
        load_data(cfg_for("someone/some-data").data)


def test_unknown_placeholder_in_template(tok, tmp_path):
    p = _write(tmp_path, "d.jsonl", b'{"question": "q", "answer": "a"}\n')
    with pytest.raises(TemplateError, match=r"\{questoin\} matches no column; available: .*question"):
        preview(cfg_for(p, template="{questoin} {answer}"), tok)


def test_wrong_column_override(tmp_path):
    p = _write(tmp_path, "d.jsonl", b'{"question": "q", "answer": "a"}\n')
    cfg = RunConfig.from_dict({"data": {"sources": [{"path": str(p), "columns": {"prompt": "Question"}}],
                                        "format": "prompt_completion"}})
    with pytest.raises(DataError, match="column 'Question' .* available columns: question, answer"):
        load_data(cfg.data)


def test_parquet_folder_and_save_to_disk(tmp_path, tok):
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(12)])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    assert len(load_data(cfg_for(tmp_path / "d.parquet").data).dataset) == 12
    ds.save_to_disk(str(tmp_path / "saved"))
    assert load_data(cfg_for(tmp_path / "saved").data).format == "prompt_completion"
    assert peek_rows(str(tmp_path / "d.parquet"), 2) == [ds[0], ds[1]]


def test_several_sources_mix_with_weights(tmp_path):
    a = _write(tmp_path, "a.jsonl", b"\n".join(json.dumps({"question": f"q{i}", "answer": "a"}).encode()
                                               for i in range(10)))
    b = _write(tmp_path, "b.jsonl", b"\n".join(json.dumps({"messages": [{"role": "user", "content": f"u{i}"},
                                                                        {"role": "assistant", "content": "x"}]}
                                                          ).encode() for i in range(10)))
    cfg = RunConfig.from_dict({"data": {"sources": [{"path": str(a), "weight": 0.5}, {"path": str(b), "weight": 2}]}})
    loaded = load_data(cfg.data)
    assert loaded.format == "messages" and len(loaded.dataset) == 5 + 20


def test_peek_reads_only_the_head(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps({"text": "first"}) + "\n" + "{not json}\n" * 1000)
    assert peek_rows(str(p), 1) == [{"text": "first"}]
