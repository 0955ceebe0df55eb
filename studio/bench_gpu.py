"""`studio bench gpu`: Studio's engine against plain and hand-tuned TRL on random-init models of real shapes.

A prepared script that installs nothing and downloads nothing. Per model shape (a Llama-3.2-1B shape in bf16 LoRA,
a Mistral-7B shape in 4-bit NF4 QLoRA, both built from the config dicts below with random weights) it trains three
runs on the same synthetic chats (skewed lengths 64-2,048 tokens, loss on the answer only), each in its own
process:

* ``plain``  -- TRL SFTTrainer + LoRA with TRL's defaults: SDPA, gradient checkpointing on, no packing (rows padded
  to the longest in the batch), 8 rows per step; QLoRA via peft's ``prepare_model_for_kbit_training``.
* ``tuned``  -- TRL tuned by hand: bfd packing (padding-free), flash-attn if installed else SDPA (``--tuned-attn``
  overrides), Liger kernels if installed, gradient checkpointing off when the memory estimate says it fits.
* ``studio`` -- the real engine, :class:`~studio.training.TrainingJob` (:mod:`studio.bench_gpu_job`): its data
  layer, speed plan (packing with boundary-aware attention, micro-batch sized to ``batch_size`` rows, checkpointing
  policy, booster), k-bit preparation without the fp32 upcast, loss path and callbacks, as in a user's run.

Each run trains ``--warmup`` steps, then steps until ``--tokens`` real (non-pad) tokens or ``--max-seconds``. Per
run: real tokens/s, step time p50/p95, peak allocated/reserved memory, MFU (``4N + 3A`` FLOPs per token), the
first step's loss and a probe loss (the same rows through each run's forward before training: parity check).
``--smoke`` runs the same code on CPU with tiny shapes (a test calls it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS = ("plain", "tuned", "studio")
RESULT_MARK = "STUDIO_BENCH_RESULT "

# Real architectures, written out so nothing is downloaded. Values from the public config.json files.
SHAPES: dict[str, dict[str, Any]] = {
    "llama-1b": {
        "quantization": "none",
        "config": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                       max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
                       tie_word_embeddings=True, hidden_act="silu", bos_token_id=128000, eos_token_id=128001,
                       rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
        "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=512,
                      bos_token_id=1, eos_token_id=2),
    },
    "mistral-7b": {
        "quantization": "4bit",
        "config": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=32000,
                       max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1000000.0,
                       sliding_window=None, tie_word_embeddings=False, hidden_act="silu", bos_token_id=1,
                       eos_token_id=2),
        "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=512, max_position_embeddings=512),
    },
}
GPU = dict(min_len=64, max_len=2048, rows=4096, tokens={"llama-1b": 300_000, "mistral-7b": 60_000},
           warmup=3, max_seconds=40.0, batch_size=8)
SMOKE = dict(min_len=16, max_len=128, rows=96, tokens={"llama-1b": 1_200, "mistral-7b": 800},
             warmup=1, max_seconds=30.0, batch_size=4)
LORA = dict(r=16, alpha=32, dropout=0.05, target_modules="all-linear")


# ------------------------------------------------------------------------------------------------------ data
def synthetic_rows(n: int, min_len: int, max_len: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Tokenized chats with realistic skew: log-normal lengths (median ~ max/6) clipped to [min_len, max_len];
    the prompt is the first 30-70%, the loss mask covers the answer."""
    import random

    rng = random.Random(seed)
    mu = math.log(max(min_len * 2, max_len / 6))
    rows = []
    for _ in range(n):
        length = int(min(max_len, max(min_len, rng.lognormvariate(mu, 0.9))))
        prompt = max(1, int(length * rng.uniform(0.3, 0.7)))
        ids = [rng.randrange(4, vocab) for _ in range(length)]
        rows.append({"input_ids": ids, "completion_mask": [0] * prompt + [1] * (length - prompt)})
    return rows


# ------------------------------------------------------------------------------------------------------ worker
def _model_config(shape: str, smoke: bool) -> Any:
    from transformers import AutoConfig

    spec = dict(SHAPES[shape]["config"])
    if smoke:
        spec.update(SHAPES[shape]["smoke"])
        spec.pop("rope_scaling", None)
    model_type = spec.pop("model_type")
    return AutoConfig.for_model(model_type, **spec)


def _checkpoint(shape: str, smoke: bool, dtype: Any, workdir: Path) -> Path:
    """A random-init checkpoint of ``shape`` on disk (built once per bench call, reused by its three runs)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = workdir / f"{shape}{'-smoke' if smoke else ''}"
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(_model_config(shape, smoke), dtype=dtype)
    model.save_pretrained(str(folder))
    del model
    return folder


def _load(shape: str, smoke: bool, attn: str, dtype: Any, workdir: Path, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if SHAPES[shape]["quantization"] == "none":
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(_model_config(shape, smoke), dtype=dtype,
                                                     attn_implementation=attn)
        return model
    folder = _checkpoint(shape, smoke, dtype, workdir)
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=dtype)
    return AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=q, dtype=dtype,
                                                attn_implementation=attn,
                                                device_map={"": 0} if device == "cuda" else "cpu")


def _studio_cfg(shape: str, smoke: bool, settings: dict[str, Any], device: str) -> Any:
    from studio.config import RunConfig

    quant = SHAPES[shape]["quantization"]
    return RunConfig.from_dict({
        "model": {"name_or_path": shape, "quantization": quant, "compute_dtype": "bf16" if device == "cuda" else "fp32"},
        "lora": dict(LORA),
        "train": {"packing": True, "batch_size": settings["batch_size"], "max_length": settings["max_len"],
                  "gradient_checkpointing": "auto", "booster": "auto", "device": device},
    })


class _Meter:
    """Per-step wall time (synchronized) and real tokens, fed by the trainer subclass."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.losses: list[float] = []


def _trainer_class(meter: _Meter, device: str, stop_after: dict[str, Any]) -> Any:
    import torch
    from trl import SFTTrainer

    from studio.speed.flops import batch_token_counts

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    class TimedTrainer(SFTTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            real, _, _ = batch_token_counts(inputs)
            sync()
            t0 = time.perf_counter()
            loss = super().training_step(model, inputs, *args, **kwargs)
            sync()
            meter.times.append(time.perf_counter() - t0)
            meter.tokens.append(real)
            meter.losses.append(float(loss.detach().float().item()))
            measured = meter.tokens[stop_after["warmup"]:]
            if len(meter.times) > stop_after["warmup"] and (
                    sum(measured) >= stop_after["tokens"]
                    or sum(meter.times[stop_after["warmup"]:]) >= stop_after["max_seconds"]):
                self.control.should_training_stop = True
            return loss

    return TimedTrainer


def _probe_loss(model: Any, rows: list[dict[str, list[int]]], padding_free: bool, device: str) -> float:
    """Mean answer-token loss of the first rows through this run's forward (before training)."""
    import torch

    model_device = next(p for p in model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        if padding_free:
            ids = torch.tensor([t for r in rows for t in r["input_ids"]], device=model_device)[None]
            pos = torch.tensor([i for r in rows for i in range(len(r["input_ids"]))], device=model_device)[None]
            logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0].float()
            chunks = []
            off = 0
            for r in rows:
                n = len(r["input_ids"])
                chunks.append((logits[off:off + n], r))
                off += n
        else:
            chunks = [(model(input_ids=torch.tensor([r["input_ids"]], device=model_device),
                             use_cache=False).logits[0].float(), r) for r in rows]
        for logit, r in chunks:
            labels = torch.tensor(r["input_ids"], device=logit.device)
            mask = torch.tensor(r["completion_mask"], device=logit.device).bool()
            lp = torch.log_softmax(logit[:-1], -1).gather(-1, labels[1:, None])[:, 0]
            sel = mask[1:]
            total += float(-lp[sel].sum())
            count += int(sel.sum())
    model.train(was_training)
    return total / max(count, 1)


def run_one(shape: str, run: str, *, smoke: bool, workdir: Path, tuned_attn: str | None = None,
            tokens: int | None = None, max_seconds: float | None = None) -> dict[str, Any]:
    """Train one run in this process and return its figures."""
    import warnings

    warnings.filterwarnings("ignore")
    if run in ("studio", "studio-lowmem"):  # the real engine, as a user's run
        from studio.bench_gpu_job import run_studio_job

        return run_studio_job(shape, run, smoke=smoke, workdir=workdir, tokens=tokens, max_seconds=max_seconds)

    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from trl import SFTConfig

    from studio.modeling import estimate_memory
    from studio.speed.boosters import choose_booster
    from studio.speed.checkpointing import decide_checkpointing
    from studio.speed.flops import effective_seq, flops_per_token, mfu, peak_flops
    from studio.speed.kbit import fp32_param_count

    settings = dict(SMOKE if smoke else GPU)
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    quant = SHAPES[shape]["quantization"]
    mconf = _model_config(shape, smoke)
    rows = synthetic_rows(settings["rows"], settings["min_len"], settings["max_len"], mconf.vocab_size)
    cfg = _studio_cfg(shape, smoke, settings, device)
    notes: list[str] = []
    bs, max_len = settings["batch_size"], settings["max_len"]
    args: dict[str, Any] = dict(
        output_dir=str(workdir / f"out-{shape}-{run}"), max_steps=100_000, learning_rate=2e-4, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, max_length=max_len, completion_only_loss=True,
        per_device_train_batch_size=bs, bf16=device == "cuda", use_cpu=device == "cpu",
        dataloader_pin_memory=device == "cuda", seed=0, data_seed=0)

    if run == "plain":
        attn, packing, gc_on, booster = "sdpa", False, True, "none"
        model = _load(shape, smoke, attn, dtype, workdir, device)
        if quant != "none":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        kbit = "peft" if quant != "none" else "none"
        args.update(gradient_checkpointing=True)
    elif run == "tuned":
        if tuned_attn:
            attn = tuned_attn
        else:
            from studio.modeling import _flash_attn_version

            attn = "flash_attention_2" if device == "cuda" and _flash_attn_version() else "sdpa"
        packing = True
        est = None
        try:
            tuned_cfg = cfg.with_overrides([f"train.batch_size={bs}"])
            est = estimate_memory(tuned_cfg, mconf, gradient_checkpointing=False, device=device)
        except Exception:  # noqa: BLE001
            pass
        gc_on, _ = decide_checkpointing("auto", est)
        booster, _ = choose_booster("auto", mconf.model_type, device=device)
        model = _load(shape, smoke, attn, dtype, workdir, device)
        if quant != "none":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc_on)
        kbit = "peft" if quant != "none" else "none"
        args.update(packing=True, packing_strategy="bfd", gradient_checkpointing=gc_on,
                    use_liger_kernel=booster == "liger")
    else:
        raise ValueError(f"unknown run {run!r}; choose from {', '.join(RUNS)}, studio-lowmem")

    if device == "cuda" and attn not in ("flash_attention_2", "flex_attention") and packing:
        notes.append(f"{attn} with packing: dense block-diagonal mask over the flattened batch")
    fp32_left = fp32_param_count(model)
    peft_cfg = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                          target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    model = get_peft_model(model, peft_cfg)
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    probe = _probe_loss(model, rows[:4], padding_free=packing, device=device)

    meter = _Meter()
    stop = {"warmup": settings["warmup"], "tokens": tokens or settings["tokens"][shape],
            "max_seconds": max_seconds or settings["max_seconds"]}
    trainer_cls = _trainer_class(meter, device, stop)
    trainer = trainer_cls(model=model, args=SFTConfig(**args), train_dataset=Dataset.from_list(rows),
                          processing_class=_tokenizer(mconf.vocab_size, workdir))
    trainer.train()

    measured_t = meter.times[stop["warmup"]:]
    measured_n = meter.tokens[stop["warmup"]:]
    seconds = sum(measured_t)
    tps = sum(measured_n) / seconds if seconds > 0 else 0.0
    seq = effective_seq(len(r["input_ids"]) for r in rows)
    fpt = flops_per_token(mconf, seq, lora_params=lora_params)
    peak = peak_flops(device=device)
    if device == "cuda":
        peak_alloc, peak_reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        device_name = torch.cuda.get_device_name(0)
    else:
        import resource

        peak_alloc = peak_reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        device_name = "cpu"
    q = sorted(measured_t) or [0.0]
    return {
        "name": run, "model": shape, "device": device_name, "tokens_per_s": round(tps, 1),
        "step_time_p50": round(statistics.median(q), 4), "step_time_p95": round(q[min(len(q) - 1, int(0.95 * len(q)))], 4),
        "peak_mem_bytes": int(peak_alloc), "peak_reserved_bytes": int(peak_reserved),
        "mfu": round(mfu(tps, fpt, peak), 4), "first_loss": round(meter.losses[0], 4) if meter.losses else None,
        "probe_loss": round(probe, 4), "steps": len(measured_t), "tokens": int(sum(measured_n)),
        "warmup_steps": stop["warmup"], "attn": attn, "packing": packing, "gradient_checkpointing": gc_on,
        "booster": booster, "kbit": kbit, "fp32_params": fp32_left, "lora_params": lora_params,
        "flops_per_token": fpt, "peak_flops": peak.flops, "notes": notes,
    }


def _tokenizer(vocab: int, workdir: Path) -> Any:
    """A word-level tokenizer over ``vocab`` ids (the data is pre-tokenized; TRL only needs pad/eos ids)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t3"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t2", bos_token="t1",
                                  unk_token="t3")


# ------------------------------------------------------------------------------------------------------ parent
def _run_subprocess(shape: str, run: str, ns: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "studio.bench_gpu", "--worker", "--model", shape, "--run", run,
           "--workdir", str(workdir)]
    if ns.smoke:
        cmd.append("--smoke")
    if ns.tuned_attn:
        cmd += ["--tuned-attn", ns.tuned_attn]
    if ns.tokens:
        cmd += ["--tokens", str(ns.tokens)]
    if ns.max_seconds:
        cmd += ["--max-seconds", str(ns.max_seconds)]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            out = json.loads(line[len(RESULT_MARK):])
            out["wall_s"] = round(time.perf_counter() - t0, 1)
            return out
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
    return {"name": run, "model": shape, "error": f"exit {proc.returncode}: " + " | ".join(tail)[-1500:],
            "tokens_per_s": 0.0, "peak_mem_bytes": 0, "mfu": 0.0, "first_loss": None}


def ratios(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    by = {r["name"]: r for r in runs}

    def div(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    p, t, s = by.get("plain", {}), by.get("tuned", {}), by.get("studio", {})
    out = {"studio_vs_plain_tokens": div(s.get("tokens_per_s"), p.get("tokens_per_s")),
           "studio_vs_plain_memory": div(s.get("peak_mem_bytes"), p.get("peak_mem_bytes")),
           "studio_vs_tuned_tokens": div(s.get("tokens_per_s"), t.get("tokens_per_s"))}
    low = by.get("studio-lowmem")
    if low:
        out.update({"lowmem_vs_plain_tokens": div(low.get("tokens_per_s"), p.get("tokens_per_s")),
                    "lowmem_vs_plain_memory": div(low.get("peak_mem_bytes"), p.get("peak_mem_bytes")),
                    "lowmem_vs_tuned_tokens": div(low.get("tokens_per_s"), t.get("tokens_per_s"))})
    return out


def run_bench(ns: argparse.Namespace) -> dict[str, Any]:
    models = [m.strip() for m in ns.models.split(",") if m.strip()]
    for m in models:
        if m not in SHAPES:
            raise SystemExit(f"unknown model shape {m!r}; choose from {', '.join(SHAPES)}")
    runs_wanted = [r.strip() for r in ns.runs.split(",") if r.strip()]
    with tempfile.TemporaryDirectory(prefix="studio-bench-gpu-") as tmp:
        workdir = Path(ns.workdir) if ns.workdir else Path(tmp)
        results: list[dict[str, Any]] = []
        by_model: dict[str, dict[str, Any]] = {}
        for m in models:
            mruns = []
            for r in runs_wanted:
                res = _run_subprocess(m, r, ns, workdir)
                mruns.append(res)
                if not ns.json:
                    print(_row(res), flush=True)
            results += mruns
            by_model[m] = ratios(mruns)
    primary = "mistral-7b" if "mistral-7b" in by_model else models[-1]
    return {"runs": results, "ratios": by_model[primary], "ratios_by_model": by_model, "primary_model": primary,
            "smoke": bool(ns.smoke),
            "targets": {"studio_vs_plain_tokens": ">= 2.0", "studio_vs_plain_memory": "<= 0.5",
                        "studio_vs_tuned_tokens": ">= 1.3"}}


def _gb(x: float) -> str:
    return f"{x / 1024 ** 3:.2f}"


def _row(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"{r['model']:<11} {r['name']:<13} FAILED: {r['error']}"
    return (f"{r['model']:<11} {r['name']:<13} {r['tokens_per_s']:>10.0f} tok/s  step p50 {r['step_time_p50']:.3f}s "
            f"p95 {r['step_time_p95']:.3f}s  peak {_gb(r['peak_mem_bytes'])}/{_gb(r['peak_reserved_bytes'])} GB "
            f"(alloc/reserved)  MFU {r['mfu']:.1%}  first loss {r['first_loss']}  probe {r['probe_loss']}  "
            f"[{r['attn']}, packing {'on' if r['packing'] else 'off'}, ckpt {'on' if r['gradient_checkpointing'] else 'off'}, "
            f"booster {r['booster']}, kbit {r['kbit']}, fp32 params {r['fp32_params']}]")


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for m, rat in report["ratios_by_model"].items():
        lines.append(f"{m}: studio/plain tokens/s {rat['studio_vs_plain_tokens']} (target >= 2.0), "
                     f"studio/plain peak memory {rat['studio_vs_plain_memory']} (target <= 0.5), "
                     f"studio/tuned tokens/s {rat['studio_vs_tuned_tokens']} (target >= 1.3)")
    for r in report["runs"]:
        if r.get("name", "").startswith("studio") and r.get("notes"):
            lines.append(f"studio plan ({r['model']}): " + "; ".join(r["notes"]))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="Same code on CPU with tiny shapes (seconds).")
    p.add_argument("--json", action="store_true", help="Print one JSON object instead of the table (gpu, learn).")
    p.add_argument("--models", default="llama-1b,mistral-7b", help="Comma-separated shapes: llama-1b, mistral-7b.")
    p.add_argument("--runs", default=",".join(RUNS),
                   help="Comma-separated runs: plain, tuned, studio, studio-lowmem (checkpointing forced on).")
    p.add_argument("--tokens", type=int, default=None, help="Real tokens to time per run after warm-up.")
    p.add_argument("--max-seconds", type=float, default=None, help="Stop timing a run after this many seconds.")
    p.add_argument("--tuned-attn", default=None,
                   help="Attention for the hand-tuned run (default: flash_attention_2 if installed, else sdpa).")
    p.add_argument("--workdir", default=None, help="Folder for checkpoints and trainer output (default: temp).")


def run(ns: argparse.Namespace) -> int:
    """Entry point for ``studio bench gpu``."""
    report = run_bench(ns)
    if ns.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 0 if all(not r.get("error") for r in report["runs"]) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.bench_gpu")
    add_arguments(p)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.worker:
        res = run_one(ns.model, ns.run, smoke=ns.smoke, workdir=Path(ns.workdir), tuned_attn=ns.tuned_attn,
                      tokens=ns.tokens, max_seconds=ns.max_seconds)
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())
