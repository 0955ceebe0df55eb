"""`studio bench eval-overhead`: what evaluation during training costs, what keeping the best checkpoint keeps, and
what the forgetting check says, on the real SmolLM2 and the bundled word problems, in one call.

Two runs of the same config: evaluation at the automatic interval with the best checkpoint kept, and evaluation at
the end only (the baseline); the overhead is the ratio of their wall times. Then the forgetting check scores the
base model, each checkpoint and the final adapter of the first run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import yaml

from studio.paths import ASSETS


def bench_config(runs_dir: Path, *, steps: int, rows: int, eval_steps: int | None, keep_best: bool) -> Any:
    from studio.config import RunConfig

    raw = yaml.safe_load((ASSETS / "configs" / "smollm2_word_problems.yaml").read_text(encoding="utf-8"))
    for src in raw["data"]["sources"]:
        src["path"] = str((ASSETS / "configs" / src["path"]).resolve())
    raw["model"]["name_or_path"] = "smollm2-135m-instruct"
    raw["data"].update(max_rows=rows, eval_fraction=0.2)
    raw["train"].update(output_dir=str(runs_dir), max_steps=steps, batch_size=4, max_length=160, logging_steps=1,
                        save_steps=max(1, steps // 3), save_total_limit=None, tensorboard=False, eval_steps=eval_steps,
                        keep_best=keep_best, device="cpu")
    return RunConfig.from_dict(raw)


def eval_share(view: Any) -> float:
    """Share of the run's time from its first to its last training log spent in evaluations during training: each
    evaluation's time is the gap between the log of its step and its ``Eval`` event (from the run's events)."""
    from studio.events import Eval, Log

    logs = {e.step: e.time for e in view.of(Log)}
    if len(logs) < 2:
        return 0.0
    spent = sum(max(0.0, e.time - logs[e.step]) for e in view.of(Eval) if e.step in logs and e.step < max(logs))
    return spent / (max(logs.values()) - min(logs.values()))


def run_eval_bench(runs_dir: Path, *, steps: int = 24, rows: int = 80,
                   report: Callable[[str], None] = print) -> dict[str, Any]:
    from studio.events import Eval, Note
    from studio.forgetting import check_run
    from studio.runs import load_run
    from studio.training import TrainingJob

    out: dict[str, Any] = {}
    timed = {}
    for name, eval_steps, keep in (("end only", 10 ** 6, False), ("automatic + keep best", None, True)):
        cfg = bench_config(runs_dir / name.split()[0], steps=steps, rows=rows, eval_steps=eval_steps, keep_best=keep)
        job = TrainingJob(cfg)
        t0 = time.perf_counter()
        result = job.run()
        timed[name] = time.perf_counter() - t0
        if result.type != "finished":
            raise RuntimeError(f"{name} run did not finish: {getattr(result, 'message', result)}")
        view = load_run(job.run_dir)
        evals = view.of(Eval)
        share = eval_share(view)
        report(f"{name}: {timed[name]:.1f} s, evaluations at steps {[e.step for e in evals]} took {share:.1%} of "
               f"the run's training time (from its events); {job.eval_plan.reason}")
        out[name] = {"seconds": round(timed[name], 1), "eval_steps": [e.step for e in evals],
                     "eval_losses": [round(e.eval_loss, 4) for e in evals if e.eval_loss is not None],
                     "plan": job.eval_plan.reason, "run_dir": str(job.run_dir),
                     "eval_share": round(share, 4)}
        kept = [n for n in view.of(Note) if (n.data or {}).get("kind") == "kept_best"]
        if kept:
            out[name]["kept"] = kept[-1].message
            report(f"  kept: {kept[-1].message}; last step {result.step}")
    overhead = timed["automatic + keep best"] / timed["end only"] - 1
    out["overhead"] = round(overhead, 3)
    report(f"evaluation during training: {overhead:+.1%} wall time against evaluating at the end only")
    forgetting = check_run(out["automatic + keep best"]["run_dir"], task_rows=8, device="cpu")
    out["forgetting"] = forgetting.to_dict()
    for row in forgetting.rows():
        report("  forgetting: " + " | ".join(str(c) for c in row))
    return out
