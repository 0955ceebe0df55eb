"""``studio bench learn --method grpo``: does reward tuning teach SmolLM2 the ``####`` format without costing
accuracy? GRPO with ``answer`` + ``format`` on the bundled word problems (``smollm2_grpo.yaml``) through the real
engine, then base vs tuned on the held-out rows with ``studio eval`` (greedy answers, the number after ``####``).
``--set train.start_from=RUN`` starts from an SFT run's adapter (the base figures are then the plain model's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from studio.paths import ASSETS

GRPO_CONFIG = ASSETS / "configs" / "smollm2_grpo.yaml"
DEFAULT_STEPS = 30


def learn_grpo(*, config: str | Path | None = None, steps: int = DEFAULT_STEPS, rows: int = 20,
               overrides: list[str] | None = None, runs_dir: str | Path | None = None,
               report: Callable[[str], None] = print) -> dict[str, Any]:
    """Train GRPO for ``steps`` and score base vs tuned; the result of :func:`studio.bench.learn.learn` plus the
    first and last logged rewards."""
    from studio.bench.learn import learn
    from studio.events import EventLog, Log

    result = learn(config=config or GRPO_CONFIG, steps=steps, rows=rows, runs_dir=runs_dir,
                   overrides=["train.method=grpo", *(overrides or [])], report=report)
    logs = [e for e in EventLog.read(Path(result["run_dir"]) / "events.jsonl").all()
            if isinstance(e, Log) and "reward" in e.metrics]
    if logs:
        keys = [k for k in logs[-1].metrics if k == "reward" or (k.startswith("rewards/") and k.endswith("/mean"))]
        k = max(1, len(logs) // 5)
        result["rewards"] = {key: {"first": _mean(logs[:k], key), "last": _mean(logs[-k:], key)} for key in keys}
        for key, v in result["rewards"].items():
            report(f"{key}: {v['first']:.2f} (first {k} steps) -> {v['last']:.2f} (last {k})")
    return result


def _mean(logs: list[Any], key: str) -> float:
    values = [e.metrics[key] for e in logs if e.metrics.get(key) is not None]
    return sum(values) / len(values) if values else float("nan")
