"""GRPO (reward tuning): prompts with reference answers, TRL's ``GRPOTrainer`` with Studio's checked rewards.

The rewards come from ``train.rewards`` (:mod:`studio.rewards`), carried to the trainer on the config
(``StudioGRPOConfig.studio_rewards``) so the registry's ``trainer_class()(model=..., args=...)`` call builds
them. At every logging step the trainer emits a :class:`~studio.events.Completions` event (sampled completions
with their rewards) and, once, a warning :class:`~studio.events.Note` when :func:`studio.rewards.gaming.detect_gaming`
sees a reward gamed.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

from studio.training.methods import Recipe

LOG = logging.getLogger("studio.training")
SAMPLES_PER_STEP = 8
"""Sampled completions kept per logging step in ``events.jsonl``."""

GRPO_METRICS = {"reward": "Total reward", "reward_std": "Reward spread (std)",
                "frac_reward_zero_std": "Groups with zero spread", "completions/mean_length": "Completion length",
                "completions/clipped_ratio": "Clipped completions", "kl": "KL to the start"}
"""TRL's GRPO signals; each reward also logs ``rewards/<name>/mean`` (labelled from its name)."""


def reward_label(key: str) -> str | None:
    """``rewards/format/mean`` -> ``format reward``; None for other keys."""
    if key.startswith("rewards/") and key.endswith("/mean"):
        return f"{key[len('rewards/'):-len('/mean')]} reward"
    return None


def reward_progress(metrics: dict[str, float]) -> list[str]:
    """Progress-line parts of a GRPO log: ``reward 0.75 (answer 0.50, format 1.00)``, ``len 41``, ``kl 0.002``;
    [] for other methods' logs."""
    if "reward" not in metrics:
        return []
    each = [f"{key[len('rewards/'):-len('/mean')]} {v:.2f}" for key, v in metrics.items()
            if key.startswith("rewards/") and key.endswith("/mean")]
    parts = [f"reward {metrics['reward']:.2f}" + (f" ({', '.join(each)})" if each else "")]
    if metrics.get("completions/mean_length") is not None:
        parts.append(f"len {metrics['completions/mean_length']:.0f}")
    if metrics.get("kl"):
        parts.append(f"kl {metrics['kl']:.3g}")
    return parts


@functools.lru_cache(maxsize=None)
def _config_class() -> type:
    """``StudioGRPOConfig``, made once (the trainer pickles its args into checkpoints: the class is found again as
    this module's attribute through :func:`__getattr__`)."""
    from trl import GRPOConfig

    @dataclasses.dataclass
    class StudioGRPOConfig(GRPOConfig):
        """GRPOConfig plus the run's reward specs (built into checked callables by the trainer)."""

        studio_rewards: list = dataclasses.field(default_factory=list)
        studio_reward_dir: str | None = None
        studio_stop_at_answer: bool = False
        """End each completion after its ``#### <number>`` line (:mod:`studio.training.methods.grpo_stop`)."""

    StudioGRPOConfig.__module__ = __name__
    StudioGRPOConfig.__qualname__ = "StudioGRPOConfig"
    return StudioGRPOConfig


def __getattr__(name: str) -> Any:
    if name == "StudioGRPOConfig":
        return _config_class()
    raise AttributeError(name)


def stop_at_answer(train: Any, specs: list[Any]) -> bool:
    """Whether the run's completions end at their ``####`` line: ``train.stop_at_answer`` and a reward that reads
    only up to it."""
    from studio.training.methods.grpo_stop import stops_at_answer

    return bool(getattr(train, "stop_at_answer", True)) and stops_at_answer([sp.name for sp in specs])


def plan_lines(cfg: Any, device: str) -> list[str]:
    """The speed plan's GRPO lines: what is sampled per prompt, and whether completions stop at the ``####`` line."""
    from studio.config_grpo import grpo_settings
    from studio.formatting import plural
    from studio.rewards import parse_specs

    s = grpo_settings(cfg.train, device)
    specs = parse_specs(cfg.train.rewards)
    each = plural(s.max_completion_length, "token")
    lines = [f"sampling: {plural(s.num_generations, 'completion')} per prompt, at most {each} each, "
             f"temperature {s.temperature:g}; rewards: " + ", ".join(f"{sp.label} x{sp.weight:g}" for sp in specs)]
    if stop_at_answer(cfg.train, specs):
        lines.append("stop at the answer: each completion ends after its #### <number> line (the answer and format "
                     "rewards read nothing after it; train.stop_at_answer: false samples to the limit)")
    elif getattr(cfg.train, "stop_at_answer", True) is False:
        lines.append("stop at the answer: off (train.stop_at_answer: false): completions run to their end token or "
                     "the limit")
    return lines


def _args(cfg: Any, base: dict[str, Any]) -> dict[str, Any]:
    from studio.config_grpo import grpo_settings
    from studio.rewards import parse_specs

    config = _config_class()
    names = {f.name for f in dataclasses.fields(config)}
    device = "cpu" if base.get("use_cpu") else "cuda"
    s = grpo_settings(cfg.train, device)
    specs = parse_specs(cfg.train.rewards)
    out = {k: v for k, v in base.items() if k in names}
    out.update(per_device_train_batch_size=cfg.train.batch_size, gradient_accumulation_steps=cfg.train.grad_accum,
               num_generations=s.num_generations, max_completion_length=s.max_completion_length,
               temperature=s.temperature, beta=s.beta, reward_weights=[sp.weight for sp in specs],
               studio_rewards=list(cfg.train.rewards),
               studio_stop_at_answer=stop_at_answer(cfg.train, specs), log_completions=False, eval_strategy="no",
               remove_unused_columns=False, disable_dropout=True)
    out.pop("eval_steps", None)
    return out


def _trainer_class() -> type:
    from trl import GRPOTrainer

    class StudioGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose rewards come from ``args.studio_rewards``; it emits sampled completions with their
        rewards at every logging step, and a warning when a reward is being gamed."""

        def __init__(self, *args: Any, reward_funcs: Any = None, **kwargs: Any) -> None:
            from studio.rewards import build_rewards, parse_specs

            targs = kwargs.get("args")
            if reward_funcs is None:
                reward_funcs = build_rewards(parse_specs(targs.studio_rewards), targs.studio_reward_dir)
            kwargs.pop("token_window", None)
            super().__init__(*args, reward_funcs=reward_funcs, **kwargs)
            self.studio_history: list[Any] = []
            self.studio_warned = False

        def _generate_single_turn(self, prompt_ids: Any, *args: Any, **kwargs: Any) -> Any:
            """TRL's generation; with ``studio_stop_at_answer``, each completion ends after its ``####`` line, and
            on a CPU the thread count follows the free cores at every token too (a step is mostly generation)."""
            from studio.training.methods.grpo_stop import EndAtAnswer, generation_processors

            makers: list[Any] = []
            if getattr(self.args, "studio_stop_at_answer", False):
                makers.append(lambda: EndAtAnswer(self._tokenizer, self.eos_token_ids))
            share = next((cb.share for cb in self.callback_handler.callbacks if hasattr(cb, "share")), None)
            if share is not None:
                from studio.speed.cpu_share import TickEachToken

                makers.append(lambda: TickEachToken(share))
            if not makers or self.use_vllm or self.use_transformers_continuous_batching:
                return super()._generate_single_turn(prompt_ids, *args, **kwargs)
            with generation_processors(self.accelerator.unwrap_model(self.model_wrapped), makers):
                return super()._generate_single_turn(prompt_ids, *args, **kwargs)

        def _studio_emit(self) -> Any:
            """The run's event sink: the Studio callback's ``emit`` (None outside a Studio job)."""
            return next((cb.emit for cb in self.callback_handler.callbacks if hasattr(cb, "emit")
                         and hasattr(cb, "run")), None)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            snapshot = dict(logs)
            mode_train = self.model.training
            super().log(logs, start_time)
            if not mode_train or "loss" not in logs or not self.accelerator.is_main_process:
                return
            emit = self._studio_emit()
            if emit is not None:
                try:
                    self._studio_completions(emit, {**snapshot, **logs})
                except Exception as exc:  # noqa: BLE001 - a missing sample never fails a run
                    LOG.warning("completions not recorded: %s", exc)

        def _studio_completions(self, emit: Any, logs: dict[str, Any]) -> None:
            from studio.events import Completions, Note
            from studio.rewards import completion_text
            from studio.rewards.gaming import StepSignals, detect_gaming

            prompts = list(self._logs["prompt"])
            completions = [completion_text(c) for c in self._logs["completion"]]
            rewards = {name: list(values) for name, values in self._logs["rewards"].items()}
            advantages = list(self._logs["advantages"])
            weights = [float(w) for w in self.reward_weights.tolist()]
            names = list(self.reward_func_names)
            samples = []
            for i, completion in enumerate(completions[:SAMPLES_PER_STEP]):
                per = {n: _finite(rewards[n][i]) if i < len(rewards.get(n, ())) else None for n in names}
                total = sum(w * (v or 0.0) for w, v in zip(weights, per.values()))
                samples.append({"prompt": _tail(completion_text(prompts[i])), "completion": completion,
                                "rewards": per, "reward": round(total, 4),
                                "advantage": _finite(advantages[i]) if i < len(advantages) else None})
            step = self.state.global_step
            emit(Completions(step=step, samples=samples))
            means = {n: logs.get(f"rewards/{n}/mean") for n in names}
            self.studio_history.append(StepSignals(step=step, rewards={k: v for k, v in means.items()
                                                                       if v is not None},
                                                   mean_length=logs.get("completions/mean_length"),
                                                   completions=completions))
            warning = None if self.studio_warned else detect_gaming(self.studio_history)
            if warning is not None:
                self.studio_warned = True
                LOG.warning("%s", warning.message)
                emit(Note(level="warning", message=warning.message,
                          data={"kind": "reward_gaming", "reward": warning.reward, "signs": warning.signs,
                                "samples": warning.samples}))

    return StudioGRPOTrainer


def _finite(x: Any) -> float | None:
    import math

    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, 4) if math.isfinite(v) else None


def _tail(prompt: str, limit: int = 400) -> str:
    """The end of a prompt (the question, where the chat template's system text is long)."""
    return prompt if len(prompt) <= limit else "…" + prompt[-limit:]


def prepare(cfg: Any, tokenizer: Any) -> Any:
    """GRPO's data for the job: :class:`~studio.rewards.data.PromptRows`, no eval split for the trainer (GRPO's
    evaluation is ``studio eval`` on the held-out rows)."""
    from studio.rewards import needs_reference, parse_specs
    from studio.rewards.data import prompt_rows

    rows = prompt_rows(cfg, tokenizer, needs_reference=bool(needs_reference(parse_specs(cfg.train.rewards))))
    return dataclasses.replace(rows, eval=None)


RECIPES = {"grpo": Recipe(name="grpo", title="GRPO (reward tuning)", data="prompts", config_class=_config_class,
                          trainer_class=_trainer_class, args=_args, metrics=GRPO_METRICS, progress_metric="reward")}
