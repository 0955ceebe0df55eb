"""``studio bench train --method dpo|orpo|kto|simpo``: Studio's engine against a hand-written plain TRL trainer + peft.

One setup: the first ``--rows`` (default 60) pairs of the bundled ``word_problem_preferences.jsonl`` on the real
SmolLM2-135M-Instruct (``--smoke``: the tiny demo model), LoRA r=8 alpha 16 all-linear, fp32, batch 4, max length
192, ``--steps`` steps, the method's default beta. Runs: ``studio`` (``TrainingJob``) and ``plain`` (the TRL
trainer a person writes from TRL's docs: conversational rows, ``peft_config``, the reference by disabling the
adapter; KTO gets the pairs unpaired by TRL itself). Each run is its own process
(``python -m studio.bench.train_pref --worker SPEC``), in alternated order over ``--rounds``.

Memory, two figures per run: peak RSS (what the OS sees) and the peak of the live malloc heap
(:class:`~studio.bench.heap.HeapPeak`). Peak RSS also counts what glibc keeps after it is freed: 1.2-1.5 GB of
freed activations on SmolLM2 ORPO, swinging by 0.5 GB between two runs of one script and a little higher when the
run trains in a worker thread (Studio's ``TrainingJob`` does, plain TRL in the main thread). The live heap peak
compares the tensors the two engines hold.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from studio.bench.heap import HeapPeak
from studio.bench.train import _studio, _timer

RESULT_MARK = "STUDIO_BENCH_TRAIN_PREF "
METHODS = ("dpo", "orpo", "kto", "simpo")
DATA = "word_problem_preferences.jsonl"


def run_config(method: str, *, model: str, data: Path, out: Path, steps: int, smoke: bool, rows: int) -> Any:
    """The RunConfig both engines train with (the plain script reads the same settings)."""
    from studio.config import RunConfig

    return RunConfig.from_dict({
        "data": {"sources": [{"path": str(data)}], "format": "preference", "eval_fraction": 0.0, "max_rows": rows},
        "model": {"name_or_path": model, "compute_dtype": "fp32"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"method": method, "batch_size": 4, "max_length": 128 if smoke else 192, "learning_rate": 5e-5,
                  "lr_scheduler": "constant", "warmup_ratio": 0.0, "gradient_checkpointing": False,
                  "max_steps": steps, "logging_steps": 1, "save_steps": 100_000, "tensorboard": False,
                  "output_dir": str(out), "device": "cpu" if smoke else "auto", "seed": 0}})


def _plain_rows(cfg: Any) -> Any:
    """The pairs as TRL's docs show them: conversational prompt/chosen/rejected."""
    from datasets import Dataset

    path = cfg.data.sources[0].path
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    rows = rows[: cfg.data.max_rows]
    return Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])


def _plain(cfg: Any, timer_cls: Any, holder: dict) -> None:
    """What a person writes by hand: tokenizer, model, LoraConfig, the method's TRL config and trainer."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback

    from studio.config import DEFAULT_BETA
    from studio.modeling import model_id
    from studio.modeling.sources import resolve_model_path

    method, t = cfg.train.method, cfg.train
    path = resolve_model_path(model_id(cfg.model))
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32", attn_implementation="sdpa")
    common = dict(output_dir=str(Path(t.output_dir) / "plain"), per_device_train_batch_size=t.batch_size,
                  max_steps=t.max_steps, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
                  warmup_steps=0, max_length=t.max_length, logging_steps=1, save_strategy="no", report_to="none",
                  use_cpu=True, bf16=False, gradient_checkpointing=False, seed=t.seed,
                  dataloader_pin_memory=False, max_grad_norm=t.max_grad_norm,
                  beta=t.beta if t.beta is not None else DEFAULT_BETA[method])
    if method == "dpo":
        from trl import DPOConfig as Config, DPOTrainer as Trainer
    elif method == "kto":
        from trl import KTOConfig as Config, KTOTrainer as Trainer
    elif method == "orpo":
        from trl.experimental.orpo import ORPOConfig as Config, ORPOTrainer as Trainer
    else:
        from trl.experimental.cpo import CPOConfig as Config, CPOTrainer as Trainer

        common.update(loss_type="simpo", cpo_alpha=0.0, simpo_gamma=t.simpo_gamma)
    if method in ("orpo", "simpo"):
        common["remove_unused_columns"] = False  # what TRL's warning tells a person to set
    lc = cfg.lora
    peft_config = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules,
                             task_type="CAUSAL_LM")
    timer = timer_cls()
    trainer = Trainer(model=model, args=Config(**common), train_dataset=_plain_rows(cfg), processing_class=tok,
                      peft_config=peft_config, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    holder.update(trainer=trainer, timer=timer)
    trainer.train()


def worker(spec: dict) -> dict:
    """One run in this process; returns its figures."""
    import resource

    from studio.imports import quiet_libraries

    quiet_libraries()
    cfg = run_config(spec["method"], model=spec["model"], data=Path(spec["data"]), out=Path(spec["out"]),
                     steps=spec["steps"], smoke=spec["smoke"], rows=spec["rows"])
    holder: dict[str, Any] = {}

    def trainer() -> Any:
        return holder["trainer"] if "trainer" in holder else holder["job"].trainer

    with HeapPeak() as heap:
        (_plain if spec["run"] == "plain" else _studio)(cfg, _timer(trainer), holder)
    marks = holder["timer"].marks
    warm = min(spec["warmup"], max(len(marks) - 2, 0))
    dt = max(marks[-1][0] - marks[warm][0], 1e-9)
    return {"setup": spec["method"], "run": spec["run"], "steps": len(marks), "timed_steps": len(marks) - 1 - warm,
            "steps_per_s": (len(marks) - 1 - warm) / dt, "tokens_per_s": None,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_heap_bytes": heap.peak, "first_loss": holder["timer"].first_loss}


def _spawn(spec: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "studio.bench.train_pref", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"setup": spec["method"], "run": spec["run"], "error": f"exit {proc.returncode}: {tail[0]}"}


def bench_train_pref(methods: tuple[str, ...], *, model: str | None = None, steps: int = 10, warmup: int = 2,
                     rounds: int = 1, smoke: bool = False, rows: int | None = None, timeout: float = 1800,
                     report: Callable[[str], None] = print) -> dict:
    """Each method: studio and plain, ``rounds`` times in alternated order; figures and studio/plain ratios."""
    from studio.errors import ConfigError
    from studio.paths import ASSETS

    bad = [m for m in methods if m not in METHODS]
    if bad or steps < 2:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)} and --steps >= 2 (got {bad or steps})")
    model = model or ("studio/demo-tiny" if smoke else "smollm2-135m-instruct")
    rows = rows or (16 if smoke else 60)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="studio-bench-pref-") as tmp:
        for i in range(rounds):
            for method in methods:
                for run in (("studio", "plain") if i % 2 == 0 else ("plain", "studio")):
                    spec = {"method": method, "run": run, "model": model, "data": str(ASSETS / "datasets" / DATA),
                            "steps": steps, "warmup": warmup, "smoke": smoke, "rows": rows,
                            "out": str(Path(tmp) / f"{method}-{run}-{i}")}
                    r = _spawn(spec, timeout)
                    r["round"] = i + 1
                    results.append(r)
                    report(_line(r))
    summary = summarize(results)
    for line in format_summary(summary):
        report(line)
    return {"model": model, "steps": steps, "warmup": warmup, "rounds": rounds, "rows": rows, "runs": results,
            **summary}


def summarize(results: list[dict]) -> dict:
    """Per method: medians over rounds, and studio / plain ratios of steps/s, peak RSS and peak live heap."""
    import statistics

    med: dict[str, dict[str, dict[str, list]]] = {}
    for r in results:
        if not r.get("error"):
            slot = med.setdefault(r["setup"], {}).setdefault(r["run"], {"steps_per_s": [], "peak_rss_bytes": [],
                                                                        "peak_heap_bytes": [], "first_loss": []})
            for k in slot:
                if r.get(k) is not None:
                    slot[k].append(r[k])
    medians = {m: {run: {k: statistics.median(v) if v else None for k, v in d.items()} for run, d in runs.items()}
               for m, runs in med.items()}
    ratios = {}
    for m, runs in medians.items():
        s, p = runs.get("studio", {}), runs.get("plain", {})
        for key in ("steps_per_s", "peak_rss_bytes", "peak_heap_bytes"):
            ratios[f"{m}_{key.removesuffix('_bytes')}"] = round(s[key] / p[key], 3) if s.get(key) and p.get(key) \
                else None
    first = {m: {run: d["first_loss"] for run, d in runs.items()} for m, runs in medians.items()}
    return {"medians": medians, "ratios": ratios, "first_loss": first}


def _line(r: dict) -> str:
    if r.get("error"):
        return f"round {r['round']}: {r['setup']:5s} {r['run']:6s} failed: {r['error']}"
    loss = f"{r['first_loss']:.5f}" if r.get("first_loss") is not None else "-"
    heap = f", live heap {r['peak_heap_bytes'] / 2**30:.2f} GB" if r.get("peak_heap_bytes") else ""
    return (f"round {r['round']}: {r['setup']:5s} {r['run']:6s} {r['steps_per_s']:.3f} steps/s, peak RSS "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GB{heap}, first-step loss {loss} ({r['timed_steps']} timed steps)")


def format_summary(summary: dict) -> list[str]:
    lines = []
    for m, runs in summary["first_loss"].items():
        sp, rss, heap = (summary["ratios"].get(f"{m}_{k}") for k in ("steps_per_s", "peak_rss", "peak_heap"))
        lines.append(f"{m}: studio / plain TRL steps/s {sp if sp is not None else 'n/a'} (target >= 1.0), peak RSS "
                     f"{rss if rss is not None else 'n/a'}, peak live heap {heap if heap is not None else 'n/a'}; "
                     "first-step loss " + ", ".join(
                         f"{run} {v:.6f}" if v is not None else f"{run} -" for run, v in runs.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--worker":
        print(RESULT_MARK + json.dumps(worker(json.loads(argv[1]))), flush=True)
        return 0
    print("usage: studio bench train --method dpo|orpo|kto|simpo [--smoke] [--steps N] [--json]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
