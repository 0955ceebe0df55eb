"""Does bf16 keep DPO's small margins on this CPU? And how fast is each preference method on SmolLM2?

Usage: ``PYTHONPATH=. python scripts/bench_pref_precision.py [--steps 4] [--methods dpo,orpo,kto,simpo]``

Part 1 trains DPO on the real SmolLM2 from the same seed and data twice in one process, fp32 and under bf16 autocast
(TRL's default ``bf16=True``), and prints the logged loss and reward margin per step side by side; it then scores
the fp32 run's final adapter on the same batch with and without autocast and prints the margin error bf16 adds.
Part 2 trains each method a few steps in fp32 through Studio's job and prints steps/s (as ratios to DPO, measured in
the same call) and the first-step loss.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "pairs.jsonl"


def _cfg(method: str, out: str, steps: int):
    from studio.config import RunConfig

    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(PAIRS)}], "eval_fraction": 0},
        "model": {"name_or_path": "smollm2-135m-instruct"}, "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"method": method, "output_dir": out, "max_steps": steps, "batch_size": 4, "max_length": 128,
                  "learning_rate": 5e-4, "save_steps": 1000, "tensorboard": False, "warmup_ratio": 0.0,
                  "device": "cpu", "gradient_checkpointing": False}})


def precision(steps: int) -> None:
    import torch

    from studio.data.pair_prepare import prepare_pairs
    from studio.modeling import base_tokenizer, load_base, lora_config
    from studio.training.methods import recipe

    cfg = _cfg("dpo", tempfile.mkdtemp(), steps)
    tok = base_tokenizer(cfg.model)
    prepared = prepare_pairs(cfg, tok[0], "paired")
    rec = recipe("dpo")
    logs: dict[str, list] = {}

    trained = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        torch.manual_seed(0)
        base = load_base(cfg.model, device="cpu", for_training=True, kbit_prep=False, tokenizer=tok)
        args = rec.config_class()(**rec.args(cfg, dict(
            output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=4, learning_rate=5e-4,
            lr_scheduler_type="constant", logging_steps=1, seed=0, use_cpu=True, bf16=bf16, report_to="none",
            disable_tqdm=True, save_strategy="no", dataloader_pin_memory=False, gradient_checkpointing=False,
            max_length=128)))
        trainer = rec.trainer_class()(model=base.model, args=args, train_dataset=prepared.train,
                                      processing_class=base.tokenizer,
                                      peft_config=lora_config(cfg, base.model, base.added_token_ids))
        t0 = time.perf_counter()
        trainer.train()
        dt = time.perf_counter() - t0
        logs[name] = [h for h in trainer.state.log_history if "rewards/margins" in h]
        print(f"{name}: {steps / dt:.3f} steps/s")
        trained[name] = trainer
    print("step | loss fp32 | loss bf16 | margin fp32 | margin bf16")
    for a, b in zip(logs["fp32"], logs["bf16"]):
        print(f"{a['step']:4d} | {a['loss']:.6f} | {b['loss']:.6f} | {a['rewards/margins']:+.6f} | "
              f"{b['rewards/margins']:+.6f}")
    # the same trained adapter scored on the same batch with and without bf16 autocast
    trainer = trained["fp32"]
    batch = trainer.data_collator([prepared.train[i] for i in range(min(8, len(prepared.train)))])
    margins = {}
    for name, ctx in (("fp32", False), ("bf16", True)):
        trainer.model.eval()
        trainer._metrics["eval"].clear()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=ctx):
            trainer.compute_loss(trainer.model, dict(batch))
        got = trainer._metrics["eval"]["rewards/margins"]
        margins[name] = sum(got) / len(got)
    err = abs(margins["bf16"] - margins["fp32"])
    print(f"final adapter, same 8 pairs: margin fp32 {margins['fp32']:+.6f}, bf16 autocast {margins['bf16']:+.6f}, "
          f"|error| {err:.6f} = {err / max(abs(margins['fp32']), 1e-12):.1%} of the margin")


def speeds(methods: list[str], steps: int) -> None:
    from studio.training import TrainingJob

    rows = {}
    for m in methods:
        job = TrainingJob(_cfg(m, tempfile.mkdtemp(), steps))
        job.run()
        logs = [json.loads(line) for line in (job.run_dir / "events.jsonl").read_text().splitlines()]
        logs = [r for r in logs if r["type"] == "log"]
        rate = [r["steps_per_s"] for r in logs[1:] if r.get("steps_per_s")]
        rows[m] = (sum(rate) / len(rate) if rate else float("nan"), logs[0]["loss"], logs[0]["metrics"])
    ref = rows.get("dpo", next(iter(rows.values())))[0]
    for m, (rate, loss, metrics) in rows.items():
        print(f"{m:6s} {rate:.3f} steps/s ({rate / ref:.2f}x dpo) | step-1 loss {loss:.6f}"
              + (f" (ln 2 = {math.log(2):.6f})" if m == "dpo" else "")
              + f" | margin {metrics.get('rewards/margins', float('nan')):+.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--methods", default="dpo,orpo,kto,simpo")
    ap.add_argument("--skip-precision", action="store_true")
    a = ap.parse_args()
    if not a.skip_precision:
        precision(a.steps)
    speeds(a.methods.split(","), a.steps)
