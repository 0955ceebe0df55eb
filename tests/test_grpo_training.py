"""GRPO through the real TrainingJob: events (rewards, completions), a failing user reward, and SmolLM2."""
from __future__ import annotations

import pytest

from studio.config import RunConfig
from studio.events import Completions, Failed, Finished, Log, Started
from studio.paths import ASSETS
from studio.training import TrainingJob

WORD_PROBLEMS = str(ASSETS / "datasets" / "word_problems.jsonl")


def grpo_config(runs_dir, model="studio/demo-tiny", **train):
    return RunConfig.from_dict({
        "data": {"sources": [{"path": WORD_PROBLEMS}], "max_rows": 16},
        "model": {"name_or_path": model},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"method": "grpo", "output_dir": str(runs_dir), "max_steps": 2, "batch_size": 2,
                  "num_generations": 2, "max_completion_length": 16, "learning_rate": 1e-4, "logging_steps": 1,
                  "save_steps": 100, "tensorboard": False, "warmup_ratio": 0.0, **train}})


def test_a_two_step_grpo_run_logs_rewards_and_sampled_completions(tmp_path):
    job = TrainingJob(grpo_config(tmp_path / "runs"))
    shares = []
    build = job._build_trainer

    def keep_share(*args, **kwargs):  # the CPU threads' follower, to count its ticks after the run
        trainer = build(*args, **kwargs)
        shares.extend(cb.share for cb in trainer.callback_handler.callbacks if hasattr(cb, "share"))
        return trainer

    job._build_trainer = keep_share
    result = job.run()
    assert isinstance(result, Finished), getattr(result, "message", result)
    events = job.events.all()
    assert isinstance(events[0], Started) or any(isinstance(e, Started) for e in events)
    logs = [e for e in events if isinstance(e, Log)]
    assert [e.step for e in logs] == [1, 2]
    # generation follows the free cores too: a tick per generated token, beyond one at each step's start
    generated = sum(int(e.metrics["completions/mean_length"]) for e in logs)
    assert len(shares) == 1 and shares[0].ticks >= 2 + generated, (shares[0].ticks, generated)
    for key in ("reward", "reward_std", "frac_reward_zero_std", "rewards/answer/mean", "rewards/format/mean",
                "completions/mean_length", "completions/clipped_ratio"):
        assert key in logs[-1].metrics, key
    samples = [e for e in events if isinstance(e, Completions)]
    assert [e.step for e in samples] == [1, 2]
    first = samples[0].samples[0]
    assert set(first) == {"prompt", "completion", "rewards", "reward", "advantage"}
    assert set(first["rewards"]) == {"answer", "format"} and first["prompt"].endswith("assistant\n")
    assert (job.run_dir / "adapter" / "adapter_config.json").exists()
    reread = (job.run_dir / "events.jsonl").read_text(encoding="utf-8")
    assert '"type": "completions"' in reread
    from studio.evaluate import evaluate_run  # studio eval works on a GRPO run as on an SFT run

    report = evaluate_run(job.run_dir, rows=2, max_new_tokens=8, batch_size=2)
    assert report.rows == 2 and report.tuned.scored == 2 and report.base.scored == 2


def test_a_user_reward_that_raises_fails_the_run_in_one_line(tmp_path):
    rewards = tmp_path / "bad_reward.py"
    rewards.write_text("def score(completions, **kw):\n    return [1 / 0 for _ in completions]\n", encoding="utf-8")
    job = TrainingJob(grpo_config(tmp_path / "runs", max_steps=1, rewards=[{"name": f"{rewards}:score"}]))
    result = job.run()
    assert isinstance(result, Failed)
    assert "bad_reward.py:score failed on a sample: ZeroDivisionError: division by zero" in result.message
    assert "\n" not in result.message
    log = (job.run_dir / "train.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "1 / 0" in log


@pytest.mark.slow
def test_grpo_on_smollm2_two_lean_steps(tmp_path, smollm2_folder):
    job = TrainingJob(grpo_config(tmp_path / "runs", model="smollm2-135m-instruct"))
    result = job.run()
    assert isinstance(result, Finished), getattr(result, "message", result)
    samples = [e for e in job.events.all() if isinstance(e, Completions)]
    assert len(samples) == 2 and all(s.samples for s in samples)
    # a real model answers in words: its completions are text, not the random model's token soup
    words = " ".join(s["completion"] for e in samples for s in e.samples)
    assert sum(w.isalpha() for w in words.split()) >= 10


def test_the_cli_progress_line_carries_the_rewards():
    from studio.commands.train import _progress

    line = _progress(Log(step=2, total_steps=4, loss=0.01, metrics={
        "reward": 0.75, "rewards/answer/mean": 0.5, "rewards/format/mean": 1.0, "rewards/format/std": 0.0,
        "completions/mean_length": 40.6, "kl": 0.0}))
    assert line.endswith("| reward 0.75 (answer 0.50, format 1.00) | len 41")
    assert "reward" not in _progress(Log(step=2, total_steps=4, loss=0.5, metrics={"rewards/margins": 0.3}))


def test_grpo_continues_an_sft_run(tmp_path):
    """SFT then GRPO: the GRPO run starts from the SFT adapter and trains it further."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    raw = grpo_config(tmp_path / "runs").to_dict()
    raw["train"].update(method="sft", run_name="sft-first", learning_rate=3e-3, max_length=128)
    sft = TrainingJob(RunConfig.from_dict(raw))
    assert isinstance(sft.run(), Finished)
    earlier = load_file(str(sft.run_dir / "adapter" / "adapter_model.safetensors"))
    seen = {}

    class AtStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            from peft import get_peft_model_state_dict

            seen.update({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})

    job = TrainingJob(grpo_config(tmp_path / "runs", max_steps=1, learning_rate=1e-2, start_from=str(sft.run_dir)),
                      extra_callbacks=[AtStart()])
    result = job.run()
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert set(seen) == set(earlier) and all(torch.equal(seen[k], earlier[k]) for k in earlier)
    assert any(isinstance(e, Completions) for e in job.events.all())


def test_after_sft_the_kl_reference_is_the_sft_adapter(tmp_path):
    """GRPO with kl_beta > 0 from an SFT run: TRL 1.16 copies the loaded adapter into a frozen ``ref`` adapter, so
    the policy equals the reference at step 1 (KL 0, where the bare base would give KL > 0); the run's saved
    adapter is its own alone (no ``ref`` copy beside it)."""
    raw = grpo_config(tmp_path / "runs").to_dict()
    raw["train"].update(method="sft", run_name="sft-first", learning_rate=3e-2, max_length=128, max_steps=3)
    sft = TrainingJob(RunConfig.from_dict(raw))
    assert isinstance(sft.run(), Finished)

    def first_kl(start_from):
        job = TrainingJob(grpo_config(tmp_path / "runs", max_steps=1, kl_beta=0.5, start_from=start_from))
        result = job.run()
        assert isinstance(result, Finished), getattr(result, "message", result)
        return next(e for e in job.events.all() if isinstance(e, Log)).metrics["kl"], job

    kl, job = first_kl(str(sft.run_dir))
    assert kl == pytest.approx(0.0, abs=1e-6)
    assert not (job.run_dir / "adapter" / "ref").exists()
    assert sorted(p.name for p in (job.run_dir / "adapter").glob("adapter_*")) == ["adapter_config.json",
                                                                                  "adapter_model.safetensors"]
