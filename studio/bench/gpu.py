"""`studio bench gpu`: Studio's engine against plain and hand-tuned TRL on random-init models of real shapes.

A prepared script that installs nothing and downloads nothing. Per model shape (a Llama-3.2-1B shape in bf16 LoRA,
a Mistral-7B shape in 4-bit NF4 QLoRA, both built from the config dicts below with random weights) it trains three
runs on the same synthetic chats (skewed lengths 64-2,048 tokens, loss on the answer only), each in its own
process:

* ``plain``  -- TRL SFTTrainer + LoRA with TRL's defaults: SDPA, gradient checkpointing on, no packing (rows padded
  to the longest in the batch), 8 rows per step; QLoRA via peft's ``prepare_model_for_kbit_training``.
* ``tuned``  -- TRL tuned by hand: bfd packing (padding-free), flash-attn if installed else SDPA (``--tuned-attn``
  overrides), Liger kernels if installed, gradient checkpointing off when the memory estimate says it fits.
* ``studio`` -- the real engine, :class:`~studio.training.TrainingJob` (:mod:`studio.bench.gpu_job`): its data
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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from studio.bench.gpu_common import SHAPES

RUNS = ("plain", "tuned", "studio")
RESULT_MARK = "STUDIO_BENCH_RESULT "


# ------------------------------------------------------------------------------------------------------ parent
def _run_subprocess(shape: str, run: str, ns: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "studio.bench.gpu", "--worker", "--model", shape, "--run", run,
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
    root = str(Path(__file__).resolve().parents[2])
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
        if r.get("name", "").startswith("studio") and r.get("estimate_error") is not None:
            lines.append(f"memory estimate ({r['model']}, {r['name']}): error {r['estimate_error']:+.0%} against the "
                         f"measured peak")
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
    p = argparse.ArgumentParser(prog="python -m studio.bench.gpu")
    add_arguments(p)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.worker:
        from studio.bench.gpu_worker import run_one

        res = run_one(ns.model, ns.run, smoke=ns.smoke, workdir=Path(ns.workdir), tuned_attn=ns.tuned_attn,
                      tokens=ns.tokens, max_seconds=ns.max_seconds)
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())
