"""The pair preview's trained tokens are the preference trainers' labels, for both answers, on the demo template and
SmolLM2's real one (no generation markers, a default system prompt):

1. TRL's native path: the raw rows handed to TRL's own DPOTrainer / KTOTrainer (conversational, its own
   tokenization, its collator's ``max_length`` cut) give exactly the ids and completion masks ``render_pair`` gives;
2. the engine's path: Studio's pre-tokenized rows through each method's trainer (DPO, KTO, ORPO, SimPO) collate to
   batches whose trained positions are the preview's.
The demo model only hosts the trainers (collation never runs it).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import ModelConfig, RunConfig
from studio.data import load_data, render_pair, spec_for
from studio.data.pair_prepare import pair_problems, prepare_pairs
from studio.training.methods import recipe

PAIRS = Path(__file__).parent / "data" / "pairs.jsonl"


@pytest.fixture(scope="module")
def demo():
    from transformers import AutoModelForCausalLM

    from studio.modeling.sources import resolve_model_path
    from studio.modeling.tokenizer import load_tokenizer

    return (AutoModelForCausalLM.from_pretrained(resolve_model_path(ModelConfig().name_or_path)),
            load_tokenizer(ModelConfig())[0])


@pytest.fixture(params=["demo", "smollm2"])
def tok(request, demo):
    return demo[1] if request.param == "demo" else request.getfixturevalue("smollm2_tokenizer")


def _setup(tok, method):
    """Config, loaded rows, rendered pairs, and a max_length that cuts most answers but no prompt."""
    cfg = RunConfig.from_dict({"data": {"sources": [{"path": str(PAIRS)}], "eval_fraction": 0},
                               "train": {"method": method, "max_length": 1024,
                                         "batch_size": 4}})
    loaded = load_data(cfg.data)
    spec = spec_for(cfg, loaded, tok)
    longest_prompt = max(len(render_pair(r, tok, spec).prompt_ids) for r in loaded.dataset)
    cfg.train.max_length = longest_prompt + 8
    spec = spec_for(cfg, loaded, tok)
    pairs = [render_pair(r, tok, spec) for r in loaded.dataset]
    assert any(p.chosen.cut for p in pairs) and not any(p.prompt_cut for p in pairs)
    return cfg, loaded, pairs


def _rows(batch, key="input_ids", mask="completion_mask", prefix=""):
    out = []
    for ids, att, m in zip(batch[f"{prefix}{key}"].tolist(), batch[f"{prefix}attention_mask"].tolist(),
                           batch[f"{prefix}{mask}"].tolist()):
        n = sum(att)
        out.append((ids[:n], m[:n]))
    return out


def _trainer(rec_name, model, tok, dataset, cfg, tmp_path, native=False):
    rec = recipe(rec_name)
    base = dict(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", dataloader_pin_memory=False,
                per_device_train_batch_size=4, max_length=cfg.train.max_length, max_steps=1)
    args = rec.config_class()(**rec.args(cfg, base))
    if native:  # TRL's own class, its own tokenization
        cls = rec.trainer_class().__mro__[1]
    else:
        cls = rec.trainer_class()
    return cls(model=model, args=args, train_dataset=dataset, processing_class=tok)


def _conversational(loaded):
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in loaded.dataset]


def test_trl_native_dpo_batch_equals_preview(demo, tok, tmp_path):
    import datasets

    cfg, loaded, pairs = _setup(tok, "dpo")
    trainer = _trainer("dpo", demo[0], tok, datasets.Dataset.from_list(_conversational(loaded)), cfg, tmp_path,
                       native=True)
    rows = [trainer.train_dataset[i] for i in range(len(pairs))]
    batch = _rows(trainer.data_collator(rows))
    n = len(pairs)
    assert batch[:n] == [p.sequence("chosen") for p in pairs]
    assert batch[n:] == [p.sequence("rejected") for p in pairs]


def test_trl_native_kto_batch_equals_preview(demo, tok, tmp_path):
    import datasets

    cfg, loaded, pairs = _setup(tok, "kto")
    trainer = _trainer("kto", demo[0], tok, datasets.Dataset.from_list(_conversational(loaded)), cfg, tmp_path,
                       native=True)
    theirs = _rows(trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]))
    ours = [p.sequence(side) for p in pairs for side in ("chosen", "rejected")]
    assert sorted(map(str, theirs)) == sorted(map(str, ours))


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo", "simpo"])
def test_engine_batches_train_the_preview_tokens(method, demo, tok, tmp_path):
    cfg, loaded, pairs = _setup(tok, method)
    prepared = prepare_pairs(cfg, tok, recipe(method).data, loaded=loaded)
    trainer = _trainer(method, demo[0], tok, prepared.train, cfg, tmp_path)
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    batch = trainer.data_collator(rows)
    pairs = [p for p in pairs if not pair_problems(p)]  # pairs equal after the cut are dropped (and warned)
    assert any(p.chosen.cut for p in pairs)
    n = len(pairs)
    if method == "dpo":
        got = _rows(batch)
        assert got[:n] == [p.sequence("chosen") for p in pairs] and got[n:] == [p.sequence("rejected") for p in pairs]
    elif method == "kto":
        assert _rows(batch) == [p.sequence(side) for p in pairs for side in ("chosen", "rejected")]
        assert batch["label"].tolist() == [True, False] * n
    else:  # ORPO / CPO: labels are -100 outside the answer
        for side in ("chosen", "rejected"):
            ids, att, labels = (batch[f"{side}_{k}"].tolist() for k in ("input_ids", "attention_mask", "labels"))
            got = [(i[:sum(a)], [int(lab != -100) for lab in lb[:sum(a)]]) for i, a, lb in zip(ids, att, labels)]
            assert got == [p.sequence(side) for p in pairs], side
