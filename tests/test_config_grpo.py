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
