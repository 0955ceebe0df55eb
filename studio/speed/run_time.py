"""How long a run will take, before Start: from a step measured on this machine by an earlier run in the runs folder
when there is one, otherwise from the model's FLOPs and the device's peak; the estimate says which.

Measured: the median time of the logged steps (the first, which warms up, left out) of the newest run in the runs
folder that trained the same model, quantization and method on the same device, machine (platform, CPU count, GPU)
and max_length, scaled by rows per step when the batch differs. From FLOPs: ``4N + 3A`` (+ LoRA) per token
(:mod:`studio.speed.flops`) for every row as long as max_length (so an upper bound), at the utilisation (MFU) an
earlier run measured on this machine, else :data:`ASSUMED_MFU`.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.formatting import format_seconds, plural

ASSUMED_MFU = {"cpu": 0.15, "cuda": 0.35}
"""A rough default share of the device's peak FLOP/s that a LoRA step reaches, used only until a run on this
machine has logged its own MFU (the estimate then says it is assumed)."""
NEWEST_RUNS = 30
"""How many of the newest runs are searched for a measured step."""


@dataclass(frozen=True)
class RunTime:
    """``seconds_per_step`` and the planned ``steps`` (None when they follow the data: epochs x rows)."""

    seconds_per_step: float
    steps: int | None
    source: str
    """``measured`` or ``flops``."""
    how: str
    """Where the figure comes from, in words."""

    @property
    def total_s(self) -> float | None:
        return self.seconds_per_step * self.steps if self.steps else None

    def summary(self) -> str:
        """``Time: ~2 min 0 s (30 steps × 4.0 s/step; measured: ...)``."""
        s = self.seconds_per_step
        per = f"{s:.2f} s/step" if s < 10 else f"{s:.0f} s/step" if s < 120 else f"{format_seconds(s)} per step"
        bound = "at most " if self.source == "flops" else ""
        how = self.how[:1].upper() + self.how[1:]
        if self.total_s is None:
            return f"Time: {bound}~{per}; the number of steps follows the data (epochs × rows). {how}."
        return (f"Time: {bound}~{format_seconds(self.total_s)} ({plural(self.steps or 0, 'step')} × {per}, "
                f"evaluation not included). {how}.")


def rows_per_step(tc: Any) -> int:
    return max(1, int(tc.batch_size) * max(1, int(getattr(tc, "grad_accum", 1) or 1))
               * max(1, int(getattr(tc, "processes", 1) or 1)))


def planned_steps(cfg: Any) -> int | None:
    """``train.max_steps`` when set, else None (the steps follow the data's size)."""
    steps = int(getattr(cfg.train, "max_steps", -1) or -1)
    return steps if steps > 0 else None


def this_machine(device: str) -> dict[str, Any]:
    """What a measured step depends on besides the run's settings: platform, CPU count, GPU name."""
    gpu = None
    if device == "cuda":
        try:
            import torch

            gpu = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001
            gpu = None
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "gpu": gpu}


def _same_machine(env: dict[str, Any], here: dict[str, Any]) -> bool:
    gpu = (env.get("gpu") or {}).get("name") if isinstance(env.get("gpu"), dict) else None
    return env.get("platform") == here["platform"] and env.get("cpu_count") == here["cpu_count"] and gpu == here["gpu"]


def _step_seconds(run: Any) -> float | None:
    from studio.events import Log

    rates = [e.steps_per_s for e in run.of(Log) if e.steps_per_s]
    return statistics.median(1 / r for r in rates[1:]) if len(rates) >= 2 else None


def measured_step(cfg: Any, runs_dir: str | Path, device: str) -> tuple[float, str] | None:
    """``(seconds per step, words)`` from the newest comparable run in ``runs_dir`` on this machine, else None."""
    from studio.events import Started
    from studio.runs import list_runs

    here = this_machine(device)
    mc, tc = cfg.model, cfg.train
    for run in list_runs(runs_dir)[:NEWEST_RUNS]:
        started = run.last(Started)
        if started is None or started.device != device or not _same_machine(run.environment or {}, here):
            continue
        try:
            then = run.config
        except Exception:  # noqa: BLE001 - an unreadable config measures nothing
            continue
        same = (then.model.name_or_path, then.model.quantization, getattr(then.train, "method", "sft"),
                then.train.max_length) == (mc.name_or_path, mc.quantization, getattr(tc, "method", "sft"),
                                           tc.max_length)
        seconds = _step_seconds(run) if same else None
        if seconds is None:
            continue
        scale = rows_per_step(tc) / rows_per_step(then.train)
        how = f"measured on this machine by run `{run.name}` ({seconds:.2f} s/step"
        how += f" at {plural(rows_per_step(then.train), 'row')} per step, scaled ×{scale:.2g})" if scale != 1 else ")"
        return seconds * scale, how
    return None


def measured_mfu(runs_dir: str | Path, device: str) -> tuple[float, str] | None:
    """The median MFU an earlier run logged on this machine and device (any model), with its run's name."""
    from studio.events import Log, Started
    from studio.runs import list_runs

    here = this_machine(device)
    for run in list_runs(runs_dir)[:NEWEST_RUNS]:
        started = run.last(Started)
        if started is None or started.device != device or not _same_machine(run.environment or {}, here):
            continue
        values = [e.mfu for e in run.of(Log)[1:] if e.mfu]
        if values:
            return statistics.median(values), run.name
    return None


def flops_step(cfg: Any, model_config: Any, device: str, lora_params: int, runs_dir: str | Path | None
               ) -> tuple[float, str] | None:
    """``(seconds per step, words)`` from FLOPs per step over the device's peak at a measured or assumed MFU."""
    from studio.config import METHOD_SHAPES
    from studio.speed.flops import flops_per_token, peak_flops

    tc = cfg.train
    peak = peak_flops(device=device)
    if peak.flops <= 0:
        return None
    sequences, uses_reference = METHOD_SHAPES.get(getattr(tc, "method", "sft"), (1, False))
    tokens = rows_per_step(tc) * tc.max_length * sequences
    per_token = flops_per_token(model_config, tc.max_length, lora_params=lora_params)
    if uses_reference:
        per_token *= 1.5  # the reference pass: a forward (2N) on top of the policy's 4N
    measured = measured_mfu(runs_dir, device) if runs_dir is not None else None
    util, whose = (measured[0], f"measured by run `{measured[1]}` on this machine") if measured else \
        (ASSUMED_MFU.get(device, ASSUMED_MFU["cuda"]), "assumed until a run on this machine measures it")
    seconds = tokens * per_token / (peak.flops * util)
    how = (f"from FLOPs: {tokens * per_token / 1e12:.2g} TFLOP per step (every row as long as max_length) at "
           f"{util:.0%} of the peak ({whose}; {peak.source})")
    return seconds, how


def estimate_run_time(cfg: Any, runs_dir: str | Path | None, *, model_config: Any = None,
                      lora_params: int = 0) -> RunTime | None:
    """The run's time before Start (None when neither a measured step nor the device's peak is known).

    ``model_config``: a transformers config or a preset's ``arch`` mapping (None reads the model's).
    """
    from studio.modeling.devices import resolve_device

    device = resolve_device(getattr(cfg.train, "device", "auto"))
    steps = planned_steps(cfg)
    found = measured_step(cfg, runs_dir, device) if runs_dir is not None else None
    if found is not None:
        return RunTime(found[0], steps, "measured", found[1])
    if model_config is None:
        try:
            from studio.modeling.memory import read_model_config

            model_config = read_model_config(cfg.model)
        except Exception:  # noqa: BLE001 - no config, no FLOPs: no estimate (the memory estimate says why)
            return None
    else:
        from studio.modeling.params import transformers_config

        model_config = transformers_config(model_config)
    computed = flops_step(cfg, model_config, device, lora_params, runs_dir)
    if computed is None or not math.isfinite(computed[0]):
        return None
    return RunTime(computed[0], steps, "flops", computed[1])
