"""Evaluation during training: the automatic interval's cost, the plan's refusals, the task accuracy at each
evaluation, and early stopping that keeps the best checkpoint as adapter/ (demo model, then the real SmolLM2)."""
from __future__ import annotations

import json
import math

import pytest

from conftest import real_config_dict, tiny_config_dict
from studio.config import RunConfig, TrainConfig
from studio.errors import ConfigError
from studio.paths import ASSETS
from studio.training.eval_during import AUTO_SHARE, cost_share, plan_eval


def test_the_automatic_interval_costs_at_most_a_tenth_and_no_more_often_than_needed():
    for eval_rows, per_step in ((50, 4), (8, 2), (200, 16), (1, 1)):
        plan = plan_eval(TrainConfig(), eval_rows=eval_rows, rows_per_step=per_step, total_steps=100_000)
        assert cost_share(eval_rows, per_step, plan.steps) <= AUTO_SHARE
        if plan.steps > 1:
            assert cost_share(eval_rows, per_step, plan.steps - 1) > AUTO_SHARE
        assert f"every {plan.steps} steps" in plan.reason and "automatic" in plan.reason
    assert plan_eval(TrainConfig(), eval_rows=50, rows_per_step=4, total_steps=10).steps is None  # longer than the run
    assert plan_eval(TrainConfig(), eval_rows=0, rows_per_step=4, total_steps=10).steps is None


def test_the_plan_says_what_it_keeps_and_refuses_what_cannot_work():
    tc = TrainConfig(early_stopping_patience=2, eval_steps=5)
    plan = plan_eval(tc, eval_rows=10, rows_per_step=2, total_steps=50)
    kw = plan.trainer_kwargs()
    assert kw["load_best_model_at_end"] and kw["save_steps"] == kw["eval_steps"] == 5
    assert kw["metric_for_best_model"] == "eval_loss" and not kw["greater_is_better"]
    assert "stops after 2 evaluations" in plan.reason
    with pytest.raises(ConfigError, match="larger than the run"):
        plan_eval(TrainConfig(early_stopping_patience=1, eval_steps=80), eval_rows=10, rows_per_step=2, total_steps=50)
    with pytest.raises(ConfigError, match="held-out rows"):
        plan_eval(tc, eval_rows=0, rows_per_step=2, total_steps=50)
    warned = plan_eval(TrainConfig(eval_steps=80), eval_rows=10, rows_per_step=2, total_steps=50)
    assert warned.steps is None and "end only" in warned.warning
    with pytest.raises(ConfigError, match="eval_fraction"):
        RunConfig.from_dict({"train": {"early_stopping_patience": 1}, "data": {"eval_fraction": 0}})
    with pytest.raises(ConfigError, match="eval_accuracy_rows"):
        TrainConfig(best_metric="accuracy")


def _adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_early_stopping_on_the_demo_keeps_the_best_checkpoint_and_reports_accuracy(tmp_path):
    from studio.training import TrainingJob

    raw = tiny_config_dict(tmp_path / "runs", max_steps=12, eval_steps=1, early_stopping_patience=1,
                           learning_rate=0.5, eval_accuracy_rows=2, save_total_limit=None)
    raw["data"].update(sources=[{"path": str(ASSETS / "datasets" / "word_problems.jsonl")}],  # answers end in #### n
                       template="{question}\n### Solution: {answer}", eval_fraction=0.2)
    raw["train"]["max_length"] = 160
    job = TrainingJob(RunConfig.from_dict(raw))
    result = job.run()
    assert result.type == "finished", getattr(result, "message", result)
    events = _events(job.run_dir)
    evals = [e for e in events if e["type"] == "eval"]
    assert evals and all("eval_accuracy" in e["metrics"] for e in evals)
    assert result.step < 12  # the loss went up at lr 0.5: stopped after one evaluation without improvement
    kept = next(e for e in events if e["type"] == "note" and e.get("data", {}).get("kind") == "kept_best")
    best = kept["data"]["step"]
    assert best == min(evals, key=lambda e: e["eval_loss"])["step"] and "stopped early" in kept["message"]
    ckpt = job.run_dir / "checkpoints" / f"checkpoint-{best}"
    final, kept_weights = _adapter_tensors(job.run_dir / "adapter"), _adapter_tensors(ckpt)
    assert final.keys() == kept_weights.keys()
    assert all((final[k] == kept_weights[k]).all() for k in final)
    env = json.loads((job.run_dir / "environment.json").read_text())
    assert env["evaluation"]["keep_best"] and any("eval every 1 step on" in line for line in env["speed_lines"])


@pytest.mark.slow
def test_early_stopping_on_the_real_model_keeps_the_best_checkpoints_weights(smollm2_folder, tmp_path):
    from studio.training import TrainingJob

    raw = real_config_dict(tmp_path / "runs", max_steps=8, eval_steps=1, early_stopping_patience=1,
                           learning_rate=0.2, max_length=128, save_total_limit=None)
    raw["data"].update(max_rows=24, eval_fraction=0.17)
    job = TrainingJob(RunConfig.from_dict(raw))
    result = job.run()
    assert result.type == "finished", getattr(result, "message", result)
    assert result.step < 8
    events = _events(job.run_dir)
    evals = [e for e in events if e["type"] == "eval"]
    best = min(evals, key=lambda e: e["eval_loss"])["step"]
    assert not math.isnan(evals[0]["eval_loss"])
    final = _adapter_tensors(job.run_dir / "adapter")
    kept = _adapter_tensors(job.run_dir / "checkpoints" / f"checkpoint-{best}")
    last = _adapter_tensors(job.run_dir / "checkpoints" / f"checkpoint-{result.step}")
    assert all((final[k] == kept[k]).all() for k in final)
    if best != result.step:
        assert any(not (final[k] == last[k]).all() for k in final)  # the last one is not what was kept
