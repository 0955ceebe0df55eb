"""What publishing needs to know about a run directory: config, events, environment, adapter config, eval results.

Read through the one run-folder reader, :func:`studio.runs.load_run` (typed events; a line cut short by a run
still being written is skipped), so an unfinished run can still be exported.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.config import DEMO_MODEL, RunConfig
from studio.errors import HubError, StudioError
from studio.events import EVENT_TYPES, Eval, Probe
from studio.runs import RunView, load_run

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_SAMPLES = 3
EVENT_METRICS = ("mean_token_accuracy",)
METHOD_WORDS = {"sft": "supervised fine-tuning (TRL `SFTTrainer`)",
                "dpo": "Direct Preference Optimization, DPO (TRL `DPOTrainer`)",
                "orpo": "odds-ratio preference optimization, ORPO (TRL `ORPOTrainer`)",
                "kto": "Kahneman-Tversky optimization, KTO (TRL `KTOTrainer`)",
                "simpo": "simple preference optimization, SimPO (TRL `CPOTrainer`, loss `simpo`)"}
"""How the card names each training method."""
NOT_METRICS = ("pairs",)
"""Counts in an eval summary that are not metrics (the row count is said once)."""
"""Trainer eval metrics worth a card row besides the loss (runtime, token counts and entropy are not)."""


# ------------------------------------------------------------------------------------------------- run facts
@dataclass
class RunFacts:
    """What a card (and an export) needs to know about one run directory: its :class:`~studio.runs.RunView`, the
    config, and the evaluation results to show."""

    run: RunView
    config: RunConfig
    eval_results: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def environment(self) -> dict[str, Any]:
        return self.run.environment

    @property
    def adapter_config(self) -> dict[str, Any]:
        return self.run.adapter_config

    @property
    def adapter_dir(self) -> Path:
        return self.run.adapter_dir

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

    @property
    def training_method(self) -> str:
        """``train.method``: ``sft``, ``dpo``, ``orpo``, ``kto``, ``simpo`` ..."""
        return getattr(self.config.train, "method", "sft") or "sft"

    @property
    def preference(self) -> bool:
        """A preference run (its card names beta and the held-out preference accuracy)."""
        return self.training_method in METHOD_WORDS and self.training_method != "sft"

    @property
    def beta(self) -> float | None:
        """The run's beta (its method's default when left empty); None for SFT."""
        if not self.preference:
            return None
        from studio.evaluate_pairs import beta_of

        return beta_of(self.config)

    def method_words(self) -> str:
        """The training method as the card says it: "supervised fine-tuning (TRL `SFTTrainer`)"."""
        return METHOD_WORDS.get(self.training_method, f"{self.training_method.upper()} (TRL)")

    def losses(self) -> list[tuple[int, float]]:
        return self.run.losses()

    def eval_losses(self) -> list[tuple[int, float]]:
        return self.run.eval_losses()

    def last(self, kind: str) -> dict[str, Any] | None:
        """The newest event of type ``kind`` (``"started"``, ``"finished"``...) in its events.jsonl form, or None."""
        event = self.run.last(EVENT_TYPES[kind])
        return event.to_dict() if event is not None else None


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
    try:
        run = load_run(run_dir)
    except StudioError:
        raise HubError(f"{run_dir} is not a run directory (it has no config.yaml); pick a folder under runs/") \
            from None
    if eval_results is None:
        evals = run.eval_results
    else:
        evals = eval_results.to_dict() if hasattr(eval_results, "to_dict") else dict(eval_results)
    return RunFacts(run=run, config=run.config, eval_results=evals)


# ------------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvalSummary:
    """Normalised evaluation numbers: metric -> (base, tuned); plus sample answers."""

    dataset: str | None = None
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)
    rows: int | None = None
    scored: int | None = None
    """Rows whose answer could be scored (an extractable reference answer): the n of an accuracy."""
    kind: str | None = None
    """``preference`` for held-out pairs (``studio.evaluate_pairs``), else None."""


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
            if key in NOT_METRICS:
                continue
            if is_number(b) or is_number(t):
                out.metrics[key] = (b if is_number(b) else None, t if is_number(t) else None)
    out.dataset = res.get("dataset") if isinstance(res.get("dataset"), str) else None
    out.rows = res.get("rows") if isinstance(res.get("rows"), int) else None
    counts = res.get("counts") if isinstance(res.get("counts"), dict) else {}
    scored = (counts.get("tuned") or {}).get("scored") if isinstance(counts.get("tuned"), dict) else None
    out.scored = scored if isinstance(scored, int) and not isinstance(scored, bool) else None
    out.kind = res.get("kind") if isinstance(res.get("kind"), str) else None
    for s in res.get("per_row") or res.get("samples") or []:  # EvalReport.to_dict() rows, or plain samples
        if not isinstance(s, dict) or not s.get("prompt"):
            continue
        item = {"prompt": s["prompt"], "reference": s.get("reference"), "base": s.get("base_output", s.get("base")),
                "tuned": s.get("tuned_output", s.get("tuned"))}
        if item["base"] is not None or item["tuned"] is not None:
            out.samples.append({k: str(v) for k, v in item.items() if v is not None})
    last_eval = facts.run.last(Eval)
    if last_eval:
        if "loss" not in out.metrics and is_number(last_eval.eval_loss):
            out.metrics["loss"] = (None, last_eval.eval_loss)
        for key, value in (last_eval.metrics or {}).items():
            name = key.removeprefix("eval_")
            if name in EVENT_METRICS and name not in out.metrics and is_number(value):
                out.metrics[name] = (None, value)
    if not out.samples:
        out.samples = _probe_samples(facts.run.of(Probe))
    out.samples = out.samples[:_MAX_SAMPLES]
    return out


def _probe_samples(probes: list[Probe]) -> list[dict[str, str]]:
    first: dict[str, Probe] = {}
    last: dict[str, Probe] = {}
    for e in probes:
        if e.prompt:
            first.setdefault(e.prompt, e)
            last[e.prompt] = e
    out = []
    for prompt, tuned in last.items():
        item = {"prompt": prompt, "tuned": str(tuned.answer)}
        if first[prompt].step == 0 and first[prompt] is not tuned:
            item["base"] = str(first[prompt].answer)
        out.append(item)
    return out
