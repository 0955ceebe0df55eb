"""The ``studio`` runs of ``studio bench gpu`` through the real training engine (:class:`~studio.training.TrainingJob`).

The random-init checkpoint of the shape and a word-level tokenizer (``t<id>`` words) are saved to a folder; the
synthetic rows are written as prompt/completion text in those words, so the engine's own data layer re-tokenizes
them to the same ids (plus the EOS it appends to every completion). The engine plans packing, attention,
checkpointing, booster and k-bit preparation itself, exactly as in a user's run. A callback times forward+backward
per step like the other runs' ``training_step`` timer (step begin to pre-optimizer, synchronized), counts real
tokens, computes the probe loss before the first step and stops after the token or time budget.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def _write_rows(rows: list[dict[str, list[int]]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            cut = r["completion_mask"].index(1)
            words = [f"t{i}" for i in r["input_ids"]]
            f.write(json.dumps({"prompt": " ".join(words[:cut]) + " ",
                                "completion": " ".join(words[cut:]) + " "}) + "\n")


def run_studio_job(shape: str, run: str, *, smoke: bool, workdir: Path, tokens: int | None = None,
                   max_seconds: float | None = None) -> dict[str, Any]:
    """Train the ``studio`` (or ``studio-lowmem``: checkpointing forced on) run with TrainingJob; the same figures
    as :func:`studio.bench.gpu_worker.run_one`."""
    import torch
    from transformers import TrainerCallback

    from studio.bench import gpu_common as bg
    from studio.config import RunConfig
    from studio.events import Failed, Note
    from studio.speed.kbit import fp32_param_count
    from studio.training import TrainingJob

    settings = dict(bg.SMOKE if smoke else bg.GPU)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    mconf = bg.model_config(shape, smoke)
    rows = bg.synthetic_rows(settings["rows"], settings["min_len"], settings["max_len"], mconf.vocab_size)
    folder = bg.checkpoint(shape, smoke, dtype, workdir)
    bg.word_tokenizer(mconf.vocab_size).save_pretrained(str(folder))
    data = workdir / f"rows-{shape}.jsonl"
    _write_rows(rows, data)
    budget = {"warmup": settings["warmup"], "tokens": tokens or settings["tokens"][shape],
              "max_seconds": max_seconds or settings["max_seconds"]}
    cfg = RunConfig.from_dict({
        "data": {"sources": [{"path": str(data)}], "format": "prompt_completion", "template": "{prompt}{completion}",
                 "eval_fraction": 0.0},
        "model": {"name_or_path": str(folder), "quantization": bg.SHAPES[shape]["quantization"],
                  "compute_dtype": "bf16" if device == "cuda" else "fp32", "chat_template": "none"},
        "lora": dict(bg.LORA),
        "train": {"packing": True, "batch_size": settings["batch_size"], "max_length": settings["max_len"],
                  "gradient_checkpointing": True if run == "studio-lowmem" else "auto", "booster": "auto",
                  "device": device, "max_steps": 100_000, "learning_rate": 2e-4, "warmup_ratio": 0.0,
                  "logging_steps": 1, "save_steps": 10_000_000, "tensorboard": False, "seed": 0,
                  "output_dir": str(workdir / f"runs-{shape}-{run}")},
    })
    meter: dict[str, Any] = {"times": [], "tokens": [], "losses": [], "last": 0}

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class Meter(TrainerCallback):
        def __init__(self, job: Any) -> None:
            self.job = job

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            meter["probe"] = bg.probe_loss(model, rows[:4], padding_free=self.job.plan.padding_free, device=device)
            meter["lora_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            meter["fp32_params"] = fp32_param_count(model) - sum(
                p.numel() for p in model.parameters() if p.requires_grad and p.dtype == torch.float32)

        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            meter["t0"] = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            sync()
            meter["times"].append(time.perf_counter() - meter["t0"])
            total = int(self.job.trainer._total_train_tokens)
            meter["tokens"].append(total - meter["last"])
            meter["last"] = total

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and not meter["losses"]:
                meter["losses"].append(float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs):
            w = budget["warmup"]
            if len(meter["times"]) > w and (sum(meter["tokens"][w:]) >= budget["tokens"]
                                            or sum(meter["times"][w:]) >= budget["max_seconds"]):
                control.should_training_stop = True

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    job = TrainingJob(cfg, extra_callbacks=[Meter])
    job.run()
    if isinstance(job.result, Failed):
        raise RuntimeError(f"studio run failed: {job.result.message} {job.result.suggestion}")
    plan = job.plan
    note = next((e for e in job.events.all() if isinstance(e, Note) and "estimate error" in e.message), None)
    return {**bg.figures(run, shape, device=device, times=meter["times"], tokens=meter["tokens"],
                         warmup=budget["warmup"], rows=rows, model_config=mconf, lora_params=meter["lora_params"]),
            "first_loss": round(meter["losses"][0], 4) if meter["losses"] else None,
            "probe_loss": round(meter["probe"], 4), "attn": plan.attn_impl, "packing": plan.packing,
            "gradient_checkpointing": plan.gradient_checkpointing, "booster": plan.booster, "kbit": plan.kbit,
            "fp32_params": meter["fp32_params"], "notes": plan.lines() + ["engine: TrainingJob"],
            "estimate_error": note.data.get("error") if note else None}
