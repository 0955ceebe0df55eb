"""One blind arena round: two models (the base, a run, a checkpoint or an adapter folder) answer the same prompt on
one copy of the base weights; the sides are shuffled and the names stay hidden until the vote.

A model is named by a *spec*: ``base@<run dir>`` (that run's base model, adapter off), a run directory, a
checkpoint folder, or an adapter folder. The engine is loaded from the first run the specs name (``open_run``), and
the other adapters are added to it (never a second copy of the base).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from studio.arena.votes import CHOICES, Vote, append_vote
from studio.errors import ConfigError, ModelError

BASE_PREFIX = "base@"


@dataclass(frozen=True)
class Contender:
    """One side of a round: what it is (``spec``) and the name it is revealed under (``label``)."""

    spec: str
    label: str


def _run_of(path: Path) -> Path | None:
    from studio import runs

    for p in (path, path.parent, path.parent.parent):
        if (p / runs.CONFIG).exists():
            return p
    return None


def label_of(spec: str) -> str:
    """The name a model is revealed and recorded under: ``base · <model>``, a run's name, ``run · checkpoint-N``."""
    from studio import runs
    from studio.config import load_config

    if spec.startswith(BASE_PREFIX):
        run = Path(spec[len(BASE_PREFIX):])
        try:
            return f"base · {load_config(run / runs.CONFIG).model.name_or_path}"
        except Exception:  # noqa: BLE001 - a label, never a failure
            return f"base · {run.name}"
    path = Path(spec)
    run = _run_of(path)
    if run is None:
        return str(path)
    if path == run:
        return run.name
    return f"{run.name} · {path.name}"


def model_choices(runs_dir: str | Path) -> list[tuple[str, str]]:
    """``(label, spec)`` for the arena's pickers: each distinct base model (through its newest run), every run with
    an adapter, and each of its checkpoints."""
    from studio import runs

    out: list[tuple[str, str]] = []
    bases: dict[str, str] = {}
    listed = [r for r in runs.list_runs(runs_dir) if r.status != "running"]
    for r in listed:
        try:
            name = r.config.model.name_or_path
        except Exception:  # noqa: BLE001 - a run with an unreadable config offers no base
            continue
        bases.setdefault(name, f"{BASE_PREFIX}{r.path}")
    out += [(f"base · {name}", spec) for name, spec in bases.items()]
    for r in listed:
        if r.adapter_path is not None:
            out.append((f"{r.name} (final adapter)", str(r.path)))
        for ckpt in runs.checkpoints(r.path):
            if (Path(ckpt) / "adapter_config.json").exists():
                out.append((f"{r.name} · {Path(ckpt).name}", str(ckpt)))
    return out


def engine_run(a: str, b: str) -> Path:
    """The run whose base model the round loads: the first run either spec names.

    Raises:
        ModelError: neither names a run (two adapter folders with no run around them).
    """
    for spec in (a, b):
        path = Path(spec[len(BASE_PREFIX):] if spec.startswith(BASE_PREFIX) else spec)
        run = _run_of(path)
        if run is not None:
            return run
    raise ModelError("the arena loads the base model of a run: pick a run, one of its checkpoints, or a base "
                     "model, on at least one side")


def normalize_specs(a: str, b: str) -> tuple[str, str]:
    """``base`` alone means the base model of the run on the other side (``base@<that run>``).

    Raises:
        ModelError: both sides are ``base`` (name the run: ``base@RUN_DIR``), or the other side is no run.
    """
    if a == "base" and b == "base":
        raise ModelError("both sides are 'base': name whose base model with base@RUN_DIR (the same model on both "
                         "sides is allowed)")
    if a == "base":
        a = f"{BASE_PREFIX}{engine_run(b, b)}"
    if b == "base":
        b = f"{BASE_PREFIX}{engine_run(a, a)}"
    return a, b


def adapter_for(engine: Any, spec: str) -> str:
    """The engine's adapter name for ``spec`` (loaded now if needed; the base is ``base``).

    Raises:
        ModelError: the spec's base model is not the loaded one, or there is no adapter there.
    """
    from studio import runs
    from studio.config import load_config
    from studio.inference import BASE
    from studio.inference.sources import resolve_adapter_source

    if spec.startswith(BASE_PREFIX):
        run = Path(spec[len(BASE_PREFIX):])
        base = load_config(run / runs.CONFIG).model.name_or_path
        if engine.base_model and base != engine.base_model:
            raise ModelError(f"the two sides have different base models ({base} vs {engine.base_model}); the arena "
                             f"compares models that share one base")
        return BASE
    path, _ = resolve_adapter_source(spec)
    for name, info in engine.adapters.items():
        if str(info.source) == str(path):
            return name
    return engine.load_adapter(spec)


@dataclass
class Round:
    """A round in progress: who sits left and right (hidden until the vote) and what each answered."""

    prompt: str
    left: Contender
    right: Contender
    system_prompt: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    left_answer: str = ""
    right_answer: str = ""
    done: bool = False
    voted: bool = False

    @property
    def same_model(self) -> bool:
        return self.left.spec == self.right.spec


def new_round(prompt: str, a: str, b: str, *, rng: random.Random | None = None, system_prompt: str | None = None,
              generation: dict[str, Any] | None = None) -> Round:
    """A round with ``a`` and ``b`` shuffled to the left and right.

    Raises:
        ConfigError: an empty prompt or an unpicked side.
    """
    if not (prompt or "").strip():
        raise ConfigError("type a prompt for the two models")
    if not a or not b:
        raise ConfigError("pick two models for the arena (the base, a run, a checkpoint or an adapter folder)")
    sides = [Contender(a, label_of(a)), Contender(b, label_of(b))]
    (rng or random.Random()).shuffle(sides)
    return Round(prompt.strip(), sides[0], sides[1], system_prompt, dict(generation or {}))


def play(engine: Any, rnd: Round, params: Any, *, stop_event: Any = None) -> Iterator[tuple[str, str]]:
    """Answer ``rnd`` on ``engine``: yields ``(left text, right text)`` as they stream (left first, then right);
    ``rnd.done`` is set at the end. Both sides get the same prompt, seed and parameters."""
    names = adapter_for(engine, rnd.left.spec), adapter_for(engine, rnd.right.spec)
    rnd.generation = {**dataclasses.asdict(params), **rnd.generation}
    for side, name in zip(("left", "right"), names):
        stream = engine.stream(rnd.prompt, params=params, system_prompt=rnd.system_prompt, adapter=name,
                               stop_event=stop_event)
        for _ in stream:
            setattr(rnd, f"{side}_answer", stream.text)
            yield rnd.left_answer, rnd.right_answer
        setattr(rnd, f"{side}_answer", stream.reply().text)
        yield rnd.left_answer, rnd.right_answer
    rnd.done = True


def vote(rnd: Round, choice: str, runs_dir: str | Path, *, edited_answer: str | None = None) -> Vote:
    """Record the verdict on ``rnd`` in ``<runs>/arena/votes.jsonl`` and return it (the names may now be shown).

    Raises:
        ConfigError: both answers are not finished yet, the round was already judged, or an unknown choice.
    """
    if choice not in CHOICES:
        raise ConfigError(f"a vote is one of {', '.join(CHOICES)}, got {choice!r}")
    if not rnd.done:
        raise ConfigError("wait until both answers are finished before voting")
    if rnd.voted:
        raise ConfigError("this round is already judged: send a new prompt for the next round")
    edited = (edited_answer or "").strip() or None
    v = Vote(prompt=rnd.prompt, left_model=rnd.left.label, right_model=rnd.right.label,
             left_answer=rnd.left_answer, right_answer=rnd.right_answer, vote=choice, edited_answer=edited,
             system_prompt=rnd.system_prompt, generation=_jsonable(rnd.generation))
    append_vote(runs_dir, v)
    rnd.voted = True
    return v


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def reveal(rnd: Round, v: Vote | None = None) -> str:
    """The names behind the two sides, after the vote (with the verdict)."""
    verdict = {"left": f"you preferred **{rnd.left.label}**", "right": f"you preferred **{rnd.right.label}**",
               "tie": "a tie", "both_bad": "both answers bad"}
    tail = f": {verdict[v.vote]}." if v is not None else "."
    same = " (the same model on both sides)" if rnd.same_model else ""
    return f"Left was **{rnd.left.label}**, right was **{rnd.right.label}**{same}{tail}"


OpenRun = Callable[[Path], Any]
"""Loads (or returns the cached) engine for a run directory."""


def open_round_engine(open_run: OpenRun, rnd: Round) -> Any:
    """The engine that serves both sides of ``rnd`` (loaded through ``open_run``)."""
    return open_run(engine_run(rnd.left.spec, rnd.right.spec))
