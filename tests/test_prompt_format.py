"""prompt_format.json + heldout.jsonl: saved at training start, read back by chat, eval and probes without the data."""
from __future__ import annotations

import json
import shutil

from studio.paths import ASSETS
from studio.templates import CHATML_TEMPLATE


def _setup(tmp_path, name, data, model=None):
    from studio import runs
    from studio.config import RunConfig
    from studio.data import load_data, spec_for
    from studio.modeling import base_tokenizer
    from studio.prompt_format import save_for_run

    copy = shutil.copy(ASSETS / "datasets" / name, tmp_path / name)
    cfg = RunConfig.from_dict({"data": {"sources": [{"path": str(copy)}], "eval_fraction": 0.25, "max_rows": 40,
                                        **data},
                               "model": {"name_or_path": "studio/demo-tiny", **(model or {})},
                               "train": {"output_dir": str(tmp_path / "runs"), "max_length": 96}})
    tok = base_tokenizer(cfg.model)[0]
    loaded = load_data(cfg.data)
    run_dir = runs.create_run_dir(cfg, tmp_path / "runs")
    fmt = save_for_run(run_dir, cfg, tok, spec_for(cfg, loaded, tok))
    return cfg, tok, loaded, run_dir, fmt, tmp_path / name


def test_text_run_format_is_saved_and_used_without_the_data(tmp_path):
    from studio.data import split_rows
    from studio.evaluate import heldout_rows
    from studio.inference import run_prompt_setup
    from studio.probes import probe_inputs

    cfg, tok, loaded, run_dir, fmt, data_file = _setup(
        tmp_path, "linear_equations.csv",
        {"format": "prompt_completion", "template": "solution", "response_template": None})
    saved = json.loads((run_dir / "prompt_format.json").read_text(encoding="utf-8"))
    assert saved["template"] == "{prompt}\n ### Solution: {completion}"
    assert saved["response_template"] == "### Solution:"
    assert saved["mapping"] == {"prompt": "Problem", "completion": "Solution"} and saved["chat_template"] is None
    assert saved["eos_token"] == tok.eos_token and saved["max_length"] == 96 and saved["loss_on"] == "completion"
    from_data = run_prompt_setup(cfg, tok)[0].build("Solve: x + 1 = 2").input_ids
    held = split_rows(cfg.data, loaded)[1]
    data_file.unlink()
    builder, none = run_prompt_setup(cfg, tok, run_dir)
    assert none is None and builder.build("Solve: x + 1 = 2").input_ids == from_data
    assert builder.build("Solve: x + 1 = 2").text.endswith("Solve: x + 1 = 2\n ### Solution:")
    rows = heldout_rows(cfg, None, run_dir)
    assert [r["Problem"] for r in rows] == held["Problem"] and len(rows) == 10
    probes = probe_inputs(cfg, tok, run_dir=run_dir, n_rows=2)
    assert [t for t, _ in probes] == held["Problem"][:2]


def test_chat_run_saves_the_chat_template_text_and_the_datas_system_prompt(tmp_path):
    from studio.inference import run_prompt_setup

    cfg, tok, _, run_dir, fmt, data_file = _setup(tmp_path, "chat.jsonl", {"format": "messages"},
                                                   {"chat_template": "chatml"})
    assert fmt.uses_chat and fmt.chat_template == CHATML_TEMPLATE
    assert fmt.default_system_prompt == "You are Studio, a cheerful assistant that gives short, accurate answers."
    data_file.unlink()
    tok.chat_template = None  # what is rendered comes from the saved text, not the tokenizer
    builder, _ = run_prompt_setup(cfg, tok, run_dir)
    text = builder.build("Hi").text
    assert text.startswith(f"<|im_start|>system\n{fmt.default_system_prompt}<|im_end|>\n")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_an_older_run_without_the_file_falls_back_to_the_data(tmp_path):
    from studio.inference import run_prompt_setup

    cfg, tok, _, run_dir, _, _ = _setup(tmp_path, "linear_equations.csv",
                                        {"format": "prompt_completion", "template": "solution"})
    (run_dir / "prompt_format.json").unlink()
    builder, loaded = run_prompt_setup(cfg, tok, run_dir)
    assert loaded is not None and builder.build("Q").text.endswith("Q\n ### Solution:")
