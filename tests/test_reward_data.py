"""GRPO rows (prompts as SFT renders them + the reference answer) and the reward preview, on SmolLM2's tokenizer."""
from __future__ import annotations

import json

import pytest

from studio.config import RunConfig
from studio.errors import DataError
from studio.paths import ASSETS
from studio.rewards.data import prompt_rows
from studio.rewards.preview import corrupt, preview_for_config

WORD_PROBLEMS = str(ASSETS / "datasets" / "word_problems.jsonl")


def _cfg(path, columns=None, rewards=None, **data):
    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(path), "columns": columns or {}}], "max_rows": 12, **data},
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "train": {"rewards": rewards or ["answer", {"name": "format", "weight": 0.5}]}})


def test_word_problems_give_the_chat_prompt_and_the_number(smollm2_tokenizer):
    from studio.inference.prompt import PromptBuilder

    rows = prompt_rows(_cfg(WORD_PROBLEMS), smollm2_tokenizer)
    first = json.loads(open(WORD_PROBLEMS, encoding="utf-8").readline())
    builder = PromptBuilder(rows.spec, smollm2_tokenizer)
    assert rows.reference_column == "answer"
    row = next(r for split in (rows.train, rows.eval) for r in split if r["question"] == first["question"])
    sample = rows.train[0]
    assert sample["prompt"] == builder.for_row(sample)[0].text  # exactly what chat and eval send
    assert sample["prompt"].endswith(f"<|im_start|>user\n{sample['question']}<|im_end|>\n<|im_start|>assistant\n")
    assert sample["reference"] == sample["answer"].rsplit("####", 1)[1].strip()
    assert row["reference"] == "16"
    assert rows.eval is not None and len(rows.train) + len(rows.eval) == 12  # the SFT split


def test_a_reference_column_of_any_name_is_mapped(tmp_path, smollm2_tokenizer):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "notes": "easy", "gold": str(2 * i)})
                            + "\n" for i in range(12)), encoding="utf-8")
    cfg = _cfg(path, columns={"prompt": "question", "completion": "notes", "reference": "gold"}, eval_fraction=0,
               format="prompt_completion")
    rows = prompt_rows(cfg, smollm2_tokenizer)
    assert rows.reference_column == "gold"
    assert [r["reference"] for r in rows.train][:3] == ["0", "2", "4"]


def test_no_reference_for_the_answer_reward_is_refused_with_the_columns(tmp_path, smollm2_tokenizer):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"story {i}"}) + "\n" for i in range(12)), encoding="utf-8")
    with pytest.raises(DataError, match=r"the answer reward needs each row's reference answer.*columns: text"):
        prompt_rows(_cfg(path, format="text"), smollm2_tokenizer)


def test_corrupting_changes_the_final_number():
    assert corrupt("4 x 4 = 16.\n#### 16") == "4 x 4 = 16.\n#### 17"
    assert corrupt("#### 1,600") == "#### 1601"
    assert corrupt("no number") == "no number\n#### 0"


def test_the_preview_scores_the_reference_high_and_the_corrupted_answer_low(smollm2_tokenizer):
    preview = preview_for_config(_cfg(WORD_PROBLEMS), smollm2_tokenizer, n_rows=2)
    assert preview.headers() == ["row", "sample", "completion", "answer", "format", "total"]
    table = preview.table()
    assert [r[:2] for r in table] == [[1, "reference"], [1, "corrupted"], [2, "reference"], [2, "corrupted"]]
    assert [r[3:] for r in table] == [[1.0, 1.0, 1.5], [0.0, 1.0, 0.5], [1.0, 1.0, 1.5], [0.0, 1.0, 0.5]]
    assert table[0][2].endswith("#### 16") and table[1][2].endswith("#### 17")
    assert preview.warnings == []


def test_a_reward_scoring_every_reference_zero_is_a_warning(smollm2_tokenizer):
    cfg = _cfg(WORD_PROBLEMS, rewards=["answer", {"name": "regex", "pattern": "^The answer is"},
                                       {"name": "length", "target": 5}])
    preview = preview_for_config(cfg, smollm2_tokenizer, n_rows=2)
    assert "the regex reward scores every reference answer 0: it gives training nothing to aim at" \
        in preview.warnings[0]
    assert preview.warnings[1].startswith("the length reward penalizes every reference answer (down to -1)")
    assert len(preview.warnings) == 2
