"""Preference data: detection and mapping of paired/unpaired rows, render_pair's ids and masks, pairs unpaired for
KTO, the pair preview's segments/statistics/warnings, and the bad inputs (each one clear sentence)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import ModelConfig, RunConfig
from studio.data import detect_format, load_data, unpair
from studio.data.pair_prepare import prepare_pairs
from studio.data.pair_preview import preview_pairs
from studio.data.pairs import render_pair
from studio.data.prepare import spec_for
from studio.errors import ConfigError, DataError

PAIRS = Path(__file__).parent / "data" / "pairs.jsonl"


@pytest.fixture(scope="module")
def tok():
    from studio.modeling.tokenizer import load_tokenizer

    return load_tokenizer(ModelConfig())[0]


def _cfg(path, method="dpo", max_length=128, **data):
    return RunConfig.from_dict({"data": {"sources": [{"path": str(path), **data.pop("source", {})}],
                                         "eval_fraction": 0, **data},
                                "train": {"method": method, "max_length": max_length}})


def _write(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_detects_pairs_implicit_prompts_and_kto_rows():
    assert detect_format(["prompt", "chosen", "rejected"]).format == "preference"
    d = detect_format(["question", "better", "worse"])
    assert d.format == "preference" and d.mapping == {"prompt": "question", "chosen": "better", "rejected": "worse"}
    assert detect_format(["chosen", "rejected"]).mapping == {"chosen": "chosen", "rejected": "rejected"}
    k = detect_format(["prompt", "completion", "label"], {"prompt": "a", "completion": "b", "label": True})
    assert k.format == "kto" and k.mapping["label"] == "label"
    # a plain prompt/answer file stays supervised
    assert detect_format(["prompt", "completion"]).format == "prompt_completion"


def test_render_pair_prompt_once_and_answer_masks(tok):
    cfg = _cfg(PAIRS, max_length=40)
    loaded = load_data(cfg.data)
    spec = spec_for(cfg, loaded, tok)
    pair = render_pair(loaded.dataset[0], tok, spec)
    ids, mask = pair.sequence("chosen")
    assert ids[: len(pair.prompt_ids)] == pair.prompt_ids and set(mask[: len(pair.prompt_ids)]) == {0}
    assert "Paris" in tok.decode([t for t, m in zip(ids, mask) if m])
    assert "Berlin" in tok.decode([t for t, m in zip(pair.rejected_ids, pair.rejected_mask) if m])
    assert "France" in pair.prompt_text and "Paris" not in pair.prompt_text
    # TRL's own chat rendering of the whole conversation is prompt + answer
    full = tok.apply_chat_template([{"role": "user", "content": loaded.dataset[0]["prompt"]},
                                    {"role": "assistant", "content": loaded.dataset[0]["chosen"]}], tokenize=True,
                                   return_dict=True)["input_ids"]
    assert pair.prompt_ids + pair.chosen.ids == list(full)


def test_implicit_prompt_and_column_mapping(tok, tmp_path):
    conv = lambda a: [{"role": "user", "content": "Sky colour?"}, {"role": "assistant", "content": a}]  # noqa: E731
    path = _write(tmp_path, [{"good": conv("Blue."), "bad": conv("Green.")}] * 3)
    cfg = _cfg(path, source={"columns": {"chosen": "good", "rejected": "bad"}}, format="preference")
    pv = preview_pairs(cfg, tok, n_rows=1)
    row = pv.rows[0]
    assert "Sky colour?" in row.prompt[0][0] and "Sky" not in row.answers["chosen"][0][0]
    assert row.answers["chosen"][0] == (row.answers["chosen"][0][0], True) and "Blue." in row.answers["chosen"][0][0]
    assert "Green." in row.answers["rejected"][0][0]


def test_unpaired_for_kto(tok, tmp_path):
    assert unpair({"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "prompt", "chosen": "chosen",
                                                                    "rejected": "rejected"}) == [
        {"prompt": "p", "completion": "c", "label": True}, {"prompt": "p", "completion": "r", "label": False}]
    prepared = prepare_pairs(_cfg(PAIRS, method="kto"), tok, "unpaired")
    assert len(prepared.train) == 2 * 12 and sorted(set(prepared.train["label"])) == [False, True]
    kto_rows = _write(tmp_path, [{"prompt": "Hi", "completion": "Hello!", "label": i % 2 == 0} for i in range(6)])
    prepared = prepare_pairs(_cfg(kto_rows, method="kto"), tok, "unpaired")
    assert len(prepared.train) == 6 and set(prepared.train.column_names) == {"prompt_ids", "completion_ids", "label"}


def test_preview_statistics_and_warnings(tok, tmp_path):
    long = "word " * 60
    rows = [{"prompt": "Q1", "chosen": "Yes.", "rejected": "Yes."},            # identical
            {"prompt": "Q2", "chosen": "", "rejected": "No."},                 # empty answer
            {"prompt": "Q3", "chosen": long + "A", "rejected": long + "B"},     # differ only after the cut
            {"prompt": "Q4", "chosen": "Right.", "rejected": "Wrong."}]
    cfg = _cfg(_write(tmp_path, rows), max_length=48)
    pv = preview_pairs(cfg, tok, n_rows=4)
    assert [r.problems for r in pv.rows] == [["chosen and rejected are the same answer"], ["an answer is empty"],
                                            ["the answers differ only after the max_length cut"], []]
    assert pv.stats.problems == {"identical": 1, "empty": 1, "same_after_cut": 1, "prompt_cut": 0}
    chosen = pv.stats.sides["chosen"]
    assert chosen["rows"] == 4 and chosen["cut_rows"] == 1 and chosen["max_tokens"] > 48
    cut_row = pv.rows[2].answers["chosen"]
    assert cut_row[0][1] is True and cut_row[-1][1] is False and cut_row[-1][0].strip().endswith("A<|im_end|>")
    assert any("dropped from training" in w for w in pv.warnings)
    # the trainer gets only the pair that can teach
    prepared = prepare_pairs(cfg, tok, "paired")
    assert len(prepared.train) == 1 and prepared.dropped_rows == 3


def test_bad_inputs_each_one_clear_sentence(tok, tmp_path):
    no_rejected = _write(tmp_path, [{"prompt": "p", "chosen": "c"}] * 3, "a.jsonl")
    with pytest.raises(DataError, match=r"no 'rejected' column; its columns: prompt, chosen"):
        prepare_pairs(_cfg(no_rejected), tok, "paired")
    with pytest.raises(DataError, match=r"needs a column for 'rejected'; available columns: prompt, chosen"):
        load_data(_cfg(no_rejected, format="preference").data)
    same = _write(tmp_path, [{"prompt": "p", "chosen": "c", "rejected": "c"}] * 3, "b.jsonl")
    with pytest.raises(DataError, match="no preference row is left to train on.*same answer"):
        prepare_pairs(_cfg(same), tok, "paired")
    mixed = _write(tmp_path, [{"prompt": "p", "chosen": "c", "rejected": "r"},
                              {"prompt": "p", "chosen": "c", "completion": "x", "label": True}], "c.jsonl")
    with pytest.raises(DataError, match="row 2: rejected is empty.*mixed paired and unpaired"):
        prepare_pairs(_cfg(mixed, format="preference"), tok, "paired")
    plain = _write(tmp_path, [{"question": "q", "answer": "a"}] * 3, "d.jsonl")
    with pytest.raises(DataError, match="train.method dpo needs pairs"):
        prepare_pairs(_cfg(plain), tok, "paired")
    with pytest.raises(ConfigError, match=r"train.beta must be > 0"):
        RunConfig().with_overrides(["train.method=dpo", "train.beta=0"])
    with pytest.raises(ConfigError, match=r"batch_size must be 2 or more for kto.*set train.batch_size=2"):
        RunConfig().with_overrides(["train.method=kto", "train.batch_size=1"])
    with pytest.raises(ConfigError, match="'hinge' is not a loss of kto; kto has: kto, apo_zero_unpaired"):
        RunConfig().with_overrides(["train.method=kto", "train.loss_type=hinge"])


def test_memory_estimate_counts_both_answers_and_the_reference():
    from studio.modeling import estimate_memory

    est = {m: estimate_memory(RunConfig().with_overrides([f"train.method={m}", "train.max_length=256"]), device="cpu")
           for m in ("sft", "dpo", "orpo")}
    assert est["dpo"].sequences_per_row == 2 and est["sft"].sequences_per_row == 1
    assert est["dpo"].activations_no_ckpt_gb > 1.5 * est["sft"].activations_no_ckpt_gb
    assert est["dpo"].reference_gb > 0 == est["orpo"].reference_gb == est["sft"].reference_gb
    assert est["dpo"].total_gb > est["orpo"].total_gb > est["sft"].total_gb
    assert "reference pass" in est["dpo"].parts() and "2 sequences per row" in est["dpo"].summary()


def test_cli_progress_line_shows_reward_accuracy():
    from studio.commands.train import _progress
    from studio.events import Log

    line = _progress(Log(step=2, total_steps=4, loss=0.69, metrics={"rewards/accuracies": 0.75,
                                                                   "rewards/margins": 0.0123}))
    assert "reward acc 75%" in line and "margin +0.0123" in line
    assert "reward" not in _progress(Log(step=2, total_steps=4, loss=0.69, metrics={"entropy": 1.0}))
