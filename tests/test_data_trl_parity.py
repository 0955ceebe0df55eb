"""The loss mask the preview shows is the mask TRL's SFTTrainer trains, for every bundled format.

Two checks per bundled config:
1. the engine's path: our prepared dataset through SFTTrainer's own preparation and collator gives labels that
   are -100 exactly where the preview's mask is 0;
2. TRL's native path: the same rows handed to SFTTrainer in TRL's own formats (prompt/completion text, or
   conversational with assistant_only_loss) tokenize to the same ids and the same trained positions.
Both also run on SmolLM2's real tokenizer and shipped chat template (no generation markers); the demo model only
hosts the trainer there (preparation and the collator never run it).
"""
from __future__ import annotations

import pytest

from studio.config import ASSETS_CONFIGS, load_config
from studio.data import load_data, prepare_datasets, render, spec_for, split_rows, to_messages
from studio.templates import fill, split_at_response

N_ROWS = 24


@pytest.fixture(scope="module")
def model_and_tok():
    from transformers import AutoModelForCausalLM

    from studio.config import ModelConfig
    from studio.modeling.sources import resolve_model_path
    from studio.modeling.tokenizer import load_tokenizer

    tok = load_tokenizer(ModelConfig())[0]
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(ModelConfig().name_or_path))
    return model, tok


def _trainer(model, tok, dataset, tmp_path, **kw):
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", max_length=kw.pop(
        "max_length"), dataloader_pin_memory=False, per_device_train_batch_size=4, **kw)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)


@pytest.mark.parametrize("name", ["linear_equations", "word_problems", "python_assistant", "chat"])
def test_engine_labels_equal_preview_mask(name, model_and_tok, tmp_path):
    model, tok = model_and_tok
    _check_engine_labels(name, model, tok, tmp_path)


def test_engine_labels_equal_preview_mask_smollm2_chat(model_and_tok, smollm2_tokenizer, tmp_path):
    """SmolLM2's own template (no generation markers): the derived mask is what SFTTrainer's collator trains."""
    _check_engine_labels("chat", model_and_tok[0], smollm2_tokenizer, tmp_path)


def _check_engine_labels(name, model, tok, tmp_path):
    import datasets

    cfg = load_config(ASSETS_CONFIGS / f"{name}.yaml").with_overrides([f"data.max_rows={N_ROWS}",
                                                                        "data.eval_fraction=0"])
    loaded = load_data(cfg.data)
    prepared = prepare_datasets(cfg, tok, loaded=loaded, cache=False)
    spec = spec_for(cfg, loaded, tok)
    previews = [render(row, tok, spec) for row in split_rows(cfg.data, loaded)[0]]
    previews = [r for r in previews if r.trained_tokens]
    assert sum(r.trained_tokens for r in previews) > 0
    trainer = _trainer(model, tok, prepared.train, tmp_path, completion_only_loss=True,
                       max_length=cfg.train.max_length)
    prepared_rows = trainer.train_dataset
    assert len(prepared_rows) == len(previews) > 0
    by_ids = {tuple(r.input_ids): r for r in previews}  # TRL shuffles; match rows by their ids
    for row in prepared_rows:
        r = by_ids[tuple(row["input_ids"])]
        assert [lab != -100 for lab in row["labels"]] == [bool(m) for m in r.loss_mask]
        assert [lab for lab in row["labels"] if lab != -100] == [t for t, m in zip(r.input_ids, r.loss_mask) if m]
    batch = trainer.data_collator([prepared_rows[i] for i in range(4)])
    for b in range(4):
        ids = [t for t, a in zip(batch["input_ids"][b].tolist(), batch["attention_mask"][b].tolist()) if a]
        r = by_ids[tuple(ids)]
        labels = batch["labels"][b].tolist()[: len(ids)]
        assert [lab != -100 for lab in labels] == [bool(m) for m in r.loss_mask]
    assert isinstance(prepared.train, datasets.Dataset)


@pytest.mark.parametrize("name", ["linear_equations", "word_problems", "python_assistant", "chat"])
def test_trl_native_tokenization_agrees_with_render(name, model_and_tok, tmp_path):
    import datasets

    model, tok = model_and_tok
    cfg = load_config(ASSETS_CONFIGS / f"{name}.yaml").with_overrides([f"data.max_rows={N_ROWS}"])
    loaded = load_data(cfg.data)
    spec = spec_for(cfg, loaded, tok)
    rows = [loaded.dataset[i] for i in range(N_ROWS)]
    if spec.template is not None:  # TRL's text prompt/completion path
        native = []
        for row in rows:
            prompt, completion = split_at_response(fill(spec.template, dict(row)), spec.response_template)
            native.append({"prompt": prompt, "completion": completion})
        kw = {"completion_only_loss": True}
    else:  # TRL's conversational path with assistant-only loss
        native = [{"messages": to_messages(spec.format, row, spec.mapping, spec.system_prompt)} for row in rows]
        kw = {"assistant_only_loss": True}
    trainer = _trainer(model, tok, datasets.Dataset.from_list(native), tmp_path, max_length=100_000,
                       shuffle_dataset=False, **kw)
    ours = [render(row, tok, spec.__class__(**{**spec.__dict__, "max_length": 100_000})) for row in rows]
    assert len(trainer.train_dataset) == len(ours)
    for theirs, r in zip(trainer.train_dataset, ours):
        assert theirs["input_ids"] == r.input_ids
        assert [lab != -100 for lab in theirs["labels"]] == [bool(m) for m in r.loss_mask]


def test_trl_assistant_only_loss_agrees_with_render_smollm2(model_and_tok, smollm2_tokenizer, tmp_path):
    """TRL can't mask SmolLM2's shipped template (no markers, not one TRL patches); given the same template with
    ``{% generation %}`` markers (same text), its assistant_only_loss trains exactly the tokens our render derives
    from the shipped one."""
    import copy
    from pathlib import Path

    import datasets

    cfg = load_config(ASSETS_CONFIGS / "chat.yaml").with_overrides([f"data.max_rows={N_ROWS}"])
    loaded = load_data(cfg.data)
    spec = spec_for(cfg, loaded, smollm2_tokenizer)
    rows = [loaded.dataset[i] for i in range(N_ROWS)]
    marked = copy.deepcopy(smollm2_tokenizer)
    marked.chat_template = (Path(__file__).parent / "data" / "chat_templates" / "smollm2_training.jinja").read_text()
    native = [{"messages": to_messages(spec.format, row, spec.mapping, spec.system_prompt)} for row in rows]
    trainer = _trainer(model_and_tok[0], marked, datasets.Dataset.from_list(native), tmp_path, max_length=100_000,
                       shuffle_dataset=False, assistant_only_loss=True)
    ours = [render(row, smollm2_tokenizer, spec.__class__(**{**spec.__dict__, "max_length": 100_000})) for row in rows]
    assert len(trainer.train_dataset) == len(ours) == N_ROWS
    for theirs, r in zip(trainer.train_dataset, ours):
        assert theirs["input_ids"] == r.input_ids
        assert [lab != -100 for lab in theirs["labels"]] == [bool(m) for m in r.loss_mask] and r.trained_tokens
