"""Benchmarks through lm-evaluation-harness, offline: a run's held-out rows and the bundled general-skills set become
lm-eval task files (local JSON data, no Hub), scored for the base model and the adapter on one copy of the weights.

Both tasks are log-likelihood tasks (cheap on a CPU): the prompt is rendered exactly as the run trained
(its template or chat template), the target is the reference answer; lm-eval reports ``perplexity`` and ``acc``
(whether the reference is the model's greedy continuation). lm-eval is an optional extra: without it one line
says how to install it.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.errors import ConfigError, StudioError

HARNESS_DIR = "harness"
RESULTS = "harness_results.json"
INSTALL = 'pip install "lm-eval>=0.4.5" (or: pip install -e ".[dev]")'


class HarnessMissing(StudioError):
    """lm-evaluation-harness is not installed."""


class HarnessFailed(StudioError):
    """lm-evaluation-harness raised while scoring."""


def available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@dataclass
class HarnessReport:
    """``scores[task][side][metric]`` for side in base, tuned; ``rows[task]`` documents scored."""

    run_dir: str
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def table(self) -> list[list[Any]]:
        out = []
        for task, sides in self.scores.items():
            for metric in sorted(sides.get("tuned", {})):
                out.append([f"{task} {metric} (n={self.rows.get(task, 0)})", sides.get("base", {}).get(metric),
                            sides["tuned"][metric]])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "scores": self.scores, "rows": self.rows}


def write_tasks(run_dir: str | Path, tokenizer: Any, *, rows: int | None = None) -> dict[str, Path]:
    """Write ``<run>/harness/<task>.yaml`` + ``.jsonl`` for the held-out rows and the general set; returns
    ``{task name: yaml path}``. Rows without a reference answer are left out."""
    from studio import runs
    from studio.config import load_config
    from studio.evaluate import heldout_rows
    from studio.forgetting import load_items
    from studio.inference import run_prompt_setup

    run_dir = Path(run_dir)
    out = run_dir / HARNESS_DIR
    out.mkdir(exist_ok=True)
    cfg = load_config(run_dir / runs.CONFIG)
    builder, loaded = run_prompt_setup(cfg, tokenizer, run_dir)
    docs: dict[str, list[dict[str, str]]] = {"studio_heldout": [], "studio_general": []}
    try:
        held = heldout_rows(cfg, loaded, run_dir)
    except StudioError:
        held = []
    for i in range(min(len(held), rows or len(held))):
        prompt, reference = builder.for_row(held[i])
        if reference:
            docs["studio_heldout"].append({"prompt": prompt.text, "target": reference})
    for item in load_items():
        prompt = builder.build(item.prompt, None, None)
        docs["studio_general"].append({"prompt": prompt.text, "target": item.answer})
    tasks = {}
    for name, items in docs.items():
        if not items:
            continue
        data = out / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in items), encoding="utf-8")
        yaml_path = out / f"{name}.yaml"
        yaml_path.write_text(_TASK.format(name=name, data=json.dumps(str(data))), encoding="utf-8")
        tasks[name] = yaml_path
    return tasks


def run_harness(run_dir: str | Path, *, engine: Any = None, rows: int | None = None, device: str = "auto",
                batch_size: int = 4, progress: Callable[[float, str], None] | None = None) -> HarnessReport:
    """Score base and tuned with lm-eval on the run's task files; saves ``harness_results.json`` and adds them to
    ``eval_results.json`` under ``harness``.

    Raises:
        HarnessMissing: lm-eval is not installed (with the install line).
        ConfigError: ``rows`` below 1.
    """
    if not available():
        raise HarnessMissing(f"lm-evaluation-harness is not installed: {INSTALL}")
    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {rows}")
    from studio import runs
    from studio.inference import ChatEngine

    report_progress = progress or (lambda f, m: None)
    run_dir = Path(run_dir)
    report_progress(0.0, "loading the model")
    engine = engine or ChatEngine.from_run(run_dir, device=device)
    tasks = write_tasks(run_dir, engine.tokenizer, rows=rows)
    report = HarnessReport(str(run_dir))
    adapter = next((n for n, a in engine.adapters.items() if a.run_dir and Path(a.run_dir) == run_dir), engine.active)
    for k, (side, name) in enumerate((("tuned", adapter), ("base", None))):
        report_progress(0.1 + 0.45 * k, f"lm-eval: {side} model on {', '.join(tasks)}")
        with _using(engine, name):
            try:
                results = _evaluate(engine, tasks, batch_size)
            except Exception as exc:  # noqa: BLE001 - lm-eval's own errors become one sentence
                import logging

                logging.getLogger("studio.harness").exception("lm-eval failed")
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
                raise HarnessFailed(f"lm-evaluation-harness failed on the {side} model: {type(exc).__name__}: "
                                    f"{first} (task files in {run_dir / HARNESS_DIR})") from exc
        for task, metrics in results.items():
            report.scores.setdefault(task, {})[side] = metrics
    for task, path in tasks.items():
        report.rows[task] = sum(1 for _ in open(path.with_suffix(".jsonl"), encoding="utf-8"))
    (run_dir / RESULTS).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    saved = runs.read_json(run_dir / runs.EVAL_RESULTS)
    saved["harness"] = report.to_dict()
    (run_dir / runs.EVAL_RESULTS).write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    report_progress(1.0, "done")
    return report


class _using:
    """The engine's lock held and its adapter set (``None``: the base, adapters disabled) while lm-eval runs."""

    def __init__(self, engine: Any, adapter: str | None) -> None:
        self.engine, self.adapter = engine, adapter
        self._ctx: Any = None

    def __enter__(self) -> "_using":
        self.engine._lock.acquire()
        model = self.engine.model
        if self.adapter is None:
            self._ctx = model.disable_adapter()
            self._ctx.__enter__()
        else:
            model.set_adapter(self.adapter)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._ctx is not None:
                self._ctx.__exit__(*exc)
        finally:
            self.engine._lock.release()


def _evaluate(engine: Any, tasks: dict[str, Path], batch_size: int) -> dict[str, dict[str, float]]:
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    for noisy in ("lm_eval", "lm-eval"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    folder = str(next(iter(tasks.values())).parent)
    lm = HFLM(pretrained=engine.model, tokenizer=engine.tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=folder, include_defaults=False)  # lm-eval's own 10k task files: 35 s to index
    out = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, log_samples=False, bootstrap_iters=0,
                          verbosity="ERROR")
    results = {}
    for task, values in (out or {}).get("results", {}).items():
        results[task] = {k.split(",")[0]: float(v) for k, v in values.items()
                         if isinstance(v, (int, float)) and k.split(",")[0] in ("perplexity", "acc")}
    return results
