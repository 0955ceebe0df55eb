"""`studio eval --harness`: lm-eval task files written offline for the held-out rows and the general set (prompts
rendered as trained), base and tuned scored by lm-evaluation-harness on one copy of the weights, the results kept
with the run; a clear line without lm-eval."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from chat_helpers import chat_runs_dir, one_thread, wp_run  # noqa: F401
from studio.cli import main
from studio.forgetting import load_items
from studio.harness import HarnessMissing, run_harness, write_tasks


@pytest.fixture
def run(wp_run, tmp_path):
    return shutil.copytree(wp_run, tmp_path / "wp")


def test_task_files_hold_the_rows_rendered_as_trained(run):
    from studio.config import load_config
    from studio.evaluate import heldout_rows
    from studio.inference import run_prompt_setup
    from studio.modeling import base_tokenizer

    cfg = load_config(run / "config.yaml")
    tokenizer = base_tokenizer(cfg.model)[0]
    tasks = write_tasks(run, tokenizer, rows=3)
    assert set(tasks) == {"studio_heldout", "studio_general"}
    spec = yaml.safe_load(tasks["studio_heldout"].read_text())
    assert spec["output_type"] == "loglikelihood" and spec["dataset_path"] == "json"
    assert spec["dataset_kwargs"]["data_files"]["test"].endswith("studio_heldout.jsonl")
    docs = [json.loads(line) for line in tasks["studio_heldout"].with_suffix(".jsonl").read_text().splitlines()]
    builder, loaded = run_prompt_setup(cfg, tokenizer, run)
    prompt, reference = builder.for_row(heldout_rows(cfg, loaded, run)[0])
    assert len(docs) == 3 and docs[0] == {"prompt": prompt.text, "target": reference}
    assert "### Solution:" in docs[0]["prompt"] and "####" in docs[0]["target"]
    general = tasks["studio_general"].with_suffix(".jsonl").read_text().splitlines()
    assert len(general) == len(load_items())


@pytest.mark.slow
def test_harness_scores_base_and_tuned_and_keeps_them_with_the_run(run, capsys):
    pytest.importorskip("lm_eval", reason="lm-eval is in the dev extra; CI installs it")
    assert main(["eval", "--run", str(run), "--harness", "--rows", "2", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scores = out["scores"]
    assert set(scores) == {"studio_heldout", "studio_general"} and out["rows"]["studio_heldout"] == 2
    for task in scores.values():
        assert set(task) == {"base", "tuned"} and set(task["tuned"]) == {"perplexity", "acc"}
    assert scores["studio_heldout"]["tuned"]["perplexity"] != scores["studio_heldout"]["base"]["perplexity"]
    saved = json.loads((run / "eval_results.json").read_text())
    assert saved["harness"]["scores"] == scores and (run / "harness_results.json").exists()


def test_an_lm_eval_failure_is_one_line_naming_the_task_files(run, monkeypatch, capsys):
    pytest.importorskip("lm_eval", reason="lm-eval is in the dev extra; CI installs it")

    def broken(*args, **kwargs):
        raise ValueError("bad task\nmore detail")

    monkeypatch.setattr("studio.harness._evaluate", broken)
    assert main(["eval", "--run", str(run), "--harness", "--rows", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "lm-evaluation-harness failed on the tuned model: ValueError: bad task" in err and "harness" in err
    assert "Traceback" not in err and "more detail" not in err


def test_without_lm_eval_one_line_says_how_to_install(run, monkeypatch, capsys):
    monkeypatch.setattr("studio.harness.available", lambda: False)
    with pytest.raises(HarnessMissing, match="pip install"):
        run_harness(run)
    assert main(["eval", "--run", str(run), "--harness"]) == 2
    assert "lm-evaluation-harness is not installed" in capsys.readouterr().err
