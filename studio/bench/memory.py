"""``studio bench memory``: the memory estimate against the tensor memory a real training run holds at its peak.

Each case trains a few steps through the engine (:class:`~studio.training.TrainingJob`) inside a dispatch mode
that follows every tensor storage an op makes (weights, LoRA, gradients, optimizer states, activations,
temporaries) until it is freed, on any device, CPU included. The estimate's tensor part (its total less the fixed
runtime overhead, which no tensor holds) is compared with the tracked peak; the error is printed per case.
"""
from __future__ import annotations

from typing import Any, Callable

GB = 1024 ** 3


def _live_tensors() -> Any:
    """A dispatch mode that adds up the bytes of every tensor storage an op returns while it is alive, and keeps
    the peak. Hand-written because torch's ``MemTracker`` (2.13) fails on LoRA runs: it hooks a gradient on every
    parameter (a frozen base has none) and refuses a module called twice (evaluation, probes)."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveTensors(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: set[tuple[str, int]] = set()
            self.now = self.peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    self._track(t.untyped_storage())
            return out

        def _track(self, storage: Any) -> None:
            key = (str(storage.device), storage.data_ptr())
            if key in self.live or not storage.nbytes():
                return
            self.live.add(key)
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
            weakref.finalize(storage, self._free, key, storage.nbytes())

        def _free(self, key: tuple[str, int], nbytes: int) -> None:
            self.live.discard(key)
            self.now -= nbytes

    return LiveTensors()


def tracked_peak(cfg: Any) -> tuple[Any, int]:
    """Train ``cfg`` inline with its tensors counted; return the job and the peak bytes of live tensors."""
    from studio.events import Failed
    from studio.training import TrainingJob

    job = TrainingJob(cfg)
    tracker = _live_tensors()
    with tracker:
        job.run()
    if isinstance(job.result, Failed):
        raise RuntimeError(f"the run failed: {job.result.message}")
    return job, tracker.peak


def compare(cfg: Any) -> dict[str, Any]:
    """The estimate the run made for itself (planned micro-batch and checkpointing) against its tracked peak."""
    job, peak = tracked_peak(cfg)
    est = job.estimate
    if est is None:
        raise RuntimeError("the run made no memory estimate")
    estimated = (est.total_gb - est.overhead_gb) * GB
    measured = peak
    return {"model": cfg.model.name_or_path, "batch_size": job.plan.per_device_batch if job.plan else None,
            "max_length": cfg.train.max_length, "gradient_checkpointing": est.gradient_checkpointing,
            "estimated_bytes": int(estimated), "measured_bytes": measured, "error": (estimated - measured) / measured,
            "estimate": est.to_dict()}


def cases(steps: int = 2) -> list[Any]:
    """SmolLM2 (the real model) on the bundled word problems, with and without gradient checkpointing."""
    from studio.config import load_config
    from studio.paths import ASSETS

    base = load_config(ASSETS / "configs" / "smollm2_word_problems.yaml")
    # every row is longer than max_length, so each batch is exactly batch x max_length tokens, as estimated
    common = [f"train.max_steps={steps}", "train.save_steps=100000", "train.tensorboard=false",
              "train.logging_steps=1", "train.batch_size=8", "train.max_length=64", "train.packing=false",
              "data.max_rows=40", "data.eval_fraction=0", "train.device=cpu"]
    return [base.with_overrides([*common, f"train.gradient_checkpointing={gc}"]) for gc in ("false", "true")]


def run_memory_bench(configs: list[Any] | None = None, report: Callable[[str], None] = print) -> list[dict]:
    """Compare every case; print one line each and return the rows."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-memory-") as tmp:
        for cfg in configs or cases():
            cfg = cfg.with_overrides([f"train.output_dir={tmp}"])
            row = compare(cfg)
            rows.append(row)
            report(f"{row['model']} batch {row['batch_size']} x {row['max_length']}, checkpointing "
                   f"{'on' if row['gradient_checkpointing'] else 'off'}: estimated {row['estimated_bytes'] / GB:.3f} "
                   f"GB of tensors, tracked peak {row['measured_bytes'] / GB:.3f} GB: error {row['error']:+.1%}")
    return rows
