"""``studio bench train-overhead``: the engine against a plain TRL script, as a steps/s ratio.

``train_overhead``: the Studio engine (TrainingJob: events, memory readings, run directory) against a plain TRL
``SFTTrainer`` script with the identical config, data and LoRA, alternated in one process, each in its own thread
(see :func:`_plain_trl_in_a_thread`). Only the training loop is timed (step ends after a few warm-up steps), so
model loading and data preparation don't count; the ratio compares median step times (all rounds pooled), which
other processes on a shared machine disturb far less than wall-clock rounds (also printed).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class OverheadResult:
    studio_steps_per_s: list[float] = field(default_factory=list)
    """Per round: steps over wall time after the warm-up (what a user waits for)."""
    plain_steps_per_s: list[float] = field(default_factory=list)
    studio_step_s: list[float] = field(default_factory=list)
    """Every timed step's duration (end to end: callbacks, events and logging included), all rounds pooled."""
    plain_step_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Studio steps/s over plain TRL steps/s from the median step time of each (all rounds pooled); 1.0 means
        no overhead. A per-step median is robust against other processes stealing the CPU for a while, which on a
        shared machine swings whole rounds by 20 % or more; every per-step cost of the engine is inside a step."""
        if self.studio_step_s and self.plain_step_s:
            return statistics.median(self.plain_step_s) / statistics.median(self.studio_step_s)
        return self.wall_ratio

    @property
    def wall_ratio(self) -> float:
        """The same from wall-clock steps/s per round (medians over rounds): noisier on a shared machine."""
        return statistics.median(self.studio_steps_per_s) / statistics.median(self.plain_steps_per_s)

    def summary(self) -> str:
        s, p = statistics.median(self.studio_steps_per_s), statistics.median(self.plain_steps_per_s)
        med = (f"median step {1e3 * statistics.median(self.studio_step_s):.1f} ms vs "
               f"{1e3 * statistics.median(self.plain_step_s):.1f} ms: " if self.studio_step_s and self.plain_step_s
               else "")
        return (f"studio {s:.3f} steps/s, plain TRL {p:.3f} steps/s (wall, median of {len(self.studio_steps_per_s)} "
                f"alternated round(s): {self.wall_ratio:.3f}); {med}ratio {self.ratio:.3f} (target >= 0.97)")


def _timer_class() -> type:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self, *_: Any) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

        def steps_per_s(self, warmup: int) -> float:
            t = self.times[warmup:]
            if len(t) < 2:
                raise RuntimeError("too few steps to time; raise --steps")
            return (len(t) - 1) / (t[-1] - t[0])

        def step_seconds(self, warmup: int) -> list[float]:
            """Durations between consecutive step ends after ``warmup`` steps."""
            t = self.times[warmup:]
            return [b - a for a, b in zip(t, t[1:])]

    return StepTimer


def default_config(steps: int) -> Any:
    from studio.config import RunConfig
    from studio.paths import ASSETS

    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(ASSETS / "datasets" / "linear_equations.csv")}],
                 "format": "prompt_completion", "template": "{Problem}\n ### Solution: {Solution}",
                 "response_template": "### Solution:", "eval_fraction": 0.0, "max_rows": 400},
        "model": {"name_or_path": "studio/demo-tiny"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
        "train": {"max_steps": steps, "learning_rate": 3e-3, "batch_size": 4, "max_length": 128,
                  "save_steps": 10_000, "logging_steps": 1, "tensorboard": False},
    })


def _plain_trl(cfg: Any, out_dir: Path, timer: Any) -> None:
    """What a person would write by hand: load, LoRA config, SFTConfig, SFTTrainer.train()."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from studio.data import prepare_datasets
    from studio.modeling.sources import resolve_model_path
    from studio.modeling import compute_dtype, model_id, resolve_device
    from studio.modeling.tokenizer import load_tokenizer
    from studio.training import sft_args

    device = resolve_device(cfg.train.device)
    path = resolve_model_path(model_id(cfg.model))
    tok, _ = load_tokenizer(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=compute_dtype(cfg.model, device),
                                                 attn_implementation="sdpa")
    if device == "cuda":
        model.to("cuda")
    data = prepare_datasets(cfg, tok)
    args = SFTConfig(**sft_args(cfg, out_dir, device=device, gradient_checkpointing=cfg.train.gradient_checkpointing
                                is True, has_eval=False))
    lc = cfg.lora
    peft_config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                             bias=lc.bias, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data.train, processing_class=tok,
                         peft_config=peft_config, callbacks=[timer])
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # printing every log line would slow the baseline down
    trainer.train()
    trainer.save_model(str(out_dir / "adapter"))


def _plain_trl_in_a_thread(cfg: Any, out_dir: Path, timer: Any) -> None:
    """The plain script, run off the main thread like the engine's own run.

    Why: PyTorch's CPU kernels run on an OpenMP pool per calling thread, and libgomp keeps a finished pool's
    workers. A baseline on the main thread leaves a pool there; the engine's training thread then makes a second
    one, and with more OpenMP threads than cores libgomp stops spin-waiting between parallel regions: every small
    kernel pays a futex wake-up (measured on 2 cores: 180 ms steps instead of 125 ms, ~50,000 context switches per
    run instead of ~300). Alone, either side runs as fast in a thread as on the main thread (plain: 122 vs 130 ms),
    so both run in their own thread and neither slows the other down.
    """
    import threading

    failure: list[BaseException] = []

    def target() -> None:
        try:
            _plain_trl(cfg, out_dir, timer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=target, name="bench-plain-trl", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _studio(cfg: Any, out_dir: Path, timer: Any) -> None:
    from studio.events import Failed
    from studio.training import TrainingJob

    job = TrainingJob(cfg, out_dir, extra_callbacks=[timer]).start()
    job.wait()
    if isinstance(job.result, Failed):
        raise RuntimeError(f"studio run failed: {job.result.message}")


def train_overhead(cfg: Any = None, *, steps: int = 40, rounds: int = 2, warmup: int = 5,
                   report: Callable[[str], None] = print) -> OverheadResult:
    """Alternate Studio and plain TRL ``rounds`` times each; return the steps/s figures and their ratio."""
    cfg = cfg or default_config(steps)
    if cfg.train.max_steps == -1 or cfg.train.max_steps != steps:
        cfg = cfg.with_overrides([f"train.max_steps={steps}", "train.tensorboard=false"])
    warmup = min(warmup, max(steps - 3, 0))
    result = OverheadResult()
    Timer = _timer_class()
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as tmp:
        for i in range(rounds):
            order = [("studio", _studio), ("plain", _plain_trl_in_a_thread)]
            if i % 2:
                order.reverse()
            for name, fn in order:
                timer = Timer()
                fn(cfg, Path(tmp) / f"{name}-{i}", timer)
                sps = timer.steps_per_s(warmup)
                steps = timer.step_seconds(warmup)
                (result.studio_steps_per_s if name == "studio" else result.plain_steps_per_s).append(sps)
                (result.studio_step_s if name == "studio" else result.plain_step_s).extend(steps)
                report(f"round {i + 1}: {name:6s} {sps:.3f} steps/s (median step "
                       f"{1e3 * statistics.median(steps):.1f} ms)")
    report(result.summary())
    return result
