"""Preference methods train on the demo model and log their own signals into events.jsonl; a run starts from an
earlier run's adapter; bad inputs reach the CLI as one line (exit 2)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from studio.config import RunConfig
from studio.errors import ConfigError
from studio.events import Finished
from studio.training import TrainingJob
from studio.training.methods import recipe

PAIRS = Path(__file__).parent / "data" / "pairs.jsonl"


def pref_config(runs_dir, method, model="studio/demo-tiny", **train):
    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(PAIRS)}], "eval_fraction": 0, "max_rows": 8},
        "model": {"name_or_path": model}, "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"method": method, "output_dir": str(runs_dir), "max_steps": 2, "batch_size": 2, "max_length": 128,
                  "learning_rate": 1e-3, "save_steps": 100, "tensorboard": False, "warmup_ratio": 0.0,
                  "device": "cpu", **train}})


def logs_of(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (Path(run_dir) / "events.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == "log"]


def check_signals(method: str, logs: list[dict]) -> None:
    """Every logged step has the method's signals; step 1 is what the policy = reference start promises."""
    rec = recipe(method)
    assert [r["step"] for r in logs] == [1, 2]
    want = {"rewards/chosen", "rewards/rejected", "rewards/margins"} | (
        {"kl"} if method == "kto" else {"rewards/accuracies"})
    for row in logs:
        assert want <= set(row["metrics"]) <= set(row["metrics"]) | set(rec.metrics), row["metrics"]
        assert all(math.isfinite(v) for v in row["metrics"].values()) and math.isfinite(row["loss"])
    for key, value in rec.first_step.items():
        got = logs[0]["loss"] if key == "loss" else logs[0]["metrics"][key]
        assert got == pytest.approx(value, abs=1e-4), key
    assert logs[1]["metrics"] != logs[0]["metrics"]  # it learns: the signals move


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto", "simpo"])
def test_method_trains_and_logs_its_signals(method, tmp_path):
    job = TrainingJob(pref_config(tmp_path / "runs", method))
    result = job.run()
    assert isinstance(result, Finished), result
    check_signals(method, logs_of(job.run_dir))
    env = json.loads((job.run_dir / "environment.json").read_text())
    assert env["method"] == method and any(line.startswith(f"method: {method}") for line in env["speed_lines"])
    assert any("fp32" in line for line in env["speed_lines"])  # the CPU precision choice is said


def test_start_from_an_sft_run(tmp_path):
    """SFT then DPO: the DPO run's trainable adapter at step 0 is the SFT run's, and the run records where it began."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    sft = TrainingJob(pref_config(tmp_path / "runs", "sft", run_name="sft-first"))
    assert isinstance(sft.run(), Finished)
    earlier = load_file(str(sft.run_dir / "adapter" / "adapter_model.safetensors"))
    seen = {}

    class AtStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            from peft import get_peft_model_state_dict

            seen.update({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})

    cfg = pref_config(tmp_path / "runs", "dpo", start_from=str(sft.run_dir))
    job = TrainingJob(cfg, extra_callbacks=[AtStart()])
    assert isinstance(job.run(), Finished)
    assert set(seen) == set(earlier)
    assert all(torch.equal(seen[k], earlier[k]) for k in earlier)
    env = json.loads((job.run_dir / "environment.json").read_text())
    assert Path(env["started_from"]["run_dir"]) == sft.run_dir
    assert f"start_from: {sft.run_dir}" in (job.run_dir / "config.yaml").read_text()
    after = load_file(str(job.run_dir / "adapter" / "adapter_model.safetensors"))
    assert any(not torch.equal(after[k], earlier[k]) for k in earlier)  # it trained from there


def test_start_from_refuses_another_base_model(tmp_path):
    run = tmp_path / "runs" / "other"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    RunConfig.from_dict({"model": {"name_or_path": "smollm2-135m-instruct"}}).save(run / "config.yaml")
    cfg = pref_config(tmp_path / "runs", "dpo", start_from=str(run))
    with pytest.raises(ConfigError, match="was trained on smollm2-135m-instruct, not on studio/demo-tiny"):
        TrainingJob(cfg)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]  # no run folder was made


def test_cli_bad_inputs_one_line(tmp_path, capsys):
    from studio.cli import main

    no_rejected = tmp_path / "no_rejected.jsonl"
    no_rejected.write_text("".join(json.dumps({"prompt": "p", "chosen": "c"}) + "\n" for _ in range(4)))
    cfg = pref_config(tmp_path / "runs", "dpo")
    cfg.data.sources[0].path = str(no_rejected)
    path = cfg.save(tmp_path / "run.yaml")
    assert main(["train", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 'rejected' column; its columns: prompt, chosen" in err[0], err
    assert main(["train", "--config", str(path), "--set", "train.beta=-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: train.beta must be > 0, got -1.0"] or (len(err) == 1 and "train.beta must be > 0" in err[0])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "orpo", "kto", "simpo"])
def test_method_trains_on_smollm2(method, smollm2_folder, tmp_path):
    """The real model (SmolLM2-135M-Instruct, its own chat template): 2 steps, 8 pairs, max_length 128."""
    job = TrainingJob(pref_config(tmp_path / "runs", method, model="smollm2-135m-instruct", learning_rate=5e-4))
    result = job.run()
    assert isinstance(result, Finished), result
    check_signals(method, logs_of(job.run_dir))
