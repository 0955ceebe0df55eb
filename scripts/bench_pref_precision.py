"""Does bf16 keep DPO's small margins on this CPU? And how fast is each preference method on SmolLM2?

Usage: ``PYTHONPATH=. python scripts/bench_pref_precision.py [--steps 4] [--methods dpo,orpo,kto,simpo]``

Part 1 scores DPO margins of one LoRA policy on the real SmolLM2 (8 pairs) in fp32 and under bf16 autocast (TRL's
default ``bf16=True``), at adapter scales that give the margins of DPO's first steps, and prints the error bf16 adds.
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
    """DPO margins of the same LoRA policy on the same 8 pairs, scored in fp32 and under bf16 autocast.

    The policy is SmolLM2 + a LoRA whose B matrices are drawn at a scale (``sigma``) that gives the small margins of
    DPO's first steps; the reference is the same model with the adapter disabled (as in training). No training loop:
    the question is only whether bf16 arithmetic keeps margins of this size.
    """
    import torch
    from peft import get_peft_model

    from studio.data.pair_prepare import prepare_pairs
    from studio.modeling import base_tokenizer, load_base, lora_config

    cfg = _cfg("dpo", tempfile.mkdtemp(), steps)
    tok = base_tokenizer(cfg.model)
    prepared = prepare_pairs(cfg, tok[0], "paired")
    base = load_base(cfg.model, device="cpu", for_training=True, kbit_prep=False, tokenizer=tok)
    model = get_peft_model(base.model, lora_config(cfg, base.model, base.added_token_ids)).eval()
    rows = [prepared.train[i] for i in range(8)]
    seqs = [(r["prompt_ids"] + r["chosen_ids"], len(r["prompt_ids"])) for r in rows] + \
           [(r["prompt_ids"] + r["rejected_ids"], len(r["prompt_ids"])) for r in rows]
    width = max(len(ids) for ids, _ in seqs)
    pad = tok[0].pad_token_id or 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in seqs])
    attn = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in seqs])
    mask = torch.tensor([[0] * p + [1] * (len(ids) - p) + [0] * (width - len(ids)) for ids, p in seqs])

    def logps(bf16: bool, adapter: bool) -> torch.Tensor:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with torch.no_grad(), ctx:
            if adapter:
                logits = model(input_ids=input_ids, attention_mask=attn).logits
            else:
                with model.disable_adapter():
                    logits = model(input_ids=input_ids, attention_mask=attn).logits
        lp = torch.log_softmax(logits.float()[:, :-1], -1).gather(-1, input_ids[:, 1:, None])[..., 0]
        return (lp * mask[:, 1:]).sum(-1)

    beta, n = 0.1, len(rows)
    print("sigma (LoRA B scale) | mean |margin| fp32 | mean |bf16 - fp32| | error/margin | sign agreement")
    for sigma in (0.0, 1e-4, 3e-4, 1e-3, 3e-3):
        torch.manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.normal_(0, sigma) if sigma else param.data.zero_()
        margins = {}
        for label, bf16 in (("fp32", False), ("bf16", True)):
            pol, ref = logps(bf16, True), logps(bf16, False)
            ratio = pol - ref
            margins[label] = beta * (ratio[:n] - ratio[n:])
        m32, m16 = margins["fp32"], margins["bf16"]
        err = (m16 - m32).abs().mean().item()
        mag = m32.abs().mean().item()
        agree = (torch.sign(m16) == torch.sign(m32)).float().mean().item()
        print(f"{sigma:g} | {mag:.6f} | {err:.6f} | {err / mag if mag else float('nan'):.2f} | {agree:.0%}")


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
        print(f"{m}: {rows[m][0]:.3f} steps/s, step-1 loss {rows[m][1]:.6f}", flush=True)
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
