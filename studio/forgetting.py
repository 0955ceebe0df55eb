"""The forgetting check: did fine-tuning break what the model could already do?

The base model, each checkpoint and the final adapter answer a small bundled general-skills set
(``assets/datasets/general_skills.jsonl``: arithmetic, facts, following a format; written by
``scripts/make_general_skills.py``) plus the user's own "must not break" prompts, and the run's task is scored on its
held-out rows (``####`` accuracy, else held-out loss). All on one copy of the base weights (adapters switched).
``choose`` picks the checkpoint with the best task score whose general score fell by at most N points, and
``keep_checkpoint`` makes its adapter the run's ``adapter/`` (the previous one is kept beside it).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from studio.errors import ConfigError, DataError
from studio.paths import ASSETS

GENERAL_SET = ASSETS / "datasets" / "general_skills.jsonl"
REPORT = "forgetting.json"
MATCHES = ("number", "contains", "regex")


@dataclass(frozen=True)
class Item:
    prompt: str
    answer: str
    kind: str = "custom"
    match: str = "contains"

    def correct(self, reply: str) -> bool:
        """Whether ``reply`` answers this item (see ``match``)."""
        from studio.evaluate import normalize_answer

        reply = reply or ""
        if self.match == "number":
            return bool(re.search(r"\d", reply)) and normalize_answer(reply) == normalize_answer(self.answer)
        if self.match == "regex":
            return re.fullmatch(self.answer, reply) is not None
        return self.answer.strip().lower() in reply.lower()


def load_items(path: str | Path = GENERAL_SET) -> list[Item]:
    """The items of a JSONL set (``prompt``, ``answer``, optional ``kind`` and ``match``).

    Raises:
        DataError: a missing file or a line that is not such an object (its number named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"general-skills set not found: {path}")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = Item(str(raw["prompt"]), str(raw["answer"]), str(raw.get("kind", "custom")),
                        str(raw.get("match", "contains")))
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path} line {number}: expected a JSON object with prompt and answer") from None
        if item.match not in MATCHES:
            raise DataError(f"{path} line {number}: match must be one of {', '.join(MATCHES)}, got {item.match!r}")
        items.append(item)
    return items


def parse_must_not_break(text: str) -> list[Item]:
    """The user's own prompts, one per line as ``prompt => expected text`` (checked as "the reply contains it").

    Raises:
        ConfigError: a non-empty line without ``=>`` or with an empty side (its number named).
    """
    items = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        prompt, sep, answer = line.partition("=>")
        if not sep or not prompt.strip() or not answer.strip():
            raise ConfigError(f"must-not-break line {number}: write it as 'prompt => expected text', got {line!r}")
        items.append(Item(prompt.strip(), answer.strip(), "yours", "contains"))
    return items


@dataclass
class Point:
    """One model's scores: the base, a checkpoint or the final adapter."""

    name: str
    step: int | None
    general: float
    """Share of general (and must-not-break) items answered correctly."""
    general_correct: int
    general_n: int
    task: float | None
    """Held-out ``####`` accuracy (higher is better) or held-out loss (lower is better): see ``task_metric``."""
    replies: list[str] = field(default_factory=list)


@dataclass
class ForgettingReport:
    run_dir: str
    task_metric: str
    """``accuracy`` or ``loss``."""
    base: Point
    points: list[Point]

    def drop(self, p: Point) -> float:
        """General-score drop against the base, in percentage points (negative: it got better)."""
        return round((self.base.general - p.general) * 100, 2)

    def choose(self, max_drop: float) -> Point | None:
        """The best task score among the points whose general score fell by at most ``max_drop`` points."""
        ok = [p for p in self.points if p.task is not None and self.drop(p) <= max_drop]
        if not ok:
            return None
        better = max if self.task_metric == "accuracy" else min
        return better(ok, key=lambda p: (p.task, -(p.step or 0)) if self.task_metric == "accuracy"
                      else (p.task, p.step or 0))

    def rows(self) -> list[list[Any]]:
        """Table rows: model, step, general score (correct/n), drop in points, task score."""
        def task(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1%}" if self.task_metric == "accuracy" else f"{v:.4f}"
        return [[p.name, "" if p.step is None else p.step, f"{p.general:.1%} ({p.general_correct}/{p.general_n})",
                 "" if p is self.base else f"{self.drop(p):+.1f}", task(p.task)] for p in [self.base, *self.points]]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "task_metric": self.task_metric, "base": asdict(self.base),
                "points": [{**asdict(p), "general_drop_points": self.drop(p)} for p in self.points]}

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / REPORT
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path


def _step(path: Path) -> int | None:
    tail = path.name.split("-")[-1]
    return int(tail) if path.name.startswith("checkpoint-") and tail.isdigit() else None


def check_run(run_dir: str | Path, *, engine: Any = None, extra: Iterable[Item] = (), task_rows: int = 8,
              general: Iterable[Item] | None = None, max_new_tokens: int = 24, device: str = "auto",
              progress: Callable[[float, str], None] | None = None) -> ForgettingReport:
    """Score the base, every checkpoint with an adapter and the final adapter (general set + task).

    Raises:
        DataError: the run has no checkpoint and no adapter to score.
    """
    from studio import runs
    from studio.evaluate import evaluate_run
    from studio.inference import BASE, ChatEngine, GenerationParams

    run_dir = Path(run_dir)
    report = progress or (lambda f, m: None)
    items = [*(load_items() if general is None else general), *extra]
    models: list[tuple[str, Path]] = [(c.name, c) for c in runs.checkpoints(run_dir)
                                      if (c / "adapter_config.json").exists()]
    final = run_dir / runs.ADAPTER
    if (final / "adapter_config.json").exists():
        models.append(("final adapter", final))
    if not models:
        raise DataError(f"{run_dir.name} has no checkpoint or adapter to check yet")
    report(0.0, "loading the model")
    engine = engine or ChatEngine.from_run(run_dir, device=device)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    names = {}
    for label, path in models:
        known = next((n for n, a in engine.adapters.items() if str(a.source) == str(path)), None)
        names[label] = known or engine.load_adapter(path)
    total = len(models) + 1

    def general_score(adapter: str) -> tuple[float, int, list[str]]:
        prompts = [engine.build_prompt(i.prompt, None, None, adapter=adapter, max_new_tokens=max_new_tokens).input_ids
                   for i in items]
        replies = engine.generate_batch(prompts, params, adapter=adapter)
        correct = sum(i.correct(r) for i, r in zip(items, replies))
        return correct / max(len(items), 1), correct, replies

    def task_score(adapter: str) -> tuple[Any, Any]:
        try:
            ev = evaluate_run(run_dir, rows=task_rows, engine=engine, adapter=adapter)
        except DataError:  # no held-out rows: general score only
            return None, None
        return ev.tuned, ev.base

    report(0.05, "scoring the base model")
    g, c, replies = general_score(BASE)
    points: list[Point] = []
    base_task, metric = None, "accuracy"
    for k, (label, path) in enumerate(models, 1):
        report(k / total, f"scoring {label} ({k}/{len(models)})")
        tuned, base = task_score(names[label])
        if base is not None and base_task is None:
            metric = "accuracy" if base.accuracy is not None else "loss"
            base_task = base.accuracy if metric == "accuracy" else base.loss
        task = None if tuned is None else tuned.accuracy if metric == "accuracy" else tuned.loss
        pg, pc, preplies = general_score(names[label])
        points.append(Point(label, _step(path), pg, pc, len(items), task, preplies))
    result = ForgettingReport(str(run_dir), metric, Point("base", None, g, c, len(items), base_task, replies), points)
    report(1.0, "done")
    return result


def keep_checkpoint(run_dir: str | Path, point: Point, reason: str) -> Path:
    """Make ``point``'s checkpoint adapter the run's ``adapter/``; the previous adapter moves to ``adapter.previous/``.

    Raises:
        ConfigError: the point is not a checkpoint of the run.
    """
    from studio import runs
    from studio.events import EventLog, Note

    run_dir = Path(run_dir)
    if point.step is None:
        raise ConfigError(f"{point.name} is not a checkpoint: nothing to keep instead of the final adapter")
    source = run_dir / runs.CHECKPOINTS / point.name
    adapter = run_dir / runs.ADAPTER
    previous = run_dir / "adapter.previous"
    if adapter.exists():
        if previous.exists():
            shutil.rmtree(previous)
        adapter.rename(previous)
    adapter.mkdir()
    for f in source.iterdir():
        if f.is_file() and (f.name.startswith("adapter_") or f.suffix in (".json", ".jinja", ".model", ".txt")) \
                and f.name not in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
            shutil.copy2(f, adapter / f.name)
    if previous.exists():  # tokenizer files the checkpoint lacks
        for f in previous.iterdir():
            if f.is_file() and not (adapter / f.name).exists() and not f.name.startswith("adapter_"):
                shutil.copy2(f, adapter / f.name)
    EventLog.open(run_dir / runs.EVENTS).append(Note(message=f"adapter/ is now {point.name}: {reason}",
                                                     data={"kind": "kept_checkpoint", "step": point.step}))
    return adapter
