"""GRPO settings: validation with what to set, and the CPU/GPU defaults."""
from __future__ import annotations

import pytest

from studio.config import TrainConfig
from studio.config_grpo import check_grpo, grpo_settings
from studio.errors import ConfigError


def test_generations_that_do_not_divide_the_batch_say_what_to_set():
    with pytest.raises(ConfigError, match=r"train.num_generations \(3\) must divide train.batch_size x "
                                          r"train.grad_accum \(4 x 2 = 8\): set num_generations to 2, 4, 8, or "
                                          r"batch_size to 3"):
        check_grpo(TrainConfig(num_generations=3, batch_size=4, grad_accum=2))
    with pytest.raises(ConfigError, match="num_generations must be >= 2"):
        check_grpo(TrainConfig(num_generations=1))
    check_grpo(TrainConfig(num_generations=8, batch_size=4, grad_accum=2))


def test_completion_length_rewards_and_temperature_are_checked():
    with pytest.raises(ConfigError, match="max_completion_length must be >= 1 token, got 0"):
        check_grpo(TrainConfig(max_completion_length=0))
    with pytest.raises(ConfigError, match="unknown reward 'correct'; rewards are answer, format"):
        check_grpo(TrainConfig(rewards=[{"name": "correct"}]))
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        check_grpo(TrainConfig(temperature=0.0))


def test_device_defaults_are_small_on_a_cpu_and_fit_the_batch():
    cpu = grpo_settings(TrainConfig(), "cpu")
    gpu = grpo_settings(TrainConfig(batch_size=8), "cuda")
    assert (cpu.num_generations, cpu.max_completion_length) == (4, 64)
    assert (gpu.num_generations, gpu.max_completion_length) == (8, 256)
    assert grpo_settings(TrainConfig(batch_size=2), "cpu").num_generations == 2  # the divisor nearest 4
    explicit = grpo_settings(TrainConfig(num_generations=2, max_completion_length=16, kl_beta=0.04), "cpu")
    assert (explicit.num_generations, explicit.max_completion_length, explicit.beta) == (2, 16, 0.04)


def test_reward_lines_round_trip_keep_backslashes_and_name_the_bad_line():
    from studio.config_grpo import rewards_from_lines, rewards_to_lines

    rewards = [{"name": "answer", "weight": 1.0}, {"name": "length", "weight": 0.2, "target": 120, "unit": "chars"},
               {"name": "regex", "weight": 0.5, "pattern": r"^\S.*\n#### -?\d+$"},
               {"name": "my rewards.py:score", "weight": 1.5, "note": "it's here"}]
    text = rewards_to_lines(rewards)
    assert text.splitlines()[:2] == ["answer 1", "length 0.2 target=120 unit=chars"]
    assert rewards_from_lines(text) == rewards
    assert rewards_from_lines(r"regex 1 pattern=####\s\d+") == [{"name": "regex", "weight": 1.0,
                                                                  "pattern": r"####\s\d+"}]
    assert rewards_from_lines("\n# a comment\nformat") == [{"name": "format", "weight": 1.0}]
    for bad, words in [("answer 1\nlength 1 target=long", "line 2 .*target must be a whole number"),
                       ("answer 1 2", "'2' is neither the weight nor an option"),
                       ("regex 1 pattern='abc", "line 1 .*No closing quotation"),
                       ("answer weight=2", "write the weight as the second word")]:
        with pytest.raises(ConfigError, match=words):
            rewards_from_lines(bad)


def test_the_speed_plan_names_the_sampling_the_rewards_and_the_stop():
    from studio.training.methods.grpo import plan_lines

    train = TrainConfig(method="grpo", num_generations=2, batch_size=2, max_completion_length=24, temperature=0.8)
    lines = plan_lines(type("Cfg", (), {"train": train})(), "cpu")
    assert lines[0] == "sampling: 2 completions per prompt, at most 24 tokens each, temperature 0.8; rewards: " \
                       "answer x1, format x0.5"
    assert lines[1].startswith("stop at the answer: each completion ends after its #### <number> line")
    train.stop_at_answer = False
    assert "off (train.stop_at_answer: false)" in plan_lines(type("Cfg", (), {"train": train})(), "cpu")[1]
    train.stop_at_answer, train.rewards = True, [{"name": "length", "weight": 1.0}]
    assert len(plan_lines(type("Cfg", (), {"train": train})(), "cpu")) == 1  # no reward reads the #### line


def test_the_config_file_and_set_take_the_reward_lines_too(tmp_path):
    from studio.config import RunConfig, load_config

    path = tmp_path / "run.yaml"
    path.write_text("train:\n  method: grpo\n  rewards: |\n    answer 1\n    length 0.2 target=40\n", encoding="utf-8")
    assert load_config(path).train.rewards == [{"name": "answer", "weight": 1.0},
                                               {"name": "length", "weight": 0.2, "target": 40}]
    cfg = RunConfig().with_overrides(["train.rewards=format 0.5"])
    assert cfg.train.rewards == [{"name": "format", "weight": 0.5}]
    with pytest.raises(ConfigError, match="train.rewards must be a list, got 5"):
        RunConfig().with_overrides(["train.rewards=5"])
