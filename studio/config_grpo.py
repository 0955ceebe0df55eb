"""GRPO's settings checked and resolved: rewards, generations per prompt against the batch, completion length,
and the device defaults (``None`` means: small on a CPU, so a SmolLM2 step takes seconds; TRL-sized on a GPU)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.errors import ConfigError, RewardError

CPU_DEFAULTS = {"num_generations": 4, "max_completion_length": 64}
"""On a CPU: 4 completions of at most 64 tokens per prompt (TRL's 8 x 512 takes minutes a step on SmolLM2)."""
GPU_DEFAULTS = {"num_generations": 8, "max_completion_length": 256}


@dataclass(frozen=True)
class GrpoSettings:
    """The GRPO settings a run trains with, device defaults filled in."""

    num_generations: int
    max_completion_length: int
    temperature: float
    beta: float


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


def check_generations(num_generations: int, batch_size: int, grad_accum: int) -> None:
    """``num_generations`` >= 2 and dividing ``batch_size x grad_accum`` (TRL's groups), with what to set.

    Raises:
        ConfigError: naming the values and the settings that would work.
    """
    total = batch_size * grad_accum
    if num_generations < 2:
        raise ConfigError(f"train.num_generations must be >= 2 (GRPO compares completions of the same prompt), "
                          f"got {num_generations}")
    if total % num_generations:
        fits = ", ".join(map(str, _divisors(total))) or "none: raise batch_size to 2 or more"
        raise ConfigError(f"train.num_generations ({num_generations}) must divide train.batch_size x "
                          f"train.grad_accum ({batch_size} x {grad_accum} = {total}): set num_generations to "
                          f"{fits}, or batch_size to {num_generations} (or a multiple of it)")


def check_grpo(train: Any) -> None:
    """The GRPO fields of a TrainConfig (called when ``train.method`` is grpo).

    Raises:
        ConfigError: a reward spec, generations or completion length that can't work.
    """
    from studio.rewards import parse_specs

    try:
        parse_specs(train.rewards)
    except RewardError as exc:
        raise ConfigError(str(exc)) from None
    if train.max_completion_length is not None and train.max_completion_length <= 0:
        raise ConfigError(f"train.max_completion_length must be >= 1 token, got {train.max_completion_length}")
    if train.num_generations is not None:
        check_generations(train.num_generations, train.batch_size, train.grad_accum)
    if train.temperature <= 0:
        raise ConfigError(f"train.temperature must be > 0 (GRPO samples its completions), got {train.temperature}")
    if train.kl_beta < 0:
        raise ConfigError(f"train.kl_beta must be >= 0, got {train.kl_beta}")


def grpo_settings(train: Any, device: str) -> GrpoSettings:
    """The settings a run on ``device`` uses: the config's, with device defaults where it says None.

    Raises:
        ConfigError: the default number of generations does not divide the batch (set it explicitly).
    """
    defaults = GPU_DEFAULTS if device == "cuda" else CPU_DEFAULTS
    gens = train.num_generations
    if gens is None:
        total = train.batch_size * train.grad_accum
        gens = next((d for d in sorted(_divisors(total), key=lambda d: abs(d - defaults["num_generations"]))),
                    defaults["num_generations"])
    check_generations(gens, train.batch_size, train.grad_accum)
    length = train.max_completion_length or defaults["max_completion_length"]
    return GrpoSettings(num_generations=gens, max_completion_length=length, temperature=train.temperature,
                        beta=train.kl_beta)
