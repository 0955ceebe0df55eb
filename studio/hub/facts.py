"""What publishing needs to know about a run directory: config, events, environment, adapter config, eval results.

Read from the files directly (plain dicts for events) so a run that is still being written, or one written by an
older Studio, can still be exported.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import DEMO_MODEL, RunConfig, load_config
from studio.errors import HubError

EVAL_FILES = ("eval_results.json",)
"""Where a run keeps its saved ``EvalReport`` (``report.save(run_dir / "eval_results.json")``)."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_SAMPLES = 3
EVENT_METRICS = ("mean_token_accuracy",)
"""Trainer eval metrics worth a card row besides the loss (runtime, token counts and entropy are not)."""


# ------------------------------------------------------------------------------------------------- run facts
@dataclass
class RunFacts:
    """What a card (and an export) needs to know about one run directory."""

    run_dir: Path
    config: RunConfig
    events: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    adapter_config: dict[str, Any] = field(default_factory=dict)
    eval_results: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapter"

    @property
    def base_id(self) -> str:
        """The base model's Hub id or folder (a preset name mapped to its Hub id)."""
        from studio.modeling import model_id

        return model_id(self.config.model)

    @property
    def base_on_hub(self) -> bool:
        return is_hub_id(self.base_id) and self.base_id != DEMO_MODEL

    @property
    def method(self) -> str:
        return "qlora" if self.config.model.quantization == "4bit" else "lora"

    def losses(self) -> list[tuple[float, float]]:
        return [(e["step"], e["loss"]) for e in self.events
                if e.get("type") == "log" and is_number(e.get("loss")) and e.get("step") is not None]

    def eval_losses(self) -> list[tuple[float, float]]:
        return [(e["step"], e["eval_loss"]) for e in self.events
                if e.get("type") == "eval" and is_number(e.get("eval_loss")) and e.get("step") is not None]

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("type") == kind), None)


def default_repo_name(facts: RunFacts, kind: str | None = None) -> str:
    """A repo name from the run's model and dataset: ``SmolLM2-135M-Instruct-word_problems-lora`` (``-gguf`` for a
    GGUF export, ``-merged`` for a merged model)."""
    from studio.runs import _slug

    model = facts.base_id.rstrip("/").split("/")[-1]
    sources = facts.config.data.sources
    data = ""
    if sources:
        first = sources[0].path.rstrip("/")
        data = first.split("/")[-1] if is_hub_id(first) else Path(first).stem
    suffix = kind if kind in ("merged", "gguf") else facts.method
    return _slug("-".join(p for p in (model, data, suffix) if p))


def is_hub_id(name: str) -> bool:
    """``owner/name`` that is not an existing local path."""
    return bool(_HUB_ID.match(name or "")) and not Path(name).expanduser().exists()


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_events(path: Path) -> list[dict[str, Any]]:
    """events.jsonl as plain dicts; a torn last line (a run still writing) is skipped."""
    out: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def load_facts(run_dir: str | Path, eval_results: Any = None) -> RunFacts:
    """Read a run directory.

    Args:
        run_dir: the run directory.
        eval_results: an ``studio.evaluate.EvalReport`` (or its ``to_dict()``) to use instead of the run's
            ``eval_results.json``.

    Raises:
        HubError: the folder is not a run directory or its config can't be read.
    """
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / "config.yaml").is_file():
        raise HubError(f"{run_dir} is not a run directory (it has no config.yaml); pick a folder under runs/")
    config = load_config(run_dir / "config.yaml")
    evals: dict[str, Any] = {}
    if eval_results is not None:
        evals = eval_results.to_dict() if hasattr(eval_results, "to_dict") else dict(eval_results)
    else:
        for name in EVAL_FILES:
            if (run_dir / name).is_file():
                evals = _read_json(run_dir / name)
                break
    return RunFacts(run_dir=run_dir, config=config, events=read_events(run_dir / "events.jsonl"),
                    environment=_read_json(run_dir / "environment.json"),
                    adapter_config=_read_json(run_dir / "adapter" / "adapter_config.json"), eval_results=evals)


# ------------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvalSummary:
    """Normalised evaluation numbers: metric -> (base, tuned); plus sample answers."""

    dataset: str | None = None
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)
    rows: int | None = None


def summarise_eval(facts: RunFacts) -> EvalSummary:
    """Evaluation results from the run's results file (``EvalReport.to_dict()``: ``{"base": {...}, "tuned":
    {...}, "rows": N, "per_row": [...]}``; the first rows are the samples, not hand-picked ones),
    falling back to the last ``eval`` event (tuned loss and metrics only) and to probe answers (first probe at
    step 0 as the base answer, the last one as the tuned answer)."""
    out = EvalSummary()
    res = facts.eval_results
    base, tuned = res.get("base") or {}, res.get("tuned") or {}
    if isinstance(base, dict) and isinstance(tuned, dict):
        for key in dict.fromkeys([*tuned, *base]):
            b, t = base.get(key), tuned.get(key)
            if is_number(b) or is_number(t):
                out.metrics[key] = (b if is_number(b) else None, t if is_number(t) else None)
    out.dataset = res.get("dataset") if isinstance(res.get("dataset"), str) else None
    out.rows = res.get("rows") if isinstance(res.get("rows"), int) else None
    for s in res.get("per_row") or res.get("samples") or []:  # EvalReport.to_dict() rows, or plain samples
        if not isinstance(s, dict) or not s.get("prompt"):
            continue
        item = {"prompt": s["prompt"], "reference": s.get("reference"), "base": s.get("base_output", s.get("base")),
                "tuned": s.get("tuned_output", s.get("tuned"))}
        if item["base"] is not None or item["tuned"] is not None:
            out.samples.append({k: str(v) for k, v in item.items() if v is not None})
    last_eval = facts.last("eval")
    if last_eval:
        if "loss" not in out.metrics and is_number(last_eval.get("eval_loss")):
            out.metrics["loss"] = (None, last_eval["eval_loss"])
        for key, value in (last_eval.get("metrics") or {}).items():
            name = key.removeprefix("eval_")
            if name in EVENT_METRICS and name not in out.metrics and is_number(value):
                out.metrics[name] = (None, value)
    if not out.samples:
        out.samples = _probe_samples(facts.events)
    out.samples = out.samples[:_MAX_SAMPLES]
    return out


def _probe_samples(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    first: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("type") == "probe" and e.get("prompt"):
            first.setdefault(e["prompt"], e)
            last[e["prompt"]] = e
    out = []
    for prompt, tuned in last.items():
        item = {"prompt": prompt, "tuned": str(tuned.get("answer", ""))}
        if first[prompt].get("step") == 0 and first[prompt] is not tuned:
            item["base"] = str(first[prompt].get("answer", ""))
        out.append(item)
    return out
