"""`studio bench train`: Studio's engine against a plain TRL SFTTrainer + peft script, same libraries, one call.

Two setups on the same model (the real SmolLM2-135M-Instruct by default; ``--smoke``: the tiny demo model):

* ``uniform``: the first 60 rows of the bundled chat file, LoRA r=8 alpha 16 all-linear, batch 4, max length
  256, ``--steps`` steps. Runs: ``studio`` (TrainingJob, ``train.precision`` from ``--precision``: auto is bf16 on
  CPUs with AVX512-BF16/AMX) and ``plain`` (SFTTrainer + peft by hand, fp32).
* ``skewed``: 60 chats made here, deterministically, with lengths from 20 to 1,000 tokens (most short, a long
  tail), max length 1,024, one epoch (so every run trains the same tokens). Runs: ``studio`` (padding-free bfd
  packing), ``studio-unpacked`` (the same engine without packing: the same rows per step, padding-free on CPU) and
  ``plain`` (TRL's padded batches: packed vs padded is ``skewed_tokens_per_s``).

Every run is its own process (``python -m studio.bench.train --worker SPEC``), in alternated order over
``--rounds``. Steady state: the steps after ``--warmup``; real tokens are TRL's non-pad token count.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

RESULT_MARK = "STUDIO_BENCH_TRAIN "
SETUPS = {"uniform": dict(max_length=256, rows=60, runs=("studio", "plain")),
          "skewed": dict(max_length=1024, rows=60, runs=("studio", "studio-unpacked", "plain"))}
WORDS = ("the model learns a short answer to every question about numbers plants travel cooking code history "
         "music weather sport water light energy market city river garden window paper stone").split()


def skewed_chats(n: int, tokenizer: Any, *, lo: int = 20, hi: int = 1000, seed: int = 0) -> list[dict]:
    """``n`` chats whose rendered lengths spread from about ``lo`` to ``hi`` tokens (a cube of a uniform: many
    short, a long tail), made from a fixed word list and seed, so every call builds the same rows."""
    rng = random.Random(seed)
    system = {"role": "system", "content": "Answer briefly."}

    def render(words: int) -> tuple[list[dict], int]:
        reply = " ".join(rng.choice(WORDS) for _ in range(words))
        msgs = [system, {"role": "user", "content": "Tell me something."}, {"role": "assistant", "content": reply}]
        ids = tokenizer.apply_chat_template(msgs, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return msgs, len(ids)

    base = render(0)[1]
    rows = []
    for i in range(n):
        target = lo + (hi - lo) * (rng.random() ** 3) if 0 < i < n - 1 else (lo if i == 0 else hi)
        words = max(0, int(target) - base)
        msgs, length = render(words)
        while length > hi and words > 0:  # a word can be several tokens: trim to the bound
            words = max(0, words - max(1, length - hi))
            msgs, length = render(words)
        rows.append({"messages": msgs})
    return rows


def run_config(setup: str, *, model: str, data: Path, out: Path, steps: int, packing: bool, smoke: bool,
               rows: int | None = None, precision: str = "fp32") -> Any:
    """The RunConfig both engines train with (the plain script reads the same SFTConfig arguments, in fp32);
    ``precision`` is the Studio run's ``train.precision`` (auto lets the engine load the base as it decides)."""
    from studio.config import RunConfig

    spec = SETUPS[setup]
    train = {"batch_size": 4, "max_length": spec["max_length"] if not smoke else min(spec["max_length"], 128),
             "learning_rate": 2e-4, "lr_scheduler": "constant", "warmup_ratio": 0.0, "packing": packing,
             "gradient_checkpointing": False, "logging_steps": 1, "save_steps": 100_000, "tensorboard": False,
             "output_dir": str(out), "device": "cpu" if smoke else "auto", "seed": 0, "precision": precision}
    if setup == "uniform":
        train["max_steps"] = steps
    else:
        train.update(max_steps=-1, epochs=1)
    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(data)}], "format": "messages", "eval_fraction": 0.0,
                 "max_rows": rows or spec["rows"]},
        "model": {"name_or_path": model, "compute_dtype": "auto" if precision == "auto" else "fp32"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": train})


# ------------------------------------------------------------------------------------------------ one run
def _timer(get_trainer: Callable[[], Any]) -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Per step end: the time and TRL's running count of real (non-pad) tokens; the first logged loss."""

        def __init__(self, *_: Any) -> None:
            self.marks: list[tuple[float, int]] = []
            self.first_loss: float | None = None
            self.losses: list[tuple[int, float]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), int(getattr(get_trainer(), "_total_train_tokens", 0))))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.first_loss is None and logs and "loss" in logs and state.global_step == 1:
                self.first_loss = float(logs["loss"])
            if logs and "loss" in logs:
                self.losses.append((int(state.global_step), float(logs["loss"])))

    return StepTimer


def _plain(cfg: Any, timer_cls: Any, holder: dict) -> None:
    """What a person writes by hand: model, LoraConfig, SFTConfig (the engine's own arguments), SFTTrainer."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from studio.data import prepare_datasets
    from studio.modeling import model_id
    from studio.modeling.sources import resolve_model_path
    from studio.modeling.tokenizer import load_tokenizer
    from studio.training import sft_args

    tok, _ = load_tokenizer(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(model_id(cfg.model)), dtype="float32",
                                                 attn_implementation="sdpa")
    data = prepare_datasets(cfg, tok, cache=False)
    out = Path(cfg.train.output_dir) / "plain"
    args = SFTConfig(**sft_args(cfg, out, device="cpu", gradient_checkpointing=False, has_eval=False))
    lc = cfg.lora
    peft_config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                             task_type="CAUSAL_LM")
    timer = timer_cls()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data.train, processing_class=tok,
                         peft_config=peft_config, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    holder.update(trainer=trainer, timer=timer, packing=False)
    trainer.train()


def _studio(cfg: Any, timer_cls: Any, holder: dict) -> None:
    from studio.events import Failed
    from studio.training import TrainingJob

    timer = timer_cls()
    job = TrainingJob(cfg, extra_callbacks=[timer])
    holder.update(job=job, timer=timer)
    job.start().wait()
    if isinstance(job.result, Failed):
        raise RuntimeError(f"studio run failed: {job.result.message}")
    holder["packing"] = bool(job.plan and job.plan.padding_free)
    holder["precision"] = job.plan.precision if job.plan else None


def worker(spec: dict) -> dict:
    """One run in this process; returns its figures."""
    import resource

    from studio.imports import quiet_libraries

    quiet_libraries()
    run = spec["run"]
    cfg = run_config(spec["setup"], model=spec["model"], data=Path(spec["data"]), out=Path(spec["out"]),
                     steps=spec["steps"], packing=run == "studio" and spec["setup"] == "skewed",
                     smoke=spec["smoke"], rows=spec.get("rows"),
                     precision=spec.get("precision", "fp32") if run != "plain" else "fp32")
    holder: dict[str, Any] = {}

    def trainer() -> Any:
        return holder["trainer"] if "trainer" in holder else holder["job"].trainer

    (_plain if run == "plain" else _studio)(cfg, _timer(trainer), holder)
    marks = holder["timer"].marks
    warm = min(spec["warmup"], max(len(marks) - 2, 0))
    (t0, n0), (t1, n1) = marks[warm], marks[-1]
    dt = max(t1 - t0, 1e-9)
    return {"setup": spec["setup"], "run": run, "steps": len(marks), "timed_steps": len(marks) - 1 - warm,
            "steps_per_s": (len(marks) - 1 - warm) / dt, "tokens_per_s": (n1 - n0) / dt, "real_tokens": marks[-1][1],
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "first_loss": holder["timer"].first_loss, "packing": holder.get("packing", False),
            "precision": holder.get("precision", "fp32"), "losses": holder["timer"].losses}


def _spawn(spec: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "studio.bench.train", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"setup": spec["setup"], "run": spec["run"], "error": f"exit {proc.returncode}: {tail[0]}"}


# ------------------------------------------------------------------------------------------------ the bench
def bench_train(*, model: str | None = None, steps: int = 10, warmup: int = 2, rounds: int = 1,
                setups: tuple[str, ...] = ("uniform", "skewed"), smoke: bool = False, timeout: float = 1800,
                rows: int | None = None, precision: str = "auto", report: Callable[[str], None] = print) -> dict:
    """Run every setup's runs ``rounds`` times, alternating the order each round; return figures and ratios.
    ``rows``: rows per setup (default 60); ``precision``: the Studio runs' ``train.precision``."""
    from studio.paths import ASSETS
    from studio.modeling.tokenizer import load_tokenizer
    from studio.config import ModelConfig

    model = model or ("studio/demo-tiny" if smoke else "smollm2-135m-instruct")
    rows = rows or (24 if smoke else None)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-train-") as tmp:
        data = {"uniform": ASSETS / "datasets" / "chat.jsonl", "skewed": Path(tmp) / "skewed.jsonl"}
        tok, _ = load_tokenizer(ModelConfig(name_or_path=model))
        chats = skewed_chats(rows or SETUPS["skewed"]["rows"], tok, hi=1000 if not smoke else 120)
        data["skewed"].write_text("".join(json.dumps(r) + "\n" for r in chats), encoding="utf-8")
        for i in range(rounds):
            for setup in setups:
                order = list(SETUPS[setup]["runs"])
                if i % 2:
                    order.reverse()
                for run in order:
                    spec = {"setup": setup, "run": run, "model": model, "data": str(data[setup]), "steps": steps,
                            "warmup": warmup, "smoke": smoke, "rows": rows, "precision": precision,
                            "out": str(Path(tmp) / f"{setup}-{run}-{i}")}
                    r = _spawn(spec, timeout)
                    r["round"] = i + 1
                    results.append(r)
                    report(_line(r))
    summary = summarize(results)
    for line in format_summary(summary):
        report(line)
    return {"model": model, "steps": steps, "warmup": warmup, "rounds": rounds, "precision": precision,
            "rows": rows or SETUPS["skewed"]["rows"], "runs": results, **summary}


def summarize(results: list[dict]) -> dict:
    """Per setup and run: medians over rounds; the ratios against plain TRL (and packed vs unpacked)."""
    keys = ("steps_per_s", "tokens_per_s", "peak_rss_bytes", "first_loss")
    med: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in results:
        if r.get("error"):
            continue
        slot = med.setdefault(r["setup"], {}).setdefault(r["run"], {k: [] for k in keys})
        for k in keys:
            if r.get(k) is not None:
                slot[k].append(r[k])
    medians = {s: {run: {k: statistics.median(v) if v else None for k, v in d.items()} for run, d in runs.items()}
               for s, runs in med.items()}

    def ratio(setup: str, a: str, b: str, key: str) -> float | None:
        x, y = (medians.get(setup, {}).get(n, {}).get(key) for n in (a, b))
        return round(x / y, 3) if x and y else None

    ratios = {"uniform_steps_per_s": ratio("uniform", "studio", "plain", "steps_per_s"),
              "uniform_peak_rss": ratio("uniform", "studio", "plain", "peak_rss_bytes"),
              "skewed_tokens_per_s": ratio("skewed", "studio", "plain", "tokens_per_s"),
              "skewed_packing_vs_unpacked_tokens_per_s": ratio("skewed", "studio", "studio-unpacked",
                                                               "tokens_per_s"),
              "skewed_peak_rss": ratio("skewed", "studio", "plain", "peak_rss_bytes")}
    first = {s: {run: d["first_loss"] for run, d in runs.items()} for s, runs in medians.items()}
    parity = {s: round(abs(v["studio"] / v["plain"] - 1), 6) for s, v in first.items()
              if v.get("studio") and v.get("plain")}
    return {"medians": medians, "ratios": ratios, "first_loss": first, "first_loss_gap": parity,
            "loss_gap": loss_gaps(results)}


def loss_gaps(results: list[dict]) -> dict[str, dict[str, float]]:
    """Per setup, Studio's per-step losses against plain TRL's (first round with both): the largest and the mean
    relative gap over the steps both logged, and the gap of the mean loss over them (``steps``: how many)."""
    out: dict[str, dict[str, float]] = {}
    for setup in {r["setup"] for r in results}:
        by_run = {}
        for r in results:
            if r["setup"] == setup and not r.get("error") and r["run"] in ("studio", "plain"):
                by_run.setdefault(r["run"], dict(r.get("losses") or []))
        s, p = by_run.get("studio", {}), by_run.get("plain", {})
        steps = sorted(set(s) & set(p))
        if not steps:
            continue
        gaps = [abs(s[k] / p[k] - 1) for k in steps if p[k]]
        mean_s, mean_p = (sum(d[k] for k in steps) / len(steps) for d in (s, p))
        out[setup] = {"steps": len(steps), "max": round(max(gaps), 6), "mean": round(sum(gaps) / len(gaps), 6),
                      "mean_loss": round(abs(mean_s / mean_p - 1), 6)}
    return out


def _line(r: dict) -> str:
    if r.get("error"):
        return f"round {r['round']}: {r['setup']:7s} {r['run']:13s} failed: {r['error']}"
    loss = f"{r['first_loss']:.5f}" if r.get("first_loss") is not None else "-"
    return (f"round {r['round']}: {r['setup']:7s} {r['run']:13s} {r.get('precision') or '':4s} "
            f"{r['steps_per_s']:.3f} steps/s "
            f"{r['tokens_per_s']:.0f} real tokens/s, peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GB, "
            f"first-step loss {loss} ({r['timed_steps']} timed steps{', packed' if r.get('packing') else ''})")


def format_summary(summary: dict) -> list[str]:
    names = {"uniform_steps_per_s": "uniform: studio / plain TRL steps/s (target >= 1.3; with bf16 on an "
                                    "AVX512-BF16/AMX CPU >= 2.5)",
             "uniform_peak_rss": "uniform: studio / plain TRL peak RSS (target <= 1.0)",
             "skewed_tokens_per_s": "skewed: studio packed / plain TRL padded real tokens/s (target >= 1.8)",
             "skewed_packing_vs_unpacked_tokens_per_s": "skewed: studio packed / studio unpacked real tokens/s",
             "skewed_peak_rss": "skewed: studio / plain TRL peak RSS (target <= 1.0)"}
    lines = [f"{text}: {summary['ratios'][k] if summary['ratios'][k] is not None else 'n/a'}"
             for k, text in names.items()]
    for setup, runs in summary["first_loss"].items():
        gap = summary.get("first_loss_gap", {}).get(setup)
        lines.append(f"{setup}: first-step loss " + ", ".join(
            f"{run} {v:.6f}" if v is not None else f"{run} -" for run, v in runs.items())
            + (f" (studio vs plain: {gap:.3%} apart)" if gap is not None else ""))
    for setup, g in sorted(summary.get("loss_gap", {}).items()):
        lines.append(f"{setup}: per-step loss, studio vs plain over {g['steps']} steps: largest gap {g['max']:.2%}, "
                     f"mean gap {g['mean']:.2%}, mean loss {g['mean_loss']:.2%} apart")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--worker":
        print(RESULT_MARK + json.dumps(worker(json.loads(argv[1]))), flush=True)
        return 0
    print("usage: studio bench train [--smoke] [--steps N] [--rounds N] [--json]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
