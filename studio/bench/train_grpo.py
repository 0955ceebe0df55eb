"""``studio bench train --method grpo``: Studio's GRPO against a hand-written plain TRL ``GRPOTrainer`` + peft.

One setup: the first ``--rows`` (default 32) questions of the bundled ``word_problems.jsonl`` on the real
SmolLM2-135M-Instruct (``--smoke``: the tiny demo model, smaller batch and completions), the system prompt of
``smollm2_grpo.yaml``, LoRA r=8 alpha 16 all-linear, fp32, rewards ``answer`` (weight 1) + ``format`` (0.5),
batch 8 with 4 completions of at most 64 tokens per question, temperature 1, beta 0, ``--steps`` steps. Runs:
``studio`` (``TrainingJob``) and ``plain`` (what a person writes from TRL's docs: conversational prompts, the
reference column, the same two reward functions, ``peft_config``). Each run is its own process
(``python -m studio.bench.train_grpo --worker SPEC``), in alternated order over ``--rounds``. Beside wall-time
steps/s, each run's CPU seconds per step (``time.process_time``): on a shared machine wall time swings ~10x with the
load, so read both and the load average printed with them. Studio ends each completion after its ``#### <number>``
line (:mod:`studio.training.methods.grpo_stop`); plain TRL runs every completion to its end token or the limit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from studio.bench.train import _studio, _timer
from studio.bench.train_pref import format_summary, summarize

RESULT_MARK = "STUDIO_BENCH_TRAIN_GRPO "
DATA = "word_problems.jsonl"
SYSTEM = "Solve the problem step by step. End with the final answer alone on the last line, as: #### <number>"
REWARDS = [{"name": "answer", "weight": 1.0}, {"name": "format", "weight": 0.5}]


def run_config(*, model: str, data: Path, out: Path, steps: int, smoke: bool, rows: int) -> Any:
    """The RunConfig both engines train with (the plain script reads the same settings)."""
    from studio.config import RunConfig

    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(data)}], "format": "prompt_completion", "eval_fraction": 0.0,
                 "max_rows": rows, "system_prompt": SYSTEM},
        "model": {"name_or_path": model, "compute_dtype": "fp32"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"method": "grpo", "rewards": REWARDS, "batch_size": 4 if smoke else 8,
                  "num_generations": 2 if smoke else 4, "max_completion_length": 16 if smoke else 64,
                  "temperature": 1.0, "kl_beta": 0.0, "max_length": 256, "learning_rate": 1e-4,
                  "lr_scheduler": "constant", "warmup_ratio": 0.0, "gradient_checkpointing": False,
                  "max_steps": steps, "logging_steps": 1, "save_steps": 100_000, "tensorboard": False,
                  "output_dir": str(out), "device": "cpu", "seed": 0}})


def _plain_rows(cfg: Any) -> Any:
    """The questions as TRL's docs show them: a conversational prompt (system + user) and a reference column."""
    from datasets import Dataset

    from studio.rewards import reference_answer

    path = cfg.data.sources[0].path
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    rows = rows[: cfg.data.max_rows]
    return Dataset.from_list([{"prompt": [{"role": "system", "content": cfg.data.system_prompt},
                                          {"role": "user", "content": r["question"]}],
                               "reference": reference_answer(r["answer"])} for r in rows])


def _plain(cfg: Any, timer_cls: Any, holder: dict) -> None:
    """What a person writes by hand: tokenizer, model, LoraConfig, GRPOConfig, GRPOTrainer with reward functions."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from studio.modeling import model_id
    from studio.modeling.sources import resolve_model_path
    from studio.rewards.builtin import answer, format as format_reward

    t = cfg.train
    path = resolve_model_path(model_id(cfg.model))
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32", attn_implementation="sdpa")
    args = GRPOConfig(output_dir=str(Path(t.output_dir) / "plain"), per_device_train_batch_size=t.batch_size,
                      num_generations=t.num_generations, max_completion_length=t.max_completion_length,
                      temperature=t.temperature, beta=t.kl_beta, reward_weights=[r["weight"] for r in REWARDS],
                      max_steps=t.max_steps, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
                      warmup_steps=0, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                      bf16=False, gradient_checkpointing=False, seed=t.seed, dataloader_pin_memory=False,
                      max_grad_norm=t.max_grad_norm)
    lc = cfg.lora
    peft_config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                             task_type="CAUSAL_LM")
    timer = timer_cls()
    trainer = GRPOTrainer(model=model, reward_funcs=[answer, format_reward], args=args,
                          train_dataset=_plain_rows(cfg), processing_class=tok, peft_config=peft_config,
                          callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    holder.update(trainer=trainer, timer=timer)
    trainer.train()


def worker(spec: dict) -> dict:
    """One run in this process; returns its figures (the completion length is GRPO's work per step)."""
    import resource

    from studio.imports import quiet_libraries

    quiet_libraries()
    cfg = run_config(model=spec["model"], data=Path(spec["data"]), out=Path(spec["out"]), steps=spec["steps"],
                     smoke=spec["smoke"], rows=spec["rows"])
    holder: dict[str, Any] = {}

    def trainer() -> Any:
        return holder["trainer"] if "trainer" in holder else holder["job"].trainer

    base = _timer(trainer)

    class Timer(base):  # type: ignore[misc, valid-type]
        """The step timer, also keeping each logged mean completion length."""

        def __init__(self, *a: Any) -> None:
            super().__init__(*a)
            self.lengths: list[float] = []
            self.cpu: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            super().on_step_end(args, state, control, **kwargs)
            self.cpu.append(time.process_time())  # this process's CPU seconds: steadier than wall time under load

        def on_log(self, args, state, control, logs=None, **kwargs):
            super().on_log(args, state, control, logs=logs, **kwargs)
            if logs and logs.get("completions/mean_length") is not None:
                self.lengths.append(float(logs["completions/mean_length"]))

    (_plain if spec["run"] == "plain" else _studio)(cfg, Timer, holder)
    marks = holder["timer"].marks
    warm = min(spec["warmup"], max(len(marks) - 2, 0))
    dt = max(marks[-1][0] - marks[warm][0], 1e-9)
    lengths, cpu = holder["timer"].lengths, holder["timer"].cpu
    return {"setup": "grpo", "run": spec["run"], "steps": len(marks), "timed_steps": len(marks) - 1 - warm,
            "steps_per_s": (len(marks) - 1 - warm) / dt, "tokens_per_s": None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "first_loss": holder["timer"].first_loss,
            "mean_completion_length": sum(lengths) / len(lengths) if lengths else None,
            "cpu_s_per_step": (cpu[-1] - cpu[warm]) / max(len(cpu) - 1 - warm, 1) if len(cpu) > 1 else None}


def _spawn(spec: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "studio.bench.train_grpo", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"setup": "grpo", "run": spec["run"], "error": f"exit {proc.returncode}: {tail[0]}"}


def bench_train_grpo(*, model: str | None = None, steps: int = 8, warmup: int = 2, rounds: int = 1,
                     smoke: bool = False, rows: int | None = None, timeout: float = 1800,
                     report: Callable[[str], None] = print) -> dict:
    """Studio and plain, ``rounds`` times in alternated order; figures and studio/plain ratios."""
    from studio.errors import ConfigError
    from studio.paths import ASSETS

    if steps < 2:
        raise ConfigError(f"--steps must be >= 2 (got {steps})")
    model = model or ("studio/demo-tiny" if smoke else "smollm2-135m-instruct")
    rows = rows or (16 if smoke else 32)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-grpo-") as tmp:
        for i in range(rounds):
            for run in (("studio", "plain") if i % 2 == 0 else ("plain", "studio")):
                spec = {"run": run, "model": model, "data": str(ASSETS / "datasets" / DATA), "steps": steps,
                        "warmup": warmup, "smoke": smoke, "rows": rows, "out": str(Path(tmp) / f"{run}-{i}")}
                r = _spawn(spec, timeout)
                r["round"] = i + 1
                results.append(r)
                report(_line(r))
    summary = summarize(results)
    lines = format_summary(summary)
    for line in lines:
        report(line.split("; first-step loss")[0] + " (the completion lengths are sampled: compare them too)")
    cpu = {r["run"]: r.get("cpu_s_per_step") for r in results if not r.get("error")}
    if cpu.get("studio") and cpu.get("plain"):
        summary["ratios"]["grpo_cpu_s_per_step"] = round(cpu["studio"] / cpu["plain"], 3)
        report(f"grpo: studio / plain TRL CPU seconds per step {summary['ratios']['grpo_cpu_s_per_step']} "
               f"(lower is faster; this process's CPU time, steadier than wall time on a shared machine)")
    load = os.getloadavg()
    report(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return {"model": model, "steps": steps, "warmup": warmup, "rounds": rounds, "rows": rows, "runs": results,
            "load_average": list(load), **summary}


def _line(r: dict) -> str:
    if r.get("error"):
        return f"round {r['round']}: grpo {r['run']:6s} failed: {r['error']}"
    length = r.get("mean_completion_length")
    return (f"round {r['round']}: grpo {r['run']:6s} {r['steps_per_s']:.3f} steps/s, peak RSS "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GB, {r.get('cpu_s_per_step') or 0:.1f} CPU s/step, mean completion "
            f"{length or 0:.1f} tokens "
            f"({r['timed_steps']} timed steps)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--worker":
        print(RESULT_MARK + json.dumps(worker(json.loads(argv[1]))), flush=True)
        return 0
    print("usage: studio bench train --method grpo [--smoke] [--steps N] [--json]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
